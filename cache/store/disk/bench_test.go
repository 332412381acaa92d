package disk

import (
	"bytes"
	"context"
	"fmt"
	"io"
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
