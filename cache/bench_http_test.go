package cache_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-edge/edge/internal/caddytest"
)

// BenchmarkHTTP compares, through a real Caddy over loopback with 64
// concurrent clients, a cache hit of a 1 KiB response with Caddy's own
// respond serving the same body: the ratio of their ns/op is the hit
// throughput target (hit >= 0.9x respond).
func BenchmarkHTTP(b *testing.B) {
	if testing.Short() {
		b.Skip("loopback load benchmark")
	}
	body := strings.Repeat("a", 1024)
	o := httptestServer(b, body)
	s := caddytest.Start(b, `
http://localhost:{HTTP_PORT} {
	handle /cached {
		http_cache
		reverse_proxy `+o+`
	}
	handle /respond {
		respond "`+body+`"
	}
}
`)
	tr := &http.Transport{MaxIdleConnsPerHost: 128, MaxConnsPerHost: 128}
	b.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}
	for _, path := range []string{"/respond", "/cached"} {
		b.Run(strings.TrimPrefix(path, "/"), func(b *testing.B) {
			url := s.URL(path)
			fetch(b, c, url) // warm: the miss that stores
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			b.SetParallelism(32) // 64 clients on 2 cores
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					fetch(b, c, url)
				}
			})
		})
	}
}

func fetch(b *testing.B, c *http.Client, url string) {
	resp, err := c.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || n != 1024 {
		b.Fatalf("%s: %d, %d bytes", url, resp.StatusCode, n)
	}
}

func httptestServer(b *testing.B, body string) string {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		io.WriteString(w, body)
	})}
	l := listenLoopback(b)
	go srv.Serve(l)
	b.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

func listenLoopback(b *testing.B) net.Listener {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	return l
}
