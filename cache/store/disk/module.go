package disk

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-edge/edge/cache/store"
	"github.com/caddy-edge/edge/cache/store/internal/sizing"
)

// MinMaxSize is the smallest byte budget a configuration may set: 1 MiB.
const MinMaxSize = sizing.MinMaxSize

// pool holds the open Caches by absolute directory. A Cache stays open
// while at least one loaded config uses its directory, so a reload keeps
// it (and its index) as it is.
var pool = caddy.NewUsagePool()

// shared is a Cache in the pool.
type shared struct {
	*Cache
	size    sizing.Owner
	entries sizing.Owner // max_entries, applied as max_size is
}

// entriesLimit is the Cache's max_entries as a sizing.Resizer.
type entriesLimit struct{ c *Cache }

func (e entriesLimit) MaxSize() int64 { return e.c.MaxEntries() }

func (e entriesLimit) Resize(n int64) error { e.c.SetMaxEntries(n); return nil }

// configure applies the max_size of a config provisioned with ctx (see
// sizing.Owner.Configure).
func (s *shared) configure(ctx context.Context, maxSize int64, resized func(prev int64)) (warn bool, err error) {
	return s.size.Configure(ctx, s.Cache, maxSize, resized)
}

// Destruct closes the Cache when the last config that uses it is
// unloaded: its goroutines end and its lock file is released.
func (s *shared) Destruct() error {
	s.Close()
	return nil
}

// Dirs returns the directories of the open disk stores, sorted.
func Dirs() []string {
	var dirs []string
	pool.Range(func(k, _ any) bool {
		dirs = append(dirs, k.(string))
		return true
	})
	slices.Sort(dirs)
	return dirs
}

// Store is the http.cache.stores.disk module: responses kept as files in
// one directory, within a byte budget, across restarts of Caddy.
//
// When the budget is full, the least recently used of a few entries
// sampled at random is evicted (approximate LRU); expired entries are
// removed every minute. Every file carries CRC-32C checksums of its
// metadata and body: a corrupt or truncated file is removed and served as
// a miss. Bodies up to 1 MiB are verified before they are served; larger
// ones are checked for length and sent from the file (sendfile), and
// verified by a background scrub at up to 64 MiB/s.
//
// Stores are shared by directory: every http_cache that names the same
// path uses the same entries, and a config reload keeps them. One entry
// may take at most 1/8 of max_size.
type Store struct {
	// Path is the cache directory, created if missing. Required. Two Caddy
	// processes cannot use one directory (a lock file guards it): a config
	// that names one another process holds is refused when it starts, and
	// passes `caddy validate`.
	Path string `json:"path,omitempty"`

	// MaxSize is the byte budget: the entry files plus 512 bytes each for
	// file system overhead. A reload resizes the store to the new config's
	// size, evicting what no longer fits. At least 1 MiB. Default:
	// 1073741824 (1 GiB).
	MaxSize int64 `json:"max_size,omitempty"`

	// MaxEntries bounds the number of entries, and so the RAM the index
	// takes (about 200 bytes and the key per entry: a million entries
	// take about 230 MiB), as nginx's keys_zone does: beyond it, the
	// least recently used of a few sampled entries is evicted, as for
	// max_size. A reload applies it as it does max_size. Default: 0, no
	// bound but max_size.
	MaxEntries int64 `json:"max_entries,omitempty"`

	// backend is c: Store's store.Store methods are its own.
	backend
	dir    string
	c      *shared // nil when the directory is in use by another process
	loaded bool
	// maxEntrySize, when c is nil: what MaxEntrySize says.
	maxEntrySize int64
	logger       *zap.Logger
}

// canonicalDir returns the absolute path of the directory path with its
// symbolic links resolved, so that a config that names a directory through
// a link shares the Cache open on it (pool is keyed by this path), instead
// of finding it locked as if another process held it. Of a directory not
// made yet, the links of the part that exists are resolved.
func canonicalDir(path string) (string, error) {
	dir, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	for existing, rest := dir, ""; ; {
		if real, err := filepath.EvalSymlinks(existing); err == nil {
			return filepath.Join(real, rest), nil
		}
		parent := filepath.Dir(existing)
		if parent == existing {
			return dir, nil
		}
		existing, rest = parent, filepath.Join(filepath.Base(existing), rest)
	}
}

// startCheck returns the http_cache_disk app of the config being
// provisioned with ctx, or nil for a context without a config (made with
// caddy.NewContext by a program that embeds the store), in which
// caddy.Context.App panics.
func startCheck(ctx caddy.Context) (check *StartCheck, err error) {
	defer func() {
		if recover() != nil {
			check, err = nil, nil
		}
	}()
	app, err := ctx.App("http_cache_disk")
	if err != nil {
		return nil, err
	}
	return app.(*StartCheck), nil
}

// backend is the store.Store a module Store forwards its methods to,
// embedded under an unexported name so it adds no JSON field.
type backend = store.Store

// CaddyModule returns the Caddy module information.
func (Store) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.cache.stores.disk",
		New: func() caddy.Module { return new(Store) },
	}
}

// Provision opens the directory, or takes the Cache already open on it.
func (s *Store) Provision(ctx caddy.Context) error {
	s.logger = ctx.Logger()
	if s.Path == "" {
		return fmt.Errorf("disk store: path is required")
	}
	repl := caddy.NewReplacer()
	path := repl.ReplaceKnown(s.Path, "")
	if path == "" {
		// filepath.Abs would make it the working directory.
		return fmt.Errorf("disk store: path %q is empty once its placeholders are replaced", s.Path)
	}
	dir, err := canonicalDir(path)
	if err != nil {
		return fmt.Errorf("disk store path %q: %w", s.Path, err)
	}
	s.dir = dir
	maxSize := s.MaxSize
	if maxSize == 0 {
		maxSize = DefaultMaxSize
	}
	if maxSize < MinMaxSize {
		return fmt.Errorf("disk store %s: max_size %d is below the minimum of %d bytes (1 MiB)", dir, maxSize, MinMaxSize)
	}
	v, _, err := pool.LoadOrNew(dir, func() (caddy.Destructor, error) {
		// The logger of the config that opened it: later configs log
		// their own resizes.
		c, err := Open(Config{Dir: dir, MaxSize: maxSize, MaxEntries: s.MaxEntries, Logger: s.logger})
		if err != nil {
			return nil, err
		}
		return &shared{Cache: c}, nil
	})
	if errors.Is(err, ErrInUse) {
		// Refused when the config starts; `caddy validate` never starts
		// it (startcheck.go).
		check, aerr := startCheck(ctx)
		if aerr != nil {
			return fmt.Errorf("disk store %s: %w", dir, aerr)
		}
		if check == nil {
			// No config to start: a context a program embedding the
			// store made with caddy.NewContext.
			return fmt.Errorf("opening disk store %s: %w", dir, err)
		}
		check.inUse(dir)
		s.backend, s.maxEntrySize = unavailable{}, maxSize/MaxEntryFraction
		s.logger.Warn("disk store directory in use by another process: this config is refused when it starts (caddy validate passes)", zap.String("path", dir))
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening disk store %s: %w", dir, err)
	}
	s.c, s.loaded = v.(*shared), true
	s.backend = s.c
	kept := s.c.MaxSize()
	logger := s.logger
	warn, err := s.c.configure(ctx.Context, maxSize, func(prev int64) {
		logger.Info("disk store resized", zap.String("path", dir), zap.Int64("max_size", maxSize), zap.Int64("previous_max_size", prev))
	})
	if err != nil {
		return fmt.Errorf("resizing disk store %s: %w", dir, err)
	}
	if warn {
		s.logger.Warn("disk store already configured with another max_size in this config; keeping the first",
			zap.String("path", dir), zap.Int64("max_size", maxSize), zap.Int64("kept_max_size", kept))
	}
	keptEntries := s.c.MaxEntries()
	warn, err = s.c.entries.Configure(ctx.Context, entriesLimit{s.c.Cache}, s.MaxEntries, func(prev int64) {
		logger.Info("disk store max_entries changed", zap.String("path", dir), zap.Int64("max_entries", s.MaxEntries), zap.Int64("previous_max_entries", prev))
	})
	if err != nil {
		return fmt.Errorf("disk store %s: max_entries: %w", dir, err)
	}
	if warn {
		s.logger.Warn("disk store already configured with another max_entries in this config; keeping the first",
			zap.String("path", dir), zap.Int64("max_entries", s.MaxEntries), zap.Int64("kept_max_entries", keptEntries))
	}
	if size, ok := fsSize(dir); ok && 2*maxSize > size {
		// The entries take max_size, the responses being stored up to as
		// much again (see writer.Write): the disk fills first.
		s.logger.Warn("disk store's max_size, twice over with the responses being stored, is larger than its file system: the disk will fill before the store evicts",
			zap.String("path", dir), zap.Int64("max_size", maxSize), zap.Int64("file_system_size", size))
	}
	return nil
}

// Validate checks the configuration.
func (s *Store) Validate() error {
	if s.MaxSize < 0 {
		return fmt.Errorf("disk store %s: max_size must not be negative", s.Path)
	}
	if s.MaxEntries < 0 {
		return fmt.Errorf("disk store %s: max_entries must not be negative", s.Path)
	}
	return nil
}

// Cleanup releases the shared Cache; the last config to release it
// closes it.
func (s *Store) Cleanup() error {
	if !s.loaded {
		return nil
	}
	s.loaded = false
	_, err := pool.Delete(s.dir)
	return err
}

// StoreName returns "disk:" and the absolute directory.
func (s *Store) StoreName() string { return "disk:" + s.dir }

// SetDerive lets the handler derive the metadata the store keeps decoded
// (see Cache.SetDerive).
func (s *Store) SetDerive(key string, fn func(*store.Entry) any) (release func()) {
	if s.c == nil {
		return func() {}
	}
	return s.c.SetDerive(key, fn)
}

// MaxEntrySize returns the largest entry file: 1/8 of max_size.
func (s *Store) MaxEntrySize() int64 {
	if s.c == nil {
		return s.maxEntrySize
	}
	return s.c.MaxEntrySize()
}

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
