package memory

import (
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Small entries keep their encoded metadata and their body in one record
// of a segment: a large byte slice that holds many records, which the
// collector sees as one object without pointers. Apart, an entry's
// metadata string and body were two more objects for every cycle of the
// collector to reach, at every entry of the store. With the default store
// full of 1 KiB entries and every request a new URL, a cycle took Caddy
// 189-207 ms of CPU instead of 229-278, and the collector 208-241 us of
// CPU a stored miss instead of 247-291, with segments of 1 MiB; with
// segments of 128 KiB and the larger headroom of memlimit.go, 127-214 ms
// and 99-145 us (bench/memory.sh with GODEBUG=gctrace=1; see
// BENCHMARKS.md).
//
// A record is never written once its item is in the store, and a segment
// is never reused: the collector frees it once no item and no reader
// points into it any more. So a hit's body, a slice of its segment, stays
// valid for as long as its reader holds it, whatever the store does
// meanwhile, without a reference count. The price: a reader holds its
// whole segment. A client that stalls a hit's body (an HTTP/2 stream
// whose window it keeps shut; HTTP/2 copies bodies under 4 KiB, so a
// stalled one holds the copy) keeps a segment alive after the store
// dropped it, so segments are kept small: at most segmentMax, 8 to 32
// times a body of 4-16 KiB, where a body of its own held only itself.
//
// What is not reused must be reclaimed: an entry that leaves the store
// leaves a hole in its segment. Each segment counts the bytes of the
// records that entries still hold (live); a sealed segment none holds
// any more is dropped. When the holes reach 1/compactAt of the segments'
// bytes, a compaction copies the records still held in the emptiest
// segments to the current one, each under its key's lock, replacing the
// entry's item with one that points to the copy, until the holes are
// down to 1/compactTo; the old segments are then held by nothing (but
// the readers still reading them). Holes spread evenly are the worst
// case: BenchmarkCompact, a full 256 MiB store with every eighth entry
// gone, copies 40 MiB in 0.24 s to free about 16.
const (
	segmentMin = 64 << 10
	segmentMax = 128 << 10
	// recordMax is the largest record the arena takes; larger entries
	// keep their body in an allocation of its own (recycled from 32 KiB
	// on, see buffers.go), where one more object a large body hardly
	// costs the collector anything.
	recordMax = 16 << 10
	// compactAt and compactTo: a compaction starts when the holes exceed
	// 1/compactAt of the segments' bytes, and removes them down to
	// 1/compactTo.
	compactAt = 12
	compactTo = 24
)

// segment is a block of records.
type segment struct {
	b    []byte
	base uintptr // the address of b[0], for segmentOf
	pos  int     // its index in the arena's segs
	// used is the bytes handed out; the arena's mutex protects it.
	used int
	// live counts the bytes of the records that items in the store or
	// open writers hold.
	live atomic.Int64
	// writers counts the open writers whose records it holds: a
	// compaction cannot empty it before they are done.
	writers atomic.Int32
	// sealed is set once records go to another segment: its live count
	// only decreases from then on.
	sealed atomic.Bool
	// dropped is set, under the arena's mutex, when the segment leaves
	// the arena; victim marks the segments a compaction empties, which only
	// the compaction reads.
	dropped bool
	victim  bool
}

// arena hands out records in segments. A nil *arena hands out nothing.
type arena struct {
	size      int // a segment's size
	maxRecord int
	mu        sync.Mutex // protects cur, segs and the segments' used, pos and dropped
	cur       *segment
	// segs holds the segments not dropped, in no order.
	segs []*segment
	// index finds a segment by address: under the number of each
	// segmentMin of the address space (a granule) that a segment
	// overlaps, the segment. A segment takes at least a granule, so a
	// granule overlaps at most two segments.
	indexMu sync.RWMutex
	index   map[uintptr][2]*segment
	// bytes is the size of the segments in segs, used the bytes of them
	// handed out, live the bytes of their records held.
	bytes, used, live atomic.Int64
	// moved counts the bytes compactions copied, compactions the
	// compactions that copied any.
	moved, compactions atomic.Int64
	// compacting is set while a compaction runs; compact is what runs it.
	compacting atomic.Bool
	compact    func()
}

// newArena returns the arena of a store with budget maxSize, or nil for a
// store below MinMaxSize, whose entries are all allocated apart. A
// segment is 1/256 of the budget, from 64 KiB to 128 KiB.
func newArena(maxSize int64, compact func()) *arena {
	if maxSize < MinMaxSize {
		return nil
	}
	size := segmentMin
	for size < segmentMax && int64(size) < maxSize/256 {
		size *= 2
	}
	a := &arena{size: size, maxRecord: min(recordMax, size/8), compact: compact}
	a.index = make(map[uintptr][2]*segment)
	return a
}

// alloc returns a record of n bytes, counted live, or nil when the arena
// does not take records of that size.
func (a *arena) alloc(n int) []byte {
	rec, _ := a.allocFor(n, false)
	return rec
}

// reserve returns a record of n bytes for a writer, as alloc does, and its
// segment, which the writer pins until it is done with the record
// (segment.unpin).
func (a *arena) reserve(n int) ([]byte, *segment) { return a.allocFor(n, true) }

// segmentSize returns the size of a segment, 0 for a nil arena.
func (a *arena) segmentSize() int64 {
	if a == nil {
		return 0
	}
	return int64(a.size)
}

// unpin tells that the writer of a record of s is done with it.
func (s *segment) unpin() { s.writers.Add(-1) }

func (a *arena) allocFor(n int, writer bool) ([]byte, *segment) {
	if a == nil || n <= 0 || n > a.maxRecord {
		return nil, nil
	}
	a.mu.Lock()
	s, sealed := a.cur, false
	if s == nil || s.used+n > len(s.b) {
		if s != nil {
			a.sealLocked(s)
			sealed = true
		}
		s = &segment{b: make([]byte, a.size)}
		s.base = uintptr(unsafe.Pointer(unsafe.SliceData(s.b)))
		a.cur = s
		a.addLocked(s)
	}
	rec := s.b[s.used : s.used+n : s.used+n]
	s.used += n
	a.used.Add(int64(n))
	s.live.Add(int64(n))
	a.live.Add(int64(n))
	if writer {
		s.writers.Add(1)
	}
	start := sealed && a.holesLocked() > a.bytes.Load()/compactAt && a.compacting.CompareAndSwap(false, true)
	a.mu.Unlock()
	if start {
		go a.compact()
	}
	return rec, s
}

// reclaim starts a compaction when the holes are over the threshold.
// Entries that leave in bulk (a purge, their expiry) leave holes in
// every segment, and on a store that no record is written to after, no
// segment is sealed to start one: 90 % of a store's entries deleted left
// 36 MiB free of the arena's 40 (TestArenaReclaimsWithoutNewRecords)
// until 128 KiB more were stored. The sweep, every minute, calls it; not
// each purge, whose compactions would copy the entries left many times
// over while it runs.
func (a *arena) reclaim() {
	if a == nil || a.used.Load()-a.live.Load() <= a.bytes.Load()/compactAt {
		return
	}
	if a.compacting.CompareAndSwap(false, true) {
		go a.compact()
	}
}

// holesLocked returns the bytes handed out that no record held takes any
// more: what a compaction can reclaim. Neither the current segment's room
// nor what a sealed segment left unused at its end (less than a record)
// counts: copied elsewhere, records leave as much unused at the end of
// the segments they fill. Called with a.mu held.
func (a *arena) holesLocked() int64 {
	return a.used.Load() - a.live.Load()
}

// overhead returns the bytes of the segments that no record held takes,
// the current segment's room included: memory the entries' weights do
// not count.
func (a *arena) overhead() int64 {
	if a == nil {
		return 0
	}
	return a.bytes.Load() - a.live.Load()
}

// sealLocked seals s, which records no longer go to, and drops it when it
// holds none. Called with a.mu held.
func (a *arena) sealLocked(s *segment) {
	s.sealed.Store(true)
	if s.live.Load() == 0 {
		a.dropLocked(s)
	}
}

// addLocked adds s to the arena. Called with a.mu held.
func (a *arena) addLocked(s *segment) {
	s.pos = len(a.segs)
	a.segs = append(a.segs, s)
	a.bytes.Add(int64(len(s.b)))
	a.indexMu.Lock()
	defer a.indexMu.Unlock()
	for g := range s.granules() {
		e := a.index[g]
		if e[0] == nil {
			e[0] = s
		} else {
			e[1] = s
		}
		a.index[g] = e
	}
}

// dropLocked removes s from the arena, once. Called with a.mu held.
func (a *arena) dropLocked(s *segment) {
	if s.dropped {
		return
	}
	s.dropped = true
	last := a.segs[len(a.segs)-1]
	a.segs[s.pos], last.pos = last, s.pos
	a.segs[len(a.segs)-1] = nil
	a.segs = a.segs[:len(a.segs)-1]
	a.bytes.Add(-int64(len(s.b)))
	a.used.Add(-int64(s.used))
	a.indexMu.Lock()
	defer a.indexMu.Unlock()
	for g := range s.granules() {
		e := a.index[g]
		for i := range e {
			if e[i] == s {
				e[i] = nil
			}
		}
		if e[0] == nil && e[1] == nil {
			delete(a.index, g)
		} else {
			a.index[g] = e
		}
	}
}

// granules yields the numbers of the granules s overlaps.
func (s *segment) granules() func(func(uintptr) bool) {
	return func(yield func(uintptr) bool) {
		for g := s.base / segmentMin; g <= (s.base+uintptr(len(s.b))-1)/segmentMin; g++ {
			if !yield(g) {
				return
			}
		}
	}
}

// segmentOf returns the segment that holds the byte at p, or nil.
func (a *arena) segmentOf(p *byte) *segment {
	addr := uintptr(unsafe.Pointer(p))
	a.indexMu.RLock()
	e := a.index[addr/segmentMin]
	a.indexMu.RUnlock()
	for _, s := range e {
		if s != nil && addr >= s.base && addr < s.base+uintptr(len(s.b)) {
			return s
		}
	}
	return nil
}

// release gives up n bytes of a record from p on: they are no longer
// held. A sealed segment that nothing holds any more is dropped.
func (a *arena) release(p *byte, n int) {
	s := a.segmentOf(p)
	if s == nil {
		return
	}
	a.live.Add(-int64(n))
	if s.live.Add(-int64(n)) == 0 && s.sealed.Load() {
		a.mu.Lock()
		a.dropLocked(s)
		a.mu.Unlock()
	}
}

// pickVictims marks the sealed segments that a compaction empties: the
// ones with the fewest bytes held first, until what they free brings the
// holes down to 1/compactTo of the segments' bytes. It returns them.
func (a *arena) pickVictims() []*segment {
	a.mu.Lock()
	defer a.mu.Unlock()
	// The segments left hold the live bytes and the holes left: holes of
	// 1/compactTo of them are 1/(compactTo-1) of the live bytes.
	// Segments that open writers hold are left alone, and so are their
	// holes: the compaction starts only if the other holes are over
	// the threshold.
	holes, pinned := a.holesLocked(), int64(0)
	var sealed []*segment
	for _, s := range a.segs {
		if !s.sealed.Load() {
			continue
		}
		if s.writers.Load() > 0 {
			holes -= int64(s.used) - s.live.Load()
			pinned += int64(len(s.b))
			continue
		}
		sealed = append(sealed, s)
	}
	if pinned > 0 && holes <= (a.bytes.Load()-pinned)/compactAt {
		return nil
	}
	excess := holes - a.live.Load()/(compactTo-1)
	if excess <= 0 {
		return nil
	}
	slices.SortFunc(sealed, func(x, y *segment) int {
		return int(x.live.Load() - y.live.Load())
	})
	var victims []*segment
	for _, s := range sealed {
		if excess <= 0 {
			break
		}
		s.victim = true
		victims = append(victims, s)
		excess -= int64(s.used) - s.live.Load()
	}
	return victims
}
