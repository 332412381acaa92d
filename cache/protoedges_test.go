package cache_test

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache"
	"github.com/caddy-edge/edge/internal/caddytest"
)

// startEncoded runs http_cache (with options) in front of Caddy's encode
// (gzip) and reverse_proxy to o, in the directive order the plugin
// registers: http_cache outside encode, so it stores encoded bodies.
func startEncoded(t *testing.T, o *origin, options string) *caddytest.Server {
	t.Helper()
	cfg := strings.Replace(siteConfig(o, options), "\treverse_proxy", "\tencode gzip\n\treverse_proxy", 1)
	return caddytest.Start(t, cfg)
}

// With Caddy's encode after http_cache (the plugin's directive order),
// the stored response is the encoded one, whose strong ETag encode
// suffixes with "-gzip"; encode's 304 to the cache's revalidation carries
// the origin's ETag. The revalidation freshens the stored response (one
// 304 from the origin), and the stored ETag keeps its suffix, so that a
// client's If-None-Match of the encoded ETag still matches.
func TestEncodeRevalidationFreshensTheEncodedResponse(t *testing.T) {
	big := strings.Repeat("compressible text ", 100)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Type", "text/plain")
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, big)
	})
	s := startEncoded(t, o, "")
	gz := func(what string, r result) {
		t.Helper()
		if ce := r.header.Get("Content-Encoding"); ce != "gzip" {
			t.Fatalf("%s: Content-Encoding %q, want gzip", what, ce)
		}
		zr, err := gzip.NewReader(strings.NewReader(r.body))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		b, err := io.ReadAll(zr)
		if err != nil || string(b) != big {
			t.Errorf("%s: decoded body %d bytes (%v), want the origin's %d", what, len(b), err, len(big))
		}
		if et := r.header.Get("Etag"); et != `"v1-gzip"` {
			t.Errorf(`%s: ETag %q, want "v1-gzip"`, what, et)
		}
	}
	r := get(t, s, "/e", "Accept-Encoding", "gzip")
	expect(t, "miss", r, 200, "*", "miss", "stored")
	gz("miss", r)
	for i := range 2 {
		r = get(t, s, "/e", "Accept-Encoding", "gzip")
		expect(t, "revalidation", r, 200, "*", "revalidated", "fwd-status=304")
		gz("revalidation", r)
		if n := o.n.Load(); n != int64(2+i) {
			t.Fatalf("origin got %d requests after %d revalidations, want %d", n, i+1, 2+i)
		}
	}
	r = get(t, s, "/e", "Accept-Encoding", "gzip", "If-None-Match", `"v1-gzip"`)
	expect(t, "client's conditional", r, 304, "", "revalidated", "fwd-status=304")
}

// RFC 9110 §14.2: a Range of a unit the server does not know is ignored,
// and so is a Range on any method but GET. A hit answers both with the
// whole stored 200 (for HEAD: its header and whole Content-Length), as
// the origin that ignores Range did on the miss, never with 206 or 416.
func TestRangeHitOnlyForGETAndBytes(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "0123456789")
	})
	s := startCache(t, o, "")
	expect(t, "fill", get(t, s, "/r"), 200, "0123456789", "miss", "stored")
	expect(t, "bytes range", get(t, s, "/r", "Range", "bytes=1-2"), 206, "12", "hit", "hit")
	expect(t, "unknown unit", get(t, s, "/r", "Range", "items=0-1"), 200, "0123456789", "hit", "hit")
	for _, rg := range []string{"bytes=1-2", "bytes=100-", "items=0-1"} {
		r := do(t, s, http.MethodHead, "/r", "Range", rg)
		expect(t, "HEAD with Range "+rg, r, 200, "", "hit", "hit")
		if cl, cr := r.header.Get("Content-Length"), r.header.Get("Content-Range"); cl != "10" || cr != "" {
			t.Errorf("HEAD with Range %s: Content-Length %q, Content-Range %q, want 10 and none", rg, cl, cr)
		}
	}
	if n := o.n.Load(); n != 1 {
		t.Errorf("origin got %d requests, want 1", n)
	}
}

// A WebSocket handshake (an Upgrade request) passes through the cache
// untouched, the tunnel works both ways, and a plain GET of the same URL
// is still stored and served.
func TestWebSocketPassesThrough(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			w.Header().Set("Cache-Control", "max-age=60")
			io.WriteString(w, "plain")
			return
		}
		w.Header().Set("Upgrade", "websocket")
		w.Header().Set("Connection", "Upgrade")
		w.WriteHeader(http.StatusSwitchingProtocols)
		c, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer c.Close()
		rw.Flush()
		line, _ := rw.ReadString('\n')
		rw.WriteString("echo " + line)
		rw.Flush()
	})
	s := startCache(t, o, "")
	expect(t, "fill", get(t, s, "/ws"), 200, "plain", "miss", "stored")
	c, err := net.Dial("tcp", strings.TrimPrefix(s.URL(""), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "handshake", result{status: resp.StatusCode, header: resp.Header}, 101, "", "bypass", "fwd=bypass")
	fmt.Fprintf(c, "hello\n")
	if line, err := br.ReadString('\n'); line != "echo hello\n" {
		t.Errorf("through the tunnel: %q, %v", line, err)
	}
	expect(t, "then a hit", get(t, s, "/ws"), 200, "plain", "hit", "hit")
}

// Over HTTP/2 (h2c): HEAD hits carry the GET's Content-Length, a miss's
// trailers reach its client, and a GET with a body of unknown length
// (no END_STREAM on its HEADERS) is passed on and not stored.
func TestH2CThroughTheCache(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if r.URL.Path == "/trailer" {
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "with trailer")
			w.Header().Set("X-Sum", "abc")
			return
		}
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, "0123456789"+string(b))
	})
	cfg := "{\n\tadmin {ADMIN_ADDR}\n\thttp_port {HTTP_PORT}\n\tauto_https off\n\tskip_install_trust\n\tpersist_config off\n\tservers {\n\t\tprotocols h1 h2c\n\t}\n}\n" + siteConfig(o, "")
	s := caddytest.Start(t, cfg)
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	s.Client.Transport = &http.Transport{Protocols: &p}

	resp, err := s.Client.Get(s.URL("/trailer"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || string(b) != "with trailer" || resp.Trailer.Get("X-Sum") != "abc" {
		t.Errorf("miss over h2: %s %q, trailer %v", resp.Proto, b, resp.Trailer)
	}
	r := do(t, s, http.MethodHead, "/trailer")
	expect(t, "HEAD hit", r, 200, "", "hit", "hit")
	if cl := r.header.Get("Content-Length"); cl != "12" {
		t.Errorf("HEAD hit: Content-Length %q, want 12", cl)
	}

	pr, pw := io.Pipe()
	go func() { pw.Write([]byte("xyz")); pw.Close() }()
	req, _ := http.NewRequest(http.MethodGet, s.URL("/b"), pr)
	resp, err = s.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	expect(t, "GET with a body", result{status: resp.StatusCode, header: resp.Header, body: string(b)}, 200, "0123456789xyz", "uncacheable", "detail=request-body")
	expect(t, "GET after it", get(t, s, "/b"), 200, "0123456789", "miss", "stored")
}

// A client's conditional that the response of a miss matches is answered
// with 304 as soon as the origin's header arrives, not once its body has
// (the cache strips the conditional to get the body it stores). When the
// response is not stored either (private, too large), nobody needs the
// body: the cache stops the origin's transfer instead of downloading the
// whole body for nothing.
func TestConditionalMissAnsweredAtOnce(t *testing.T) {
	const chunk = 64 << 10
	var sent atomic.Int64 // bytes of /private the origin could send
	release := map[string]chan struct{}{"/stored": make(chan struct{}), "/private": make(chan struct{})}
	done := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"big"`)
		w.Header().Set("Content-Type", "application/octet-stream")
		n := 64
		if r.URL.Path == "/private" {
			w.Header().Set("Cache-Control", "private, max-age=60")
			n = 1024 // 64 MiB
			defer close(done)
		} else {
			w.Header().Set("Cache-Control", "max-age=60")
		}
		w.Write(make([]byte, chunk))
		w.(http.Flusher).Flush()
		select {
		case <-release[r.URL.Path]:
		case <-time.After(10 * time.Second):
		}
		for range n - 1 {
			if _, err := w.Write(make([]byte, chunk)); err != nil {
				return
			}
			if r.URL.Path == "/private" {
				sent.Add(chunk)
			}
		}
	})
	s := startCache(t, o, "")
	for _, tt := range []struct{ path, result string }{{"/stored", "miss"}, {"/private", "uncacheable"}} {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL(tt.path), nil)
		req.Header.Set("If-None-Match", `"big"`)
		resp, err := s.Client.Do(req)
		if err != nil {
			t.Fatalf("%s: the 304 waited for the origin's body: %v", tt.path, err)
		}
		resp.Body.Close()
		cancel()
		close(release[tt.path])
		expect(t, tt.path, result{status: resp.StatusCode, header: resp.Header}, 304, "", tt.result)
	}
	<-done
	if n := sent.Load(); n > 32<<20 {
		t.Errorf("the origin sent %d MiB of /private after the client had its 304", n>>20)
	}
	waitFor(t, "the stored body", func() bool { return cache.Flights() == 0 })
	r := get(t, s, "/stored")
	expect(t, "then a hit", r, 200, "*", "hit", "hit")
	if len(r.body) != 64*chunk {
		t.Errorf("stored body of %d bytes, want %d", len(r.body), 64*chunk)
	}
}

// A HEAD miss that waits for a GET of its key whose origin answered but
// whose body takes longer than collapse_timeout to arrive is answered with
// the GET's header (here chunked: no Content-Length) when it can follow
// it; when it cannot (here the response is not fresh enough for its
// min-fresh), it goes to the origin as HEAD, as a GET waiter does: the
// origin is not hanging, and a 504 would tell the client the resource is
// unreachable.
func TestHEADWaitingOnAStreamingGETGoesToTheOrigin(t *testing.T) {
	release := make(chan struct{})
	o := newOrigin(t, slowSecondPart(release))
	s := startCache(t, o, "collapse_timeout 200ms")
	_, br := leaderPastFirstPart(t, s)
	followed := do(t, s, http.MethodHead, "/big")
	expect(t, "HEAD following", followed, 200, "", "collapsed", "fwd=uri-miss; collapsed")
	if cl, ok := followed.header["Content-Length"]; ok {
		t.Errorf("HEAD following a chunked GET: Content-Length %q, want none", cl)
	}
	h := do(t, s, http.MethodHead, "/big", "Cache-Control", "min-fresh=120")
	close(release)
	expect(t, "HEAD", h, 200, "", "uncacheable", "fwd=uri-miss; fwd-status=200; collapsed=?0; detail=collapse-timeout")
	if cl := h.header.Get("Content-Length"); cl != "23" {
		t.Errorf("HEAD: Content-Length %q, want 23", cl)
	}
	if rest, _ := io.ReadAll(br); string(rest) != "second part\n" {
		t.Errorf("leader's rest %q", rest)
	}
	if n := o.n.Load(); n != 2 {
		t.Errorf("origin got %d requests, want the GET and the HEAD, 2", n)
	}
}

// A response that is not stored (no-store here; any response without
// freshness or validator, as most streams have) used to land its flight
// only once its body ended. The requests that joined it meanwhile go to
// the origin as soon as it is known not to be stored, and so do later
// ones, not after collapse_timeout with a 504: a stream (server-sent
// events, a long download) would have had one client at a time.
func TestWaitersOfAnUnstoredStreamGoToTheOrigin(t *testing.T) {
	release := make(chan struct{})
	var first atomic.Bool
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if first.CompareAndSwap(false, true) {
			// The first stream answers once a request waits for it.
			deadline := time.Now().Add(10 * time.Second)
			for cache.Waiting() < 1 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select { // a stream that goes on
		case <-release:
		case <-time.After(10 * time.Second):
		}
		io.WriteString(w, "data: last\n\n")
	})
	s := startCache(t, o, "collapse_timeout 300ms")
	streams := make(chan result, 3)
	stream := func() { streams <- get(t, s, "/events") }
	go stream()
	waitFor(t, "the first stream to reach the origin", func() bool { return o.n.Load() == 1 })
	go stream() // waits for the first, which answers then
	waitFor(t, "the waiter to reach the origin", func() bool { return o.n.Load() == 2 })
	go stream() // comes once the first answered
	for deadline := time.After(10 * time.Second); o.n.Load() < 3; {
		select {
		case r := <-streams:
			t.Fatalf("a client, while the first stream goes on: %d %q, Cache-Status %q", r.status, r.body, r.cs())
		case <-deadline:
			t.Fatal("timed out waiting for the third client to reach the origin")
		case <-time.After(2 * time.Millisecond):
		}
	}
	close(release)
	for i := range 3 {
		expect(t, fmt.Sprint("stream ", i), <-streams, 200, "data: first\n\ndata: last\n\n", "uncacheable")
	}
}

// With allow_set_cookie, the client whose request the origin answers gets
// that answer's Set-Cookie, and no other client does. A revalidation is
// such an answer: the 304's cookie goes to the client whose request
// revalidated, never into the stored response.
func TestRevalidationPassesThe304sSetCookie(t *testing.T) {
	var n atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Cache-Control", "no-cache")
		i := n.Add(1)
		if i <= 2 {
			w.Header().Set("Set-Cookie", fmt.Sprintf("session=%d", i))
		}
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, "page")
	})
	s := startCache(t, o, "allow_set_cookie")
	for i, want := range []string{"session=1", "session=2", ""} {
		r := get(t, s, "/p")
		expect(t, fmt.Sprint("request ", i), r, 200, "page", []string{"miss", "revalidated", "revalidated"}[i])
		if got := strings.Join(r.header.Values("Set-Cookie"), ", "); got != want {
			t.Errorf("request %d: Set-Cookie %q, want %q", i, got, want)
		}
	}
}
