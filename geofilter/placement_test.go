package geofilter_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-edge/edge/internal/caddytest"
	"github.com/caddy-edge/edge/internal/mmdbtest"
)

// An http_cache that runs before a geofilter serves what it stored to
// every client, without the filter: with the cache at the site's top level
// and the filter in a handle block (the usual way to guard one path), a
// response stored for an allowed client was a hit for a denied one. Such a
// config is refused at load when the cache can take every request the
// filter guards (no matcher, no bypass); a cache that may leave them
// alone (a matcher, a bypass) is accepted with a warning. A geofilter
// before the cache, or in a handle block apart from it, is fine.
func TestGeofilterBehindHTTPCacheRefused(t *testing.T) {
	country := mmdbtest.Country(t, map[string]string{"198.51.100.0/24": "CN"})
	filter := "geofilter {\n\t\tdb " + country + "\n\t\tdeny country CN\n\t}"
	const want = "geofilter runs after http_cache"
	for _, tt := range []struct {
		name, site, want string
	}{
		{"cache at the top, filter in a handle", "http_cache\nhandle /video/* {\n\t" + filter + "\n\treverse_proxy 127.0.0.1:9\n}", want},
		{"cache at the top, filter in a handle_path", "http_cache\nhandle_path /video/* {\n\t" + filter + "\n\treverse_proxy 127.0.0.1:9\n}", want},
		{"cache at the top, filter in a nested route", "http_cache\nhandle /video/* {\n\troute {\n\t\t" + filter + "\n\t\treverse_proxy 127.0.0.1:9\n\t}\n}", want},
		{"cache before the filter in a route", "route {\n\thttp_cache\n\t" + filter + "\n\treverse_proxy 127.0.0.1:9\n}", want},
		{"cache in a route block, filter in the next", "route {\n\troute {\n\t\thttp_cache\n\t}\n\troute {\n\t\t" + filter + "\n\t\treverse_proxy 127.0.0.1:9\n\t}\n}", want},
		{"cache in a route block after a handle with the filter", "route {\n\thttp_cache\n}\nhandle /video/* {\n\t" + filter + "\n\treverse_proxy 127.0.0.1:9\n}", ""},
		{"filter that denies nothing", "http_cache\nhandle /video/* {\n\tgeofilter {\n\t\tdb " + country + "\n\t}\n\theader X-Country {geo.country_code}\n\treverse_proxy 127.0.0.1:9\n}", ""},
		{"filter and cache at the top", filter + "\nhttp_cache\nreverse_proxy 127.0.0.1:9", ""},
		{"filter, cache and a block in a route", "route {\n\t" + filter + "\n\thttp_cache\n\troute {\n\t\trespond \"x\"\n\t}\n}", ""},
		{"filter before the cache in a route", "route {\n\t" + filter + "\n\thttp_cache\n\treverse_proxy 127.0.0.1:9\n}", ""},
		{"cache with a bypass", "http_cache {\n\tbypass path /video/*\n}\nhandle /video/* {\n\t" + filter + "\n\treverse_proxy 127.0.0.1:9\n}", ""},
		{"cache with a matcher", "http_cache /static/*\nhandle /video/* {\n\t" + filter + "\n\treverse_proxy 127.0.0.1:9\n}", ""},
		{"cache in another handle", "handle /static/* {\n\thttp_cache\n\treverse_proxy 127.0.0.1:8\n}\nhandle /video/* {\n\t" + filter + "\n\treverse_proxy 127.0.0.1:9\n}", ""},
	} {
		t.Run(tt.name, func(t *testing.T) { caddytest.ValidateSite(t, tt.site, tt.want) })
	}
}

// A cache that may leave the filter's requests alone (a bypass, a
// matcher) is a warning; one that never runs before the filter is not:
// another site's, whose route ends the chain when it matches, or one after
// the filter.
func TestGeofilterBehindHTTPCacheWarned(t *testing.T) {
	country := mmdbtest.Country(t, map[string]string{"198.51.100.0/24": "CN"})
	filter := "geofilter {\n\t\tdb " + country + "\n\t\tdeny country CN\n\t}"
	const want = "geofilter runs after an http_cache"
	for _, tt := range []struct {
		name, sites string
		warned      bool
	}{
		{"cache with a bypass", "http://localhost:{HTTP_PORT} {\nhttp_cache {\n\tbypass path /video/*\n}\nhandle /video/* {\n\t" + filter + "\n\trespond \"x\"\n}\n}", true},
		{"cache of another site", "http://a.localhost:{HTTP_PORT} {\nhttp_cache\nrespond \"a\"\n}\nhttp://localhost:{HTTP_PORT} {\nhandle /video/* {\n\t" + filter + "\n\trespond \"x\"\n}\n}", false},
		{"cache after the filter", "http://localhost:{HTTP_PORT} {\n" + filter + "\nhttp_cache\nrespond \"x\"\n}", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			logFile := filepath.Join(t.TempDir(), "caddy.log")
			caddytest.Start(t, caddytest.LoggedGlobal(logFile)+tt.sites)
			warned := false
			for _, msg := range warnings(t, logFile) {
				warned = warned || strings.Contains(msg, want)
			}
			if warned != tt.warned {
				t.Errorf("warned %v, want %v; warnings: %q", warned, tt.warned, warnings(t, logFile))
			}
		})
	}
}
