package memory

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/caddy-edge/edge/cache/store"
)

// settle waits until no compaction runs.
func settle(t testing.TB, c *Cache) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.arena.compacting.Load() {
		if time.Now().After(deadline) {
			t.Fatal("a compaction ran for 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// compactNow runs a compaction now, after any running one.
func compactNow(t testing.TB, c *Cache) {
	t.Helper()
	for !c.arena.compacting.CompareAndSwap(false, true) {
		settle(t, c)
	}
	c.compact()
}

// checkArena checks the arena's books against the store's items: the
// bytes counted live are those of the records items in the store hold,
// and every such record is in a segment not dropped. No writer may be
// open.
func checkArena(t *testing.T, c *Cache) {
	t.Helper()
	settle(t, c)
	var held int64
	for k, it := range c.c.All() {
		if !it.inArena() {
			continue
		}
		p, n := it.record()
		if c.arena.segmentOf(p) == nil {
			t.Errorf("entry %s: its record is in no segment of the arena", k)
		}
		held += int64(n)
	}
	if live := c.arena.live.Load(); live != held {
		t.Errorf("the arena counts %d bytes held, the store's items hold %d", live, held)
	}
	var sum int64
	c.arena.mu.Lock()
	for i, s := range c.arena.segs {
		sum += int64(len(s.b))
		if s.pos != i || s.dropped {
			t.Errorf("segment %d of the arena says it is at %d, dropped %v", i, s.pos, s.dropped)
		}
		if c.arena.segmentOf(unsafe.SliceData(s.b)) != s || c.arena.segmentOf(&s.b[len(s.b)-1]) != s {
			t.Errorf("segment %d is not found by its first and last bytes", i)
		}
	}
	c.arena.mu.Unlock()
	if b := c.arena.bytes.Load(); b != sum {
		t.Errorf("the arena counts %d bytes of segments, its segments have %d", b, sum)
	}
}

// bodyOf is the body stored under key i: its bytes tell which key and
// which version they belong to.
func bodyOf(i, version, size int) []byte {
	b := bytes.Repeat([]byte(strconv.Itoa(i)+"/"+strconv.Itoa(version)+";"), size/4+1)
	return b[:size]
}

func putBody(t testing.TB, c *Cache, key string, e func() *store.Entry, body []byte) {
	t.Helper()
	w, err := c.Put(context.Background(), key, e())
	if err != nil {
		t.Fatal(err)
	}
	w.Write(body)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func getBody(t testing.TB, c *Cache, key string) ([]byte, bool) {
	t.Helper()
	e, b, err := c.Get(context.Background(), key)
	if err != nil {
		return nil, false
	}
	defer b.Close()
	got, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != 200 || e.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("%s: decoded as %d %v", key, e.Status, e.Header)
	}
	return got, true
}

// TestArenaCompactionKeepsEntries: after most entries left the store, a
// compaction moves the records of the rest out of the emptied segments,
// which are dropped, and every entry left still reads its own metadata
// and body, whether its body was written in place (announced length) or
// buffered.
func TestArenaCompactionKeepsEntries(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, Config{MaxSize: 64 << 20})
	if c.arena.size != segmentMax {
		t.Fatalf("segments of %d bytes, want %d", c.arena.size, segmentMax)
	}
	const n = 6000
	for i := range n {
		size := int64(-1)
		if i%2 == 0 {
			size = int64(700 + i%900)
		}
		putBody(t, c, "k"+strconv.Itoa(i), func() *store.Entry { return entryNow(size, benchHeader()) }, bodyOf(i, 0, 700+i%900))
	}
	settle(t, c)
	checkArena(t, c)
	for i := range n {
		if i%10 != 0 {
			c.Delete(ctx, "k"+strconv.Itoa(i))
		}
	}
	c.c.CleanUp() // not c.CleanUp, whose sweep would start the compaction
	settle(t, c)
	before := c.arena.bytes.Load()
	compactNow(t, c)
	after := c.arena.bytes.Load()
	if after > before/3 {
		t.Errorf("the arena took %d bytes before the compaction and %d after, with 1/10 of its entries left", before, after)
	}
	for i := range n {
		got, ok := getBody(t, c, "k"+strconv.Itoa(i))
		if ok != (i%10 == 0) {
			t.Fatalf("k%d: found %v", i, ok)
		}
		if ok && !bytes.Equal(got, bodyOf(i, 0, 700+i%900)) {
			t.Fatalf("k%d: body %.40q... after the compaction", i, got)
		}
	}
	checkArena(t, c)
	if holes := c.arena.overhead(); holes > c.arena.bytes.Load()/compactTo+int64(c.arena.size) {
		t.Errorf("%d bytes of holes left of %d", holes, c.arena.bytes.Load())
	}
}

// TestArenaStats: Stats tells an operator what the segments take, how much
// of them no entry holds, and what compactions did, as the arena counts it.
func TestArenaStats(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, Config{MaxSize: 64 << 20})
	if st := c.Stats(); st.SegmentBytes != 0 || st.SegmentFree != 0 || st.Compactions != 0 {
		t.Fatalf("an empty store reports %+v", st)
	}
	const n = 2000
	for i := range n {
		putBody(t, c, "k"+strconv.Itoa(i), func() *store.Entry { return entryNow(1024, benchHeader()) }, bodyOf(i, 0, 1024))
	}
	settle(t, c)
	st := c.Stats()
	if st.SegmentBytes < n*1024 || st.SegmentBytes%int64(c.arena.size) != 0 {
		t.Errorf("%d entries of 1 KiB: %d bytes of segments of %d", n, st.SegmentBytes, c.arena.size)
	}
	if st.SegmentFree < 0 || st.SegmentFree >= int64(c.arena.size) {
		t.Errorf("nothing left the store, yet %d bytes of its segments are free", st.SegmentFree)
	}
	for i := range n {
		if i%4 != 0 {
			c.Delete(ctx, "k"+strconv.Itoa(i))
		}
	}
	c.c.CleanUp() // not c.CleanUp, whose sweep would start the compaction
	settle(t, c)
	if freed := c.Stats().SegmentFree; freed < st.SegmentFree+n/2*1024 {
		t.Errorf("3/4 of the entries left, the free bytes went from %d to %d", st.SegmentFree, freed)
	}
	compactNow(t, c)
	after := c.Stats()
	if after.Compactions != 1 || after.CompactedBytes < n/8*1024 || after.CompactedBytes > n/4*2048 {
		t.Errorf("one compaction of %d entries left: %d compactions, %d bytes copied", n/4, after.Compactions, after.CompactedBytes)
	}
	if after.SegmentFree > after.SegmentBytes/compactTo+int64(c.arena.size) || after.SegmentBytes >= st.SegmentBytes {
		t.Errorf("after the compaction %d of %d bytes free (%d before)", after.SegmentFree, after.SegmentBytes, st.SegmentBytes)
	}
	checkArena(t, c)
}

// TestArenaBoundedUnderChurn: a store that keeps evicting keeps its
// segments within its budget, the compactions starting by themselves.
func TestArenaBoundedUnderChurn(t *testing.T) {
	c := newCache(t, Config{MaxSize: 4 << 20})
	for i := range 40_000 { // ~40 MiB through a 4 MiB store
		putBody(t, c, "k"+strconv.Itoa(i), func() *store.Entry { return entryNow(1024, benchHeader()) }, bodyOf(i, 0, 1024))
	}
	// Otter evicts in batches: the last ones leave holes that the next
	// segment's seal finds.
	c.CleanUp()
	settle(t, c)
	for i := range c.arena.size/1024 + 1 {
		putBody(t, c, "more"+strconv.Itoa(i), func() *store.Entry { return entryNow(1024, benchHeader()) }, bodyOf(i, 0, 1024))
	}
	c.CleanUp()
	settle(t, c)
	checkArena(t, c)
	if b, limit := c.arena.bytes.Load(), c.MaxSize(); b > limit {
		t.Errorf("the arena holds %d bytes of segments, over the store's %d budget", b, limit)
	}
	if holes, b := c.arena.overhead(), c.arena.bytes.Load(); holes > b/compactAt+2*int64(c.arena.size) {
		t.Errorf("%d bytes of holes in %d", holes, b)
	}
}

// TestArenaUpdateAndSoftPurge: an Update and a soft purge give the entry
// a record of its own with the same body.
func TestArenaUpdateAndSoftPurge(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, Config{MaxSize: 8 << 20})
	putBody(t, c, "k", func() *store.Entry { return entryNow(900, benchHeader()) }, bodyOf(1, 0, 900))
	if err := c.Update(ctx, "k", entryNow(900, benchHeader())); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PurgePrefix(ctx, "k", true); err != nil {
		t.Fatal(err)
	}
	e, b, err := c.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(b)
	b.Close()
	if !e.SoftPurged || !bytes.Equal(got, bodyOf(1, 0, 900)) {
		t.Errorf("soft purged %v, body %.40q...", e.SoftPurged, got)
	}
	if it, _ := c.c.GetIfPresent("k"); !it.inArena() {
		t.Error("the entry left the arena")
	}
	checkArena(t, c)
}

// TestArenaWritersGiveBack: a record reserved for an announced length is
// given back when the write is aborted, refused or shorter.
func TestArenaWritersGiveBack(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, Config{MaxSize: 8 << 20})
	h := benchHeader()
	withLength := func(n int) func() *store.Entry {
		return func() *store.Entry {
			h := h.Clone()
			h.Set("Content-Length", strconv.Itoa(n))
			return entryNow(int64(n), h)
		}
	}
	w, _ := c.Put(ctx, "aborted", entryNow(1000, h))
	w.Write(bodyOf(1, 0, 500))
	w.Abort()
	w, _ = c.Put(ctx, "short", withLength(1000)())
	w.Write(bodyOf(2, 0, 500))
	if err := w.Commit(); err == nil {
		t.Error("a body shorter than its Content-Length was stored")
	}
	w, _ = c.Put(ctx, "long", withLength(1000)())
	w.Write(bodyOf(3, 0, 1500))
	if err := w.Commit(); err == nil {
		t.Error("a body longer than its Content-Length was stored")
	}
	// Without a Content-Length field, the size given to Put is a hint.
	putBody(t, c, "hinted-short", func() *store.Entry { return entryNow(1000, h) }, bodyOf(4, 0, 600))
	putBody(t, c, "hinted-long", func() *store.Entry { return entryNow(1000, h) }, bodyOf(5, 0, 1400))
	if c.arena.live.Load() == 0 {
		t.Fatal("nothing in the arena")
	}
	checkArena(t, c)
	for i, k := range map[int]string{4: "hinted-short", 5: "hinted-long"} {
		got, ok := getBody(t, c, k)
		if !ok || !bytes.Equal(got, bodyOf(i, 0, len(got))) || len(got) != map[int]int{4: 600, 5: 1400}[i] {
			t.Errorf("%s: %d bytes", k, len(got))
		}
	}
}

// TestArenaReadersDuringCompaction: hits read whole, right bodies while
// writers replace entries and compactions move records (run it with
// -race).
func TestArenaReadersDuringCompaction(t *testing.T) {
	c := newCache(t, Config{MaxSize: 2 << 20})
	const keys = 600
	for i := range keys {
		putBody(t, c, "k"+strconv.Itoa(i), func() *store.Entry { return entryNow(800, benchHeader()) }, bodyOf(i, 0, 800))
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := range 2 {
		wg.Go(func() {
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				i := (j*7 + r) % keys
				got, ok := getBody(t, c, "k"+strconv.Itoa(i))
				if !ok {
					continue
				}
				v := bytes.IndexByte(got, '/')
				sep := bytes.IndexByte(got, ';')
				version, err := strconv.Atoi(string(got[v+1 : sep]))
				if err != nil || string(got[:v]) != strconv.Itoa(i) || !bytes.Equal(got, bodyOf(i, version, 800)) {
					t.Errorf("k%d read %.40q...", i, got)
					return
				}
			}
		})
	}
	for version := 1; version <= 8; version++ {
		for i := range keys {
			putBody(t, c, "k"+strconv.Itoa(i), func() *store.Entry { return entryNow(800, benchHeader()) }, bodyOf(i, version, 800))
		}
		compactNow(t, c)
	}
	close(stop)
	wg.Wait()
	checkArena(t, c)
}

func benchHeader() http.Header {
	return http.Header{
		"Content-Type":  {"text/html; charset=utf-8"},
		"Cache-Control": {"public, max-age=3600"},
	}
}
