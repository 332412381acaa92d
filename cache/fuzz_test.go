package cache_test

import (
	"encoding/json"
	"net/url"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-edge/edge/cache"
)

// FuzzUnmarshalCaddyfile: any input either fails with an error or gives a
// handler that marshals to JSON and back to the same JSON; it never panics.
func FuzzUnmarshalCaddyfile(f *testing.F) {
	for _, seed := range []string{
		"http_cache",
		"http_cache {\n\tsort_query\n}",
		"http_cache {\n\tstore memory {\n\t\tname a\n\t}\n\tkey {host}{uri}\n}",
		"http_cache {\n\tdefault_ttl 5m\n\tmax_ttl 1h\n\tstatuses 200 404\n}",
		"http_cache {\n\tbypass path /a\n\tbypass {\n\t\theader X y\n\t}\n}",
		"http_cache {\n\tmax_object_size 1KiB\n\tignore_query_params utm_* [\n}",
		"http_cache {\n\tbypass\n}",
		"http_cache {{{\n}",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		var h cache.Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
			return
		}
		b, err := json.Marshal(&h)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		var h2 cache.Handler
		if err := json.Unmarshal(b, &h2); err != nil {
			t.Fatalf("unmarshal %s: %v", b, err)
		}
		b2, _ := json.Marshal(&h2)
		if string(b) != string(b2) {
			t.Fatalf("round trip changed the config:\n%s\n%s", b, b2)
		}
	})
}

// FuzzKeyForURL: the key of any URL never panics, and ignoring and sorting
// query parameters is idempotent.
func FuzzKeyForURL(f *testing.F) {
	for _, seed := range []string{
		"http://example.com/a?b=2&a=1&utm_source=x",
		"https://EXAMPLE.com/%2Fa%20b?&&=&a",
		"http://h/?fbclid=1&fbclid=2&z",
		"http://h/p?%zz=1&a=%",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		k1 := cache.KeyForURL(u, true, []string{"utm_*", "fbclid"})
		u2 := *u
		u2.RawQuery = cache.NormalizeQuery(u.RawQuery, true, []string{"utm_*", "fbclid"})
		k2 := cache.KeyForURL(&u2, true, []string{"utm_*", "fbclid"})
		if k1 != k2 {
			t.Fatalf("not idempotent: %q then %q", k1, k2)
		}
	})
}
