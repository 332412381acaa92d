package cache_test

import (
	"bufio"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-edge/edge/internal/caddytest"
)

// postPage sends a POST of /page, which invalidates it (the origin
// answers 200).
func postPage(t *testing.T, s *caddytest.Server) {
	t.Helper()
	if r := do(t, s, http.MethodPost, "/page"); r.status != 200 {
		t.Fatalf("POST: %d", r.status)
	}
}

// A purge (by URL, prefix or tag, hard or soft) or an invalidating POST
// that runs while a miss of the URL is being fetched and stored must not
// be undone by that fetch: the origin sent its response before the purge,
// so it is the version the purge was meant to remove. Committed after the
// purge, it would be served as fresh for its whole max-age.
func TestPurgeDuringAFillIsNotUndone(t *testing.T) {
	for _, tt := range []struct {
		name  string
		purge func(t *testing.T, s *caddytest.Server)
		// want is what the request after the fill gets: a miss of the new
		// version, or (soft) a revalidation that finds the version changed.
		want string
	}{
		{"url", func(t *testing.T, s *caddytest.Server) { adminPurge(t, s, `{"url": "`+s.URL("/page")+`"}`) }, "miss"},
		{"prefix", func(t *testing.T, s *caddytest.Server) { adminPurge(t, s, `{"prefix": "`+s.URL("/pa")+`"}`) }, "miss"},
		{"tag", func(t *testing.T, s *caddytest.Server) { adminPurge(t, s, `{"tag": "page"}`) }, "miss"},
		{"soft url", func(t *testing.T, s *caddytest.Server) {
			adminPurge(t, s, `{"url": "`+s.URL("/page")+`", "soft": true}`)
		}, "miss"},
		{"post", postPage, "miss"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var version atomic.Value
			version.Store("old")
			release := make(chan struct{})
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPost {
					version.Store("new") // the POST changes the resource
					io.WriteString(w, "updated")
					return
				}
				v := version.Load().(string)
				w.Header().Set("Cache-Control", "max-age=600")
				w.Header().Set("ETag", `"`+v+`"`)
				w.Header().Set("Cache-Tag", "page")
				if r.Header.Get("If-None-Match") == `"`+v+`"` {
					w.WriteHeader(http.StatusNotModified)
					return
				}
				io.WriteString(w, v+" first\n")
				w.(http.Flusher).Flush()
				if v == "old" {
					select { // the rest of the old version once the purge ran
					case <-release:
					case <-time.After(10 * time.Second):
					}
				}
				io.WriteString(w, v+" second\n")
			})
			s := startCache(t, o, "")

			resp, err := s.Client.Get(s.URL("/page"))
			if err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(resp.Body)
			if line, err := br.ReadString('\n'); err != nil || line != "old first\n" {
				t.Fatalf("first line %q, %v", line, err)
			}
			// The old version's body is on its way into the store: the
			// resource changes and is purged meanwhile.
			version.Store("new")
			tt.purge(t, s)
			close(release)
			rest, _ := io.ReadAll(br)
			resp.Body.Close()
			if string(rest) != "old second\n" {
				t.Fatalf("the fill's client got %q after its first line", rest)
			}

			expect(t, "after the purge", get(t, s, "/page"), 200, "new first\nnew second\n", tt.want)
			expect(t, "then", get(t, s, "/page"), 200, "new first\nnew second\n", "hit")
		})
	}
}

// A soft purge that runs while a revalidation of the entry is in flight
// is not undone by the 304 that answers it: the origin validated the
// version before the purge, which the purge made stale.
func TestSoftPurgeDuringARevalidationIsNotUndone(t *testing.T) {
	var version atomic.Value
	version.Store("old")
	release := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		v := version.Load().(string)
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("ETag", `"`+v+`"`)
		if r.Header.Get("If-None-Match") == `"old"` && v == "old" {
			select { // the 304 once the purge ran
			case <-release:
			case <-time.After(10 * time.Second):
			}
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, v)
	})
	s := startCache(t, o, "")
	expect(t, "fill", get(t, s, "/page"), 200, "old", "miss")
	adminPurge(t, s, `{"url": "`+s.URL("/page")+`", "soft": true}`)

	done := make(chan result, 1)
	go func() { done <- get(t, s, "/page") }()
	waitFor(t, "the revalidation to reach the origin", func() bool { return o.n.Load() == 2 })
	version.Store("new") // the origin's 304, decided already, is about "old"
	adminPurge(t, s, `{"url": "`+s.URL("/page")+`", "soft": true}`)
	close(release)
	expect(t, "the revalidation", <-done, 200, "old", "revalidated")
	expect(t, "after the second purge", get(t, s, "/page"), 200, "new", "miss")
}
