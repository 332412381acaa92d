package cache_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-edge/edge/internal/caddytest"
)

// staticDir returns a folder with the files named, each holding its own
// name, last modified a year ago: file_server's Last-Modified then gives
// them a long heuristic freshness (RFC 9111 §4.2.2).
func staticDir(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	old := time.Now().AddDate(-1, 0, 0)
	for _, n := range names {
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// accelSite serves the file the origin names with X-Accel-Redirect.
const accelSite = `reverse_proxy {ORIGIN} {
		@accel header X-Accel-Redirect *
		handle_response @accel {
			root * {DIR}
			rewrite * {rp.header.X-Accel-Redirect}
			file_server
		}
	}`

// A response that a route after the cache makes up in place of the
// origin's (a reverse_proxy handle_response route serving the file the
// origin named with X-Accel-Redirect, an intercept route's error page) has
// file_server's fields, not the origin's. It is stored only with explicit
// freshness of its own: by heuristics, the file the origin handed to one
// client after checking its credentials would be served to every client of
// the URL. The responses that reach the cache as the origin or file_server
// wrote them are stored by heuristics as before, with a reverse_proxy in
// front of the cache (forward_auth) too.
func TestComposedResponsesStoredOnlyWithExplicitFreshness(t *testing.T) {
	dir := staticDir(t, "report.txt", "err.html", "page.txt")
	cases := []struct {
		name   string
		origin http.HandlerFunc
		site   string // what follows http_cache in the site; {ORIGIN}, {DIR}
		body   string
		stored bool
	}{
		{
			name:   "X-Accel-Redirect of a private response",
			origin: serve("", "X-Accel-Redirect", "/report.txt", "Cache-Control", "private"),
			site:   accelSite,
			body:   "report.txt",
		},
		{
			name:   "X-Accel-Redirect without caching fields",
			origin: serve("", "X-Accel-Redirect", "/report.txt"),
			site:   accelSite,
			body:   "report.txt",
		},
		{
			// copy_response_headers copies the origin's Date as well:
			// the response still is file_server's.
			name:   "X-Accel-Redirect with the origin's fields copied",
			origin: serve("", "X-Accel-Redirect", "/report.txt"),
			site: `reverse_proxy {ORIGIN} {
		@accel header X-Accel-Redirect *
		handle_response @accel {
			copy_response_headers {
				exclude X-Accel-Redirect
			}
			root * {DIR}
			rewrite * {rp.header.X-Accel-Redirect}
			file_server
		}
	}`,
			body: "report.txt",
		},
		{
			// PHP-FPM sends no Date, and a script that hands out a file
			// names its type.
			name: "X-Accel-Redirect from an origin without Date",
			origin: func(w http.ResponseWriter, r *http.Request) {
				w.Header()["Date"] = nil
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.Header().Set("X-Accel-Redirect", "/report.txt")
			},
			site: accelSite,
			body: "report.txt",
		},
		{
			name:   "X-Accel-Redirect with freshness set in the route",
			origin: serve("", "X-Accel-Redirect", "/report.txt"),
			site: `reverse_proxy {ORIGIN} {
		@accel header X-Accel-Redirect *
		handle_response @accel {
			header Cache-Control "max-age=60"
			root * {DIR}
			rewrite * {rp.header.X-Accel-Redirect}
			file_server
		}
	}`,
			body:   "report.txt",
			stored: true,
		},
		{
			name: "intercept's error page",
			origin: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusNotFound)
			},
			site: `intercept {
		@missing status 404
		handle_response @missing {
			root * {DIR}
			rewrite * /err.html
			file_server
		}
	}
	reverse_proxy {ORIGIN}`,
			body: "err.html",
		},
		{
			name:   "the origin's response with only Last-Modified",
			origin: serve("page", "Last-Modified", time.Now().AddDate(-1, 0, 0).UTC().Format(http.TimeFormat)),
			site:   `reverse_proxy {ORIGIN}`,
			body:   "page",
			stored: true,
		},
		{
			name:   "file_server behind a forward_auth in front of the cache",
			origin: serve("", "X-User", "u1"),
			site: `root * {DIR}
	file_server`,
			body:   "page.txt",
			stored: true,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := newOrigin(t, c.origin)
			path := "/report"
			front := ""
			if strings.HasPrefix(c.site, "root") {
				path = "/page.txt"
				front = "forward_auth " + o.addr() + " {\n\t\turi /auth\n\t}"
			}
			site := strings.NewReplacer("{ORIGIN}", o.addr(), "{DIR}", dir).Replace(c.site)
			s := caddytest.Start(t, `
http://localhost:{HTTP_PORT} {
	`+front+`
	http_cache
	`+site+`
}
`)
			// The second variant's first request is conditional: its fetch
			// runs aside, with a copy of the request (aside.go).
			for _, first := range [][]string{nil, {"If-None-Match", `"other"`}} {
				p := path
				if first != nil {
					p += "?conditional"
				}
				r := get(t, s, p, first...)
				if r.status != http.StatusOK || r.body != c.body {
					t.Fatalf("%s: %d %q, want 200 %q (Cache-Status %q)", p, r.status, r.body, c.body, r.cs())
				}
				if !c.stored && !strings.Contains(r.cs(), "detail=composed") {
					t.Errorf("%s: Cache-Status %q lacks detail=composed", p, r.cs())
				}
				second := get(t, s, p)
				if second.body != c.body {
					t.Fatalf("%s again: body %q, want %q", p, second.body, c.body)
				}
				if hit := strings.Contains(second.cs(), "; hit"); hit != c.stored {
					t.Errorf("%s again: Cache-Status %q, want stored %v", p, second.cs(), c.stored)
				}
			}
		})
	}
}

// The origin's response is told by the Via that reverse_proxy puts before
// the origin's own Via values. An origin with a Via and one without, behind
// a forward_auth in front of the cache whose answer has a Via, are stored
// by heuristics, on the client's request and on a copy of it (a fetch
// aside), which must not take forward_auth's Via for the origin's.
func TestComposedOriginWithViaStored(t *testing.T) {
	lm := time.Now().AddDate(-1, 0, 0).UTC().Format(http.TimeFormat)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/auth" {
			w.Header().Set("Via", "1.1 auth-gateway")
			w.Header().Set("X-User", "u1")
			return
		}
		if r.URL.Path == "/tiered" {
			w.Header().Set("Via", "1.1 app-tier, 1.0 legacy")
		}
		serve("page", "Last-Modified", lm)(w, r)
	})
	s := caddytest.Start(t, `
http://localhost:{HTTP_PORT} {
	forward_auth `+o.addr()+` {
		uri /auth
		copy_headers X-User
	}
	http_cache
	reverse_proxy `+o.addr()+`
}
`)
	for _, p := range []string{"/page", "/page?conditional", "/tiered", "/tiered?conditional"} {
		var first []string
		if strings.HasSuffix(p, "?conditional") {
			first = []string{"If-None-Match", `"other"`}
		}
		r := get(t, s, p, first...)
		if r.status != http.StatusOK || r.body != "page" || !strings.Contains(r.cs(), "; stored") {
			t.Fatalf("%s: %d %q, Cache-Status %q, want 200 stored", p, r.status, r.body, r.cs())
		}
		if hit := get(t, s, p); !strings.Contains(hit.cs(), "; hit") {
			t.Errorf("%s again: Cache-Status %q, want a hit", p, hit.cs())
		}
	}
}
