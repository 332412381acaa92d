package memory

import (
	"context"
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-edge/edge/cache/store"
	"github.com/caddy-edge/edge/cache/store/internal/sizing"
)

// DefaultName is the name of a store that sets none.
const DefaultName = "default"

// MinMaxSize is the smallest byte budget a configuration may set: 1 MiB.
const MinMaxSize = sizing.MinMaxSize

// pool holds the live Caches by name. A Cache stays while at least one
// loaded config uses its name, so a reload keeps the stored entries.
var pool = caddy.NewUsagePool()

// shared is a Cache in the pool.
type shared struct {
	*Cache
	size sizing.Owner
}

// configure applies the max_size of a config provisioned with ctx (see
// sizing.Owner.Configure).
func (s *shared) configure(ctx context.Context, maxSize int64, resized func(prev int64)) (warn bool, err error) {
	return s.size.Configure(ctx, s.Cache, maxSize, resized)
}

// Destruct frees the Cache when the last config that uses it is unloaded.
func (s *shared) Destruct() error {
	governor.remove(s.Cache)
	s.Close()
	return nil
}

// Store is the http.cache.stores.memory module: http_cache's default
// store, which keeps responses in memory within a byte budget. When the
// budget is full, the entries least likely to be requested again are
// evicted (W-TinyLFU: an entry requested often outlives many requested
// once). An entry also leaves the store when it may no longer be served,
// even stale.
//
// Stores are shared by name: every http_cache that names the same store
// uses the same entries, and the entries survive a config reload as long
// as the new config still has a store of that name. One entry may take at
// most 1/8 of max_size; larger responses are served but not stored.
//
// PurgePrefix scans every key (O(n) in the number of entries); Entries
// scans and sorts the matching keys.
type Store struct {
	// Name identifies the store. Caches with the same name share their
	// entries, also across sites. Default: "default".
	Name string `json:"name,omitempty"`

	// MaxSize is the byte budget: the bodies of the stored responses plus
	// an estimate of their headers and bookkeeping. When several sites of
	// one config name the same store with different sizes, the first one
	// wins and a warning names the others. A reload resizes the store to
	// the new config's size and keeps the entries that fit. At least
	// 1 MiB. Default: 268435456 (256 MiB).
	MaxSize int64 `json:"max_size,omitempty"`

	// backend is c: Store's store.Store methods are its own.
	backend
	c      *shared
	loaded bool // s.c holds a reference in pool, released by Cleanup
	logger *zap.Logger
}

// backend is the store.Store a module Store forwards its methods to,
// embedded under an unexported name so it adds no JSON field.
type backend = store.Store

// CaddyModule returns the Caddy module information.
func (Store) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.cache.stores.memory",
		New: func() caddy.Module { return new(Store) },
	}
}

// Provision loads the shared store of s.Name, creating it if no loaded
// config has it yet.
func (s *Store) Provision(ctx caddy.Context) error {
	s.logger = ctx.Logger()
	if s.Name == "" {
		s.Name = DefaultName
	}
	maxSize := s.MaxSize
	if maxSize == 0 {
		maxSize = DefaultMaxSize
	}
	if maxSize < MinMaxSize {
		return fmt.Errorf("memory store %q: max_size %d is below the minimum of %d bytes (1 MiB)", s.Name, maxSize, MinMaxSize)
	}
	v, _, err := pool.LoadOrNew(s.Name, func() (caddy.Destructor, error) {
		c, err := New(Config{MaxSize: maxSize})
		if err != nil {
			return nil, err
		}
		governor.add(c)
		return &shared{Cache: c}, nil
	})
	if err != nil {
		return fmt.Errorf("creating memory store %q: %w", s.Name, err)
	}
	s.c, s.loaded = v.(*shared), true
	s.backend = s.c
	kept := s.c.MaxSize()
	logger, name := s.logger, s.Name
	warn, err := s.c.configure(ctx.Context, maxSize, func(prev int64) {
		logger.Info("memory store resized",
			zap.String("name", name),
			zap.Int64("max_size", maxSize),
			zap.Int64("previous_max_size", prev))
	})
	if err != nil {
		return fmt.Errorf("resizing memory store %q: %w", s.Name, err)
	}
	if warn {
		s.logger.Warn("memory store already configured with another max_size in this config; keeping the first",
			zap.String("name", s.Name),
			zap.Int64("max_size", maxSize),
			zap.Int64("kept_max_size", kept))
	}
	return nil
}

// Validate checks the configuration.
func (s *Store) Validate() error {
	if s.MaxSize < 0 {
		return fmt.Errorf("memory store %q: max_size must not be negative", s.Name)
	}
	return nil
}

// Cleanup releases the shared store; the last config to release it frees
// its entries.
func (s *Store) Cleanup() error {
	if !s.loaded {
		return nil
	}
	// s.c stays set: a request still in flight keeps working on it.
	s.loaded = false
	_, err := pool.Delete(s.Name)
	return err
}

// MaxEntrySize returns the largest weight (body plus metadata estimate)
// that one entry may have: 1/8 of the shared store's max_size. Bodies
// larger than that are refused with store.ErrTooLarge.
func (s *Store) MaxEntrySize() int64 { return s.c.MaxEntrySize() }

// SetDerive gives the shared store the handler's derive function (see
// Cache.SetDerive).
func (s *Store) SetDerive(key string, fn func(*store.Entry) any) (release func()) {
	return s.c.SetDerive(key, fn)
}

// Get is the shared Cache's Get, called directly: promoted through the
// embedded backend and shared, it went through four method wrappers, whose
// frames put a hit's lookup past the goroutine stack the collector leaves
// an idle connection when geofilter runs before the cache (see
// BENCHMARKS.md, "A short stack for hits").
func (s *Store) Get(ctx context.Context, key string) (*store.Entry, store.Body, error) {
	return s.c.Cache.Get(ctx, key)
}

// StoreName returns "memory/" and the store's name: memory stores are
// shared by name.
func (s *Store) StoreName() string { return "memory/" + s.Name }

// Interface guards
var (
	_ caddy.Module       = (*Store)(nil)
	_ caddy.Provisioner  = (*Store)(nil)
	_ caddy.Validator    = (*Store)(nil)
	_ caddy.CleanerUpper = (*Store)(nil)
	_ store.Store        = (*Store)(nil)
	_ store.Namer        = (*Store)(nil)
	_ store.Deriving     = (*Store)(nil)
	_ caddy.Destructor   = (*shared)(nil)
)
