package edge_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-edge/edge/internal/caddytest"
)

// BenchmarkDiskLargeBodyRSS sends a 1 GiB response through a real Caddy
// with the disk store: once as a miss (streamed to the client and into the
// entry file) and once as a hit (sent from the file), and reports how much
// the process's RSS grew above what it was before (rss-growth-MiB, the
// largest of samples every 20 ms; the page cache is not in the RSS):
//
//	go test -run '^$' -bench DiskLargeBodyRSS -benchtime 1x .
func BenchmarkDiskLargeBodyRSS(b *testing.B) {
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
		store disk {
			path `+b.TempDir()+`
			max_size 16GiB
		}
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
