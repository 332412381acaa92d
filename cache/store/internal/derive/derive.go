// Package derive keeps, for a store that decodes entries, the handlers'
// functions that compute store.Entry.Derived, numbered by the key of the
// options they derive with (store.Deriving). An entry remembers the
// number of the function its Derived data came from, so that when it is
// decoded again it is derived alike: sites with other options may share a
// store. A key is live while a handler holds it; an entry of a key no
// handler holds any more (a reload changed the options) is derived with
// the function set last.
package derive

import (
	"sync"
	"sync/atomic"

	"github.com/caddy-edge/edge/cache/store"
)

// Max bounds the keys a Registry numbers: one per set of handler options
// seen since the store was created. Entries of further keys are derived
// with the function set last.
const Max = 1 << 12

type fn = func(*store.Entry) any

type slot struct {
	fn   fn
	refs int    // handlers holding the key
	set  uint64 // when it was last set, in Set calls
}

// Registry numbers derive functions by key; number 0 is none. The zero
// Registry is empty and ready to use.
type Registry struct {
	mu     sync.RWMutex
	slots  []slot // slots[0] unused
	byKey  map[string]uint16
	latest uint16 // the number of the function set last, of a key held if any is
	sets   uint64 // Set calls so far
	// gen counts the changes that may change what an entry is derived
	// with: a key set for the first time, or released by its last holder.
	gen atomic.Uint64
}

// Set makes f the function of key, in place of any earlier one (functions
// under one key derive alike), and holds the key until release is called.
func (r *Registry) Set(key string, f func(*store.Entry) any) (release func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i, ok := r.byKey[key]
	if !ok {
		if r.byKey == nil {
			r.byKey = make(map[string]uint16)
			r.slots = make([]slot, 1)
		}
		if len(r.slots) >= Max {
			return func() {}
		}
		i = uint16(len(r.slots))
		r.slots = append(r.slots, slot{})
		r.byKey[key] = i
		r.gen.Add(1)
	}
	r.sets++
	r.slots[i].fn = f
	r.slots[i].refs++
	r.slots[i].set = r.sets
	r.latest = i
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.slots[i].refs--; r.slots[i].refs == 0 {
				r.gen.Add(1)
				if r.latest == i {
					r.latest = r.latestHeldLocked(i)
				}
			}
		})
	}
}

// latestHeldLocked returns the number of the function set last among the
// keys still held, or i when none is: the options of the newest config
// still running, not those of a config that went away (a reload that
// failed, whose handlers set their functions last). Called with r.mu
// held.
func (r *Registry) latestHeldLocked(i uint16) uint16 {
	best := i
	var at uint64
	for j := 1; j < len(r.slots); j++ {
		if s := &r.slots[j]; s.refs > 0 && s.set > at {
			best, at = uint16(j), s.set
		}
	}
	return best
}

// Of returns the number of the function that derived derived: that of the
// key its DeriveKey method returns ("" without one), 0 for nil or a key
// never set.
func (r *Registry) Of(derived any) uint16 {
	if derived == nil {
		return 0
	}
	key := ""
	if k, ok := derived.(interface{ DeriveKey() string }); ok {
		key = k.DeriveKey()
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byKey[key]
}

// Func returns the function to derive an entry numbered i with: its own
// while a handler holds its key, otherwise (0 included) the one set last;
// nil when none was ever set.
func (r *Registry) Func(i uint16) func(*store.Entry) any {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if int(i) < len(r.slots) && i != 0 && r.slots[i].refs > 0 {
		return r.slots[i].fn
	}
	if r.latest == 0 {
		return nil
	}
	return r.slots[r.latest].fn
}

// Gen returns a number that changes when what an entry is derived with may
// have changed: decoded entries derived before should be derived again.
func (r *Registry) Gen() uint64 { return r.gen.Load() }
