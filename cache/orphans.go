package cache

import (
	"context"
	"sync"
	"time"
)

// A fetch that other requests wait for outlives its client (see
// fetch.detach), for at most orphanGrace after the client left. One
// goroutine, running while there are detached fetches, checks their
// clients every orphanTick and cancels the fetches whose client has been
// gone for orphanGrace.
//
// A miss pays two map operations under one lock for this. The watch it
// replaces, context.AfterFunc on the client's context, cost 8 allocations
// and two walks of Caddy's chain of context values per miss (2-3 us under
// load), for a bound that needs no more than a second's precision.
var (
	orphans     = orphanWatch{fetches: make(map[*detachment]struct{})}
	orphanGrace = refreshTimeout // under orphans.mu
	orphanTick  = time.Second    // under orphans.mu
)

// detachment is a fetch's detached context: cancel ends it, client is the
// context it was detached from.
type detachment struct {
	client context.Context
	cancel context.CancelFunc
	goneAt time.Time // when the watch first saw the client gone; under orphans.mu
	// flight is the flight the fetch leads, and h its handler; nil: the
	// fetch goes on without its client whoever waits. A fetch nobody waits
	// for ends with its client: detached, it would go on downloading into
	// the store for nobody, and a client could start any number of them
	// and hang up.
	flight *flight
	h      *Handler
	// answered: the client was answered before the body arrived (keep);
	// the fetch goes on for the store. Under orphans.mu.
	answered bool
}

// needed tells whether the fetch must go on without its client.
func (d *detachment) needed() bool {
	return d.flight == nil || d.answered || d.h.flightWaited(d.flight)
}

// orphanWatch holds the detached fetches still running.
type orphanWatch struct {
	mu       sync.Mutex
	fetches  map[*detachment]struct{}
	watching bool // the watch goroutine runs
}

// add watches d until remove.
func (o *orphanWatch) add(d *detachment) {
	o.mu.Lock()
	o.fetches[d] = struct{}{}
	if !o.watching {
		o.watching = true
		go o.watch(orphanTick)
	}
	o.mu.Unlock()
}

// keep lets d's fetch go on without its client whether or not others wait
// for it: a fetch whose client was answered before the body arrived
// (aside.go). The requests that follow it are its clients then: it goes
// on as long as any does, as it would with its own client there, and for
// at most orphanGrace after the client left and none follows. From the
// fetch's goroutine.
func (o *orphanWatch) keep(d *detachment) {
	o.mu.Lock()
	d.answered = true
	o.mu.Unlock()
}

// remove stops watching d (its fetch is over).
func (o *orphanWatch) remove(d *detachment) {
	o.mu.Lock()
	delete(o.fetches, d)
	o.mu.Unlock()
}

// watch cancels, every tick, the fetches whose client has been gone for
// orphanGrace, and returns when no fetch is left to watch.
func (o *orphanWatch) watch(tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for now := range t.C {
		o.mu.Lock()
		if len(o.fetches) == 0 {
			o.watching = false
			o.mu.Unlock()
			return
		}
		for d := range o.fetches {
			switch {
			case d.client.Err() == nil:
			case d.answered && d.h.flightWaited(d.flight):
				// Followed: the grace starts once nobody follows.
				d.goneAt = time.Time{}
			case !d.needed():
				d.cancel()
				delete(o.fetches, d)
			case d.goneAt.IsZero():
				d.goneAt = now
			case now.Sub(d.goneAt) >= orphanGrace:
				d.cancel()
				delete(o.fetches, d)
			}
		}
		o.mu.Unlock()
	}
}
