package disk

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache/store"
	"github.com/caddy-edge/edge/cache/store/memory"
)

// BenchmarkHit measures store hits (Get, the whole body copied to
// io.Discard, Close) from many goroutines, for the memory store and the
// disk store, at 1 KiB, 16 KiB and 256 KiB, in one run so that the figures
// compare. The disk files are in the page cache, as hot entries are.
//
//	go test -run '^$' -bench Hit -benchtime 2s ./cache/store/disk/
func BenchmarkHit(b *testing.B) {
	ctx := context.Background()
	const keys = 64
	for _, size := range []int{1 << 10, 16 << 10, 256 << 10} {
		body := bytes.Repeat([]byte("0123456789abcdef"), size/16)
		mem, err := memory.New(memory.Config{MaxSize: 256 << 20})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(mem.Close)
		dc := open(b, Config{MaxSize: 1 << 30, NoSync: true})
		for _, st := range []struct {
			name string
			s    store.Store
		}{{"memory", mem}, {"disk", dc}} {
			for i := range keys {
				w, err := st.s.Put(ctx, "k"+strconv.Itoa(i), entry(time.Now()))
				if err != nil {
					b.Fatal(err)
				}
				w.Write(body)
				if err := w.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			b.Run(fmt.Sprintf("%s/%dKiB", st.name, size>>10), func(b *testing.B) {
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for i := 0; pb.Next(); i++ {
						_, rb, err := st.s.Get(ctx, "k"+strconv.Itoa(i%keys))
						if err != nil {
							b.Error(err)
							return
						}
						n, err := io.Copy(io.Discard, rb)
						rb.Close()
						if err != nil || n != int64(size) {
							b.Errorf("read %d bytes, %v", n, err)
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkIndexHeap reports the heap the in-memory index takes for each
// entry of a disk store, beyond its key: what a store of many small files
// costs in memory, as nginx's keys_zone does.
//
//	go test -run '^$' -bench IndexHeap -benchtime 1x ./cache/store/disk/
func BenchmarkIndexHeap(b *testing.B) {
	const n = 20000
	ctx := context.Background()
	body := bytes.Repeat([]byte("x"), 1024)
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		dc := open(b, Config{MaxSize: 1 << 30, NoSync: true})
		keys := 0
		for i := range n {
			key := "example.com/entry/" + strconv.Itoa(i)
			keys += len(key)
			w, err := dc.Put(ctx, key, entry(time.Now()))
			if err != nil {
				b.Fatal(err)
			}
			w.Write(body)
			if err := w.Commit(); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(dc)
		b.ReportMetric(float64(int64(after.HeapAlloc-before.HeapAlloc)-int64(keys))/n, "B/entry")
	}
}
