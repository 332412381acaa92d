package cache_test

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
)

// Variants are stored side by side and chosen by the request
// fields the response varies on; Accept-Encoding is normalised so that
// browsers' different headers share a variant.
func TestVaryStoresVariantsSideBySide(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language, Accept-Encoding")
		fmt.Fprintf(w, "lang=%s enc=%s", r.Header.Get("Accept-Language"), r.Header.Get("Accept-Encoding"))
	})
	s := startCache(t, o, "")

	expect(t, "en miss", get(t, s, "/v", "Accept-Language", "en", "Accept-Encoding", "gzip"), 200, "lang=en enc=gzip", "miss", "fwd=uri-miss", "stored")
	expect(t, "fr vary-miss", get(t, s, "/v", "Accept-Language", "fr", "Accept-Encoding", "gzip"), 200, "lang=fr enc=gzip", "miss", "fwd=vary-miss", "stored")
	expect(t, "en hit", get(t, s, "/v", "Accept-Language", "en", "Accept-Encoding", "gzip"), 200, "lang=en enc=gzip", "hit", "hit")
	expect(t, "fr hit", get(t, s, "/v", "Accept-Language", "fr", "Accept-Encoding", "gzip"), 200, "lang=fr enc=gzip", "hit", "hit")
	// Another spelling of the same acceptable codings (x-gzip is gzip).
	expect(t, "en, gzip by another spelling", get(t, s, "/v", "Accept-Language", "en", "Accept-Encoding", "X-GZIP;q=0.9"), 200, "lang=en enc=gzip", "hit", "hit")
	if n := o.n.Load(); n != 2 {
		t.Errorf("origin got %d requests, want 2", n)
	}
}

// Vary: * never matches, so such a response is never served from
// the store.
func TestVaryStarNeverMatches(t *testing.T) {
	o := newOrigin(t, serve("star", "Cache-Control", "max-age=60", "Vary", "*"))
	s := startCache(t, o, "")
	for i := range 3 {
		expect(t, fmt.Sprint("request ", i), get(t, s, "/star"), 200, "star", "uncacheable", "fwd=")
	}
	if n := o.n.Load(); n != 3 {
		t.Errorf("origin got %d requests, want 3", n)
	}
}

// A successful unsafe request invalidates its URI and the
// same-host Location and Content-Location, with all their variants
// (§4.4); a failed one invalidates nothing.
func TestUnsafeRequestsInvalidate(t *testing.T) {
	var status atomic.Int64
	status.Store(200)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.Header().Set("Location", "/b")
			w.Header().Set("Content-Location", "http://"+r.Host+"/c")
			w.WriteHeader(int(status.Load()))
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprint(w, r.URL.Path)
	})
	s := startCache(t, o, "")
	for _, p := range []string{"/a", "/b", "/c", "/d"} {
		expect(t, "fill "+p, get(t, s, p), 200, p, "miss", "stored")
		expect(t, "hit "+p, get(t, s, p), 200, p, "hit", "hit")
	}
	status.Store(500)
	r := do(t, s, http.MethodPost, "/a")
	expect(t, "failed POST", r, 500, "", "bypass", "fwd=method")
	expect(t, "after failed POST", get(t, s, "/a"), 200, "/a", "hit", "hit")

	status.Store(201)
	expect(t, "POST", do(t, s, http.MethodPost, "/a"), 201, "", "bypass", "fwd=method")
	for _, p := range []string{"/a", "/b", "/c"} {
		expect(t, "after POST "+p, get(t, s, p), 200, p, "miss", "fwd=uri-miss")
	}
	expect(t, "untouched /d", get(t, s, "/d"), 200, "/d", "hit", "hit")
}
