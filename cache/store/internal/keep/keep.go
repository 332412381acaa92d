// Package keep bounds the decoded values that stores keep beside entries
// they hold in a compact form: the memory store's decoded entries, the
// disk store's decoded metadata. A hit on a kept value skips decoding; the
// memory they take is bounded in bytes, and a CLOCK (the second-chance
// approximation of least recently used) chooses which values make room.
package keep

import (
	"sync"
	"sync/atomic"
)

// Slot is where one entry of a store keeps its decoded value; stores embed
// it in their entries. The zero Slot keeps nothing. Its value is set only
// through a Clock, and read without a lock.
type Slot[T any] struct {
	v   atomic.Pointer[T]
	ref atomic.Bool // used since the hand last passed
	idx int32       // the slot's place in its Clock, under Clock.mu
}

// Load returns the kept value, or nil, and marks the slot used.
func (s *Slot[T]) Load(c *Clock[T]) *T {
	v := s.v.Load()
	if v == nil || v == c.dropped {
		return nil
	}
	if !s.ref.Load() { // a store only when it changes: hits share lines
		s.ref.Store(true)
	}
	return v
}

type place[T any] struct {
	s    *Slot[T]
	cost int64
}

// Clock holds the slots that keep a value, the sum of their costs at most
// its bound.
type Clock[T any] struct {
	mu     sync.Mutex
	places []place[T]
	free   []int // indexes of empty places
	hand   int
	used   int64
	max    int64
	// maxValue bounds one value's cost: a value that would push out many
	// others at once is not kept.
	maxValue int64
	// dropped is the value of a slot whose entry left its store: it never
	// keeps a value again.
	dropped *T
}

// NewClock returns a Clock that keeps at most max bytes of values, none
// costing more than maxValue.
func NewClock[T any](max, maxValue int64) *Clock[T] {
	return &Clock[T]{max: max, maxValue: maxValue, dropped: new(T)}
}

// SetMax changes the bounds. A lower bound makes values leave at once.
func (c *Clock[T]) SetMax(max, maxValue int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.max, c.maxValue = max, maxValue
	c.makeRoom(0)
}

// Clear releases every value kept; their slots may keep values again.
func (c *Clock[T]) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, p := range c.places {
		if p.s != nil {
			c.remove(i)
			p.s.v.Store(nil)
		}
	}
}

// Kept reports whether s keeps a value, without marking it used.
func (s *Slot[T]) Kept(c *Clock[T]) bool {
	v := s.v.Load()
	return v != nil && v != c.dropped
}

// Len returns the number of values kept.
func (c *Clock[T]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.places) - len(c.free)
}

// Used returns the sum of the kept values' costs.
func (c *Clock[T]) Used() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used
}

// Put makes s keep v, which costs cost bytes, and reports whether it
// does. It does not when s keeps a value already or was dropped, or when
// v costs more than the bound of one value. To make room it takes values from
// the slots that the hand finds not used since it last passed them
// (giving a used one a second chance).
func (c *Clock[T]) Put(s *Slot[T], v *T, cost int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cost > c.maxValue || s.v.Load() != nil {
		return false
	}
	if !c.makeRoom(cost) {
		return false
	}
	var i int
	if n := len(c.free); n > 0 {
		i, c.free = c.free[n-1], c.free[:n-1]
	} else {
		i = len(c.places)
		c.places = append(c.places, place[T]{})
	}
	c.places[i] = place[T]{s: s, cost: cost}
	c.used += cost
	s.idx = int32(i)
	s.ref.Store(false)
	if !s.v.CompareAndSwap(nil, v) { // dropped since the check above
		c.remove(i)
		return false
	}
	return true
}

// makeRoom takes values from the slots the hand finds not used since it
// last passed them until cost more bytes fit, and reports whether they
// do. It gives up after two turns of the hand. Under c.mu.
func (c *Clock[T]) makeRoom(cost int64) bool {
	for n := 2*len(c.places) + 1; c.used+cost > c.max && n > 0; n-- {
		if c.hand >= len(c.places) {
			c.hand = 0
		}
		i := c.hand
		c.hand++
		p := c.places[i]
		if p.s == nil || p.s.ref.Swap(false) {
			continue
		}
		c.remove(i)
		p.s.v.Store(nil)
	}
	return c.used+cost <= c.max
}

// remove empties place i. Under c.mu.
func (c *Clock[T]) remove(i int) {
	c.used -= c.places[i].cost
	c.places[i] = place[T]{}
	c.free = append(c.free, i)
}

// Drop releases what s keeps, for good: its entry has left the store, and
// a value decoded from it before must not be kept after.
func (c *Clock[T]) Drop(s *Slot[T]) {
	if s.v.CompareAndSwap(nil, c.dropped) {
		return // kept nothing: no lock
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.v.Load() != c.dropped {
		c.release(s, c.dropped)
	}
}

// Forget releases what s keeps, if anything, and lets it keep a value
// again: its entry changed in place.
func (c *Clock[T]) Forget(s *Slot[T]) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v := s.v.Load(); v != nil && v != c.dropped {
		c.release(s, nil)
	}
}

// release empties the place of s, which keeps a value or nothing, and
// sets its value to v. Under c.mu.
func (c *Clock[T]) release(s *Slot[T], v *T) {
	if i := int(s.idx); i < len(c.places) && c.places[i].s == s {
		c.remove(i)
	}
	s.v.Store(v)
}
