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
// that gives the stores' budgets a small headroom (storedHeadroom: 1/16
// of them up to 64 MiB, then 3/16 less 8 MiB) and everything else half
// its live size:
//
//	limit = Σ max_size + storedHeadroom(Σ max_size)
//	        + 1.5 × (live heap − stored bytes) + 8 MiB
//
// Each cycle of the collector marks every stored entry, so the headroom
// given to the stored bytes decides how often a site whose misses fill a
// full store pays for that: with 1/16 at every size, bench/memory.sh's
// misses into a full 256 MiB store cost Caddy 797-972 us of CPU each
// (77-98 cycles in 25 s); with 28 MiB (1/8 less 4 MiB) 570-630 us, the
// collector's share 208-241 us; with 40 MiB (3/16 less 8 MiB) 475-509
// us, the collector's 144-155 us (343-503 and 99-145 with the arena's
// segments of 128 KiB instead of 1 MiB), for RSS of 336-350 MiB instead
// of 325-335, within what the store promises (at most 1.25 × max_size +
// 64 MiB, 384). See BENCHMARKS.md.
// (With 2 × everything else, as GOGC=100 would give it, a full 256 MiB
// store of 1 KiB entries took 395 MiB of RSS, over the promise. Stores
// count the heap's fragmentation in their entries' weight:
// fragmentationShare.)
// The limit is recomputed every second from runtime/metrics, so that a
// burst of in-flight bodies raises the limit instead of making the
// collector work without pause. The limit never goes above the one in
// force before (Caddy sets 90 % of the machine's or the container's
// memory at start-up), and it is restored when the last memory store is
// unloaded.
//
// The other end: a small heap. GOGC=100 starts a cycle each time the heap
// has grown by its live size, and Caddy's own live heap is only a few MiB,
// so under load the collector ran tens of times a second: 10 % of the CPU
// of 1 KiB hits and of Caddy's fastest handler alike (BENCHMARKS.md). A
// memory store's budget is memory the operator has given the process, so
// while stores are loaded the governor also raises GOGC, every second, to
// what lets the heap grow by at least gcHeadroom between cycles. GOGC is a
// percentage of the live heap and of the collector's other roots, the
// goroutine stacks and the globals, so:
//
//	GOGC = max(100, 100 × 32 MiB / (live heap + stacks + globals))
//
// (about 500-600 for Caddy's few MiB). A heap of 32 MiB or more, a store with
// entries in it for instance, or the stacks of thousands of connections,
// keeps GOGC=100; the memory limit above bounds the heap whatever GOGC
// says. GOGC is restored with the limit.
//
// When GOMEMLIMIT or GOGC is set in the environment (any value, "off"
// included) the operator's choice wins and the governor touches neither.
const (
	// storedHeadroomLess: see storedHeadroom.
	storedHeadroomLess = 8 << 20
	governorPeriod     = time.Second
	governorSlack      = 8 << 20
	gcHeadroom         = 32 << 20
)

// governor is the process's memory-limit governor. Caches register while
// they are in the pool.
var governor = &memGovernor{caches: make(map[*Cache]struct{})}

type memGovernor struct {
	mu       sync.Mutex          // protects the fields below
	caches   map[*Cache]struct{} // the loaded caches
	before   int64               // the limit in force before the governor set one
	beforeGC int                 // GOGC in force before
	stop     chan struct{}       // closed to stop the running loop; nil when none runs
	done     chan struct{}       // closed when the loop has stopped
	limit    int64               // the limit the governor last set; 0 when none
	gc       int                 // the GOGC the governor last set; 0 when none
}

// managed reports whether the governor may set the limit and GOGC.
func managed() bool { return os.Getenv("GOMEMLIMIT") == "" && os.Getenv("GOGC") == "" }

// add registers c and starts the loop with the first cache.
func (g *memGovernor) add(c *Cache) {
	if !managed() {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.caches[c] = struct{}{}
	if g.stop == nil {
		g.before, g.beforeGC = debug.SetMemoryLimit(-1), gcPercent()
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
	// Restore only what nobody changed since the governor set it.
	if g.limit != 0 && debug.SetMemoryLimit(-1) == g.limit {
		debug.SetMemoryLimit(g.before)
	}
	if g.gc != 0 && gcPercent() == g.gc {
		debug.SetGCPercent(g.beforeGC)
	}
	g.limit, g.gc = 0, 0
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
			g.tick(stop)
		}
	}
}

// tick adjusts the limit for the loop stopped by closing stop, unless
// that loop was stopped meanwhile: the tick may have waited for g.mu
// while remove restored the limit and GOGC, which a tick for no store
// would set to what a heap without stores needs, for good.
func (g *memGovernor) tick(stop chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stop != stop {
		return
	}
	g.adjustLocked()
}

// gcSamples are the live heap and the collector's other roots, the
// goroutine stacks and the globals, as of the last cycle.
var gcSamples = []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}}

// gcPercent returns the GOGC in force (-1 for off).
func gcPercent() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 100
	}
	if v := s[0].Value.Uint64(); v <= 1<<31 {
		return int(v)
	}
	return -1
}

// adjustLocked computes and sets the limit. Called with g.mu held.
func (g *memGovernor) adjustLocked() {
	var budgets, stored int64
	for c := range g.caches {
		budgets += c.MaxSize()
		// The arena's holes and its current segment's room are the
		// store's memory too: counted as stored, they take the stores'
		// headroom, not half as much again.
		stored += c.bytes.Load() + c.arena.overhead()
	}
	metrics.Read(gcSamples)
	var v [3]int64 // live heap, stacks, globals
	for i, s := range gcSamples {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = int64(s.Value.Uint64())
		}
	}
	live := v[0]
	limit := governorLimit(budgets, stored, live, g.before)
	if limit != g.limit {
		debug.SetMemoryLimit(limit)
		g.limit = limit
	}
	if gc := governorGC(live+v[1]+v[2], g.beforeGC); gc != g.gc {
		debug.SetGCPercent(gc)
		g.gc = gc
	}
}

// governorGC is the GOGC for roots bytes of live heap, stacks and globals:
// what lets the heap grow by gcHeadroom before the next cycle, and never
// less than before (GOGC=100 unless the program changed it; off stays
// off). Before the first cycle the roots read as 0 and count as the
// runtime's smallest goal, 4 MiB.
func governorGC(roots int64, before int) int {
	if before < 0 {
		return before
	}
	return max(before, int(100*gcHeadroom/max(roots, 4<<20)))
}

// governorLimit is the limit for stores with the given total budget and
// stored bytes, a live heap of live bytes, and the limit before (an upper
// bound).
func governorLimit(budgets, stored, live, before int64) int64 {
	other := max(live-stored, 0)
	return min(budgets+storedHeadroom(budgets)+other+other/2+governorSlack, before)
}

// storedHeadroom is the collector's headroom given to stores with the
// given total budget: 3/16 of it less 8 MiB, and at least 1/16 (which it
// is up to 64 MiB). The store promises an RSS of at most 1.25 × max_size +
// 64 MiB, and the 64 MiB are Caddy's (its binary's pages alone take 44-57
// of them) and its bodies in flight: a small store has no room to spare.
// A 64 MiB store of 256 KiB bodies took 131-149 MiB of RSS against its 144
// with 1/16 already, as its binary's pages varied. From 64 MiB on, the
// headroom grows by 3/16 of the budget: with the 1/16 that entries count
// for holes (fragmentationShare), a store's memory stays within its
// 1.25 × max_size.
func storedHeadroom(budgets int64) int64 {
	return max(budgets/16, 3*budgets/16-storedHeadroomLess)
}
