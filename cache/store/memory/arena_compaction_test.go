package memory

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/caddy-edge/edge/cache/store"
)

// TestArenaSealWasteCompactsForever: records of a size that leaves
// more than 1/compactAt of a segment unused when it is sealed (a segment
// is sealed as soon as the next record does not fit) make every seal start
// a compaction, although no entry ever left the store: the compaction
// copies records into segments that it seals with the same waste, so the
// holes never go below the threshold.
func TestArenaSealWasteCompactsForever(t *testing.T) {
	c := newCache(t, Config{MaxSize: 64 << 20})
	var runs atomic.Int64
	compact := c.arena.compact
	c.arena.compact = func() { runs.Add(1); compact() }
	const record = 14800                                 // 8 to a 128 KiB segment, 12672 bytes (9.7 %) left at its end
	encodeMeta(entryNow(1000, benchHeader()), &c.values) // the shared values numbered
	encodeMeta(entryNow(1000, benchHeader()), &c.values)
	meta := len(encodeMeta(entryNow(1000, benchHeader()), &c.values))
	size := record - meta
	for i := range 1000 { // ~14 MiB, far below the budget: nothing is evicted
		putBody(t, c, "k"+strconv.Itoa(i), func() *store.Entry { return entryNow(int64(size), benchHeader()) }, bodyOf(i, 0, size))
		settle(t, c)
	}
	if n := c.entries.Load(); n != 1000 {
		t.Fatalf("%d entries, want 1000: something was evicted", n)
	}
	if runs.Load() > 0 || c.arena.moved.Load() > 0 {
		t.Errorf("no entry left the store, yet %d compactions ran and moved %d MiB; holes %d of %d bytes",
			runs.Load(), c.arena.moved.Load()>>20, c.arena.overhead(), c.arena.bytes.Load())
	}
}

// TestArenaChurnCopyAmplification: in a store that keeps evicting
// entries whose records are all about 14.7 KB, compactions copy many times
// the bytes stored (16.8 times before they were counted apart from the end of a sealed segment), as each seal starts one that
// cannot bring the holes under the threshold.
func TestArenaChurnCopyAmplification(t *testing.T) {
	c := newCache(t, Config{MaxSize: 32 << 20})
	const size = 14700
	total := 0
	for i := 0; total < 96<<20; i++ {
		total += size
		putBody(t, c, "k"+strconv.Itoa(i), func() *store.Entry { return entryNow(size, benchHeader()) }, bodyOf(i, 0, size))
		if i%64 == 0 {
			settle(t, c)
		}
	}
	settle(t, c)
	if r := float64(c.arena.moved.Load()) / float64(total); r > 0.5 {
		t.Errorf("compactions copied %.1f bytes per byte stored", r)
	}
}

// TestArenaOpenWritersPinSegments: writers still receiving a body
// of announced length (a slow origin) each pin the segment of their
// record. Compactions pick those segments first, as the emptiest, and free
// nothing.
func TestArenaOpenWritersPinSegments(t *testing.T) {
	for _, open := range []int{0, 60} {
		c := newCache(t, Config{MaxSize: 32 << 20})
		var runs, scans atomic.Int64
		compact := c.arena.compact
		c.arena.compact = func() {
			runs.Add(1)
			// what compact does first, to count the scans
			if v := c.arena.pickVictims(); len(v) > 0 {
				scans.Add(1)
				c.arena.mu.Lock()
				for _, s := range v {
					s.victim = false
				}
				c.arena.mu.Unlock()
			}
			compact()
		}
		var writers []store.Writer
		i := 0
		put := func() {
			putBody(t, c, "k"+strconv.Itoa(i), func() *store.Entry { return entryNow(1024, benchHeader()) }, bodyOf(i, 0, 1024))
			i++
		}
		for range open {
			w, err := c.Put(context.Background(), "slow"+strconv.Itoa(len(writers)), entryNow(1024, benchHeader()))
			if err != nil {
				t.Fatal(err)
			}
			writers = append(writers, w)
			for range c.arena.size / 1024 { // the next writer in another segment
				put()
			}
		}
		settle(t, c)
		runs.Store(0)
		scans.Store(0)
		moved := c.arena.moved.Load()
		for range 64 << 10 { // 64 MiB through the store
			put()
			if i%64 == 0 {
				settle(t, c)
			}
		}
		settle(t, c)
		t.Logf("%d open writers: %d compactions, %d scans (%d seals), moved %d MiB, arena %d MiB, live %d MiB",
			open, runs.Load(), scans.Load(), (64<<20)/c.arena.size, (c.arena.moved.Load()-moved)>>20, c.arena.bytes.Load()>>20, c.arena.live.Load()>>20)
		if open > 0 && scans.Load() > 50 {
			t.Errorf("%d open writers made %d compactions scan the store", open, scans.Load())
		}
		for _, w := range writers {
			w.Abort()
		}
	}
}
