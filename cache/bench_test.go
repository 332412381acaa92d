package cache_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-edge/edge/cache"
)

// discardWriter is a ResponseWriter that keeps one header map and drops
// the body, so that benchmarks measure the handler, not a recorder.
type discardWriter struct {
	h      http.Header
	status int
	n      int64
}

func (d *discardWriter) Header() http.Header { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) {
	d.n += int64(len(p))
	return len(p), nil
}
func (d *discardWriter) WriteHeader(s int) { d.status = s }

// SetWriteDeadline accepts the deadline a leading fetch sets on its
// client's writes, as Caddy's HTTP/1 and HTTP/2 writers do.
func (d *discardWriter) SetWriteDeadline(time.Time) error { return nil }

// benchRequest returns a GET request with the context Caddy's server gives
// every request (replacer, vars, extra log fields), for a server without
// access logs, as a Caddyfile without a log directive makes.
func benchRequest(b testing.TB, target string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	repl := caddy.NewReplacer()
	return caddyhttp.PrepareRequest(r, repl, nil, &caddyhttp.Server{})
}

// setPath changes the path of r, prepared by benchRequest, as a new
// request for path would have it: the original request that Caddy keeps
// in the context too, or the cache would take r for a rewritten request.
func setPath(r *http.Request, path string) {
	r.URL.Path = path
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok {
		orig.URL.Path = path // a pointer to the context's copy of the URL
	}
}

// provisioned provisions h as Caddy does for a server without access
// logs, the server benchRequest's requests come from.
func provisioned(b testing.TB, h *cache.Handler) {
	srv := context.WithValue(context.Background(), caddyhttp.ServerCtxKey, &caddyhttp.Server{})
	ctx, cancel := caddy.NewContext(caddy.Context{Context: srv})
	b.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	cache.Quiet(h)
	b.Cleanup(func() { h.Cleanup() })
}

var body1K = bytes.Repeat([]byte("a"), 1024)

// BenchmarkHit serves a stored 1 KiB response: key, store Get, freshness,
// header copy, Age, Cache-Status, one Write.
func BenchmarkHit(b *testing.B) {
	h := new(cache.Handler)
	provisioned(b, h)
	origin := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Type", "text/plain")
		_, err := w.Write(body1K)
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
	// Each request has a replacer of its own, as in Caddy, so that what
	// the hit sets in it is counted as Caddy pays for it. They are made in
	// batches with the timer stopped, so that their own allocations are not.
	reqs := make([]*http.Request, 1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(body1K)))
	i := 0
	for b.Loop() {
		if i%len(reqs) == 0 {
			b.StopTimer()
			for j := range reqs {
				reqs[j] = benchRequest(b, "http://example.com/bench?x=1")
			}
			b.StartTimer()
		}
		r := reqs[i%len(reqs)]
		i++
		clear(w.h)
		if err := h.ServeHTTP(w, r, miss); err != nil {
			b.Fatal(err)
		}
	}
	if w.status != 200 || w.h.Get("Age") == "" {
		b.Fatalf("status %d, header %v", w.status, w.h)
	}
}

// BenchmarkRespond is Caddy's own respond (StaticResponse) serving the same
// 1 KiB body, the yardstick of BenchmarkHit.
func BenchmarkRespond(b *testing.B) {
	sr := &caddyhttp.StaticResponse{
		StatusCode: caddyhttp.WeakString("200"),
		Body:       string(body1K),
		Headers:    http.Header{"Content-Type": {"text/plain"}},
	}
	r := benchRequest(b, "http://example.com/bench?x=1")
	w := &discardWriter{h: make(http.Header)}
	b.ReportAllocs()
	b.SetBytes(int64(len(body1K)))
	for b.Loop() {
		clear(w.h)
		if err := sr.ServeHTTP(w, r, nil); err != nil {
			b.Fatal(err)
		}
	}
	if w.status != 200 {
		b.Fatalf("status %d", w.status)
	}
}

// BenchmarkMissStreaming streams a 64 MiB body through a miss, in 32 KiB
// writes, as reverse_proxy does. With a Content-Length over
// max_object_size nothing is buffered; without one the store buffers up to
// max_object_size (32 MiB) and then gives up. B/op shows which.
func BenchmarkMissStreaming(b *testing.B) {
	const size = 64 << 20
	chunk := bytes.Repeat([]byte("z"), 32<<10)
	for _, withLength := range []bool{true, false} {
		b.Run(fmt.Sprintf("content-length=%v", withLength), func(b *testing.B) {
			h := new(cache.Handler)
			provisioned(b, h)
			origin := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				w.Header().Set("Cache-Control", "max-age=3600")
				if withLength {
					w.Header().Set("Content-Length", strconv.Itoa(size))
				}
				for n := 0; n < size; n += len(chunk) {
					if _, err := w.Write(chunk); err != nil {
						return err
					}
				}
				return nil
			})
			w := &discardWriter{h: make(http.Header)}
			b.ReportAllocs()
			b.SetBytes(size)
			i := 0
			for b.Loop() {
				i++
				clear(w.h)
				w.n = 0
				r := benchRequest(b, fmt.Sprintf("http://example.com/big/%d", i))
				if err := h.ServeHTTP(w, r, origin); err != nil {
					b.Fatal(err)
				}
				if w.n != size {
					b.Fatalf("client got %d bytes", w.n)
				}
			}
		})
	}
}

// BenchmarkMiss is a miss that is stored (every URL new), against the
// same origin called without the cache: the cache's own cost of a miss,
// per body size, written in 32 KiB pieces as reverse_proxy does. The
// store (256 MiB) fills and then evicts, as a busy store does; at 256 KiB
// it then reuses the evicted entries' buffers. "passed" is a miss whose
// response says no-store: the cache's own cost of a pass-through.
// "hit-for-miss" asks for one such URL again and again, as the load
// harness's pass scenario does: the handler remembers that the URL is
// not stored and sends each request to the origin alone.
func BenchmarkMiss(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10, 256 << 10} {
		body := bytes.Repeat([]byte("m"), size)
		origin := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			h := w.Header()
			cc := "public, max-age=3600"
			if r.URL.Query().Has("no-store") {
				cc = "no-store"
			}
			h.Set("Cache-Control", cc)
			h.Set("Content-Type", "text/plain; charset=utf-8")
			h.Set("Content-Length", strconv.Itoa(size))
			h.Set("Date", "Tue, 01 Dec 2026 02:00:00 GMT")
			h.Set("Etag", `"abcdef0123"`)
			for p := body; len(p) > 0; {
				n := min(len(p), 32<<10)
				if _, err := w.Write(p[:n]); err != nil {
					return err
				}
				p = p[n:]
			}
			return nil
		})
		for _, mode := range []string{"origin-only", "stored", "passed", "hit-for-miss"} {
			cached, query := mode != "origin-only", ""
			if mode == "passed" || mode == "hit-for-miss" {
				query = "?no-store"
			}
			b.Run(fmt.Sprintf("size=%d/%s", size, mode), func(b *testing.B) {
				h := &cache.Handler{}
				if cached {
					h.StoreRaw = []byte(`{"module":"memory","name":"bench-miss","max_size":268435456}`)
				}
				provisioned(b, h)
				w := &discardWriter{h: make(http.Header)}
				b.ReportAllocs()
				b.SetBytes(int64(size))
				i := 0
				for b.Loop() {
					i++
					clear(w.h)
					w.n = 0
					path := "/miss/" + strconv.Itoa(i)
					if mode == "hit-for-miss" {
						path = "/miss/again"
					}
					r := benchRequest(b, "http://example.com"+path+query)
					var err error
					if cached {
						err = h.ServeHTTP(w, r, origin)
					} else {
						err = origin.ServeHTTP(w, r)
					}
					if err != nil {
						b.Fatal(err)
					}
					if w.n != int64(size) {
						b.Fatalf("client got %d bytes", w.n)
					}
				}
				if cached && w.h.Get("Cache-Status") == "" {
					b.Fatalf("no Cache-Status: %v", w.h)
				}
			})
		}
	}
}
