package cache

import (
	"context"
	"time"
)

// Request collapsing
//
// At most one request per store key goes to the origin at a time: the
// first miss (the leader) opens a flight under the key, later requests for
// the key (waiters) wait for it to land, bounded by collapse_timeout and
// their own context, then look the key up again. If the leader's response
// was not storable, the key is remembered as hit-for-miss for
// hit_for_miss_ttl: its requests then go to the origin side by side instead
// of queueing behind one another, and the waiters of that flight go to the
// origin at once.

// outcome is how a flight ended.
type outcome int

const (
	outcomeFailed      outcome = iota // the fetch broke (origin error, client gone): nothing stored, try again
	outcomeStored                     // a response was stored or freshened under the key
	outcomeUncacheable                // the response could not be stored
)

// flight is a fetch in progress for one key.
type flight struct {
	done    chan struct{} // closed when the flight lands
	outcome outcome       // written before done is closed
	waiters int           // requests that joined; protected by Handler.mu
}

// maxHitForMiss bounds the hit-for-miss map; when it is full, expired
// entries are dropped, and if none had expired the map is emptied.
const maxHitForMiss = 10000

// join returns the flight for key, and whether the caller opened it and so
// leads it (and must land it).
func (h *Handler) join(key string) (*flight, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f, ok := h.flights[key]; ok {
		f.waiters++
		return f, false
	}
	f := &flight{done: make(chan struct{})}
	h.flights[key] = f
	return f, true
}

// lead opens a flight for key if none is in the air, and tells whether it
// did; unlike join, it never counts the caller as a waiter.
func (h *Handler) lead(key string) (*flight, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.flights[key]; ok {
		return nil, false
	}
	f := &flight{done: make(chan struct{})}
	h.flights[key] = f
	return f, true
}

// inFlight joins the flight for key as a waiter if one is in the air.
func (h *Handler) inFlight(key string) (*flight, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, ok := h.flights[key]
	if ok {
		f.waiters++
	}
	return f, ok
}

// land ends the flight f for key with outcome o and wakes its waiters.
func (h *Handler) land(key string, f *flight, o outcome) {
	h.mu.Lock()
	if h.flights[key] == f {
		delete(h.flights, key)
	}
	switch o {
	case outcomeUncacheable:
		now := h.now()
		if len(h.hfm) >= maxHitForMiss {
			for k, until := range h.hfm {
				if !now.Before(until) {
					delete(h.hfm, k)
				}
			}
			if len(h.hfm) >= maxHitForMiss {
				clear(h.hfm)
			}
		}
		h.hfm[key] = now.Add(time.Duration(h.HitForMissTTL))
	case outcomeStored:
		delete(h.hfm, key)
	}
	h.mu.Unlock()
	f.outcome = o
	close(f.done)
}

// hitForMiss tells whether key was recently found uncacheable.
func (h *Handler) hitForMiss(key string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	until, ok := h.hfm[key]
	if !ok {
		return false
	}
	if !h.now().Before(until) {
		delete(h.hfm, key)
		return false
	}
	return true
}

// wait waits for f to land, at most collapse_timeout and while ctx lives.
// ok is false when it stopped waiting first.
func (h *Handler) wait(ctx context.Context, f *flight) (o outcome, ok bool) {
	t := time.NewTimer(time.Duration(h.CollapseTimeout))
	defer t.Stop()
	select {
	case <-f.done:
		return f.outcome, true
	case <-t.C:
		return 0, false
	case <-ctx.Done():
		return 0, false
	}
}
