package disk

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-edge/edge/cache/store"
)

// A directory that another process holds is refused when the config
// starts, not when it is provisioned: `caddy validate` provisions the
// whole config in a process of its own, next to the Caddy that serves
// with the store, and must pass. A Store that finds its directory locked
// provisions without it (unavailable) and has StartCheck, an app that
// Caddy starts with the config's others and that validate never starts,
// refuse the config then.

// StartCheck is the http_cache_disk app: it holds no configuration. A
// disk store whose directory another process holds when the config is
// provisioned loads it, and its Start refuses the config, so that two
// processes never use one directory while `caddy validate` of a config
// in use still passes.
type StartCheck struct {
	// dirs: the directories in use. A config is provisioned, then
	// started, on one goroutine.
	dirs []string
}

// CaddyModule returns the Caddy module information.
func (StartCheck) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http_cache_disk",
		New: func() caddy.Module { return new(StartCheck) },
	}
}

// Start refuses the config if a disk store's directory was in use when it
// was provisioned, naming every such directory.
func (a *StartCheck) Start() error {
	var err error
	for _, dir := range a.dirs {
		e := fmt.Errorf("disk store %s: %w (lock file %s)", dir, ErrInUse, filepath.Join(dir, "lock"))
		if err == nil {
			err = e
		} else {
			err = fmt.Errorf("%w; %w", err, e)
		}
	}
	if err != nil {
		return fmt.Errorf("%w: each directory serves one Caddy process", err)
	}
	return nil
}

// Stop does nothing.
func (*StartCheck) Stop() error { return nil }

// inUse records a directory found locked by another process.
func (a *StartCheck) inUse(dir string) {
	if !slices.Contains(a.dirs, dir) {
		a.dirs = append(a.dirs, dir)
	}
}

// unavailable is the store.Store of a Store whose directory another
// process holds: its config never starts (StartCheck), and until Caddy
// stops the apps it started before, nothing is read or stored.
type unavailable struct{}

func (unavailable) Get(context.Context, string) (*store.Entry, store.Body, error) {
	return nil, nil, store.ErrNotFound
}

func (unavailable) Put(context.Context, string, *store.Entry) (store.Writer, error) {
	return nil, store.ErrBusy
}

func (unavailable) Update(context.Context, string, *store.Entry) error { return store.ErrNotFound }

func (unavailable) Delete(context.Context, ...string) error { return nil }

func (unavailable) PurgePrefix(context.Context, string, bool) (int, error) { return 0, nil }

func (unavailable) PurgeTag(context.Context, string, bool) (int, error) { return 0, nil }

func (unavailable) Entries(context.Context, string, string, int) ([]store.Listed, error) {
	return nil, nil
}

func (unavailable) Stats() store.Stats { return store.Stats{} }

// Interface guards
var (
	_ caddy.Module = (*StartCheck)(nil)
	_ caddy.App    = (*StartCheck)(nil)
	_ store.Store  = unavailable{}
)
