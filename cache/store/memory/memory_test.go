package memory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache/store"
	"github.com/caddy-edge/edge/cache/store/storetest"
)

func newCache(t testing.TB, cfg Config) *Cache {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestAcceptance(t *testing.T) {
	storetest.RunWithClock(t, func(t *testing.T, now func() time.Time) store.Store {
		return newCache(t, Config{MaxSize: 128 << 20, Now: now})
	})
}

func TestAcceptanceRealClock(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return newCache(t, Config{MaxSize: 128 << 20})
	})
}

// TestAcceptanceNothingKept runs the suite with no metadata kept decoded:
// every hit decodes its entry, as a hit on a cold entry of a large store
// does.
func TestAcceptanceNothingKept(t *testing.T) {
	storetest.RunWithClock(t, func(t *testing.T, now func() time.Time) store.Store {
		c := newCache(t, Config{MaxSize: 128 << 20, Now: now})
		c.kept.SetMax(0, 0)
		return c
	})
}

func TestNewRejectsNegativeSize(t *testing.T) {
	if _, err := New(Config{MaxSize: -1}); err == nil {
		t.Error("New accepted a negative MaxSize")
	}
	c := newCache(t, Config{})
	if c.MaxSize() != DefaultMaxSize || c.Stats().Capacity != DefaultMaxSize {
		t.Errorf("default MaxSize = %d, Capacity = %d; want %d", c.MaxSize(), c.Stats().Capacity, DefaultMaxSize)
	}
	if c.MaxEntrySize() != DefaultMaxSize/MaxEntryFraction {
		t.Errorf("MaxEntrySize = %d, want %d", c.MaxEntrySize(), DefaultMaxSize/MaxEntryFraction)
	}
}

// weightOf is the weight of e's metadata under key.
func weightOf(key string, e *store.Entry) int64 {
	return metaWeight(key, encodeMeta(e, nil), e.Tags)
}

func entry() *store.Entry {
	return &store.Entry{Status: 200, Header: store.Fields{"Content-Type", "text/plain"}, Size: -1}
}

func TestTooLarge(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, Config{MaxSize: 8 << 20}) // entries up to 1 MiB
	limit := c.MaxEntrySize()

	t.Run("hint", func(t *testing.T) {
		// The largest Content-Length a client's parser takes, too:
		// added to the metadata's weight, it must not wrap around.
		for _, size := range []int64{limit, math.MaxInt64, math.MaxInt64 - 100} {
			e := entry()
			e.Size = size
			if _, err := c.Put(ctx, "k", e); !errors.Is(err, store.ErrTooLarge) {
				t.Errorf("Put with a size hint of %d = %v, want ErrTooLarge", e.Size, err)
			}
		}
		if f := c.filling.Load(); f != 0 {
			t.Errorf("refused Puts hold %d bytes of buffers", f)
		}
	})
	t.Run("streamed", func(t *testing.T) {
		w, err := c.Put(ctx, "k", entry())
		if err != nil {
			t.Fatal(err)
		}
		chunk := make([]byte, 64<<10)
		for written := int64(0); written <= limit; written += int64(len(chunk)) {
			if n, err := w.Write(chunk); err != nil || n != len(chunk) {
				t.Fatalf("Write past the limit = %d, %v; want it to keep accepting", n, err)
			}
		}
		if err := w.Commit(); !errors.Is(err, store.ErrTooLarge) {
			t.Errorf("Commit of a body over the limit = %v, want ErrTooLarge", err)
		}
		if _, _, err := c.Get(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get after a refused Commit = %v, want ErrNotFound", err)
		}
	})
	t.Run("header", func(t *testing.T) {
		e := entry()
		e.Header = append(e.Header, "X-Huge", string(make([]byte, limit)))
		if _, err := c.Put(ctx, "k", e); !errors.Is(err, store.ErrTooLarge) {
			t.Errorf("Put of an entry whose header alone is over the limit = %v, want ErrTooLarge", err)
		}
	})
	t.Run("just under", func(t *testing.T) {
		body := make([]byte, limit-weightOf("k", entry()))
		e := entry()
		e.Size = int64(len(body))
		w, err := c.Put(ctx, "k", e)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(body)
		if err := w.Commit(); err != nil {
			t.Fatalf("Commit of a body at the limit: %v", err)
		}
	})
}

// TestFillsAreBounded: the buffers of bodies being written, which the
// budget does not count yet, hold at most 1/fillShare of max_size
// together (or fillFloor). Many concurrent misses of large objects (a slow origin, or
// clients that lead them and read slowly) would otherwise each hold up to
// the largest entry. Beyond the bound a body is not stored (ErrBusy), and
// what a writer held is given back at Commit and Abort.
func TestFillsAreBounded(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, Config{MaxSize: 128 << 20}) // entries up to 16 MiB, fills up to 32 MiB
	chunk := bytes.Repeat([]byte("f"), 64<<10)
	fill := func(w store.Writer, n int) {
		for range n {
			w.Write(chunk)
		}
	}
	put := func(key string, size int64) (store.Writer, error) {
		e := entry()
		e.Size = size
		return c.Put(ctx, key, e)
	}
	a, err := put("a", -1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := put("b", -1)
	if err != nil {
		t.Fatal(err)
	}
	fill(a, 192) // 12 MiB, in a buffer of 16 MiB less the metadata's weight
	fill(b, 192)
	// A third body cannot grow past its first buffers, nor can a body
	// of announced length too large for the arena get its first one.
	over, err := put("over", -1)
	if err != nil {
		t.Fatal(err)
	}
	fill(over, 192)
	if err := over.Commit(); !errors.Is(err, store.ErrBusy) {
		t.Errorf("Commit of a body beyond the fill bound = %v, want ErrBusy", err)
	}
	if _, err := put("announced", 900<<10); !errors.Is(err, store.ErrBusy) {
		t.Errorf("Put of a 900 KiB body beyond the fill bound = %v, want ErrBusy", err)
	}
	// A small body of announced length is written into the arena, which
	// the budget counts: always allowed.
	small, err := put("small", 4<<10)
	if err != nil {
		t.Fatalf("Put of a small body while fills are at their bound: %v", err)
	}
	small.Write(chunk[:4<<10])
	if err := small.Commit(); err != nil {
		t.Errorf("Commit of a small body while fills are at their bound: %v", err)
	}
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	b.Abort()
	if got := c.filling.Load(); got != 0 {
		t.Errorf("after every writer ended, %d bytes still counted as filling", got)
	}
	for _, k := range []string{"a", "small"} {
		e, body, err := c.Get(ctx, k)
		if err != nil {
			t.Fatalf("Get %s: %v", k, err)
		}
		n, _ := io.Copy(io.Discard, body)
		body.Close()
		if want := map[string]int64{"a": 192 << 16, "small": 4 << 10}[k]; n != want || e.Status != 200 {
			t.Errorf("Get %s: %d bytes, status %d; want %d, 200", k, n, e.Status, want)
		}
	}
	if _, _, err := c.Get(ctx, "over"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of the body refused for the bound = %v, want ErrNotFound", err)
	}
	// The bound is free again.
	again, err := put("again", 900<<10)
	if err != nil {
		t.Fatalf("Put once the fills ended: %v", err)
	}
	again.Abort()
}

// TestEvictionKeepsPopular fills a small store far beyond its budget with
// entries read once, while a few entries that were read often are read
// again only now and then, rarer than a least-recently-used policy would
// need to keep them: the budget holds and the popular entries stay.
func TestEvictionKeepsPopular(t *testing.T) {
	ctx := context.Background()
	const budget = 4 << 20 // about 250 entries of 16 KiB
	c := newCache(t, Config{MaxSize: budget})
	body := make([]byte, 16<<10)
	putBody := func(key string) {
		w, err := c.Put(ctx, key, entry())
		if err != nil {
			t.Fatal(err)
		}
		w.Write(body)
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	popular := []string{"hot-1", "hot-2", "hot-3", "hot-4"}
	var reads, hits int
	readPopular := func() {
		for _, k := range popular {
			reads++
			if _, b, err := c.Get(ctx, k); err == nil {
				hits++
				b.Close()
			}
		}
	}
	// A store in use: full of entries read once. (Otter, like Caffeine,
	// starts counting frequencies once the store is half full.)
	for i := range 300 {
		putBody(fmt.Sprintf("old-%d", i))
	}
	for _, k := range popular {
		putBody(k)
	}
	for range 20 {
		readPopular()
		c.CleanUp()
	}
	reads, hits = 0, 0
	for i := range 3000 { // ~48 MiB through a 4 MiB store
		putBody(fmt.Sprintf("scan-%d", i))
		if i%400 == 399 {
			readPopular()
		}
		// Otter applies reads and writes to its policy in the
		// background; in a loop this tight on one CPU that may lag far
		// behind. Draining here keeps the test about the policy.
		c.CleanUp()
	}
	st := c.Stats()
	if st.Bytes > budget {
		t.Errorf("Stats().Bytes = %d, over the budget %d", st.Bytes, budget)
	}
	if st.Entries < 200 {
		t.Errorf("Stats().Entries = %d: the store holds far fewer entries than fit", st.Entries)
	}
	// The popular entries are read every 400 scanned entries, 6.4 MiB:
	// less often than a plain LRU of 4 MiB would need to keep them, so
	// under LRU every one of these reads would miss. W-TinyLFU is
	// probabilistic (lossy read buffers, an aging frequency sketch, an
	// adaptive window): now and then, about once in three hundred runs,
	// it gives up the popular entries halfway through the scan. So the
	// test asks for a hit ratio of those reads that no recency-only
	// policy reaches, not for every entry at the end.
	readPopular()
	if hits*4 < reads {
		t.Errorf("popular entries were hit in %d of %d reads during the scan, want at least 1/4 (a plain LRU hits none)", hits, reads)
	}
}

// TestTagIndexFollowsEviction checks that evicted entries leave the tag
// index: the index does not grow without bound and a purge counts only
// live entries.
func TestTagIndexFollowsEviction(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, Config{MaxSize: 1 << 20})
	for i := range 2000 {
		e := entry()
		e.Tags = []string{"all", fmt.Sprintf("t%d", i)}
		w, err := c.Put(ctx, fmt.Sprintf("k%d", i), e)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(bytes.Repeat([]byte("x"), 4096))
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	c.CleanUp()
	live := c.Stats().Entries
	// Evictions count the entries removed for room, nothing else.
	if ev := c.Stats().Evictions; ev != 2000-live || ev == 0 {
		t.Errorf("Stats().Evictions = %d, want the %d entries that did not fit", ev, 2000-live)
	}
	c.mu.Lock()
	indexed, tags := c.tags["all"].len(), len(c.tags)
	c.mu.Unlock()
	if int64(indexed) != live || int64(tags) != live+1 {
		t.Errorf("tag index holds %d keys under 'all' and %d tags for %d live entries", indexed, tags, live)
	}
	n, err := c.PurgeTag(ctx, "all", false)
	if err != nil || int64(n) != live {
		t.Errorf("PurgeTag(all) = %d, %v; want %d", n, err, live)
	}
	c.mu.Lock()
	left := len(c.tags)
	c.mu.Unlock()
	if left != 0 || c.Stats().Entries != 0 || c.Stats().Bytes != 0 || c.Stats().Evictions != 2000-live {
		t.Errorf("after purging everything: %d tags indexed, Stats %+v (a purge is no eviction)", left, c.Stats())
	}
}

// TestExpiredEntriesLeave checks that expired entries are dropped from the
// store's accounting and the tag index, not only hidden from Get.
func TestExpiredEntriesLeave(t *testing.T) {
	ctx := context.Background()
	clk := storetest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c := newCache(t, Config{MaxSize: 8 << 20, Now: clk.Now})
	for i := range 10 {
		e := entry()
		e.Expires = clk.Now().Add(time.Minute)
		e.Tags = []string{"t"}
		w, _ := c.Put(ctx, fmt.Sprintf("k%d", i), e)
		w.Write([]byte("body"))
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	// An update that moves Expires into the past, and a replacement
	// already expired when committed, end their entries too.
	past := entry()
	past.Expires = clk.Now().Add(-time.Second)
	past.Tags = []string{"t"}
	if err := c.Update(ctx, "k0", past); err != nil {
		t.Fatal(err)
	}
	w, _ := c.Put(ctx, "k1", past)
	w.Write([]byte("late"))
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"k0", "k1"} {
		if _, _, err := c.Get(ctx, k); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(%s) = %v, want ErrNotFound", k, err)
		}
	}
	clk.Advance(2 * time.Second) // otter's timer wheel works in ~1s steps
	c.CleanUp()
	if st := c.Stats(); st.Entries != 8 {
		t.Errorf("Stats().Entries = %d, want 8 once the 2 entries past their Expires are dropped", st.Entries)
	}

	clk.Advance(2 * time.Minute)
	c.CleanUp()
	c.mu.Lock()
	indexed := len(c.tags)
	c.mu.Unlock()
	if st := c.Stats(); st.Entries != 0 || st.Bytes != 0 || indexed != 0 {
		t.Errorf("after expiry and clean-up: Stats %+v, %d tags indexed; want all gone", st, indexed)
	}
}

func TestCommitShrinksSpareCapacity(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, Config{})
	w, _ := c.Put(ctx, "k", entry())
	w.Write(make([]byte, 1000))
	w.Write(make([]byte, 100)) // append grows the buffer well past 1100
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, b, _ := c.Get(ctx, "k"); len(b.(store.BytesBody).Bytes()) != 1100 {
		t.Errorf("stored body length = %d, want 1100", len(b.(store.BytesBody).Bytes()))
	}
	want := 1100 + weightOf("k", entry())
	want += want / fragmentationShare
	kept := keptCost(entry())
	if st := c.Stats(); st.Bytes != want+kept {
		t.Errorf("Stats().Bytes = %d, want body 1100 + metadata %d + the fragmentation share + the decoded metadata kept %d = %d",
			st.Bytes, weightOf("k", entry()), kept, want+kept)
	}

	c.Delete(ctx, "k")
	if st := c.Stats(); st.Bytes != 0 || st.Entries != 0 {
		t.Errorf("Stats() once it left = %+v, want no bytes and no entries", st)
	}
}

// TestFitBody: what Commit keeps of a body's buffer. The budget counts a
// small body's length, so no spare capacity may stay behind it; a
// recycled buffer keeps its class's capacity, which the budget counts.
func TestFitBody(t *testing.T) {
	for _, tt := range []struct {
		name         string
		len, cap     int
		wantCap      int
		wantRecycled bool
	}{
		{"exact", 1000, 1000, 1000, false},
		{"small, spare under 1/8", 3700, 4096, 3700, false},
		{"small, spare over 1/8", 1100, 4096, 1100, false},
		{"recycled class, spare under 1/8", 100 << 10, 104 << 10, 104 << 10, true},
		{"recycled class, spare over 1/8", 70 << 10, 104 << 10, 72 << 10, true},
		{"large, not a class", 100 << 10, 100<<10 + 1, 104 << 10, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body, recycled := fitBody(make([]byte, tt.len, tt.cap))
			if len(body) != tt.len || cap(body) != tt.wantCap || recycled != tt.wantRecycled {
				t.Errorf("fitBody = len %d cap %d recycled %v, want len %d cap %d recycled %v",
					len(body), cap(body), recycled, tt.len, tt.wantCap, tt.wantRecycled)
			}
		})
	}
}

func TestSizeHintBuffers(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, Config{})
	storedCap := func(key string) int {
		t.Helper()
		_, b, err := c.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return cap(b.(store.BytesBody).Bytes())
	}

	// An announced 3 MiB body: 1 MiB first, then the rest in one step,
	// and nothing to shrink at the end.
	e := entry()
	e.Size = 3 << 20
	w, _ := c.Put(ctx, "exact", e)
	if got := cap(w.(*writer).buf); got != preallocMax {
		t.Errorf("preallocated %d bytes for a 3 MiB hint, want %d", got, preallocMax)
	}
	chunk := make([]byte, 32<<10)
	for range (3 << 20) / len(chunk) {
		w.Write(chunk)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := storedCap("exact"); got != 3<<20 {
		t.Errorf("stored capacity = %d, want exactly the 3 MiB body", got)
	}

	// A Content-Length that overstated the body: the spare room is freed.
	e.Size = 512 << 10
	w, _ = c.Put(ctx, "short", e)
	w.Write(make([]byte, 100))
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := storedCap("short"); got != 100 {
		t.Errorf("stored capacity = %d after a 512 KiB hint and a 100-byte body, want 100", got)
	}
}

// TestBookkeepingUnderConcurrentEviction runs puts, updates, reads,
// deletes and purges from several goroutines on a store small enough to
// evict all the time, then checks that the entry count, the byte count
// and the tag index agree with what the store holds.
func TestBookkeepingUnderConcurrentEviction(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, Config{MaxSize: 1 << 20})
	body := make([]byte, 8<<10)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 1500 {
				key := "k" + strconv.Itoa((i*7+g)%300)
				e := entry()
				e.Tags = []string{"all", "t" + strconv.Itoa(i%5)}
				switch i % 6 {
				case 0, 1, 2:
					w, err := c.Put(ctx, key, e)
					if err != nil {
						t.Error(err)
						return
					}
					w.Write(body[:1024*(1+i%8)])
					if i%9 == 0 {
						w.Abort()
					} else if err := w.Commit(); err != nil {
						t.Error(err)
						return
					}
				case 3:
					c.Update(ctx, key, e)
				case 4:
					if _, b, err := c.Get(ctx, key); err == nil {
						b.Close()
					}
				case 5:
					if i > 1000 {
						break // end on writes over writes
					}
					switch i % 4 {
					case 0:
						c.Delete(ctx, key)
					case 1:
						c.PurgeTag(ctx, "t"+strconv.Itoa(i%5), false)
					case 2:
						c.PurgePrefix(ctx, "k1", false)
					}
				}
			}
		})
	}
	wg.Wait()
	c.CleanUp()
	settle(t, c) // a compaction replaces items, as an Update does
	checkArena(t, c)

	var entries, bytes, kept int64
	if st := c.Stats(); st.Entries < 50 {
		t.Fatalf("only %d entries left: the test checks too little", st.Entries)
	}
	for k, it := range c.c.All() {
		entries++
		bytes += weight(k, it)
		if x := it.ext.Load(); x != nil && x.kept.Kept(c.kept) {
			e := x.kept.Load(c.kept)
			kept += keptCost(e)
		}
		for _, tag := range metaTags(it.meta) {
			c.mu.Lock()
			indexed := c.tags[tag].get(k)
			c.mu.Unlock()
			if indexed != it {
				t.Errorf("entry %s with tag %s is not in the tag index", k, tag)
			}
		}
	}
	// Decoded metadata is kept only for entries in the store: what the
	// entries that left kept was released.
	if st := c.Stats(); st.Entries != entries || st.Bytes != bytes+kept {
		t.Errorf("Stats = %+v, but the store holds %d entries weighing %d bytes and %d bytes of decoded metadata",
			st, entries, bytes, kept)
	}
	if bytes+kept > 1<<20 {
		t.Errorf("the store holds %d bytes, over its 1 MiB budget", bytes+kept)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for tag, m := range c.tags {
		for k, it := range m.all() {
			if cur, ok := c.c.GetIfPresent(k); !ok || cur != it {
				t.Errorf("tag index holds %s -> %s for an entry the store no longer has", tag, k)
			}
		}
	}
}

func TestUsableAfterClose(t *testing.T) {
	ctx := context.Background()
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	putString(t, c, "before", "1")
	c.Close()
	c.Close() // twice is harmless
	putString(t, c, "after", "2")
	for k, want := range map[string]string{"before": "1", "after": "2"} {
		if got, err := getString(t, c, k); err != nil || got != want {
			t.Errorf("Get(%s) after Close = %q, %v; want %q", k, got, err, want)
		}
	}
	if n, _ := c.PurgePrefix(ctx, "", false); n != 2 {
		t.Errorf("PurgePrefix after Close = %d, want 2", n)
	}
}

// On the real clock, entries past their Expires leave the store by
// themselves (a sweep), with their tags; Close ends the sweeps.
func TestSweepRemovesExpired(t *testing.T) {
	defer func(d time.Duration) { sweepInterval = d }(sweepInterval)
	sweepInterval = 20 * time.Millisecond
	ctx := context.Background()
	c, err := New(Config{MaxSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		e := entry()
		e.Expires = time.Now().Add(100 * time.Millisecond)
		if i == 0 {
			e.Expires = time.Now().Add(time.Hour)
		}
		e.Tags = []string{"t"}
		w, _ := c.Put(ctx, fmt.Sprintf("k%d", i), e)
		w.Write(make([]byte, 64<<10)) // a recycled buffer
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.Stats().Entries != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := c.Stats(); st.Entries != 1 {
		t.Fatalf("Stats().Entries = %d a while after 4 of 5 entries expired, want 1", st.Entries)
	}
	if _, _, err := c.Get(ctx, "k0"); err != nil {
		t.Errorf("the entry not expired: %v", err)
	}
	c.mu.Lock()
	tagged := c.tags["t"].len()
	c.mu.Unlock()
	if tagged != 1 {
		t.Errorf("%d keys indexed under the tag, want 1", tagged)
	}
	sweeping := func() bool {
		buf := make([]byte, 1<<20)
		return strings.Contains(string(buf[:runtime.Stack(buf, true)]), "sweepEvery")
	}
	if !sweeping() {
		t.Fatal("no sweeping goroutine before Close")
	}
	c.Close()
	deadline = time.Now().Add(5 * time.Second)
	for sweeping() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if sweeping() {
		t.Error("the sweep goes on after Close")
	}
}
