package cache_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-edge/edge/internal/caddytest"
	"github.com/caddy-edge/edge/internal/mmdbtest"
)

// Issue 11 item 4: If-Modified-Since on a fresh stored response without
// Last-Modified is answered with 304 when the stored Date is not after the
// request's date (RFC 9111 §4.3.2), and with the full response otherwise.
func TestIfModifiedSinceWithoutLastModified(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "body")
	})
	s := startCache(t, o, "")
	expect(t, "fill", get(t, s, "/ims"), 200, "body", "miss", "stored")
	later := time.Now().Add(time.Minute).UTC().Format(http.TimeFormat)
	earlier := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	expect(t, "IMS after the stored Date", get(t, s, "/ims", "If-Modified-Since", later), 304, "", "hit", "hit")
	expect(t, "IMS before the stored Date", get(t, s, "/ims", "If-Modified-Since", earlier), 200, "body", "hit", "hit")
	if n := o.n.Load(); n != 1 {
		t.Errorf("origin got %d requests, want 1", n)
	}
}

// Issue 11 item 8: vary placeholders are variant dimensions that behave
// like the response's Vary: every value has its own variant under the
// URL's key, a response's own Vary still applies, and a purge of the URL
// (or a prefix) takes every variant.
func TestVaryPlaceholders(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if r.URL.Path == "/lang" {
			w.Header().Set("Vary", "Accept-Language")
		}
		io.WriteString(w, r.URL.Path+" device="+r.Header.Get("X-Device")+" lang="+r.Header.Get("Accept-Language"))
	})
	s := startCache(t, o, "vary {http.request.header.X-Device}")
	expect(t, "mobile miss", get(t, s, "/p", "X-Device", "mobile"), 200, "/p device=mobile lang=", "miss", "fwd=uri-miss", "stored")
	expect(t, "desktop vary-miss", get(t, s, "/p", "X-Device", "desktop"), 200, "/p device=desktop lang=", "miss", "fwd=vary-miss", "stored")
	expect(t, "mobile hit", get(t, s, "/p", "X-Device", "mobile"), 200, "/p device=mobile lang=", "hit", "hit")
	expect(t, "desktop hit", get(t, s, "/p", "X-Device", "desktop"), 200, "/p device=desktop lang=", "hit", "hit")
	expect(t, "no device is its own variant", get(t, s, "/p"), 200, "/p device= lang=", "miss", "fwd=vary-miss")
	// A value that spells another dimension's separator stays apart.
	expect(t, "separator in the value", get(t, s, "/p", "X-Device", "mobile&x=1"), 200, "/p device=mobile&x=1 lang=", "miss", "fwd=vary-miss")

	// With the response's own Vary on top.
	expect(t, "lang en mobile", get(t, s, "/lang", "X-Device", "mobile", "Accept-Language", "en"), 200, "/lang device=mobile lang=en", "miss", "stored")
	expect(t, "lang fr mobile", get(t, s, "/lang", "X-Device", "mobile", "Accept-Language", "fr"), 200, "/lang device=mobile lang=fr", "miss", "stored")
	expect(t, "lang en mobile hit", get(t, s, "/lang", "X-Device", "mobile", "Accept-Language", "en"), 200, "/lang device=mobile lang=en", "hit", "hit")
	expect(t, "lang en desktop", get(t, s, "/lang", "X-Device", "desktop", "Accept-Language", "en"), 200, "/lang device=desktop lang=en", "miss", "stored")

	// A purge of the URL takes every variant.
	purgeVia(t, s, `{"url": "`+s.URL("/p")+`"}`)
	expect(t, "mobile after purge", get(t, s, "/p", "X-Device", "mobile"), 200, "/p device=mobile lang=", "miss", "fwd=uri-miss")
	expect(t, "desktop after purge", get(t, s, "/p", "X-Device", "desktop"), 200, "/p device=desktop lang=", "miss", "fwd=vary-miss")
	// And so does a prefix.
	purgeVia(t, s, `{"prefix": "`+s.URL("/la")+`"}`)
	expect(t, "lang after prefix purge", get(t, s, "/lang", "X-Device", "mobile", "Accept-Language", "en"), 200, "/lang device=mobile lang=en", "miss", "fwd=uri-miss")
}

// purgeVia posts body to the admin API's purge route.
func purgeVia(t *testing.T, s *caddytest.Server, body string) {
	t.Helper()
	resp, err := http.Post(s.AdminURL("/http_cache/purge"), "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("purge %s: %s", body, resp.Status)
	}
}

// Issue 11 item 6: a POST response with explicit freshness and a
// Content-Location equal to the request URI is stored, keyed as a GET of
// that URI, and answers the next GET (RFC 9110 §9.3.3, RFC 9111 §4). One
// without explicit freshness or with another Content-Location is not, and
// still invalidates the URI (§4.4).
func TestPOSTWithContentLocationStoredForGET(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			b, _ := io.ReadAll(r.Body)
			switch r.URL.Path {
			case "/doc":
				w.Header().Set("Content-Location", "/doc")
				w.Header().Set("Cache-Control", "max-age=60")
			case "/abs":
				w.Header().Set("Content-Location", "http://"+r.Host+"/abs")
				w.Header().Set("Cache-Control", "max-age=60")
			case "/nofresh":
				w.Header().Set("Content-Location", "/nofresh")
			case "/other":
				w.Header().Set("Content-Location", "/elsewhere")
				w.Header().Set("Cache-Control", "max-age=60")
			}
			io.WriteString(w, "posted "+string(b))
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "got "+r.URL.Path)
	})
	s := startCache(t, o, "")
	post := func(p string) result {
		t.Helper()
		resp, err := s.Client.Post(s.URL(p), "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return result{status: resp.StatusCode, header: resp.Header, body: string(b)}
	}
	for _, p := range []string{"/doc", "/abs"} {
		expect(t, "POST "+p, post(p), 200, "posted x", "miss", "fwd=method", "stored")
		expect(t, "GET "+p+" after it", get(t, s, p), 200, "posted x", "hit", "hit")
		expect(t, "HEAD "+p+" after it", do(t, s, http.MethodHead, p), 200, "", "hit", "hit")
	}
	for _, p := range []string{"/nofresh", "/other"} {
		expect(t, "fill "+p, get(t, s, p), 200, "got "+p, "miss", "stored")
		expect(t, "POST "+p, post(p), 200, "posted x", "bypass", "fwd=method")
		expect(t, "GET "+p+" after it", get(t, s, p), 200, "got "+p, "miss", "fwd=uri-miss")
	}
}

// Issue 11 item 8, the README's per-country cache: geofilter sets
// {geo.country_code}, and `vary {geo.country_code}` gives each country its
// own variant of a URL, all purged with the URL.
func TestVaryPerCountry(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "page for "+r.Header.Get("X-Country"))
	})
	db := mmdbtest.Country(t, map[string]string{"192.0.2.0/25": "DE", "192.0.2.128/25": "US"})
	s := caddytest.Start(t, `{
	admin {ADMIN_ADDR}
	http_port {HTTP_PORT}
	auto_https off
	skip_install_trust
	persist_config off
	servers {
		trusted_proxies static 127.0.0.1/8 ::1
	}
}
http://localhost:{HTTP_PORT} {
	header >X-Result {http_cache.status}
	geofilter {
		db `+db+`
	}
	http_cache {
		vary {geo.country_code}
	}
	reverse_proxy `+o.addr()+` {
		header_up X-Country {geo.country_code}
	}
}
`)
	de, us := "192.0.2.10", "192.0.2.200"
	expect(t, "DE miss", get(t, s, "/home", "X-Forwarded-For", de), 200, "page for DE", "miss", "stored")
	expect(t, "US miss", get(t, s, "/home", "X-Forwarded-For", us), 200, "page for US", "miss", "fwd=vary-miss", "stored")
	expect(t, "DE hit", get(t, s, "/home", "X-Forwarded-For", de), 200, "page for DE", "hit", "hit")
	expect(t, "US hit", get(t, s, "/home", "X-Forwarded-For", us), 200, "page for US", "hit", "hit")
	purgeVia(t, s, `{"url": "`+s.URL("/home")+`"}`)
	expect(t, "US after purge", get(t, s, "/home", "X-Forwarded-For", us), 200, "page for US", "miss", "fwd=uri-miss")
	if n := o.n.Load(); n != 3 {
		t.Errorf("origin got %d requests, want 3", n)
	}
}
