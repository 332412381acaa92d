package cache_test

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-edge/edge/cache"
	"github.com/caddy-edge/edge/internal/caddytest"
)

// A GET response is stored and served again without the origin,
// with Age and Cache-Status; HEAD is answered from the stored GET.
func TestStoresGETAndAnswersGETAndHEADFromIt(t *testing.T) {
	o := newOrigin(t, serve("hello", "Cache-Control", "max-age=60", "Content-Type", "text/plain", "X-Origin", "1"))
	s := startCache(t, o, "")

	r := get(t, s, "/a")
	expect(t, "first GET", r, 200, "hello", "miss", "caddy-edge; fwd=uri-miss; fwd-status=200; stored", "ttl=")
	r = get(t, s, "/a")
	expect(t, "second GET", r, 200, "hello", "hit", "caddy-edge; hit; ttl=")
	if r.header.Get("Age") == "" || r.header.Get("X-Origin") != "1" || r.header.Get("Content-Type") != "text/plain" {
		t.Errorf("hit header %v: want Age and the stored fields", r.header)
	}
	h := do(t, s, http.MethodHead, "/a")
	expect(t, "HEAD", h, 200, "", "hit", "hit")
	if h.header.Get("Content-Length") != "5" {
		t.Errorf("HEAD Content-Length %q, want 5", h.header.Get("Content-Length"))
	}
	if n := o.n.Load(); n != 1 {
		t.Errorf("origin got %d requests, want 1", n)
	}
	// The query is part of the key.
	expect(t, "other query", get(t, s, "/a?x=1"), 200, "hello", "miss", "fwd=uri-miss")
}

// A HEAD miss goes to the origin as HEAD and stores nothing.
func TestHEADMissGoesToOriginAndStoresNothing(t *testing.T) {
	o := newOrigin(t, serve("hello", "Cache-Control", "max-age=60"))
	s := startCache(t, o, "")

	r := do(t, s, http.MethodHead, "/h")
	expect(t, "HEAD miss", r, 200, "", "uncacheable", "fwd=uri-miss", "detail=head")
	if m := o.last().Method; m != http.MethodHead {
		t.Errorf("origin got %s, want HEAD", m)
	}
	expect(t, "GET after HEAD", get(t, s, "/h"), 200, "hello", "miss", "fwd=uri-miss", "stored")
}

// Responses the RFC forbids storing go to the origin every time,
// and Cache-Status says why.
func TestNotStored(t *testing.T) {
	for _, tt := range []struct {
		name   string
		fields []string // response fields
		req    []string // request fields
		status int
		detail string
	}{
		{"no-store", []string{"Cache-Control", "no-store, max-age=60"}, nil, 200, "detail=no-store"},
		{"private", []string{"Cache-Control", "private, max-age=60"}, nil, 200, "detail=private"},
		{"request no-store", []string{"Cache-Control", "max-age=60"}, []string{"Cache-Control", "no-store"}, 200, "detail=request-no-store"},
		{"set-cookie", []string{"Cache-Control", "max-age=60", "Set-Cookie", "id=1"}, nil, 200, "detail=set-cookie"},
		{"authorization", []string{"Cache-Control", "max-age=60"}, []string{"Authorization", "Basic Zm9vOmJhcg=="}, 200, "detail=authorization"},
		{"no freshness nor validator", nil, nil, 200, "detail=no-freshness"},
		{"500 without freshness", nil, nil, 500, "detail="},
		{"vary star", []string{"Cache-Control", "max-age=60", "Vary", "*"}, nil, 200, "detail="},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				for i := 0; i+1 < len(tt.fields); i += 2 {
					w.Header().Add(tt.fields[i], tt.fields[i+1])
				}
				w.WriteHeader(tt.status)
				fmt.Fprint(w, "body")
			})
			s := startCache(t, o, "hit_for_miss_ttl 1ms")
			for i := range 2 {
				r := get(t, s, "/n", tt.req...)
				expect(t, fmt.Sprint("request ", i), r, tt.status, "body", "uncacheable", "fwd=", tt.detail)
				if strings.Contains(r.cs(), "stored") {
					t.Errorf("Cache-Status %q says stored", r.cs())
				}
			}
			if n := o.n.Load(); n != 2 {
				t.Errorf("origin got %d requests, want 2", n)
			}
		})
	}
}

// A response to a request with Authorization is stored when the
// response allows it (public, s-maxage, must-revalidate), §3.5.
func TestAuthorizationAllowedByResponse(t *testing.T) {
	for _, cc := range []string{"public, max-age=60", "s-maxage=60", "must-revalidate, max-age=60"} {
		t.Run(cc, func(t *testing.T) {
			o := newOrigin(t, serve("secret", "Cache-Control", cc))
			s := startCache(t, o, "")
			expect(t, "first", get(t, s, "/p", "Authorization", "Bearer x"), 200, "secret", "miss", "stored")
			expect(t, "second", get(t, s, "/p", "Authorization", "Bearer x"), 200, "secret", "hit", "hit")
		})
	}
}

// With allow_set_cookie, a response with Set-Cookie is stored,
// the client that caused the fetch gets the cookie, and no one else does.
func TestAllowSetCookieNeverReplaysTheCookie(t *testing.T) {
	o := newOrigin(t, serve("page", "Cache-Control", "max-age=60", "Set-Cookie", "session=alice"))
	s := startCache(t, o, "allow_set_cookie")
	r := get(t, s, "/c")
	expect(t, "first", r, 200, "page", "miss", "stored")
	if r.header.Get("Set-Cookie") != "session=alice" {
		t.Errorf("the client that caused the fetch did not get its cookie: %v", r.header)
	}
	r = get(t, s, "/c")
	expect(t, "second", r, 200, "page", "hit", "hit")
	if c := r.header.Values("Set-Cookie"); len(c) != 0 {
		t.Errorf("hit replays Set-Cookie %q", c)
	}
}

// The fields a cache must not store never reach a later client: those the
// response's Connection lists and the fixed hop-by-hop ones (RFC 9110
// §7.6.1, RFC 9111 §3.1), and Set-Cookie (with allow_set_cookie).
// reverse_proxy removes the hop-by-hop fields itself, so the next handler
// here writes them directly.
func TestHopByHopFieldsAreNotStored(t *testing.T) {
	h := &cache.Handler{AllowSetCookie: true}
	provisioned(t, h)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		hdr := w.Header()
		hdr.Set("Cache-Control", "max-age=60")
		hdr.Set("Connection", "x-hop, Keep-Alive")
		hdr.Set("X-Hop", "listed in Connection")
		hdr.Set("Keep-Alive", "timeout=5")
		hdr.Set("Proxy-Authenticate", "Basic")
		hdr.Set("Set-Cookie", "session=alice")
		hdr.Set("X-Kept", "end-to-end")
		_, err := io.WriteString(w, "body")
		return err
	})
	for i, want := range []string{"stored", "hit"} {
		w := &discardWriter{h: make(http.Header)}
		if err := h.ServeHTTP(w, benchRequest(t, "http://example.com/hop"), next); err != nil {
			t.Fatal(err)
		}
		if cs := w.h.Get("Cache-Status"); !strings.Contains(cs, want) {
			t.Fatalf("request %d: Cache-Status %q, want %s", i, cs, want)
		}
		if i == 0 {
			continue
		}
		for _, name := range []string{"Connection", "X-Hop", "Keep-Alive", "Proxy-Authenticate", "Set-Cookie"} {
			if v := w.h.Values(name); v != nil {
				t.Errorf("a hit replays %s: %q", name, v)
			}
		}
		if v := w.h.Get("X-Kept"); v != "end-to-end" {
			t.Errorf("a hit lost an end-to-end field: X-Kept %q", v)
		}
	}
}

// Age is computed per §4.2.3 from the origin's Age and grows;
// CDN-Cache-Control wins over Cache-Control (RFC 9213).
func TestAgeAndCDNCacheControl(t *testing.T) {
	o := newOrigin(t, serve("x", "Cache-Control", "no-store", "CDN-Cache-Control", "max-age=600", "Age", "100"))
	s := startCache(t, o, "")
	expect(t, "first", get(t, s, "/cdn"), 200, "x", "miss", "stored")
	r := get(t, s, "/cdn")
	expect(t, "second", r, 200, "x", "hit", "hit")
	age, err := strconv.Atoi(r.header.Get("Age"))
	if err != nil || age < 100 || age > 110 {
		t.Errorf("Age %q, want about 100", r.header.Get("Age"))
	}
	// ttl = 600 - 100
	if !strings.Contains(r.cs(), "ttl=50") && !strings.Contains(r.cs(), "ttl=49") {
		t.Errorf("Cache-Status %q: want ttl about 500", r.cs())
	}
}

// Request directives: max-age=0 and no-cache make the cache go to
// the origin (fwd=request); min-fresh beyond the entry's ttl too;
// only-if-cached with nothing stored gives 504.
func TestRequestDirectives(t *testing.T) {
	o := newOrigin(t, serve("v", "Cache-Control", "max-age=60", "ETag", `"e1"`))
	s := startCache(t, o, "")
	expect(t, "only-if-cached, nothing stored", get(t, s, "/r", "Cache-Control", "only-if-cached"), 504, "", "unavailable", "fwd=uri-miss")
	if n := o.n.Load(); n != 0 {
		t.Fatalf("only-if-cached reached the origin")
	}
	expect(t, "fill", get(t, s, "/r"), 200, "v", "miss", "stored")
	expect(t, "only-if-cached, stored", get(t, s, "/r", "Cache-Control", "only-if-cached"), 200, "v", "hit", "hit")
	expect(t, "no-cache", get(t, s, "/r", "Cache-Control", "no-cache"), 200, "v", "", "fwd=request")
	expect(t, "max-age=0", get(t, s, "/r", "Cache-Control", "max-age=0"), 200, "v", "", "fwd=request")
	expect(t, "min-fresh", get(t, s, "/r", "Cache-Control", "min-fresh=3600"), 200, "v", "", "fwd=")
	if n := o.n.Load(); n != 4 {
		t.Errorf("origin got %d requests, want 4", n)
	}
	// The revalidations sent the stored validator.
	if inm := o.last().Header.Get("If-None-Match"); inm != `"e1"` {
		t.Errorf("revalidation sent If-None-Match %q, want \"e1\"", inm)
	}
}

// Default_ttl stores responses that give no freshness, max_ttl
// caps lifetimes, statuses lists exactly the statuses that may be stored.
func TestConfiguredTTLsAndStatuses(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/plain":
		case "/long":
			w.Header().Set("Cache-Control", "max-age=86400")
		case "/missing":
			w.WriteHeader(http.StatusNotFound)
		case "/moved":
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Location", "/plain")
			w.WriteHeader(http.StatusMovedPermanently)
		}
		fmt.Fprint(w, r.URL.Path)
	})
	s := startCache(t, o, "default_ttl 2m\nmax_ttl 1h\nstatuses 200 404\nhit_for_miss_ttl 1ms")
	expect(t, "default_ttl", get(t, s, "/plain"), 200, "/plain", "miss", "stored", "ttl=120")
	expect(t, "default_ttl hit", get(t, s, "/plain"), 200, "/plain", "hit", "hit")
	expect(t, "max_ttl", get(t, s, "/long"), 200, "/long", "miss", "stored", "ttl=3600")
	expect(t, "listed 404", get(t, s, "/missing"), 404, "/missing", "miss", "stored", "ttl=120")
	expect(t, "listed 404 hit", get(t, s, "/missing"), 404, "/missing", "hit", "hit")
	expect(t, "unlisted 301", get(t, s, "/moved"), 301, "/moved", "uncacheable", "detail=status-not-allowed")
	expect(t, "unlisted 301 again", get(t, s, "/moved"), 301, "/moved", "uncacheable", "fwd=uri-miss")
}

// default_ttl per status, as nginx's proxy_cache_valid 404 1m beside
// 200 10m: each status that gives no freshness gets its own lifetime, a
// status given one (302) is stored though it is not cacheable by
// default, and the origin's own no-store or max-age still win.
func TestDefaultTTLByStatus(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/missing":
			w.WriteHeader(http.StatusNotFound)
		case "/moved":
			w.Header().Set("Location", "/page")
			w.WriteHeader(http.StatusFound)
		case "/other-redirect":
			w.Header().Set("Location", "/page")
			w.WriteHeader(http.StatusTemporaryRedirect)
		case "/private-404":
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusNotFound)
		case "/short-404":
			w.Header().Set("Cache-Control", "max-age=5")
			w.WriteHeader(http.StatusNotFound)
		}
		io.WriteString(w, "body of "+r.URL.Path)
	})
	s := startCache(t, o, "default_ttl 10m\ndefault_ttl 404 410 1m\ndefault_ttl 302 5m")
	for _, tc := range []struct {
		path   string
		status int
		cs     string
	}{
		{"/page", 200, "ttl=600"},
		{"/missing", 404, "ttl=60"},
		{"/moved", 302, "ttl=300"},
		{"/short-404", 404, "ttl=5"},
	} {
		expect(t, tc.path+" miss", get(t, s, tc.path), tc.status, "body of "+tc.path, "miss", "stored", tc.cs)
		expect(t, tc.path+" hit", get(t, s, tc.path), tc.status, "body of "+tc.path, "hit", tc.cs)
	}
	// 307 has no lifetime of its own and is not cacheable by default.
	expect(t, "307", get(t, s, "/other-redirect"), 307, "*", "uncacheable", "detail=status")
	// no-store wins over the operator's lifetime.
	expect(t, "404 no-store", get(t, s, "/private-404"), 404, "*", "uncacheable", "detail=no-store")
	if n := o.n.Load(); n != 6 {
		t.Errorf("origin requests: %d, want 6 (four misses, then 307 and no-store)", n)
	}
}

// min_uses (nginx's proxy_cache_min_uses): a URL's response is stored
// from its min_uses-th request on; the ones before go to the origin and
// are not stored, each URL counted apart.
func TestMinUses(t *testing.T) {
	o := newOrigin(t, serve("body", "Cache-Control", "max-age=60"))
	s := startCache(t, o, "min_uses 3")
	for i := range 2 {
		expect(t, fmt.Sprint("request ", i+1), get(t, s, "/a"), 200, "body", "uncacheable", "fwd=uri-miss", "detail=min-uses")
	}
	expect(t, "request 3", get(t, s, "/a"), 200, "body", "miss", "stored")
	expect(t, "request 4", get(t, s, "/a"), 200, "body", "hit")
	expect(t, "another URL", get(t, s, "/b"), 200, "body", "uncacheable", "detail=min-uses")
	if n := o.n.Load(); n != 4 {
		t.Errorf("origin requests: %d, want 4", n)
	}
	// A Range miss, which would start a background fill that stores the
	// whole response, counts as a use and fills only at the third (the
	// origin here ignores Range).
	for i := range 2 {
		r := get(t, s, "/r", "Range", "bytes=0-1")
		if strings.Contains(r.cs(), "range-fill") {
			t.Errorf("range %d: %q, want no fill", i+1, r.cs())
		}
	}
	if r := get(t, s, "/r", "Range", "bytes=0-1"); !strings.Contains(r.cs(), "detail=range-fill") {
		t.Errorf("third range: %q, want detail=range-fill", r.cs())
	}
}

// A POST whose response may be stored for the GETs of its URL (RFC 9110
// §9.3.3) counts as a request of the URL for min_uses, and stores only
// from the min_uses-th, as a GET does.
func TestMinUsesCountsStorablePOSTs(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Location", r.URL.Path)
		io.WriteString(w, r.Method+" body")
	})
	s := startCache(t, o, "min_uses 2")
	first := do(t, s, http.MethodPost, "/p")
	expect(t, "POST 1", first, 200, "POST body", "bypass", "fwd=method")
	if strings.Contains(first.cs(), "stored") {
		t.Errorf("POST 1 stored (Cache-Status %q) before min_uses", first.cs())
	}
	expect(t, "POST 2", do(t, s, http.MethodPost, "/p"), 200, "POST body", "miss", "fwd=method", "stored")
	expect(t, "GET after it", get(t, s, "/p"), 200, "POST body", "hit", "hit")
}

// default_ttl for a status that answers the request rather than the URL
// (403, 429, ...) is allowed, as nginx allows it, but warned about at
// load: one client's such response is then served to every client.
func TestDefaultTTLForPerRequestStatusWarns(t *testing.T) {
	o := newOrigin(t, serve("body"))
	conf, logFile := loggedSite(t, o, "default_ttl 404 403 1m")
	caddytest.Start(t, conf)
	lines := logLines(t, logFile, "warn", "default_ttl for a status that usually answers the request")
	if len(lines) != 1 || lines[0]["status"] != float64(403) {
		t.Errorf("warnings: %v, want one for 403 (none for 404)", lines)
	}
}
