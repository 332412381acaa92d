package geofilter_test

import (
	"fmt"
	"testing"

	"github.com/caddy-edge/edge/internal/caddytest"
	"github.com/caddy-edge/edge/internal/mmdbtest"
)

// A deny is an answer to the client's address, which no cache key holds.
// Without Cache-Control, a shared cache in front of the filter (a CDN, or
// an http_cache of another Caddy) may store it by the status alone (451,
// 404, 301 are cacheable by default) and serve it to the clients the
// filter allows: here a front http_cache with default_ttl served the 404
// that hides the site from CN clients to a DE one. A deny is
// sent with Cache-Control: no-store, unless the rule gives its own.
func TestDenyIsNotStoredByACacheInFront(t *testing.T) {
	country := mmdbtest.Country(t, map[string]string{"198.51.100.0/24": "CN", "192.0.2.0/24": "DE"})
	back := caddytest.FreePort(t)
	s := caddytest.Start(t, globalTrusted+fmt.Sprintf(`
http://localhost:{HTTP_PORT} {
	http_cache {
		default_ttl 1h
	}
	reverse_proxy 127.0.0.1:%[1]d
}
http://:%[1]d {
	geofilter {
		db %[2]s
		deny country CN {
			status 404
			body "not in {geo.country_code}"
		}
		rule deny error {
			path /error
			status 404
		}
		rule deny own {
			path /own
			status 404
			header Cache-Control "max-age=60"
		}
	}
	respond "hello {geo.country_code}"
}
`, back, country))
	code, body, hdr := get(t, s, "GET", "/page", ipCN)
	if code != 404 || hdr.Get("Cache-Control") != "no-store" {
		t.Errorf("CN: %d %q Cache-Control %q, want 404 with no-store", code, body, hdr.Get("Cache-Control"))
	}
	if code, body, _ := get(t, s, "GET", "/page", ipDE); code != 200 || body != "hello DE" {
		t.Errorf("DE after CN: %d %q, want 200 \"hello DE\": the cache in front served the CN deny", code, body)
	}
	// A deny answered as a Caddy error (no body, file or header) too.
	if code, _, hdr := get(t, s, "GET", "/error", ipDE); code != 404 || hdr.Get("Cache-Control") != "no-store" {
		t.Errorf("error deny: %d Cache-Control %q, want 404 with no-store", code, hdr.Get("Cache-Control"))
	}
	// The rule's own Cache-Control wins.
	if code, _, hdr := get(t, s, "GET", "/own", ipDE); code != 404 || hdr.Get("Cache-Control") != "max-age=60" {
		t.Errorf("own Cache-Control: %d %q, want 404 with max-age=60", code, hdr.Get("Cache-Control"))
	}
}
