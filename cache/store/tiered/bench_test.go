package tiered

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"testing"

	"github.com/caddy-edge/edge/cache/store"
	"github.com/caddy-edge/edge/cache/store/memory"
	"github.com/caddy-edge/edge/internal/redistest"
)

// BenchmarkHit measures hits (Get, the whole body read, Close) from many
// goroutines at once, for the memory store, the redis store (a local
// redis-server) and a memory tier in front of that redis store, at three
// body sizes, in one run so that the figures compare:
//
//	go test -run '^$' -bench Hit -benchtime 2s ./cache/store/tiered/
func BenchmarkHit(b *testing.B) {
	srv := redistest.Start(b)
	ctx := context.Background()
	const keys = 64
	for _, size := range []int{1 << 10, 16 << 10, 256 << 10} {
		body := bytes.Repeat([]byte("0123456789abcdef"), size/16)
		mem, err := memory.New(memory.Config{MaxSize: 256 << 20})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(mem.Close)
		rc := newRedis(b, srv.Addr, newPrefix())
		tr := newTiers(b, newRedis(b, srv.Addr, newPrefix()))
		for _, st := range []struct {
			name string
			s    store.Store
		}{{"memory", mem}, {"redis", rc}, {"tiered", tr}} {
			for i := range keys {
				put(b, st.s, "k"+strconv.Itoa(i), body)
			}
			if st.s == tr {
				for i := range keys {
					fill(b, tr, "k"+strconv.Itoa(i), body)
				}
			}
			b.Run(fmt.Sprintf("%s/%dKiB", st.name, size>>10), func(b *testing.B) {
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					buf := make([]byte, 32<<10)
					for i := 0; pb.Next(); i++ {
						_, rb, err := st.s.Get(ctx, "k"+strconv.Itoa(i%keys))
						if err != nil {
							b.Error(err)
							return
						}
						n, err := io.CopyBuffer(io.Discard, rb, buf)
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
