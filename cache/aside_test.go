package cache_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache"
	"github.com/caddy-edge/edge/internal/caddytest"
)

// heldOrigin answers /big with ETag "v1" and a body whose first part comes
// at once and whose second comes once release is closed (parts), and any
// other path at once.
func heldOrigin(first, second []byte, release chan struct{}, sized bool) http.HandlerFunc {
	held := parts(first, second, release, nil, sized)
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		if r.URL.Path != "/big" {
			w.Header().Set("Cache-Control", "max-age=60")
			io.WriteString(w, "small")
			return
		}
		held(w, r)
	}
}

// startHeldCache starts the cache in front of o, over HTTP/2 (h2c) or over
// HTTP/1.1 with a client of one connection, so that a request waits for
// the one before it to have ended.
func startHeldCache(t *testing.T, o *origin, options string, h2 bool) *caddytest.Server {
	t.Helper()
	if h2 {
		return startH2Cache(t, o, options, false)
	}
	s := startCache(t, o, options)
	tr := &http.Transport{MaxConnsPerHost: 1}
	t.Cleanup(tr.CloseIdleConnections)
	s.Client = &http.Client{Transport: tr, Timeout: 20 * time.Second}
	return s
}

// A conditional request that misses, and whose condition the response
// matches, gets its 304 whole as soon as the response's header arrives,
// while the body is still on its way into the store: over HTTP/2 its
// stream ends (a browser counts the response done only then), and over
// HTTP/1.1 its connection takes the next request. The store then answers
// from the whole body, which the origin sent once.
func TestConditionalMissEndsAtItsHeader(t *testing.T) {
	first, second := bytes.Repeat([]byte("a"), 50000), bytes.Repeat([]byte("b"), 50000)
	for _, h2 := range []bool{false, true} {
		for _, sized := range []bool{true, false} {
			t.Run(fmt.Sprintf("h2=%v/sized=%v", h2, sized), func(t *testing.T) {
				release := make(chan struct{})
				o := newOrigin(t, heldOrigin(first, second, release, sized))
				s := startHeldCache(t, o, "", h2)
				type answer struct {
					r   result
					err error
				}
				done := make(chan answer, 2)
				go func() {
					r, err := send(context.Background(), s, http.MethodGet, "/big", "If-None-Match", `"v1"`)
					done <- answer{r, err}
					r, err = send(context.Background(), s, http.MethodGet, "/small")
					done <- answer{r, err}
				}()
				for _, what := range []string{"the 304", "the next request"} {
					select {
					case a := <-done:
						if a.err != nil {
							t.Fatalf("%s: %v", what, a.err)
						}
						if what == "the 304" {
							expect(t, what, a.r, 304, "", "miss", "fwd=uri-miss", "stored")
							if et := a.r.header.Get("ETag"); et != `"v1"` {
								t.Errorf("the 304's ETag %q, want \"v1\"", et)
							}
						} else {
							expect(t, what, a.r, 200, "small", "miss")
						}
					case <-time.After(10 * time.Second):
						close(release)
						t.Fatalf("%s ended only with the body the 304 does not have", what)
					}
				}
				close(release)
				landed(t)
				expect(t, "then", get(t, s, "/big"), 200, string(first)+string(second), "hit", "hit")
				if n := o.n.Load(); n != 2 {
					t.Errorf("origin got %d requests, want 2: the body was sent once", n)
				}
				waitFor(t, "the fetch's bound to be given back", func() bool { return cache.AsideFetches() == 0 })
			})
		}
	}
}

// The fetches that go on into the store after their client's 304 are
// bounded: beyond the bound, the client gets the same 304, which ends once
// the body is stored, as a fetch on its own goroutine ends.
func TestConditionalMissBeyondTheBoundWaitsForTheBody(t *testing.T) {
	first, second := bytes.Repeat([]byte("a"), 50000), bytes.Repeat([]byte("b"), 50000)
	restore := cache.FillAsideFetches()
	defer restore()
	release := make(chan struct{})
	o := newOrigin(t, heldOrigin(first, second, release, true))
	s := startH2Cache(t, o, "", false)
	req, _ := http.NewRequest(http.MethodGet, s.URL("/big"), nil)
	req.Header.Set("If-None-Match", `"v1"`)
	resp, err := s.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 304 {
		t.Fatalf("status %d, want 304", resp.StatusCode)
	}
	ended := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(resp.Body)
		ended <- err
	}()
	select {
	case <-ended:
		t.Fatal("the 304 ended before its body was stored, beyond the bound")
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	if err := <-ended; err != nil {
		t.Fatalf("the 304 ended with %v", err)
	}
	storedOnce(t, s, o, "/big", string(first)+string(second))
}

// A conditional miss that the response does not match gets the response
// from the fetch that runs aside for it as any miss gets it: the body, the
// informational responses and the trailers; a body cut by the origin as
// an incomplete response; and the placeholders that reverse_proxy and the
// cache set for the request, in the header that a deferred header
// directive writes.
func TestConditionalMissNotMatchedGetsTheResponse(t *testing.T) {
	body := strings.Repeat("0123456789", 10000)
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprint("h2=", h2), func(t *testing.T) {
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=60")
				w.Header().Set("ETag", `"v1"`)
				switch r.URL.Path {
				case "/trailer":
					w.Header().Set("Trailer", "X-Sum")
				case "/hints":
					w.Header().Set("Link", "</style.css>; rel=preload")
					w.WriteHeader(http.StatusEarlyHints)
					w.Header().Del("Link")
				case "/cut":
					w.Header().Set("Content-Length", strconv.Itoa(2*len(body)))
					io.WriteString(w, body)
					w.(http.Flusher).Flush()
					panic(http.ErrAbortHandler)
				}
				io.WriteString(w, body[:1000])
				w.(http.Flusher).Flush()
				io.WriteString(w, body[1000:])
				if r.URL.Path == "/trailer" {
					w.Header().Set("X-Sum", "42")
				}
			})
			cfg := strings.Replace(siteConfig(o, ""), "\theader >X-Result", "\theader >X-Upstream-Status {http.reverse_proxy.status_code}\n\theader >X-Result", 1)
			var s *caddytest.Server
			if h2 {
				s = startH2(t, "", cfg)
			} else {
				s = caddytest.Start(t, cfg)
			}
			for _, path := range []string{"/plain", "/trailer", "/hints"} {
				r := get(t, s, path, "If-None-Match", `"other"`)
				expect(t, path, r, 200, body, "miss", "fwd=uri-miss", "stored")
				if got := r.header.Get("X-Upstream-Status"); got != "200" {
					t.Errorf("%s: {http.reverse_proxy.status_code} %q, want 200", path, got)
				}
			}

			req, _ := http.NewRequest(http.MethodGet, s.URL("/trailer?again"), nil)
			req.Header.Set("If-None-Match", `"other"`)
			resp, err := s.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(b) != body || resp.Trailer.Get("X-Sum") != "42" {
				t.Errorf("trailer: %d bytes (%v), trailer %q, want the body and X-Sum 42", len(b), err, resp.Trailer)
			}

			var hints int
			req, _ = http.NewRequest(http.MethodGet, s.URL("/hints?again"), nil)
			req.Header.Set("If-None-Match", `"other"`)
			trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
				if code == http.StatusEarlyHints && len(h["Link"]) == 1 {
					hints++
				}
				return nil
			}}
			req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
			resp, err = s.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if hints != 1 || resp.Header.Get("Link") != "" {
				t.Errorf("103 Early Hints with Link: got %d, and Link %q in the final response", hints, resp.Header.Get("Link"))
			}

			req, _ = http.NewRequest(http.MethodGet, s.URL("/cut"), nil)
			req.Header.Set("If-None-Match", `"other"`)
			resp, err = s.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			expectCut(t, "cut body", resp, func(r rune) bool { return r >= '0' && r <= '9' })
			resp.Body.Close()
		})
	}
}

// A fetch that goes on into the store after its client's 304 has no client
// to keep it going: it ends orphan_grace after that client's request ended
// (30 s; less here) if the origin has not sent the body by then, and gives
// its place in the bound back. Nothing is stored then.
func TestFetchAfterA304EndsAfterTheOrphanGrace(t *testing.T) {
	defer cache.SetOrphanGrace(200*time.Millisecond, 20*time.Millisecond)()
	release := make(chan struct{})
	defer close(release)
	o := newOrigin(t, heldOrigin([]byte("first"), []byte("second"), release, true))
	s := startCache(t, o, "")
	expect(t, "304", get(t, s, "/big", "If-None-Match", `"v1"`), 304, "", "miss", "stored")
	waitFor(t, "the fetch to end", func() bool { return cache.Flights() == 0 && cache.AsideFetches() == 0 })
	expect(t, "then", get(t, s, "/big", "Cache-Control", "only-if-cached"), 504, "", "unavailable")
}

// A reload does not wait for a fetch that goes on after its client's 304:
// the old config's fetch ends with it, its body not stored.
func TestReloadEndsAFetchAfterA304(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	o := newOrigin(t, heldOrigin([]byte("first"), []byte("second"), release, true))
	s := startCache(t, o, "")
	expect(t, "304", get(t, s, "/big", "If-None-Match", `"v1"`), 304, "", "miss", "stored")
	// The client may read its 304 before the fetch has taken its place
	// in the bound (right after the 304's flush).
	waitFor(t, "the fetch to go on after its 304", func() bool { return cache.AsideFetches() == 1 })
	reload(t, s, siteConfig(o, "stale_if_unreachable 1s"))
	// The origin still holds the body: the fetch was ended, not finished.
	if n := cache.AsideFetches(); n != 0 {
		t.Errorf("%d fetches go on after the reload, want 0", n)
	}
	untilReloaded(t, s, "/small", "fwd=uri-miss")
	expect(t, "then", get(t, s, "/big", "Cache-Control", "only-if-cached"), 504, "", "unavailable")
}

// A conditional request that revalidates a stale entry runs its fetch
// aside too, and is answered on its own goroutine once the fetch ended:
// with the stale entry when the origin cannot be reached (§4.2.4,
// stale_if_unreachable), and with a response of its own when the origin's
// 304 made the entry unstorable.
func TestConditionalRevalidationAnsweredAfterTheFetch(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		if r.URL.Path == "/private" && r.Header.Get("If-None-Match") != "" {
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Cache-Control", "max-age=0")
		io.WriteString(w, "v1 "+r.URL.Path)
	})
	s := startCache(t, o, "")
	for _, p := range []string{"/down", "/private"} {
		expect(t, p+" stored", get(t, s, p), 200, "v1 "+p, "miss", "stored")
	}
	expect(t, "304 made unstorable", get(t, s, "/private", "If-None-Match", `"v1"`), 304, "", "", "detail=no-store")
	o.Close() // the origin goes down: its port refuses connections
	expect(t, "stale while unreachable", get(t, s, "/down", "If-None-Match", `"v0"`), 200, "v1 /down", "stale", "detail=stale-if-unreachable")
}

// A fetch that runs aside asks the origin what a fetch on the client's
// goroutine would: the placeholders earlier handlers set for the client's
// request (here a regexp matcher's capture, {re.m.1}) steer the next
// handlers for it too; otherwise the conditional miss would store another
// response under the client's key, which every client would then get.
// As would a background refresh.
func TestFetchAsideSeesEarlierPlaceholders(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=1, stale-while-revalidate=3600")
		w.Header().Set("Age", "10")
		w.Header().Set("ETag", `"v1"`)
		io.WriteString(w, "page "+r.Header.Get("X-Cap"))
	})
	s := caddytest.Start(t, `
http://localhost:{HTTP_PORT} {
	header >X-Result {http_cache.status}
	@m path_regexp m ^/re/(.*)$
	handle @m {
		http_cache
		reverse_proxy `+o.addr()+` {
			header_up X-Cap {re.m.1}
		}
	}
}
`)
	expect(t, "conditional miss", get(t, s, "/re/b", "If-None-Match", `"other"`), 200, "page b", "miss", "stored")
	expect(t, "stale", get(t, s, "/re/b"), 200, "page b", "stale", "detail=stale-while-revalidate")
	waitFor(t, "the refresh", func() bool { return o.n.Load() == 2 && cache.Flights() == 0 })
	if got := o.last().Header.Get("X-Cap"); got != "b" {
		t.Errorf("the refresh's {re.m.1} is %q, want b", got)
	}
}

// The requests that follow a fetch that went on after its client's 304 are
// its clients then: it goes on as long as they read, past orphan_grace, as
// a fetch whose own client stays does. Otherwise every download that a
// conditional request led would be cut for all of them orphan_grace (30 s)
// after that 304, and the next request would lead it again.
func TestFetchAfterA304GoesOnForItsFollowers(t *testing.T) {
	defer cache.SetOrphanGrace(200*time.Millisecond, 20*time.Millisecond)()
	first, second := bytes.Repeat([]byte("a"), 50000), bytes.Repeat([]byte("b"), 50000)
	release := make(chan struct{})
	o := newOrigin(t, heldOrigin(first, second, release, true))
	s := startCache(t, o, "")
	expect(t, "304", get(t, s, "/big", "If-None-Match", `"v1"`), 304, "", "miss", "stored")
	resps := startFollowers(t, s, "/big", 1, first)
	time.Sleep(600 * time.Millisecond) // past the grace: the follower still reads
	close(release)
	rest, err := io.ReadAll(resps[0].Body)
	resps[0].Body.Close()
	if err != nil || !bytes.Equal(rest, second) {
		t.Fatalf("follower: %d more bytes (%v), want the rest of the body", len(rest), err)
	}
	storedOnce(t, s, o, "/big", string(first)+string(second))
	waitFor(t, "the fetch's bound to be given back", func() bool { return cache.AsideFetches() == 0 })
}

// A background refresh reads the client's placeholders that steer the next
// handlers (here a map destination, evaluated lazily in the client's
// replacer from its vars) on the client's goroutine, not its own: that
// goroutine goes on meanwhile, and writes its vars (a {http.request.uuid}
// that a deferred header evaluates first), a plain map. Read from the
// refresh's goroutine, the process would die of a concurrent map read and
// write (-race reports it). A refresh that looks up such a placeholder for
// the first time is not sent; the next ones send the client's value.
func TestRefreshReadsTheClientsPlaceholdersOnItsGoroutine(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=1, stale-while-revalidate=3600")
		w.Header().Set("Age", "10")
		io.WriteString(w, "page")
	})
	s := caddytest.Start(t, `
http://localhost:{HTTP_PORT} {
	header >X-Id {http.request.uuid}
	map {client_ip} {who} {
		default anyone
	}
	http_cache
	reverse_proxy `+o.addr()+` {
		header_up X-Who {who}
	}
}
`)
	for range 10 {
		expect(t, "page", get(t, s, "/p"), 200, "page", "")
		waitFor(t, "the refresh", func() bool { return cache.Flights() == 0 })
	}
	reqs := o.requests()
	if len(reqs) < 5 {
		t.Fatalf("the origin got %d requests, want a refresh for most stale hits", len(reqs))
	}
	for i, r := range reqs {
		if got := r.Header.Get("X-Who"); got != "anyone" {
			t.Errorf("request %d: {who} is %q, want anyone", i, got)
		}
	}
}

// A fetch aside, and a background refresh, skip the routes of the groups
// the client's request matched a route of already, as the client's request
// does: here the catch-all handle after the one the cache is in. Otherwise
// a conditional miss got the catch-all's answer instead of the origin's,
// and a response of the catch-all could be stored under the client's key.
func TestFetchAsideSkipsTheGroupsMatched(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=1, stale-while-revalidate=3600")
		w.Header().Set("Age", "10")
		w.Header().Set("ETag", `"v1"`)
		io.WriteString(w, "page")
	})
	s := caddytest.Start(t, `
http://localhost:{HTTP_PORT} {
	header >X-Result {http_cache.status}
	handle /c/* {
		http_cache
	}
	handle {
		header Cache-Control max-age=3600
		respond "fallback"
	}
	reverse_proxy `+o.addr()+`
}
`)
	expect(t, "conditional miss", get(t, s, "/c/b", "If-None-Match", `"other"`), 200, "page", "miss", "stored")
	expect(t, "stale", get(t, s, "/c/b"), 200, "page", "stale", "detail=stale-while-revalidate")
	waitFor(t, "the refresh", func() bool { return o.n.Load() == 2 && cache.Flights() == 0 })
	expect(t, "then", get(t, s, "/c/b"), 200, "page", "")
}

// A fetch aside has the client's address the server determined when the
// request arrived ({client_ip}, trusted_proxies and client_ip_headers), as
// the client's request has, not one determined again from its header as
// earlier handlers left it (here request_header removed X-Forwarded-For).
func TestFetchAsideHasTheClientsAddress(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", `"v1"`)
		io.WriteString(w, "for "+r.Header.Get("X-Client"))
	})
	s := caddytest.Start(t, caddytest.Global("\tservers {\n\t\ttrusted_proxies static 127.0.0.1/8 ::1\n\t\tclient_ip_headers X-Forwarded-For\n\t}\n")+`
http://localhost:{HTTP_PORT} {
	header >X-Result {http_cache.status}
	request_header -X-Forwarded-For
	http_cache
	reverse_proxy `+o.addr()+` {
		header_up X-Client {client_ip}
	}
}
`)
	expect(t, "plain", get(t, s, "/a", "X-Forwarded-For", "203.0.113.9"), 200, "for 203.0.113.9", "miss")
	expect(t, "conditional miss", get(t, s, "/b", "X-Forwarded-For", "203.0.113.9", "If-None-Match", `"other"`), 200, "for 203.0.113.9", "miss")
}

// The request id the next handlers make for a fetch aside
// ({http.request.uuid} in header_up) is the client's request's, as it is
// for a plain request: the id the origin got is the one the client's
// response (and access log) shows, whether the fetch answered 200 or 304.
func TestFetchAsideRequestIDIsTheClients(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", `"v1"`)
		io.WriteString(w, "page")
	})
	s := caddytest.Start(t, `
http://localhost:{HTTP_PORT} {
	header >X-Id {http.request.uuid}
	http_cache
	reverse_proxy `+o.addr()+` {
		header_up X-Id {http.request.uuid}
	}
}
`)
	for _, c := range []struct{ path, inm string }{{"/plain", ""}, {"/miss", `"other"`}, {"/304", `"v1"`}} {
		var fields []string
		if c.inm != "" {
			fields = []string{"If-None-Match", c.inm}
		}
		r := get(t, s, c.path, fields...)
		if got, want := r.header.Get("X-Id"), o.last().Header.Get("X-Id"); got == "" || got != want {
			t.Errorf("%s: the client's request id is %q, the origin's %q", c.path, got, want)
		}
	}
}

// A background refresh does not take its client's idle timeouts (the
// server's write_idle): a timeouts handler after the cache overrides those
// it finds in the request's context, which were the client's, written by
// the client's goroutine as it sends the stale response meanwhile (-race
// reports it), and restored them on the client's connection once the
// refresh was over.
func TestRefreshLeavesTheClientsIdleTimeouts(t *testing.T) {
	body := strings.Repeat("x", 300000)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=1, stale-while-revalidate=3600")
		w.Header().Set("Age", "10")
		io.WriteString(w, body)
	})
	s := caddytest.Start(t, `
http://localhost:{HTTP_PORT} {
	http_cache
	route {
		timeouts {
			write_timeout 5m
		}
		reverse_proxy `+o.addr()+`
	}
}
`)
	for range 10 {
		expect(t, "page", get(t, s, "/p"), 200, body, "")
		waitFor(t, "the refresh", func() bool { return cache.Flights() == 0 })
	}
	if n := o.n.Load(); n < 10 {
		t.Errorf("the origin got %d requests, want one and a refresh for each stale hit", n)
	}
}

// A reload while a conditional miss waits for its origin's header does
// not end its fetch: the fetch, run aside, is its client's until the
// client is answered, as any request in flight is, which Caddy lets
// finish. Cancelled, it answered the client with reverse_proxy's 499 (the
// soak caught one). Nor does the reload wait for it: the origin holds the
// response until the new config serves.
func TestReloadKeepsAConditionalMissItsClientWaitsFor(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Cache-Control", "max-age=60")
		if r.URL.Path == "/slow" {
			once.Do(func() { close(arrived) })
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
		}
		io.WriteString(w, "body "+r.URL.Path)
	})
	s := startCache(t, o, "")
	got := make(chan result, 1)
	go func() { got <- get(t, s, "/slow", "If-None-Match", `"other"`) }()
	<-arrived
	reloaded := make(chan struct{})
	go func() {
		defer close(reloaded)
		reload(t, s, siteConfig(o, "stale_if_unreachable 1s"))
	}()
	select {
	case <-reloaded:
	case <-time.After(5 * time.Second): // the origin holds the response 10 s
		t.Fatal("the reload waited for the fetch of a request in flight")
	}
	untilReloaded(t, s, "/small", "fwd=uri-miss")
	close(release)
	r := <-got
	if r.status != http.StatusOK || r.body != "body /slow" {
		t.Errorf("the conditional miss across a reload: %d %q (Cache-Status %q), want 200 and the body", r.status, r.body, r.cs())
	}
}
