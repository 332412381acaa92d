package memory

import (
	"os"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// The Go runtime lets the heap grow to twice its live size before it
// collects (GOGC=100). That headroom is right for short-lived garbage, but a
// full memory store is long-lived data: with GOGC alone, a 256 MiB store
// takes up to 512 MiB plus Caddy's own memory. So while memory stores are
// loaded, a governor keeps a soft memory limit (runtime/debug.SetMemoryLimit)
// that gives the stores' budgets only 1/16 of headroom and everything else
// half its live size:
//
//	limit = Σ max_size × 17/16 + 1.5 × (live heap − stored bytes) + 8 MiB
//
// (With 2 × everything else, as GOGC=100 would give it, a full 256 MiB
// store of 1 KiB entries took 395 MiB of RSS, over the 1.25 × max_size +
// 64 MiB the store promises. Less headroom costs the collector more
// frequent cycles when the store is full; see BENCHMARKS.md. Stores count
// the heap's fragmentation in their entries' weight: fragmentationShare.)
// recomputed every second from runtime/metrics, so that a burst of
// in-flight bodies raises the limit instead of making the collector work
// without pause. The limit never goes above the one in force before (Caddy
// sets 90 % of the machine's or the container's memory at start-up), and it
// is restored when the last memory store is unloaded.
//
// When GOMEMLIMIT is set in the environment (any value, "off" included) the
// operator's choice wins and the governor does nothing.
const (
	governorPeriod = time.Second
	governorSlack  = 8 << 20
)

// governor is the process's memory-limit governor. Caches register while
// they are in the pool.
var governor = &memGovernor{caches: make(map[*Cache]struct{})}

type memGovernor struct {
	mu     sync.Mutex          // protects the fields below
	caches map[*Cache]struct{} // the loaded caches
	before int64               // the limit in force before the governor set one
	stop   chan struct{}       // closed to stop the running loop; nil when none runs
	done   chan struct{}       // closed when the loop has stopped
	limit  int64               // the limit the governor last set; 0 when none
}

// managed reports whether the governor may set the limit.
func managed() bool { return os.Getenv("GOMEMLIMIT") == "" }

// add registers c and starts the loop with the first cache.
func (g *memGovernor) add(c *Cache) {
	if !managed() {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.caches[c] = struct{}{}
	if g.stop == nil {
		g.before = debug.SetMemoryLimit(-1)
		g.stop, g.done = make(chan struct{}), make(chan struct{})
		go g.loop(g.stop, g.done)
	}
	g.adjustLocked()
}

// remove unregisters c; with the last cache it stops the loop and restores
// the limit in force before.
func (g *memGovernor) remove(c *Cache) {
	g.mu.Lock()
	if _, ok := g.caches[c]; !ok {
		g.mu.Unlock()
		return
	}
	delete(g.caches, c)
	if len(g.caches) > 0 {
		g.adjustLocked()
		g.mu.Unlock()
		return
	}
	stop, done := g.stop, g.done
	g.stop, g.done = nil, nil
	// Restore only if nobody changed the limit since the governor set it.
	if g.limit != 0 && debug.SetMemoryLimit(-1) == g.limit {
		debug.SetMemoryLimit(g.before)
	}
	g.limit = 0
	g.mu.Unlock()
	close(stop)
	<-done
}

func (g *memGovernor) loop(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(governorPeriod)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			g.mu.Lock()
			g.adjustLocked()
			g.mu.Unlock()
		}
	}
}

var liveSample = []metrics.Sample{{Name: "/gc/heap/live:bytes"}}

// adjustLocked computes and sets the limit. Called with g.mu held.
func (g *memGovernor) adjustLocked() {
	var budgets, stored int64
	for c := range g.caches {
		budgets += c.MaxSize()
		stored += c.bytes.Load()
	}
	metrics.Read(liveSample)
	var live int64
	if liveSample[0].Value.Kind() == metrics.KindUint64 {
		live = int64(liveSample[0].Value.Uint64())
	}
	limit := governorLimit(budgets, stored, live, g.before)
	if limit != g.limit {
		debug.SetMemoryLimit(limit)
		g.limit = limit
	}
}

// governorLimit is the limit for stores with the given total budget and
// stored bytes, a live heap of live bytes, and the limit before (an upper
// bound).
func governorLimit(budgets, stored, live, before int64) int64 {
	other := max(live-stored, 0)
	return min(budgets+budgets/16+other+other/2+governorSlack, before)
}
