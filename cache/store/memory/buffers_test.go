package memory

import (
	"bytes"
	"context"
	"io"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache/store"
)

func TestBufClass(t *testing.T) {
	prevIdx, prevCap := -1, 0
	for n := recycleMin; n <= 1<<maxClassShift; n += n/50 + 1 {
		idx, capacity, ok := bufClass(n)
		if !ok {
			t.Fatalf("bufClass(%d) not recycled", n)
		}
		if capacity < n || capacity > n+n/classSteps {
			t.Fatalf("bufClass(%d) capacity %d: want n to n+1/8", n, capacity)
		}
		if idx < prevIdx || (idx == prevIdx) != (capacity == prevCap) || idx >= len(bufPools) {
			t.Fatalf("bufClass(%d) = class %d of %d bytes after class %d of %d", n, idx, capacity, prevIdx, prevCap)
		}
		// A buffer of a class's capacity goes back to that class.
		if back, c2, _ := bufClass(capacity); back != idx || c2 != capacity {
			t.Fatalf("a buffer of %d bytes returns to class %d (%d), taken from class %d", capacity, back, c2, idx)
		}
		prevIdx, prevCap = idx, capacity
	}
	for _, n := range []int{0, 1, recycleMin - 1, 1<<maxClassShift + 1} {
		if _, _, ok := bufClass(n); ok {
			t.Errorf("bufClass(%d) recycled, want left to the allocator", n)
		}
	}
	if idx, c, _ := bufClass(recycleMin + 1); idx != 1 || c != recycleMin+recycleMin/classSteps {
		t.Errorf("bufClass(32 KiB + 1) = class %d, %d bytes; want class 1, 36 KiB", idx, c)
	}
}

// putFilled stores a body of size bytes, all of them fill, and records
// fill in the header so that a reader can check what it got.
func putFilled(t *testing.T, c *Cache, key string, size int, fill byte) {
	t.Helper()
	e := entry()
	e.Size = int64(size)
	e.Header = append(e.Header, "X-Fill", strconv.Itoa(int(fill)))
	w, err := c.Put(context.Background(), key, e)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(bytes.Repeat([]byte{fill}, size))
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestRecycledBufferWaitsForReaders: the buffer of an entry that left the
// store is given back for reuse only once its reader closed it.
func TestRecycledBufferWaitsForReaders(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, Config{MaxSize: 64 << 20})
	const size = 100 << 10

	// A reader holds the body of "a" while "a" is replaced over and over:
	// each replaced body goes back to the pool, but never the one read.
	putFilled(t, c, "a", size, 'a')
	it, _ := c.c.GetIfPresent("a")
	buf := it.buf()
	if buf == nil {
		t.Fatal("a 100 KiB body has no recycled buffer")
	}
	_, held, err := c.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if n := buf.refs.Load(); n != 2 {
		t.Errorf("references with the entry stored and read = %d, want 2", n)
	}
	for i := range 50 {
		putFilled(t, c, "a", size, byte('b'+i%20))
	}
	if n := buf.refs.Load(); n != 1 {
		t.Errorf("references once the entry was replaced, still read = %d, want 1 (the reader's)", n)
	}
	got, err := io.ReadAll(held)
	if err != nil || !bytes.Equal(got, bytes.Repeat([]byte{'a'}, size)) {
		t.Fatalf("the held body changed while the entry was replaced (%v)", err)
	}

	// Closed, it reads as empty and lets the buffer go, once.
	held.Close()
	held.Close()
	if n := buf.refs.Load(); n != 0 {
		t.Errorf("references after the reader closed twice = %d, want 0", n)
	}
	if n, err := held.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("Read after Close = %d, %v; want 0, EOF", n, err)
	}
	if b := held.(store.BytesBody).Bytes(); len(b) != 0 {
		t.Errorf("Bytes after Close has %d bytes, want none", len(b))
	}
	// And a buffer given up can no longer be taken by a reader that found
	// its item late.
	if buf.hold() {
		t.Error("hold succeeded on a buffer already given up")
	}

	// A purge leaves its buffers to the collector: the pools do not fill
	// with what a purge freed.
	putFilled(t, c, "p", size, 'p')
	it, _ = c.c.GetIfPresent("p")
	c.Delete(ctx, "p")
	if n := it.buf().refs.Load(); n != 1 {
		t.Errorf("references after a delete = %d, want 1 (never released)", n)
	}
}

// TestRecycleReusesBuffers: a recycled buffer is what the next body of its
// class gets. sync.Pool may drop an entry (it does so at random under the
// race detector), so a few tries.
func TestRecycleReusesBuffers(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // a collection empties the pools
	const n = 100 << 10
	for range 50 {
		b := newBuffer(n)
		b = append(b, 'x')
		recycle(b)
		if nb := newBuffer(n); cap(nb) == cap(b) && &nb[:1][0] == &b[0] {
			if len(nb) != 0 {
				t.Errorf("a recycled buffer came back with length %d, want 0", len(nb))
			}
			return
		}
	}
	t.Error("a recycled buffer was never handed out again in 50 tries")
}

// TestRecycledBuffersUnderConcurrentChurn reads bodies while other
// goroutines replace, update, soft-purge, delete and evict entries of a
// small store: every reader must read exactly the body of the key it
// asked for (each key's bodies are filled with a byte of its own),
// whatever happened to the buffer meanwhile. Run with -race.
func TestRecycledBuffersUnderConcurrentChurn(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, Config{MaxSize: 2 << 20}) // entries up to 256 KiB; ~20 fit
	// The readers go on for a second and until they read 300 bodies (at
	// most 20 s, for a slow machine under the race detector); the
	// writers until the readers are done.
	const wantReads = 300
	minEnd, maxEnd := time.Now().Add(time.Second), time.Now().Add(20*time.Second)
	var reads atomic.Int64
	var readersDone atomic.Bool
	readOn := func() bool {
		now := time.Now()
		return now.Before(maxEnd) && (now.Before(minEnd) || reads.Load() < wantReads)
	}
	var wg, readers sync.WaitGroup
	for g := range 3 {
		wg.Go(func() { // writers
			for i := 0; !readersDone.Load(); i++ {
				k := (i*3 + g) % 40
				key, fill := "k"+strconv.Itoa(k), byte(1+k)
				switch i % 10 {
				case 8:
					e := entry()
					e.Header = append(e.Header, "X-Fill", strconv.Itoa(int(fill)))
					c.Update(ctx, key, e)
				case 9:
					if i%20 == 9 {
						c.Delete(ctx, key)
					} else {
						c.PurgePrefix(ctx, key, true)
					}
				default:
					size := recycleMin + (i*7919)%(150<<10)
					putFilled(t, c, key, size, fill)
				}
			}
		})
	}
	for range 3 {
		readers.Go(func() {
			buf := make([]byte, 4096)
			for i := 0; readOn(); i++ {
				e, b, err := c.Get(ctx, "k"+strconv.Itoa(i%40))
				if err != nil {
					continue
				}
				fill := 1 + i%40
				if h := e.Header.Get("X-Fill"); h != strconv.Itoa(fill) {
					t.Errorf("entry of key %d has X-Fill %s", i%40, h)
				}
				size := b.Size()
				var n int64
				for {
					k, err := b.Read(buf)
					for _, x := range buf[:k] {
						if x != byte(fill) {
							t.Errorf("read byte %q at %d of an entry filled with %q", x, n, byte(fill))
							b.Close()
							return
						}
						n++
					}
					if i%5 == 0 {
						time.Sleep(50 * time.Microsecond) // a slow client
					}
					if err != nil {
						break
					}
				}
				if n != size {
					t.Errorf("read %d bytes of a %d-byte body", n, size)
				}
				b.Close()
				reads.Add(1)
			}
		})
	}
	readers.Wait()
	readersDone.Store(true)
	wg.Wait()
	if n := reads.Load(); n < wantReads {
		t.Fatalf("only %d bodies read in 20s: the test checks too little", n)
	}
}
