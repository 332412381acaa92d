package cache_test

import (
	"net/http"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-edge/edge/cache"
)

// BenchmarkEntryCost stores b.N... no: it stores a fixed number of 1 KiB
// responses through the handler (the header a Go origin behind
// reverse_proxy sends) and reports what one entry really costs on the Go
// heap next to what the store counts against its budget. The two should
// agree: the budget a user sets is the memory the entries take.
func BenchmarkEntryCost(b *testing.B) {
	const n = 20000
	for b.Loop() {
		h := new(cache.Handler)
		provisioned(b, h)
		origin := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			hdr := w.Header()
			hdr.Set("Cache-Control", "public, max-age=3600")
			hdr.Set("Content-Type", "text/plain; charset=utf-8")
			hdr.Set("Content-Length", "1024")
			hdr.Set("Date", time.Now().UTC().Format(http.TimeFormat))
			_, err := w.Write(body1K)
			return err
		})
		w := &discardWriter{h: make(http.Header)}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range n {
			clear(w.h)
			r := benchRequest(b, "http://example.com/entry/"+strconv.Itoa(i)+"?q=1")
			if err := h.ServeHTTP(w, r, origin); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		st := h.Store.Stats()
		if st.Entries != n {
			b.Fatalf("stored %d entries, want %d", st.Entries, n)
		}
		heap := float64(after.HeapAlloc-before.HeapAlloc) / n
		b.ReportMetric(heap, "heap-B/entry")
		b.ReportMetric(float64(st.Bytes)/n, "counted-B/entry")
		runtime.KeepAlive(h)
	}
}
