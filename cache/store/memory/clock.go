package memory

import (
	"sync/atomic"
	"time"
)

// coarseClock is the time for the stores' expiry checks, read at most
// every coarseResolution while stores read it: reading the precise time
// is a large part of a hit (twice ~25ns on a VM), and Expires is about
// HTTP freshness, in seconds. One for the process, whatever the number of
// stores: otter's CoarseClock, one a store, woke an idle Caddy 100 times a
// second for each. This one's ticker stops once nobody has read it for
// coarseIdle, so that an idle server does not wake for it at all; the next
// read reads the precise time and starts it again.
type coarseClock struct {
	now     atomic.Int64 // UnixNano, 0 while the ticker is stopped
	read    atomic.Bool  // read since the last tick
	running atomic.Bool  // the ticker's goroutine runs
}

// coarseIdle is how long the clock's ticker runs on without readers.
const coarseIdle = time.Second

// coarse is the process's coarse clock.
var coarse coarseClock

// NowNano implements otter.Clock: the time, at most coarseResolution old.
func (c *coarseClock) NowNano() int64 {
	if n := c.now.Load(); n != 0 {
		if !c.read.Load() { // a load, not a store, on most reads: the cache line stays shared
			c.read.Store(true)
		}
		return n
	}
	n := time.Now().UnixNano()
	if c.running.CompareAndSwap(false, true) {
		c.now.Store(n)
		c.read.Store(true)
		go c.tick()
	}
	return n
}

// tick refreshes the time every coarseResolution until nobody read it for
// coarseIdle.
func (c *coarseClock) tick() {
	t := time.NewTicker(coarseResolution)
	defer t.Stop()
	idle := 0
	for range t.C {
		if c.read.Swap(false) {
			idle = 0
		} else if idle++; time.Duration(idle)*coarseResolution >= coarseIdle {
			// Readers from here on read the precise time (now is 0)
			// until one of them starts a ticker again, once running is
			// false.
			c.now.Store(0)
			c.running.Store(false)
			return
		}
		c.now.Store(time.Now().UnixNano())
	}
}

// Tick implements otter.Clock: no ticks (the stores sweep expired entries
// themselves, sweepEvery).
func (c *coarseClock) Tick(time.Duration) <-chan time.Time { return nil }
