package cache_test

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-edge/edge/internal/caddytest"
)

// A field that a header directive in front of the cache sets (applied
// at once, not deferred) and that the origin's response has too reaches
// the client with both values, as reverse_proxy adds the origin's fields
// to the client's header: the cache's miss and hit must not drop the
// operator's (a Content-Security-Policy, an X-Frame-Options).
func TestHeaderInFrontKeptWithOrigins(t *testing.T) {
	o := newOrigin(t, serve("page", "Cache-Control", "max-age=60", "Content-Security-Policy", "default-src *"))
	s := caddytest.Start(t, `
http://localhost:{HTTP_PORT} {
	header Content-Security-Policy "frame-ancestors 'none'"
	handle /plain/* {
		reverse_proxy `+o.addr()+`
	}
	handle {
		http_cache
		reverse_proxy `+o.addr()+`
	}
}
`)
	want := get(t, s, "/plain/a").header["Content-Security-Policy"]
	if !slices.Contains(want, "frame-ancestors 'none'") {
		t.Fatalf("without the cache: Content-Security-Policy %q", want)
	}
	for _, what := range []string{"miss", "hit"} {
		got := get(t, s, "/a").header["Content-Security-Policy"]
		slices.Sort(got)
		w := slices.Sorted(slices.Values(want))
		if !slices.Equal(got, w) {
			t.Errorf("%s: Content-Security-Policy %q, want %q as without the cache", what, got, w)
		}
	}
}

// The cookies of a 304 that freshens the stored response go to the
// client that caused it after those a handler in front of the cache set,
// not in their place.
func TestHeaderInFrontKeepsCookieOnRevalidation(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=0")
		w.Header().Set("Etag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.Header().Set("Set-Cookie", "origin=2")
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, "page")
	})
	s := caddytest.Start(t, `
http://localhost:{HTTP_PORT} {
	header Set-Cookie "front=1"
	http_cache
	reverse_proxy `+o.addr()+`
}
`)
	get(t, s, "/a")
	r := get(t, s, "/a")
	if !strings.Contains(r.cs(), "fwd-status=304") {
		t.Fatalf("not revalidated: Cache-Status %q", r.cs())
	}
	got := slices.Sorted(slices.Values(r.header["Set-Cookie"]))
	if want := []string{"front=1", "origin=2"}; !slices.Equal(got, want) {
		t.Errorf("Set-Cookie %q, want %q", got, want)
	}
}
