package memory

import (
	"bytes"
	"context"
	"io"
	"runtime/debug"
	"strconv"
	"sync"
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
	e.Header.Set("X-Fill", strconv.Itoa(int(fill)))
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
// store is reused for another body only once its reader closed it.
func TestRecycledBufferWaitsForReaders(t *testing.T) {
	// Keep the pools from being emptied by a collection mid-test.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	ctx := context.Background()
	c := newCache(t, Config{MaxSize: 64 << 20})
	const size = 100 << 10

	// A reader holds the body of "a" while "a" is replaced over and over:
	// each replaced body goes back to the pool, but never the one read.
	putFilled(t, c, "a", size, 'a')
	_, held, err := c.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	heldBytes := held.(store.BytesBody).Bytes()
	for i := range 50 {
		putFilled(t, c, "a", size, byte('b'+i%20))
	}
	got, err := io.ReadAll(held)
	if err != nil || !bytes.Equal(got, bytes.Repeat([]byte{'a'}, size)) {
		t.Fatalf("the held body changed while the entry was replaced (%v)", err)
	}

	// Closed, it reads as empty, and its buffer is reused by the next
	// large bodies (the pool may drop some of them: a few tries).
	held.Close()
	held.Close() // a second Close releases nothing more
	if n, err := held.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("Read after Close = %d, %v; want 0, EOF", n, err)
	}
	if b := held.(store.BytesBody).Bytes(); len(b) != 0 {
		t.Errorf("Bytes after Close has %d bytes, want none", len(b))
	}
	putFilled(t, c, "a", size, 'z') // releases the last "a" body read before
	reused := false
	for i := range 20 {
		key := "r" + strconv.Itoa(i)
		putFilled(t, c, key, size, 'r')
		_, b, err := c.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if &b.(store.BytesBody).Bytes()[0] == &heldBytes[0] {
			reused = true
		}
		b.Close()
		c.Delete(ctx, key)
	}
	if !reused {
		t.Error("the released buffer was never reused for a new body")
	}
}

// TestRecycledBuffersUnderConcurrentChurn reads bodies while other
// goroutines replace, update, soft-purge, delete and evict entries of a
// small store: every reader must read exactly the body of the key it
// asked for (each key's bodies are filled with a byte of its own),
// whatever happened to the buffer meanwhile. Run with -race.
func TestRecycledBuffersUnderConcurrentChurn(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, Config{MaxSize: 2 << 20}) // entries up to 256 KiB; ~20 fit
	deadline := time.Now().Add(time.Second)
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Go(func() { // writers
			for i := 0; time.Now().Before(deadline); i++ {
				k := (i*3 + g) % 40
				key, fill := "k"+strconv.Itoa(k), byte(1+k)
				switch i % 10 {
				case 8:
					e := entry()
					e.Header.Set("X-Fill", strconv.Itoa(int(fill)))
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
	reads := make([]int, 3)
	for g := range 3 {
		wg.Go(func() { // readers
			buf := make([]byte, 4096)
			for i := 0; time.Now().Before(deadline); i++ {
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
				reads[g]++
			}
		})
	}
	wg.Wait()
	if total := reads[0] + reads[1] + reads[2]; total < 100 {
		t.Fatalf("only %d bodies read: the test checks too little", total)
	}
}
