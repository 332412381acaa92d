package cache_test

import (
	"io"
	"net/http"
	"testing"
)

// When the origin cannot be reached (here: its port is closed, so the
// connection is refused), a stale stored response is served with
// Cache-Status detail=stale-if-unreachable, by default; never one whose
// directives forbid serving it stale, and never with the option off.
func TestStaleIfUnreachableServesStaleWhenTheOriginIsDown(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/must":
			w.Header().Set("Cache-Control", "max-age=0, must-revalidate")
		case "/nocache":
			w.Header().Set("Cache-Control", "no-cache")
		default:
			w.Header().Set("Cache-Control", "max-age=0")
		}
		w.Header().Set("ETag", `"v1"`)
		io.WriteString(w, "v1 "+r.URL.Path)
	})
	s := startCache(t, o, "")
	for _, p := range []string{"/page", "/must", "/nocache"} {
		expect(t, p+" stored", get(t, s, p), 200, "v1 "+p, "miss", "stored")
	}
	o.Close() // the origin goes down: its port refuses connections

	expect(t, "stale while unreachable", get(t, s, "/page"), 200, "v1 /page", "stale", "fwd=stale; fwd-status=502", "detail=stale-if-unreachable")
	for _, p := range []string{"/must", "/nocache"} {
		r := get(t, s, p)
		if r.status != http.StatusBadGateway {
			t.Errorf("%s (may not be served stale) while unreachable: status %d, want 502 (Cache-Status %q)", p, r.status, r.cs())
		}
	}

	reload(t, s, siteConfig(o, "stale_if_unreachable off"))
	var r result
	waitFor(t, "the reloaded config (stale_if_unreachable off) to answer", func() bool {
		r = get(t, s, "/page")
		return r.status != http.StatusOK
	})
	if r.status != http.StatusBadGateway {
		t.Errorf("with stale_if_unreachable off: status %d, want 502 (Cache-Status %q)", r.status, r.cs())
	}
}

// A 5xx response from an origin that answers is not "unreachable": without
// stale-if-error it reaches the client as it is.
func TestStaleIfUnreachableIgnoresServerErrorResponses(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=0")
		w.Header().Set("ETag", `"v1"`)
		io.WriteString(w, "v1")
	})
	s := startCache(t, o, "")
	expect(t, "stored", get(t, s, "/p"), 200, "v1", "miss", "stored")
	o.set(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "maintenance")
	})
	expect(t, "503 response", get(t, s, "/p"), http.StatusServiceUnavailable, "maintenance", "uncacheable", "fwd=stale; fwd-status=503")
}
