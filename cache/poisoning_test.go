package cache_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-edge/edge/internal/caddytest"
)

// preconditionOrigin is an origin that sets its caching fields before
// http.ServeContent, as a Go (or Caddy file_server) origin does: the 412
// that ServeContent writes for a failed If-Match or If-Unmodified-Since
// keeps them, explicit freshness included.
func preconditionOrigin(t *testing.T) *origin {
	lm := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	return newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Etag", `"v1"`)
		http.ServeContent(w, r, "", lm, strings.NewReader("good"))
	})
}

// The cache leaves If-Match and If-Unmodified-Since to the origin. A 412
// answers the client's precondition, not the URL: stored under the URL's
// key it is served to every client (cache-poisoned denial of service).
// Three ways in: a cold miss, a forced revalidation (request no-cache) of
// a fresh entry, and a stale-while-revalidate refresh, which copies the
// client's header.
func TestPreconditionFailedNeverStored(t *testing.T) {
	preconds := [][]string{
		{"If-Match", `"attacker"`},
		{"If-Unmodified-Since", "Mon, 01 Jan 2001 00:00:00 GMT"},
	}
	for _, pc := range preconds {
		t.Run(pc[0]+"/miss", func(t *testing.T) {
			o := preconditionOrigin(t)
			s := startCache(t, o, "")
			expect(t, "attacker", get(t, s, "/p", pc...), 412, "*", "")
			expect(t, "victim", get(t, s, "/p"), 200, "good", "")
		})
		t.Run(pc[0]+"/forced-revalidation", func(t *testing.T) {
			o := preconditionOrigin(t)
			s := startCache(t, o, "")
			expect(t, "fill", get(t, s, "/p"), 200, "good", "miss", "stored")
			expect(t, "attacker", get(t, s, "/p", append([]string{"Cache-Control", "no-cache"}, pc...)...), 412, "*", "")
			expect(t, "victim", get(t, s, "/p"), 200, "good", "hit")
		})
		t.Run(pc[0]+"/swr-refresh", func(t *testing.T) {
			lm := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=1, stale-while-revalidate=600")
				w.Header().Set("Etag", `"v1"`)
				http.ServeContent(w, r, "", lm, strings.NewReader("good"))
			})
			s := startCache(t, o, "")
			expect(t, "fill", get(t, s, "/p"), 200, "good", "miss", "stored")
			time.Sleep(2100 * time.Millisecond)
			expect(t, "attacker gets stale, starts the refresh", get(t, s, "/p", pc...), 200, "good", "stale")
			waitFor(t, "the refresh", func() bool { return o.n.Load() == 2 })
			time.Sleep(100 * time.Millisecond)
			r := get(t, s, "/p")
			if r.status != 200 || r.body != "good" {
				t.Errorf("victim after the refresh: %d %q (Cache-Status %q), want 200 \"good\"", r.status, r.body, r.cs())
			}
		})
	}
}

// rawGet sends a GET with the header lines as written (name, value pairs;
// a name may repeat) over a new HTTP/1.1 connection: net/http's client
// sends one User-Agent line only.
func rawGet(t *testing.T, s *caddytest.Server, path string, fields ...string) result {
	t.Helper()
	return rawGetHost(t, s, nil, path, fields...)
}

// rawGetHost is rawGet with the Host that host makes of the server's
// ("localhost:PORT"), such as strings.ToUpper; nil for the server's own.
func rawGetHost(t *testing.T, s *caddytest.Server, host func(string) string, path string, fields ...string) result {
	t.Helper()
	u, err := url.Parse(s.URL(path))
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := u.Host
	if host != nil {
		h = host(h)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", u.RequestURI(), h)
	for i := 0; i+1 < len(fields); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", fields[i], fields[i+1])
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

// Vary on a field that is not a list (User-Agent, RFC 9110 §10.1.5): the
// variant key splits its value on commas and joins its field lines with
// ",", dropping the whitespace around, so one line "...(KHTML, like
// Gecko) Chrome/..." and two lines "...(KHTML" + "like Gecko) Chrome/..."
// share a variant. RFC 9110 §5.3 allows combining lines only for list
// fields, and the origin sees another value: reverse_proxy's transport
// forwards the first User-Agent line only. A client can so store the
// origin's answer to a truncated User-Agent under the variant of every
// client with the full one.
func TestVaryNonListFieldLinesNotMerged(t *testing.T) {
	const ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Vary", "User-Agent")
		if strings.Contains(r.Header.Get("User-Agent"), "Chrome/") {
			io.WriteString(w, "modern")
			return
		}
		io.WriteString(w, "legacy")
	})
	s := startCache(t, o, "")
	first, rest, _ := strings.Cut(ua, ", ")
	expect(t, "attacker, two lines", rawGet(t, s, "/ua", "User-Agent", first, "User-Agent", rest), 200, "legacy", "")
	if got := o.last().Header["User-Agent"]; len(got) != 1 || got[0] != first {
		t.Logf("origin saw User-Agent %q", got)
	}
	expect(t, "victim, one line", rawGet(t, s, "/ua", "User-Agent", ua), 200, "modern", "")
	// Whitespace inside a non-list value is the value's own, too.
	expect(t, "victim 2", rawGet(t, s, "/ua2", "User-Agent", ua), 200, "modern", "miss")
	expect(t, "doubled space", rawGet(t, s, "/ua2", "User-Agent", strings.Replace(ua, "(X11; Linux", "(X11;  Linux", 1)), 200, "modern", "miss")
}

// A request field that the request's Connection lists is hop-by-hop (RFC
// 9110 §7.6.1): reverse_proxy removes it before the origin. The variant
// key must not read it either, or a client selects a variant with a
// field the origin never sees: here the CORS answer for an Origin is
// stored without Access-Control-Allow-Origin, and every page of that
// Origin fails; with the vary option, the mobile variant gets the
// desktop page.
func TestVaryIgnoresConnectionListedFields(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		if r.URL.Path == "/cors" {
			w.Header().Set("Vary", "Origin")
			if origin := r.Header.Get("Origin"); origin == "https://app.example" {
				w.Header().Set("Access-Control-Allow-Origin", origin)
			}
		}
		io.WriteString(w, "device="+r.Header.Get("X-Device"))
	})
	s := startCache(t, o, "vary {http.request.header.X-Device}")
	rawGet(t, s, "/cors", "Origin", "https://app.example", "Connection", "Origin")
	r := rawGet(t, s, "/cors", "Origin", "https://app.example")
	if got := r.header.Get("Access-Control-Allow-Origin"); got != "https://app.example" {
		t.Errorf("victim of Origin https://app.example: Access-Control-Allow-Origin %q (Cache-Status %q)", got, r.cs())
	}
	expect(t, "attacker", rawGet(t, s, "/p", "X-Device", "mobile", "Connection", "X-Device"), 200, "device=", "")
	expect(t, "mobile victim", rawGet(t, s, "/p", "X-Device", "mobile"), 200, "device=mobile", "")
}

// RFC 9111 §4.3.4: a 304 whose validator selects no stored response
// (another strong ETag) "MUST NOT" update any. Merged, the stored body of
// version 1 would be served, to every client, under the 304's fields for
// another representation (ETag, Content-Type).
func TestNotModifiedWithOtherValidatorDoesNotUpdate(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=0")
		if r.Header.Get("If-None-Match") != "" {
			w.Header().Set("Etag", `"v2"`)
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Etag", `"v1"`)
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "<b>v1</b>")
	})
	s := startCache(t, o, "")
	expect(t, "fill", get(t, s, "/m"), 200, "<b>v1</b>", "miss", "stored")
	for i := range 2 {
		r := get(t, s, "/m")
		if r.body == "<b>v1</b>" && (r.header.Get("Etag") != `"v1"` || r.header.Get("Content-Type") != "text/plain") {
			t.Errorf("request %d: body of v1 served with Etag %q, Content-Type %q (Cache-Status %q)",
				i+2, r.header.Get("Etag"), r.header.Get("Content-Type"), r.cs())
		}
	}
}

// With a key template on {http.request.uri.path} (the example of the key
// option's documentation), the key holds Caddy's decoded path: /x%2Fy
// and /x/y share a key, which many origins tell apart (a 404, or another
// route for an encoded slash). A client so stores the answer to /x%2Fy
// for every client of /x/y.
func TestKeyTemplatePathEncodedSlash(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		if strings.Contains(r.RequestURI, "%2F") {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, "not found")
			return
		}
		io.WriteString(w, "page")
	})
	s := startCache(t, o, "key {http.request.host}{http.request.uri.path}")
	expect(t, "attacker", rawGet(t, s, "/x%2Fy"), 404, "not found", "")
	expect(t, "victim", rawGet(t, s, "/x/y"), 200, "page", "")
}

// The default key names the site by the request's Host, but Caddy picks
// the site by the port the request arrived on and the Host's name only:
// its host matcher ignores the Host's port. With two sites of one name on
// two ports (an admin or staging app on another port, or a catch-all
// ":port" site), both caching in the default store, which every site
// shares, a client that sends the other port's site a Host naming the
// first one's port stores the other site's response under the first
// one's key, for every client of the first site.
func TestOtherPortsSiteCannotFillTheKey(t *testing.T) {
	for _, other := range []string{"http://localhost:%d", "http://:%d"} {
		t.Run(strings.TrimSuffix(other, "%d"), func(t *testing.T) {
			a := newOrigin(t, serve("site a", "Cache-Control", "max-age=600"))
			b := newOrigin(t, serve("site b", "Cache-Control", "max-age=600"))
			port := caddytest.FreePort(t)
			s := caddytest.Start(t, `
http://localhost:{HTTP_PORT} {
	http_cache
	reverse_proxy `+a.addr()+`
}
`+fmt.Sprintf(other, port)+` {
	http_cache
	reverse_proxy `+b.addr()+`
}
`)
			req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://localhost:%d/page", port), nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = fmt.Sprintf("localhost:%d", s.HTTPPort) // the first site's
			resp, err := s.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "site b" {
				t.Fatalf("attacker on the other port: %d %q, want the other site's answer", resp.StatusCode, body)
			}
			expect(t, "victim of the first site", get(t, s, "/page"), 200, "site a", "")
		})
	}
}

// Behind a load balancer that Caddy trusts (trusted_proxies) and that
// forwards both its HTTP and its HTTPS listener to one Caddy port (as an
// AWS ALB does), the client's scheme is the balancer's X-Forwarded-Proto,
// which reverse_proxy passes on to the origin; the default key took the
// scheme of the balancer's connection to Caddy, the same for both. An
// origin that redirects plain HTTP to HTTPS (Django's SECURE_SSL_REDIRECT,
// Rails' force_ssl) then has that redirect, stored for the first
// visitor over HTTP, served to every HTTPS visitor: a redirect loop.
func TestForwardedProtoOfATrustedProxyIsKeyed(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		if r.Header.Get("X-Forwarded-Proto") != "https" {
			http.Redirect(w, r, "https://"+r.Host+r.URL.RequestURI(), http.StatusMovedPermanently)
			return
		}
		io.WriteString(w, "page")
	})
	s := caddytest.Start(t, caddytest.Global("\tservers {\n\t\ttrusted_proxies static 127.0.0.1/8 ::1\n\t}\n")+`
http://localhost:{HTTP_PORT} {
	http_cache
	reverse_proxy `+o.addr()+`
}
`)
	expect(t, "a visitor over HTTP", get(t, s, "/page", "X-Forwarded-Proto", "http"), 301, "*", "")
	expect(t, "a visitor over HTTPS", get(t, s, "/page", "X-Forwarded-Proto", "https"), 200, "page", "")
	expect(t, "another visitor over HTTPS", get(t, s, "/page", "X-Forwarded-Proto", "https"), 200, "page", "", "hit")
}

// The key holds the Host in lower case, but the origin gets it as the
// client sent it, and may answer another case otherwise: Go's ServeMux
// matches a host pattern as written, so "EXAMPLE.COM" finds no site there
// (404, cacheable by default, stored with default_ttl). Browsers send
// the Host in lower case; one client that does not stored the 404 for
// all of them.
func TestHostInCapitalsDoesNotFillTheKey(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Host != strings.ToLower(r.Host) {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "page")
	})
	s := startCache(t, o, "default_ttl 1m")
	if r := rawGetHost(t, s, strings.ToUpper, "/page"); r.status != http.StatusNotFound {
		t.Fatalf("client with a Host in capitals: %d, want the origin's 404", r.status)
	}
	expect(t, "browser", get(t, s, "/page"), 200, "page", "")
}
