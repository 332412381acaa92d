package memory

import (
	"slices"

	"github.com/caddy-edge/edge/cache/store"
)

// Lookup returns the live memory store with the given name, for tests of
// the pool: it reads the pool and takes no reference, so the store
// is only valid while a loaded config uses it. ok is false when no loaded
// config has a memory store of that name.
func Lookup(name string) (s store.Store, ok bool) {
	pool.Range(func(k, v any) bool {
		if k == name {
			s, ok = v.(*shared).Cache, true
			return false
		}
		return true
	})
	return s, ok
}

// Names returns the names of the live memory stores, sorted.
func Names() []string {
	var names []string
	pool.Range(func(k, _ any) bool {
		names = append(names, k.(string))
		return true
	})
	slices.Sort(names)
	return names
}
