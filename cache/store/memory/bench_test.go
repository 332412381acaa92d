package memory

import (
	"context"
	"net/http"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache/store"
)

// BenchmarkGetHit measures a hit on a 1 KiB entry: Get, the body's Bytes
// (what the handler writes) and Close.
func BenchmarkGetHit(b *testing.B) {
	ctx := context.Background()
	c := newCache(b, Config{})
	body := make([]byte, 1<<10)
	w, _ := c.Put(ctx, "https://example.com/page", benchEntry())
	w.Write(body)
	if err := w.Commit(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		_, rb, err := c.Get(ctx, "https://example.com/page")
		if err != nil {
			b.Fatal(err)
		}
		if len(rb.(store.BytesBody).Bytes()) != len(body) {
			b.Fatal("short body")
		}
		rb.Close()
	}
}

// BenchmarkPut measures storing an entry (Put, Write in 32 KiB chunks,
// Commit), over a set of keys that fits the budget, with the size hint a
// Content-Length gives and without one.
func BenchmarkPut(b *testing.B) {
	for _, bc := range []struct {
		size int
		hint bool
	}{{1 << 10, true}, {1 << 20, true}, {1 << 20, false}} {
		name := strconv.Itoa(bc.size>>10) + "KiB"
		if !bc.hint {
			name += "-nohint"
		}
		size := bc.size
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			c := newCache(b, Config{})
			body := make([]byte, size)
			keys := make([]string, 64)
			for i := range keys {
				keys[i] = "https://example.com/" + strconv.Itoa(i)
			}
			b.ReportAllocs()
			b.SetBytes(int64(size))
			i := 0
			for b.Loop() {
				e := benchEntry()
				if bc.hint {
					e.Size = int64(size)
				}
				w, err := c.Put(ctx, keys[i%len(keys)], e)
				if err != nil {
					b.Fatal(err)
				}
				for rest := body; len(rest) > 0; {
					n := min(len(rest), 32<<10)
					w.Write(rest[:n])
					rest = rest[n:]
				}
				if err := w.Commit(); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkParallelGet measures hits on 1 KiB entries from every CPU at
// once, spread over 1024 keys.
func BenchmarkParallelGet(b *testing.B) {
	ctx := context.Background()
	c := newCache(b, Config{})
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "https://example.com/" + strconv.Itoa(i)
		w, _ := c.Put(ctx, keys[i], benchEntry())
		w.Write(make([]byte, 1<<10))
		if err := w.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.SetBytes(1 << 10)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			_, rb, err := c.Get(ctx, keys[i&1023])
			if err != nil {
				b.Fatal(err)
			}
			rb.Close()
			i++
		}
	})
}

// benchEntry is a typical stored response: a few header fields and an
// Expires an hour ahead.
func benchEntry() *store.Entry {
	return entryNow(-1, http.Header{
		"Content-Type":  {"text/html; charset=utf-8"},
		"Cache-Control": {"public, max-age=3600"},
		"Etag":          {`"5f2a-17c3b"`},
		"Last-Modified": {"Tue, 01 Sep 2026 10:00:00 GMT"},
	})
}

// entryNow is a 200 response of size bytes (-1: unknown) with header h,
// received now and expiring in an hour.
func entryNow(size int64, h http.Header) *store.Entry {
	now := time.Now()
	return &store.Entry{
		Status:       200,
		Header:       store.FieldsOf(h),
		RequestTime:  now,
		ResponseTime: now,
		Expires:      now.Add(time.Hour),
		Size:         size,
	}
}

// BenchmarkSweep measures one sweep of a store of a million 64-byte
// entries, none of them expired: what the store spends every
// sweepInterval to find the expired ones.
func BenchmarkSweep(b *testing.B) {
	ctx := context.Background()
	c := newCache(b, Config{MaxSize: 8 << 30})
	body := make([]byte, 64)
	for i := range 1_000_000 {
		w, _ := c.Put(ctx, "https://example.com/"+strconv.Itoa(i), benchEntry())
		w.Write(body)
		if err := w.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	c.CleanUp()
	if n := c.Stats().Entries; n != 1_000_000 {
		b.Fatalf("%d entries stored", n)
	}
	for b.Loop() {
		c.sweep()
	}
}

// BenchmarkCollectFullStore measures one collection (runtime.GC) with a
// store of 186,000 entries of 1 KiB in the heap, as a full 256 MiB store
// holds, against the same bodies held as plain byte slices: each cycle
// marks every entry, which is what a miss-heavy site with a full store
// pays for at every cycle (see memlimit.go and BENCHMARKS.md). It reports
// the collection's time per entry.
func BenchmarkCollectFullStore(b *testing.B) {
	const n = 186_000
	for _, layout := range []string{"store", "bodies-only"} {
		b.Run(layout, func(b *testing.B) {
			var c *Cache
			var bodies [][]byte
			if layout == "store" {
				ctx := context.Background()
				c = newCache(b, Config{MaxSize: 1 << 30})
				body := make([]byte, 1<<10)
				for i := range n {
					w, _ := c.Put(ctx, "https://example.com/page/"+strconv.Itoa(i), benchEntry())
					w.Write(body)
					if err := w.Commit(); err != nil {
						b.Fatal(err)
					}
				}
				c.CleanUp()
				if got := c.Stats().Entries; got != n {
					b.Fatalf("%d entries stored", got)
				}
			} else {
				bodies = make([][]byte, n)
				for i := range bodies {
					bodies[i] = make([]byte, 1<<10)
				}
			}
			runtime.GC()
			for b.Loop() {
				runtime.GC()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/entry")
			runtime.KeepAlive(c)
			runtime.KeepAlive(bodies)
		})
	}
}

// BenchmarkCompact measures one compaction of a full 256 MiB store of 1 KiB
// entries, 186,000 of them, from which every eighth entry left: holes
// spread evenly over every segment, the most a compaction copies for what
// it frees. It reports the time a pass takes and the bytes it copied.
func BenchmarkCompact(b *testing.B) {
	ctx := context.Background()
	const n = 186_000
	c := newCache(b, Config{MaxSize: 256 << 20})
	body := make([]byte, 1<<10)
	fill := func(from int) {
		for i := from; i < n; i++ {
			w, _ := c.Put(ctx, "https://example.com/page/"+strconv.Itoa(i), benchEntry())
			w.Write(body)
			if err := w.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	}
	fill(0)
	moved := c.arena.moved.Load()
	for b.Loop() {
		b.StopTimer()
		for i := 0; i < n; i += 8 {
			c.Delete(ctx, "https://example.com/page/"+strconv.Itoa(i))
		}
		settle(b, c)
		b.StartTimer()
		compactNow(b, c)
		b.StopTimer()
		for i := 0; i < n; i += 8 {
			w, _ := c.Put(ctx, "https://example.com/page/"+strconv.Itoa(i), benchEntry())
			w.Write(body)
			w.Commit()
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(c.arena.moved.Load()-moved)/float64(b.N)/(1<<20), "moved-MiB/op")
	b.ReportMetric(float64(c.arena.bytes.Load())/(1<<20), "arena-MiB")
}

// BenchmarkPurgeGroup is what the invalidation after an unsafe request
// (a POST answered 2xx) costs the memory store for its target: a purge of
// the target's variants (PurgePrefix of its key and a NUL) in a store of
// 200,000 entries, against a purge of a prefix that is not a group's,
// which walks every key.
func BenchmarkPurgeGroup(b *testing.B) {
	ctx := context.Background()
	c := newCache(b, Config{MaxSize: 512 << 20})
	body := make([]byte, 512)
	for i := range 200_000 {
		w, _ := c.Put(ctx, "https://example.com/static/"+strconv.Itoa(i)+".css", benchEntry())
		w.Write(body)
		if err := w.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	c.CleanUp()
	for _, bc := range []struct{ name, prefix string }{
		{"group", "https://example.com/api/login\x00"},
		{"walk", "https://example.com/api/login"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.PurgePrefix(ctx, bc.prefix, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
