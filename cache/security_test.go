package cache_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-edge/edge/internal/caddytest"
)

// Issue 8 item 1: a GET (or HEAD) with a request body never fills the
// cache, whether the body has a Content-Length or is chunked: the origin's
// answer to the body must not be served to clients of the URL. Such a
// request may still be served a hit.
func TestRequestBodyNeverFills(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "answer to "+string(b))
	})
	s := startCache(t, o, "")
	withBody := func(what string, chunked bool) result {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, s.URL("/b"), strings.NewReader("evil"))
		if err != nil {
			t.Fatal(err)
		}
		if chunked {
			req.ContentLength = -1 // sent chunked
			req.Body = io.NopCloser(strings.NewReader("evil"))
		}
		resp, err := s.Client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return result{status: resp.StatusCode, header: resp.Header, body: string(b)}
	}
	expect(t, "GET with Content-Length body", withBody("cl", false), 200, "answer to evil", "uncacheable", "detail=request-body")
	expect(t, "GET with chunked body", withBody("chunked", true), 200, "answer to evil", "uncacheable", "detail=request-body")
	expect(t, "plain GET after them", get(t, s, "/b"), 200, "answer to ", "miss", "fwd=uri-miss", "stored")
	expect(t, "GET with body gets the hit", withBody("cl", false), 200, "answer to ", "hit", "hit")
	if n := o.n.Load(); n != 3 {
		t.Errorf("origin got %d requests, want 3", n)
	}
}

// Issue 8 item 2: a stored variant is never served to a client that
// refused its content coding (RFC 9110 §12.5.3): q=0 is honoured, every
// set of acceptable codings is its own variant, and a stored
// Content-Encoding is checked against the request even when the origin
// forgot Vary: Accept-Encoding.
func TestAcceptEncodingRefusedNeverServed(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if r.URL.Path == "/vary" {
			w.Header().Set("Vary", "Accept-Encoding")
		}
		ae := r.Header.Get("Accept-Encoding")
		if strings.Contains(ae, "deflate") && !strings.Contains(ae, "deflate;q=0") {
			w.Header().Set("Content-Encoding", "deflate")
			io.WriteString(w, "DEFLATED")
			return
		}
		io.WriteString(w, "plain")
	})
	s := startCache(t, o, "")
	for _, p := range []string{"/vary", "/novary"} {
		expect(t, p+" deflate", get(t, s, p, "Accept-Encoding", "deflate"), 200, "DEFLATED", "miss", "stored")
		expect(t, p+" deflate again", get(t, s, p, "Accept-Encoding", "deflate"), 200, "DEFLATED", "hit", "hit")
		r := get(t, s, p, "Accept-Encoding", "identity")
		expect(t, p+" identity client", r, 200, "plain", "miss", "fwd=vary-miss")
		if ce := r.header.Get("Content-Encoding"); ce != "" {
			t.Errorf("%s: identity client got Content-Encoding %q", p, ce)
		}
	}
	// With Vary, the two refusals below are two variants.
	expect(t, "gzip;q=0, deflate", get(t, s, "/vary", "Accept-Encoding", "gzip;q=0, deflate"), 200, "DEFLATED", "")
	expect(t, "gzip;q=0, deflate again", get(t, s, "/vary", "Accept-Encoding", "gzip;q=0, deflate"), 200, "DEFLATED", "hit")
	r := get(t, s, "/vary", "Accept-Encoding", "gzip;q=0")
	expect(t, "gzip;q=0", r, 200, "plain", "")
	if ce := r.header.Get("Content-Encoding"); ce != "" {
		t.Errorf("gzip;q=0 client got Content-Encoding %q", ce)
	}
	expect(t, "deflate;q=0 refuses the stored deflate", get(t, s, "/novary", "Accept-Encoding", "gzip, deflate;q=0"), 200, "plain", "")
}

// Issue 8 item 9: a response to a request with Cookie or Authorization is
// shared only with the origin's explicit freshness: neither default_ttl
// nor the Last-Modified heuristic applies to it. The bypass matcher sees
// Caddy's normalised path, so spellings an origin maps to /account
// (";x=1", "%3b") are not bypassed: this rule is what keeps their
// responses from other clients.
func TestCredentialedResponsesNeedExplicitFreshness(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/lm" {
			w.Header().Set("Last-Modified", "Tue, 01 Sep 2020 10:00:00 GMT")
		}
		if r.URL.Path == "/explicit" {
			w.Header().Set("Cache-Control", "max-age=60")
		}
		io.WriteString(w, "page of "+r.Header.Get("Cookie"))
	})
	s := startCache(t, o, "default_ttl 5m\nbypass path /account/*")
	for _, p := range []string{"/account;x=1/p.css", "/account;/p.css", "/account%3bx/p.css", "/account%252fp.css", "/lm"} {
		expect(t, p+" with Cookie", get(t, s, p, "Cookie", "session=alice"), 200, "page of session=alice", "uncacheable", "detail=credentials")
		expect(t, p+" anonymous", get(t, s, p), 200, "page of ", "miss", "stored")
	}
	expect(t, "explicit freshness with Cookie", get(t, s, "/explicit", "Cookie", "session=alice"), 200, "page of session=alice", "miss", "stored")
	expect(t, "explicit freshness, anonymous", get(t, s, "/explicit"), 200, "page of session=alice", "hit", "hit")

	// The option that names the risk brings default_ttl back.
	reload(t, s, siteConfig(o, "default_ttl 5m\nunsafe_credentialed_heuristics\nstore memory {\n name risky\n}"))
	untilReloaded(t, s, "/warmup", "stored")
	expect(t, "risk accepted", get(t, s, "/risky", "Cookie", "session=bob"), 200, "page of session=bob", "miss", "stored")
}

// Issue 8 item 5: a 304 that makes the stored response private (or
// no-store) removes it: after freshening (RFC 9111 §4.3.4) the response is
// no longer storable by a shared cache, so it is neither served now nor
// later.
func TestNotModifiedPrivateRemovesStored(t *testing.T) {
	for _, cc := range []string{"private", "no-store"} {
		t.Run(cc, func(t *testing.T) {
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Etag", `"a"`)
				w.Header().Set("Cache-Control", "no-cache")
				io.WriteString(w, "v1")
			})
			s := startCache(t, o, "")
			expect(t, "fill", get(t, s, "/p"), 200, "v1", "miss", "stored")
			o.set(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Etag", `"a"`)
				w.Header().Set("Cache-Control", cc)
				if r.Header.Get("If-None-Match") == `"a"` {
					w.WriteHeader(http.StatusNotModified)
					return
				}
				io.WriteString(w, "v2 for this client")
			})
			expect(t, "304 says "+cc, get(t, s, "/p"), 200, "v2 for this client", "uncacheable", "detail="+cc)
			r := get(t, s, "/p")
			expect(t, "after", r, 200, "v2 for this client", "uncacheable", "fwd=uri-miss")
			if n := o.n.Load(); n != 4 {
				t.Errorf("origin got %d requests, want 4", n)
			}
		})
	}
}

// A handler after the cache may rewrite response fields in place: Caddy's
// header directive replaces a value by assigning to hdr[name][i]. A hit
// must hand out value slices of its own, never the stored entry's, or each
// hit would rewrite the stored response (and race with the others).
func TestHitFieldsNotSharedWithStore(t *testing.T) {
	o := newOrigin(t, serve("body", "Cache-Control", "max-age=60", "X-Stored", "a"))
	s := caddytest.Start(t, `
http://localhost:{HTTP_PORT} {
	header >X-Stored "a" "ab"
	header >Cache-Status "hit;" "HIT;"
	http_cache
	reverse_proxy `+o.addr()+`
}
`)
	for i := range 4 {
		r := get(t, s, "/f")
		if got := r.header.Get("X-Stored"); got != "ab" {
			t.Errorf("request %d: X-Stored = %q, want %q (the stored value rewritten by earlier hits?)", i+1, got, "ab")
		}
		if i > 0 && !strings.Contains(r.cs(), "; HIT;") {
			t.Errorf("request %d: Cache-Status = %q, want the replaced %q", i+1, r.cs(), "; HIT;")
		}
	}
	if n := o.n.Load(); n != 1 {
		t.Errorf("origin got %d requests, want 1", n)
	}
}

// A 304 that says private or no-store to a revalidation that carried the
// client's Cookie or Authorization may say it of those credentials only:
// many origins answer any session cookie so. It must not remove the
// stored response that every other client shares: any client could
// otherwise purge any URL at will (a junk cookie and Cache-Control:
// no-cache), and make it hit-for-miss for everyone.
func TestCredentialedNotModifiedPrivateKeepsStored(t *testing.T) {
	for _, cred := range [][]string{{"Cookie", "session=junk"}, {"Authorization", "Bearer junk"}} {
		t.Run(cred[0], func(t *testing.T) {
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Etag", `"a"`)
				w.Header().Set("Cache-Control", "public, max-age=600")
				if r.Header.Get(cred[0]) != "" {
					w.Header().Set("Cache-Control", "private")
				}
				if r.Header.Get("If-None-Match") == `"a"` {
					w.WriteHeader(http.StatusNotModified)
					return
				}
				io.WriteString(w, "v1")
			})
			s := startCache(t, o, "")
			expect(t, "fill", get(t, s, "/p"), 200, "v1", "miss", "stored")
			expect(t, "credentialed revalidation", get(t, s, "/p", append([]string{"Cache-Control", "no-cache"}, cred...)...), 200, "v1", "")
			before := o.n.Load()
			expect(t, "victim", get(t, s, "/p"), 200, "v1", "hit")
			if n := o.n.Load() - before; n != 0 {
				t.Errorf("the victim's request reached the origin (%d requests): the stored response was removed", n)
			}
		})
	}
}
