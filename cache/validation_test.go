package cache_test

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caddy-edge/edge/cache"
)

// versioned is an origin handler that answers If-None-Match with 304 when
// the ETag matches, and counts 200s and 304s.
type versioned struct {
	etag       atomic.Value // string
	cc         atomic.Value // string: Cache-Control of 200s
	cc304      atomic.Value // string: Cache-Control of 304s
	age        atomic.Value // string: Age of 200s
	full, not  atomic.Int64
	fail       atomic.Int64 // status to fail with; 0: none
	bodyPrefix string
}

func newVersioned(etag, cc, age string) *versioned {
	v := &versioned{bodyPrefix: "body "}
	v.etag.Store(etag)
	v.cc.Store(cc)
	v.cc304.Store(cc)
	v.age.Store(age)
	return v
}

func (v *versioned) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if st := v.fail.Load(); st != 0 {
		w.WriteHeader(int(st))
		fmt.Fprint(w, "origin error")
		return
	}
	etag := v.etag.Load().(string)
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		v.not.Add(1)
		w.Header().Set("Cache-Control", v.cc304.Load().(string))
		w.Header().Set("X-Fresh", "from-304")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	v.full.Add(1)
	w.Header().Set("Cache-Control", v.cc.Load().(string))
	if a := v.age.Load().(string); a != "" {
		w.Header().Set("Age", a)
	}
	fmt.Fprint(w, v.bodyPrefix+etag)
}

// A stale entry is revalidated with If-None-Match; the 304 updates
// the stored header (§4.3.4) and the stored body is served; afterwards the
// entry is fresh again.
func TestRevalidation304FreshensTheStoredResponse(t *testing.T) {
	// Age beyond max-age: stored stale, so the next request revalidates.
	v := newVersioned(`"v1"`, "max-age=60", "61")
	v.cc304.Store("max-age=600")
	o := newOrigin(t, v.ServeHTTP)
	s := startCache(t, o, "")

	expect(t, "fill", get(t, s, "/v"), 200, `body "v1"`, "miss", "stored")
	r := get(t, s, "/v")
	expect(t, "revalidate", r, 200, `body "v1"`, "revalidated", "fwd=stale; fwd-status=304")
	if r.header.Get("X-Fresh") != "from-304" || r.header.Get("Cache-Control") != "max-age=600" {
		t.Errorf("304's fields not merged into the served header: %v", r.header)
	}
	if got := o.last().Header.Get("If-None-Match"); got != `"v1"` {
		t.Errorf("revalidation If-None-Match %q", got)
	}
	r = get(t, s, "/v")
	expect(t, "after 304", r, 200, `body "v1"`, "hit", "hit")
	if r.header.Get("X-Fresh") != "from-304" {
		t.Errorf("freshened header not stored: %v", r.header)
	}
	if v.full.Load() != 1 || v.not.Load() != 1 {
		t.Errorf("origin sent %d 200s and %d 304s, want 1 and 1", v.full.Load(), v.not.Load())
	}
}

// A stale entry whose origin answers 200 with a new version is
// replaced by it.
func TestRevalidationNewVersionReplacesEntry(t *testing.T) {
	v := newVersioned(`"v1"`, "max-age=60", "61")
	o := newOrigin(t, v.ServeHTTP)
	s := startCache(t, o, "")
	expect(t, "fill", get(t, s, "/v"), 200, `body "v1"`, "miss", "stored")
	v.etag.Store(`"v2"`)
	v.age.Store("")
	expect(t, "new version", get(t, s, "/v"), 200, `body "v2"`, "miss", "fwd=stale; fwd-status=200; stored")
	expect(t, "hit on new version", get(t, s, "/v"), 200, `body "v2"`, "hit", "hit")
}

// A client's conditional request is answered from a fresh entry
// with 304; on a miss the cache fetches the whole response (stored), and
// answers the client's conditional from it.
func TestClientConditionalsAnsweredFromTheCache(t *testing.T) {
	v := newVersioned(`"v1"`, "max-age=60", "")
	o := newOrigin(t, v.ServeHTTP)
	s := startCache(t, o, "")

	r := get(t, s, "/c", "If-None-Match", `"v1"`)
	expect(t, "conditional miss", r, 304, "", "miss", "fwd=uri-miss; fwd-status=200; stored")
	if o.last().Header.Get("If-None-Match") != "" {
		t.Errorf("the client's If-None-Match leaked to the origin")
	}
	// The 304 ends before the body is stored (aside.go): a request sent
	// meanwhile would follow the fetch instead of hitting.
	landed(t)
	expect(t, "plain hit", get(t, s, "/c"), 200, `body "v1"`, "hit", "hit")
	r = get(t, s, "/c", "If-None-Match", `W/"v1", "other"`)
	expect(t, "conditional hit", r, 304, "", "hit", "hit")
	if r.header.Get("ETag") != `"v1"` {
		t.Errorf("304 lacks the ETag: %v", r.header)
	}
	expect(t, "non-matching conditional", get(t, s, "/c", "If-None-Match", `"v0"`), 200, `body "v1"`, "hit", "hit")
	if v.full.Load() != 1 {
		t.Errorf("origin sent %d full responses, want 1", v.full.Load())
	}
}

// Stale-while-revalidate serves the stale entry at once and
// refreshes it in the background, once.
func TestStaleWhileRevalidate(t *testing.T) {
	v := newVersioned(`"v1"`, "max-age=60, stale-while-revalidate=600", "61")
	o := newOrigin(t, v.ServeHTTP)
	s := startCache(t, o, "")
	expect(t, "fill", get(t, s, "/s"), 200, `body "v1"`, "miss", "stored")

	v.etag.Store(`"v2"`)
	v.age.Store("")
	r := get(t, s, "/s")
	expect(t, "stale", r, 200, `body "v1"`, "stale", "caddy-edge; hit; ttl=-", "detail=stale-while-revalidate")
	waitFor(t, "the background refresh", func() bool {
		r := get(t, s, "/s")
		return r.body == `body "v2"` && strings.Contains(r.cs(), "hit")
	})
	if n := v.full.Load(); n != 2 {
		t.Errorf("origin sent %d full responses, want 2 (fill and one refresh)", n)
	}
}

// Stale-if-error serves the stale entry when the origin answers
// 5xx, and when it cannot be reached at all.
func TestStaleIfError(t *testing.T) {
	v := newVersioned(`"v1"`, "max-age=60, stale-if-error=600", "61")
	o := newOrigin(t, v.ServeHTTP)
	s := startCache(t, o, "")
	expect(t, "fill", get(t, s, "/e"), 200, `body "v1"`, "miss", "stored")

	v.fail.Store(503)
	r := get(t, s, "/e")
	expect(t, "origin 503", r, 200, `body "v1"`, "stale", "fwd=stale; fwd-status=503", "detail=stale-if-error")

	// A real closed port: reverse_proxy fails to connect.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	reload(t, s, strings.Replace(siteConfig(o, ""), o.addr(), closed, 1))
	r = untilReloaded(t, s, "/e", "fwd-status=502")
	expect(t, "origin refused", r, 200, `body "v1"`, "stale", "fwd=stale; fwd-status=502", "detail=stale-if-error")

	// An origin that does not answer in time.
	hang := make(chan struct{})
	defer close(hang)
	v.fail.Store(0)
	o.set(func(w http.ResponseWriter, r *http.Request) { <-hang })
	reload(t, s, `
http://localhost:{HTTP_PORT} {
	header >X-Result {http_cache.status}
	http_cache
	reverse_proxy `+o.addr()+` {
		transport http {
			response_header_timeout 100ms
		}
	}
}
`)
	r = untilReloaded(t, s, "/e", "fwd-status=504")
	expect(t, "origin timeout", r, 200, `body "v1"`, "stale", "fwd=stale; fwd-status=504", "detail=stale-if-error")
}

// Stale_if_error configured as a default covers responses that
// send none; must-revalidate forbids serving stale (§4.2.4).
func TestStaleIfErrorDefaultAndMustRevalidate(t *testing.T) {
	v := newVersioned(`"v1"`, "max-age=60", "61")
	o := newOrigin(t, v.ServeHTTP)
	s := startCache(t, o, "stale_if_error 10m")
	expect(t, "fill", get(t, s, "/d"), 200, `body "v1"`, "miss", "stored")
	v.fail.Store(500)
	expect(t, "default stale-if-error", get(t, s, "/d"), 200, `body "v1"`, "stale", "fwd-status=500")

	v2 := newVersioned(`"m1"`, "max-age=60, must-revalidate, stale-if-error=600", "61")
	o2 := newOrigin(t, v2.ServeHTTP)
	reload(t, s, siteConfig(o2, "stale_if_error 10m"))
	expect(t, "fill must-revalidate", untilReloaded(t, s, "/m", "stored"), 200, `body "m1"`, "miss", "stored")
	v2.fail.Store(503)
	expect(t, "must-revalidate", get(t, s, "/m"), 503, "origin error", "uncacheable", "fwd=stale; fwd-status=503")
}

// A response with no-cache and a validator is stored but
// revalidated on every use (§5.2.2.4).
func TestResponseNoCacheRevalidatesEveryUse(t *testing.T) {
	v := newVersioned(`"n1"`, "no-cache", "")
	o := newOrigin(t, v.ServeHTTP)
	s := startCache(t, o, "")
	expect(t, "fill", get(t, s, "/nc"), 200, `body "n1"`, "miss", "stored")
	for i := range 2 {
		expect(t, fmt.Sprint("use ", i), get(t, s, "/nc"), 200, `body "n1"`, "revalidated", "fwd=stale; fwd-status=304")
	}
	if v.full.Load() != 1 || v.not.Load() != 2 {
		t.Errorf("origin sent %d 200s and %d 304s, want 1 and 2", v.full.Load(), v.not.Load())
	}
}

// A HEAD or Range request that hits a stale-while-revalidate entry
// refreshes it with a whole GET: the refreshed entry has its body.
func TestStaleWhileRevalidateRefreshedByHEAD(t *testing.T) {
	v := newVersioned(`"h1"`, "max-age=60, stale-while-revalidate=600", "61")
	o := newOrigin(t, v.ServeHTTP)
	s := startCache(t, o, "")
	expect(t, "fill", get(t, s, "/sh"), 200, `body "h1"`, "miss", "stored")
	v.etag.Store(`"h2"`)
	v.age.Store("")
	expect(t, "stale HEAD", do(t, s, http.MethodHead, "/sh"), 200, "", "stale", "detail=stale-while-revalidate")
	waitFor(t, "the background refresh", func() bool { return v.full.Load() == 2 })
	if m := o.last().Method; m != http.MethodGet {
		t.Errorf("refresh sent %s, want GET", m)
	}
	waitFor(t, "the refreshed entry", func() bool {
		r := get(t, s, "/sh")
		if strings.Contains(r.cs(), "; hit; ttl=") && !strings.Contains(r.cs(), "stale") {
			if r.body != `body "h2"` {
				t.Fatalf("refreshed entry served %q", r.body)
			}
			return true
		}
		return false
	})
}

// A Range request that finds a stale entry goes to the origin untouched
// and revalidates the entry in the background (one conditional GET), so
// that the next ranges are hits; a range refused only by the request's own
// no-cache starts nothing.
func TestRangeOnStaleEntryRevalidatesInTheBackground(t *testing.T) {
	v := newVersioned(`"g1"`, "max-age=60", "61") // stored stale
	v.cc304.Store("max-age=600")
	o := newOrigin(t, v.ServeHTTP)
	s := startCache(t, o, "")
	expect(t, "fill", get(t, s, "/g"), 200, `body "g1"`, "miss", "stored")

	r := get(t, s, "/g", "Range", "bytes=0-3")
	expect(t, "stale range", r, 200, `body "g1"`, "uncacheable", "fwd=stale", "detail=range-fill")
	waitFor(t, "the background revalidation", func() bool { return v.not.Load() == 1 && cache.Flights() == 0 })
	for _, req := range o.requests() {
		if req.Header.Get("If-None-Match") != "" && (req.Header.Get("Range") != "" || req.Method != http.MethodGet) {
			t.Errorf("the revalidation was %s with Range %q", req.Method, req.Header.Get("Range"))
		}
	}
	r = get(t, s, "/g", "Range", "bytes=0-3")
	expect(t, "range hit", r, 206, "body", "hit", "hit")
	if cr := r.header.Get("Content-Range"); cr != "bytes 0-3/9" {
		t.Errorf("Content-Range %q", cr)
	}

	r = get(t, s, "/g", "Range", "bytes=0-3", "Cache-Control", "no-cache")
	expect(t, "no-cache range", r, 200, `body "g1"`, "uncacheable", "fwd=request", "detail=range")
	if strings.Contains(r.cs(), "range-fill") || cache.Flights() != 0 {
		t.Errorf("a no-cache range started a fill: %q", r.cs())
	}
	if full, not := v.full.Load(), v.not.Load(); full != 3 || not != 1 {
		t.Errorf("origin sent %d 200s and %d 304s, want 3 and 1", full, not)
	}
}

// A range on an entry whose response said no-cache (revalidate at every
// use) goes to the origin alone: a background revalidation on top of it
// would double the origin requests of every range.
func TestRangeOnNoCacheEntryStartsNoFill(t *testing.T) {
	v := newVersioned(`"n1"`, "no-cache", "")
	o := newOrigin(t, v.ServeHTTP)
	s := startCache(t, o, "")
	expect(t, "fill", get(t, s, "/nc"), 200, `body "n1"`, "miss", "stored")
	for i := range 2 {
		r := get(t, s, "/nc", "Range", "bytes=0-3")
		expect(t, fmt.Sprint("range ", i), r, 200, `body "n1"`, "uncacheable", "fwd=stale", "detail=range")
		if strings.Contains(r.cs(), "range-fill") {
			t.Errorf("range %d started a fill: %q", i, r.cs())
		}
	}
	if n, not := o.n.Load(), v.not.Load(); n != 3 || not != 0 || cache.Flights() != 0 {
		t.Errorf("origin got %d requests (%d revalidations), %d in flight; want 3, 0, 0", n, not, cache.Flights())
	}
}
