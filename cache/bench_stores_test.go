package cache_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-edge/edge/cache"
	"github.com/caddy-edge/edge/internal/redistest"
)

// BenchmarkHitStores serves a stored response through the handler, as
// BenchmarkHit does, from each store: memory, redis (a local redis-server)
// and tiered (a memory tier in front of that redis), at three body sizes,
// in one run:
//
//	go test -run '^$' -bench HitStores -count 3 ./cache/
func BenchmarkHitStores(b *testing.B) {
	srv := redistest.Start(b)
	n := 0
	for _, size := range []int{1 << 10, 16 << 10, 256 << 10} {
		body := bytes.Repeat([]byte("a"), size)
		for _, st := range []string{"memory", "redis", "tiered"} {
			b.Run(fmt.Sprintf("%s/%dKiB", st, size>>10), func(b *testing.B) {
				n++
				redis := fmt.Sprintf(`{"module":"redis","address":[%q],"prefix":"bench%d:","timeout":"2s"}`, srv.Addr, n)
				raw := map[string]string{
					"memory": fmt.Sprintf(`{"module":"memory","name":"bench%d"}`, n),
					"redis":  redis,
					"tiered": `{"module":"tiered","back":` + redis + `}`,
				}[st]
				h := &cache.Handler{StoreRaw: json.RawMessage(raw)}
				provisioned(b, h)
				origin := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
					w.Header().Set("Cache-Control", "max-age=3600")
					w.Header().Set("Content-Type", "text/plain")
					_, err := w.Write(body)
					return err
				})
				r := benchRequest(b, "http://example.com/bench?x=1")
				w := &discardWriter{h: make(http.Header)}
				if err := h.ServeHTTP(w, r, origin); err != nil {
					b.Fatal(err)
				}
				miss := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
					b.Fatal("hit went to the origin")
					return nil
				})
				// A few hits first: the memory tier fills on a hit, once
				// the invalidation of the store itself has come back.
				for range 20 {
					h.ServeHTTP(w, r, miss)
					time.Sleep(time.Millisecond)
				}
				b.ReportAllocs()
				b.SetBytes(int64(size))
				for b.Loop() {
					clear(w.h)
					w.n = 0
					if err := h.ServeHTTP(w, r, miss); err != nil {
						b.Fatal(err)
					}
				}
				if w.status != 200 || w.n != int64(size) {
					b.Fatalf("status %d, %d bytes", w.status, w.n)
				}
			})
		}
	}
}
