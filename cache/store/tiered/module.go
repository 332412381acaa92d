package tiered

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddy-edge/edge/cache/store"
	"github.com/caddy-edge/edge/cache/store/internal/sizing"
	"github.com/caddy-edge/edge/cache/store/memory"
)

// DefaultMemoryMaxSize is the memory tier's budget when none is set:
// 64 MiB.
const DefaultMemoryMaxSize int64 = 64 << 20

// pool holds the memory tiers by the configuration of the store they
// front, so that a reload keeps them with their entries.
var pool = caddy.NewUsagePool()

// front is a memory tier in the pool.
type front struct {
	*memory.Cache
	size sizing.Owner
}

func (f *front) Destruct() error {
	f.Close()
	return nil
}

// Memory configures the memory tier.
type Memory struct {
	// MaxSize is the memory tier's byte budget. At least 1 MiB. Tiered
	// stores in front of one back store share one memory tier: when the
	// sites of one config set different sizes, the first one wins and a
	// warning names the others. Default: 67108864 (64 MiB).
	MaxSize int64 `json:"max_size,omitempty"`
}

// Store is the http.cache.stores.tiered module: a memory tier in front of
// another store (redis or disk), so that the responses requested most are
// served from memory while the back store holds many more, shared or
// persistent.
//
// A hit on the back store fills the memory tier (bodies up to 1/8 of its
// size); a store, update, delete or purge through this node empties the
// memory tier of the keys concerned. With a redis back store, what other
// nodes change reaches the memory tier through Redis's client-side
// caching invalidations (CLIENT TRACKING in broadcast mode): Redis sends
// them while it executes the change, on the connection this node reads
// through, so a node stops serving a purged entry from memory when the
// invalidation arrives, within one network delay of the purge; if the
// connection is lost, the memory tier is emptied.
type Store struct {
	// Memory configures the memory tier. Default: 64 MiB.
	Memory *Memory `json:"memory,omitempty"`

	// BackRaw is the store behind the memory tier, e.g.
	// {"module": "redis", ...}. Required.
	BackRaw json.RawMessage `json:"back,omitempty" caddy:"namespace=http.cache.stores inline_key=module"`

	t      *Tiers
	back   store.Store
	key    string
	loaded bool
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Store) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.cache.stores.tiered",
		New: func() caddy.Module { return new(Store) },
	}
}

// Provision loads the back store and the shared memory tier.
func (s *Store) Provision(ctx caddy.Context) error {
	s.logger = ctx.Logger()
	if s.BackRaw == nil {
		return fmt.Errorf("tiered store: a back store (redis or disk) is required")
	}
	mod, err := ctx.LoadModule(s, "BackRaw")
	if err != nil {
		return fmt.Errorf("tiered store: loading the back store: %w", err)
	}
	back, ok := mod.(store.Store)
	if !ok {
		return fmt.Errorf("tiered store: module %T is not a cache store", mod)
	}
	if _, ok := back.(*Store); ok {
		return fmt.Errorf("tiered store: the back store cannot be another tiered store")
	}
	if _, ok := back.(*memory.Store); ok {
		return fmt.Errorf("tiered store: a memory back store adds nothing: use store memory")
	}
	s.back = back
	// One memory tier per back store, known by its name (the directory of
	// a disk store; the addresses, db and prefix of a redis one), not by
	// how its options are spelled: two tiers in front of one store would
	// be one store to the admin API, whose purges would empty only one.
	s.key = string(s.BackRaw)
	if n, ok := back.(store.Namer); ok {
		s.key = n.StoreName()
	}
	maxSize := DefaultMemoryMaxSize
	if s.Memory != nil && s.Memory.MaxSize != 0 {
		maxSize = s.Memory.MaxSize
	}
	if maxSize < memory.MinMaxSize {
		return fmt.Errorf("tiered store: memory max_size %d is below the minimum of 1 MiB", maxSize)
	}
	v, _, err := pool.LoadOrNew(s.key, func() (caddy.Destructor, error) {
		c, err := memory.New(memory.Config{MaxSize: maxSize})
		if err != nil {
			return nil, err
		}
		return &front{Cache: c}, nil
	})
	if err != nil {
		return fmt.Errorf("tiered store: creating the memory tier: %w", err)
	}
	s.loaded = true
	f := v.(*front)
	// As a memory store's: the first size of a config wins, and a reload
	// resizes once it has replaced the running config.
	kept := f.MaxSize()
	warn, err := f.size.Configure(ctx.Context, f.Cache, maxSize, nil)
	if err != nil {
		return fmt.Errorf("tiered store: resizing the memory tier: %w", err)
	}
	if warn {
		s.logger.Warn("tiered store's memory tier already configured with another max_size in this config; keeping the first",
			zap.String("store", s.StoreName()), zap.Int64("max_size", maxSize), zap.Int64("kept_max_size", kept))
	}
	// The subscription is this config's: a reload may bring a new back
	// store (a new Redis client), whose changes the tier must follow.
	s.t = New(f.Cache, back)
	return nil
}

// Validate checks the configuration.
func (s *Store) Validate() error {
	if s.Memory != nil && s.Memory.MaxSize < 0 {
		return fmt.Errorf("tiered store: memory max_size must not be negative")
	}
	return nil
}

// Cleanup stops following the back store and releases the memory tier.
// The back store is cleaned up by Caddy, as a module this one loaded.
func (s *Store) Cleanup() error {
	if s.t != nil {
		s.t.Close()
	}
	if !s.loaded {
		return nil
	}
	s.loaded = false
	_, err := pool.Delete(s.key)
	return err
}

// SetDerive lets the handler derive the entries that fill the memory tier
// (see Tiers.SetDerive).
func (s *Store) SetDerive(key string, fn func(*store.Entry) any) (release func()) {
	return s.t.SetDerive(key, fn)
}

// StoreName names the store: "tiered" and the back store's name.
func (s *Store) StoreName() string {
	if n, ok := s.back.(interface{ StoreName() string }); ok {
		return "tiered:" + n.StoreName()
	}
	return "tiered"
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, key string) (*store.Entry, store.Body, error) {
	return s.t.Get(ctx, key)
}

// Put implements store.Store.
func (s *Store) Put(ctx context.Context, key string, e *store.Entry) (store.Writer, error) {
	return s.t.Put(ctx, key, e)
}

// Update implements store.Store.
func (s *Store) Update(ctx context.Context, key string, e *store.Entry) error {
	return s.t.Update(ctx, key, e)
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	return s.t.Delete(ctx, keys...)
}

// PurgePrefix implements store.Store.
func (s *Store) PurgePrefix(ctx context.Context, prefix string, soft bool) (int, error) {
	return s.t.PurgePrefix(ctx, prefix, soft)
}

// PurgeTag implements store.Store.
func (s *Store) PurgeTag(ctx context.Context, tag string, soft bool) (int, error) {
	return s.t.PurgeTag(ctx, tag, soft)
}

// Entries implements store.Store.
func (s *Store) Entries(ctx context.Context, prefix, after string, limit int) ([]store.Listed, error) {
	return s.t.Entries(ctx, prefix, after, limit)
}

// Stats implements store.Store.
func (s *Store) Stats() store.Stats { return s.t.Stats() }

// UnmarshalCaddyfile sets up the store from Caddyfile tokens, starting at
// the token "tiered" of http_cache's store option. Syntax:
//
//	tiered {
//		memory {
//			max_size <size>      # default 64MiB
//		}
//		<back store> [{ ... }]   # redis or disk, with its options
//	}
func (s *Store) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume the store name "tiered"
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch name := d.Val(); name {
		case "memory":
			if s.Memory != nil {
				return d.Err("duplicate memory tier in tiered store")
			}
			s.Memory = new(Memory)
			if d.NextArg() {
				return d.ArgErr()
			}
			for n := d.Nesting(); d.NextBlock(n); {
				if d.Val() != "max_size" {
					return d.Errf("unrecognized tiered memory option '%s'", d.Val())
				}
				if s.Memory.MaxSize != 0 {
					return d.Err("duplicate tiered memory option 'max_size'")
				}
				if !d.NextArg() {
					return d.ArgErr()
				}
				val := d.Val()
				if d.NextArg() {
					return d.ArgErr()
				}
				v, err := sizing.ParseMaxSize(val, "64MiB")
				if err != nil {
					return d.Err(err.Error())
				}
				s.Memory.MaxSize = v
			}
		case "tiered":
			return d.Errf("tiered store: '%s' cannot be the back store", name)
		default:
			if s.BackRaw != nil {
				return d.Errf("tiered store: a second back store '%s'", name)
			}
			unm, err := caddyfile.UnmarshalModule(d, "http.cache.stores."+name)
			if err != nil {
				return err
			}
			s.BackRaw = caddyconfig.JSONModuleObject(unm, "module", name, nil)
		}
	}
	if s.BackRaw == nil {
		return d.Err("tiered store: a back store (redis or disk) is required")
	}
	return nil
}

// Interface guards
var (
	_ caddy.Module          = (*Store)(nil)
	_ caddy.Provisioner     = (*Store)(nil)
	_ caddy.Validator       = (*Store)(nil)
	_ caddy.CleanerUpper    = (*Store)(nil)
	_ caddyfile.Unmarshaler = (*Store)(nil)
	_ store.Store           = (*Store)(nil)
	_ store.Namer           = (*Store)(nil)
	_ store.Deriving        = (*Store)(nil)
	_ caddy.Destructor      = (*front)(nil)
)
