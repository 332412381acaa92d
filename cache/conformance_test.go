package cache_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// RFC 9111 §4.3.2: "A cache MUST NOT evaluate conditional header fields
// that only apply to an origin server ... the If-Match and
// If-Unmodified-Since conditional header fields are not applicable to a
// cache". A Range request answered from the store must not get a 412 that
// the cache made up from them (the whole-body hit already ignores them).
func TestRangeHitIgnoresOriginPreconditions(t *testing.T) {
	const body = "0123456789"
	lm := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Etag", `"v1"`)
		http.ServeContent(w, r, "", lm, strings.NewReader(body))
	})
	s := startCache(t, o, "")
	expect(t, "fill", get(t, s, "/p"), 200, body, "miss", "stored")
	for _, pc := range [][]string{
		{"If-Match", `"other"`},
		{"If-Unmodified-Since", "Mon, 01 Jan 2001 00:00:00 GMT"},
	} {
		expect(t, "whole with "+pc[0], get(t, s, "/p", pc...), 200, body, "hit", "hit")
		expect(t, "range with "+pc[0], get(t, s, "/p", "Range", "bytes=0-1", pc[0], pc[1]), 206, "01", "hit", "hit")
	}
}

// RFC 9110 §13.1.5: "If the HTTP-date validator provided is not a strong
// validator in the sense defined by Section 8.8.2.2, the condition is
// false", and then the recipient "MUST ignore the Range header field". A
// Last-Modified less than a second before the stored Date is weak (§8.8.2.2:
// the body may have changed twice within that second), so a range of it
// must not be combined with what the client holds: the whole body comes
// back.
func TestIfRangeWeakLastModified(t *testing.T) {
	const body = "0123456789"
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		now := time.Now().UTC().Truncate(time.Second)
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Date", now.Format(http.TimeFormat))
		w.Header().Set("Last-Modified", now.Format(http.TimeFormat)) // weak: modified in the second it was sent
		io.WriteString(w, body)
	})
	s := startCache(t, o, "")
	r := get(t, s, "/p")
	expect(t, "fill", r, 200, body, "miss", "stored")
	lm := r.header.Get("Last-Modified")
	expect(t, "If-Range with a weak date", get(t, s, "/p", "Range", "bytes=0-1", "If-Range", lm), 200, body, "hit", "hit")
}

// RFC 9110 §6.6.1: "A recipient with a clock that receives a response
// message without a Date header field MUST record the time it was received
// and append a corresponding Date header field to the message's header
// section if it is cached or forwarded downstream." A hit on such a
// response must carry the time the cache received it, not the time of the
// hit (which, with Age, would make it look younger to the next cache).
func TestStoredResponseWithoutDateGetsReceivedDate(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Date"] = nil // net/http adds none
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "body")
	})
	s := startCache(t, o, "")
	before := time.Now().Add(-time.Second)
	expect(t, "fill", get(t, s, "/p"), 200, "body", "miss", "stored")
	after := time.Now()
	time.Sleep(2100 * time.Millisecond)
	r := get(t, s, "/p")
	expect(t, "hit", r, 200, "body", "hit", "hit")
	d, err := http.ParseTime(r.header.Get("Date"))
	if err != nil {
		t.Fatalf("hit Date %q: %v", r.header.Get("Date"), err)
	}
	if d.Before(before) || d.After(after) {
		t.Errorf("hit Date %v (Age %s), want the time the response was received, in [%v, %v]", d, r.header.Get("Age"), before, after)
	}
}

// The same rule for a 304 without Date that freshens a stored response
// (RFC 9111 §4.3.4): it gets the time it was received, so the freshened
// response is as young as the 304, not as old as the stored Date.
func TestFreshenWithoutDate(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Date"] = nil
		w.Header().Set("Cache-Control", "max-age=2")
		w.Header().Set("Etag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, "body")
	})
	s := startCache(t, o, "")
	expect(t, "fill", get(t, s, "/p"), 200, "body", "miss", "stored")
	time.Sleep(2100 * time.Millisecond)
	expect(t, "revalidated", get(t, s, "/p"), 200, "body", "revalidated", "fwd-status=304")
	expect(t, "fresh again", get(t, s, "/p"), 200, "body", "hit", "hit")
}

// RFC 9111 §4: a stored response used without validation carries "an Age
// header field ... with a value equal to the stored response's
// current_age" when it is sent. A stale response served after the origin
// failed slowly (stale-if-error, RFC 5861 §4) is that much older than when
// it was looked up: its Age must count the wait, or the next cache takes
// it for younger than it is.
func TestStaleIfErrorAgeCountsTheFetch(t *testing.T) {
	var failing atomic.Bool
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			time.Sleep(2 * time.Second)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Control", "max-age=1, stale-if-error=600")
		io.WriteString(w, "body")
	})
	s := startCache(t, o, "")
	expect(t, "fill", get(t, s, "/p"), 200, "body", "miss", "stored")
	time.Sleep(1100 * time.Millisecond)
	failing.Store(true)
	r := get(t, s, "/p")
	expect(t, "stale", r, 200, "body", "stale", "detail=stale-if-error")
	if age, _ := strconv.Atoi(r.header.Get("Age")); age < 3 {
		t.Errorf("Age %q after a 2 s origin failure on a response 1 s old, want at least 3", r.header.Get("Age"))
	}
}

// RFC 9211 §2: in Cache-Status, "the first member of the list represents
// the cache closest to the origin server, and the last member of the
// list represents the cache closest to the user agent". A request the
// cache passes on without looking (a method, a bypass matcher) gets the
// origin's members first, then this cache's, as a miss does.
func TestCacheStatusOrderWhenPassedOn(t *testing.T) {
	o := newOrigin(t, serve("body", "Cache-Status", "upstream; fwd=uri-miss"))
	s := startCache(t, o, "bypass path /b/*")
	for _, tc := range []struct{ method, path string }{
		{http.MethodPut, "/p"},
		{http.MethodPost, "/p"},
		{http.MethodGet, "/b/x"},
		{http.MethodGet, "/miss"},
	} {
		r := do(t, s, tc.method, tc.path)
		cs := r.header.Values("Cache-Status")
		if len(cs) != 2 || !strings.HasPrefix(cs[0], "upstream") || !strings.HasPrefix(cs[1], "caddy-edge") {
			t.Errorf("%s %s: Cache-Status %q, want the upstream's member, then caddy-edge's", tc.method, tc.path, cs)
		}
	}
}

// RFC 9211 §2.2: fwd=request when "the cache was able to select a fresh
// response for the request, but the request's semantics (e.g.,
// Cache-Control request directives) did not allow its use"; fwd=stale is
// for a response that was stale. A fresh entry refused by the request's
// min-fresh or max-age is the former.
func TestCacheStatusFwdRequestForFreshEntry(t *testing.T) {
	o := newOrigin(t, serve("body", "Cache-Control", "max-age=60", "Etag", `"v1"`))
	s := startCache(t, o, "")
	ccs := []string{"min-fresh=120", "max-age=1", "no-cache"}
	for _, cc := range ccs {
		expect(t, "fill", get(t, s, "/"+cc), 200, "body", "miss", "stored")
	}
	time.Sleep(1100 * time.Millisecond)
	for _, cc := range ccs {
		r := get(t, s, "/"+cc, "Cache-Control", cc)
		if !strings.Contains(r.cs(), "fwd=request") {
			t.Errorf("Cache-Control: %s on a fresh entry: Cache-Status %q, want fwd=request", cc, r.cs())
		}
	}
}

// RFC 9211 §2: "caches SHOULD preserve the existing field value", so
// that the chain can be debugged. A stored response keeps its upstream's
// members on every hit, ours last; the upstream member still tells how
// the response reached this cache.
func TestCacheStatusOfUpstreamKeptOnHits(t *testing.T) {
	o := newOrigin(t, serve("body", "Cache-Control", "max-age=60", "Cache-Status", "upstream; fwd=uri-miss; stored"))
	s := startCache(t, o, "")
	expect(t, "fill", get(t, s, "/x"), 200, "body", "miss", "stored")
	for i := range 2 {
		r := get(t, s, "/x")
		cs := r.header.Values("Cache-Status")
		if len(cs) != 2 || cs[0] != "upstream; fwd=uri-miss; stored" || !strings.HasPrefix(cs[1], "caddy-edge; hit") {
			t.Errorf("hit %d: Cache-Status %q, want the upstream's member, then caddy-edge's hit", i, cs)
		}
	}
	// A response without one gets ours alone.
	o2 := newOrigin(t, serve("body", "Cache-Control", "max-age=60"))
	s2 := startCache(t, o2, "")
	get(t, s2, "/y")
	if cs := get(t, s2, "/y").header.Values("Cache-Status"); len(cs) != 1 || !strings.HasPrefix(cs[0], "caddy-edge; hit") {
		t.Errorf("hit without an upstream member: Cache-Status %q", cs)
	}
}
