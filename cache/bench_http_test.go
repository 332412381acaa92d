package cache_test

import (
	"io"
	"net"
	"net/http"
	"strconv"
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

// BenchmarkConditionalMissBody measures, through a real Caddy over
// loopback, a miss of a new 4 MiB object, stored, for a plain GET and for
// a GET whose If-None-Match the response does not match: the latter's
// fetch runs aside (aside.go), each of its writes to the client carried
// out by the client's goroutine. The ratio of their ns/op is that cost.
func BenchmarkConditionalMissBody(b *testing.B) {
	if testing.Short() {
		b.Skip("loopback load benchmark")
	}
	body := strings.Repeat("b", 4<<20)
	o := httptestServer(b, body)
	s := caddytest.Start(b, `
http://localhost:{HTTP_PORT} {
	http_cache {
		store memory {
			max_size 64MiB
		}
	}
	reverse_proxy `+o+`
}
`)
	tr := &http.Transport{}
	b.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}
	i := 0 // every request a new key
	for _, inm := range []string{"", `"other"`} {
		b.Run("If-None-Match="+inm, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				i++
				req, _ := http.NewRequest(http.MethodGet, s.URL("/o/"+strconv.Itoa(i)), nil)
				if inm != "" {
					req.Header.Set("If-None-Match", inm)
				}
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || n != int64(len(body)) || !strings.Contains(resp.Header.Get("Cache-Status"), "stored") {
					b.Fatalf("%d, %d bytes, %q", resp.StatusCode, n, resp.Header.Get("Cache-Status"))
				}
			}
		})
	}
}
