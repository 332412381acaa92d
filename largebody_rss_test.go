package edge_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-edge/edge/internal/caddytest"
)

// largeBodyRSS is BenchmarkDiskLargeBodyRSS and BenchmarkRedisLargeBodyRSS
// with the store given as a Caddyfile block (store name and options): it
// sends a 1 GiB response through a real Caddy with that store, as a miss
// and then as a hit, and reports how much the process's RSS grew above
// what it was before (rss-growth-MiB, the largest of samples every 20 ms).
func largeBodyRSS(b *testing.B, storeBlock string) {
	b.Helper()
	const size = 1 << 30
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 2048) // 32 KiB
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	b.Cleanup(origin.Close)
	s := caddytest.Start(b, `
http://localhost:{HTTP_PORT} {
	http_cache {
		max_object_size 2GiB
		`+storeBlock+`
	}
	reverse_proxy `+strings.TrimPrefix(origin.URL, "http://")+`
}
`)
	runtime.GC()
	base := rssBytes(b)
	var peak atomic.Int64
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if r := rssBytes(b); r > peak.Load() {
					peak.Store(r)
				}
			}
		}
	}()
	for b.Loop() {
		for _, want := range []string{"stored", "hit"} {
			resp, err := s.Client.Get(s.URL("/large"))
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || n != size {
				b.Fatalf("read %d bytes, %v", n, err)
			}
			if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, want) {
				b.Fatalf("Cache-Status %q, want %s", cs, want)
			}
		}
	}
	close(done)
	b.ReportMetric(float64(peak.Load()-base)/(1<<20), "rss-growth-MiB")
}

// rssBytes returns the process's resident set size, from /proc.
func rssBytes(b *testing.B) int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status")
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	b.Skip("no VmRSS")
	return 0
}
