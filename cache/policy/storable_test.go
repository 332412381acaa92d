package policy_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache/policy"
)

func TestStorable(t *testing.T) {
	const lm = "Tue, 01 Sep 2026 10:00:00 GMT"
	fresh := http.Header{"Cache-Control": {"max-age=60"}}
	tests := []struct {
		name   string
		method string
		req    http.Header
		status int
		h      http.Header
		opts   policy.Options
		want   policy.Reason
	}{
		{"GET 200 with max-age is stored", "GET", nil, 200, fresh, policy.Options{}, policy.ReasonNone},
		{"HEAD is not stored (answered from GET)", "HEAD", nil, 200, fresh, policy.Options{}, policy.ReasonMethod},
		{"POST is not stored", "POST", nil, 200, fresh, policy.Options{}, policy.ReasonMethod},
		{"lowercase get is another method", "get", nil, 200, fresh, policy.Options{}, policy.ReasonMethod},
		{"interim 1xx never stored (3)", "GET", nil, 103, fresh, policy.Options{}, policy.ReasonStatus},
		{"304 is not stored, it freshens", "GET", nil, 304, fresh, policy.Options{}, policy.ReasonStatus},
		{"206 never stored here", "GET", nil, 206, fresh, policy.Options{}, policy.ReasonPartial},
		{"bogus status", "GET", nil, 1000, fresh, policy.Options{}, policy.ReasonStatus},
		{"request no-store (5.2.1.5)", "GET", http.Header{"Cache-Control": {"no-store"}}, 200, fresh, policy.Options{}, policy.ReasonReqNoStore},
		{"request Pragma does not mean no-store", "GET", http.Header{"Pragma": {"no-cache"}}, 200, fresh, policy.Options{}, policy.ReasonNone},
		{"response no-store (5.2.2.5)", "GET", nil, 200, http.Header{"Cache-Control": {"max-age=60, no-store"}}, policy.Options{}, policy.ReasonNoStore},
		{"response private in a shared cache (5.2.2.7)", "GET", nil, 200, http.Header{"Cache-Control": {"private, max-age=60"}}, policy.Options{}, policy.ReasonPrivate},
		{"qualified private treated as private", "GET", nil, 200, http.Header{"Cache-Control": {`private="X-User", max-age=60`}}, policy.Options{}, policy.ReasonPrivate},
		{"Authorization without permission (3.5)", "GET", http.Header{"Authorization": {"Basic x"}}, 200, fresh, policy.Options{}, policy.ReasonAuthorization},
		{"Authorization with public (3.5)", "GET", http.Header{"Authorization": {"Basic x"}}, 200, http.Header{"Cache-Control": {"public, max-age=60"}}, policy.Options{}, policy.ReasonNone},
		{"Authorization with s-maxage (3.5)", "GET", http.Header{"Authorization": {"Basic x"}}, 200, http.Header{"Cache-Control": {"s-maxage=60"}}, policy.Options{}, policy.ReasonNone},
		{"Authorization with must-revalidate (3.5)", "GET", http.Header{"Authorization": {"Basic x"}}, 200, http.Header{"Cache-Control": {"must-revalidate, max-age=60"}}, policy.Options{}, policy.ReasonNone},
		// Issue 8 item 9: with credentials, only the origin's explicit
		// freshness lets a response be shared; default_ttl and the §4.2.2
		// heuristic (a MAY) do not, unless an option accepts the risk.
		{"Cookie and default_ttl only: not stored", "GET", http.Header{"Cookie": {"s=1"}}, 200, http.Header{}, policy.Options{DefaultTTL: time.Minute}, policy.ReasonCredentials},
		{"Cookie and Last-Modified only (no heuristic, 4.2.2)", "GET", http.Header{"Cookie": {"s=1"}}, 200, http.Header{"Last-Modified": {lm}}, policy.Options{}, policy.ReasonCredentials},
		{"Cookie and ETag only", "GET", http.Header{"Cookie": {"s=1"}}, 200, http.Header{"Etag": {`"a"`}}, policy.Options{}, policy.ReasonCredentials},
		{"Cookie and max-age: explicit freshness (4.2.1)", "GET", http.Header{"Cookie": {"s=1"}}, 200, fresh, policy.Options{DefaultTTL: time.Minute}, policy.ReasonNone},
		{"Cookie and Expires: explicit freshness (5.3)", "GET", http.Header{"Cookie": {"s=1"}}, 200, http.Header{"Expires": {lm}, "Date": {lm}}, policy.Options{}, policy.ReasonNone},
		{"Cookie with the risk accepted", "GET", http.Header{"Cookie": {"s=1"}}, 200, http.Header{"Last-Modified": {lm}}, policy.Options{CredentialedHeuristics: true}, policy.ReasonNone},
		{"Authorization and public without freshness (3.5 then no heuristic)", "GET", http.Header{"Authorization": {"Basic x"}}, 200, http.Header{"Cache-Control": {"public"}, "Last-Modified": {lm}}, policy.Options{}, policy.ReasonCredentials},
		{"Authorization, public and max-age (3.5)", "GET", http.Header{"Authorization": {"Basic x"}}, 200, http.Header{"Cache-Control": {"public, max-age=60"}}, policy.Options{}, policy.ReasonNone},
		{"no credentials: Last-Modified is enough", "GET", nil, 200, http.Header{"Last-Modified": {lm}}, policy.Options{}, policy.ReasonNone},
		{"Set-Cookie not stored by default", "GET", nil, 200, http.Header{"Cache-Control": {"max-age=60"}, "Set-Cookie": {"a=b"}}, policy.Options{}, policy.ReasonSetCookie},
		{"Set-Cookie stored when allowed", "GET", nil, 200, http.Header{"Cache-Control": {"max-age=60"}, "Set-Cookie": {"a=b"}}, policy.Options{AllowSetCookie: true}, policy.ReasonNone},
		{"Vary star never matches (4.1)", "GET", nil, 200, http.Header{"Cache-Control": {"max-age=60"}, "Vary": {"Accept, *"}}, policy.Options{}, policy.ReasonVaryStar},
		{"Vary star on a second line", "GET", nil, 200, http.Header{"Cache-Control": {"max-age=60"}, "Vary": {"Accept", " * "}}, policy.Options{}, policy.ReasonVaryStar},
		{"Vary without star is fine", "GET", nil, 200, http.Header{"Cache-Control": {"max-age=60"}, "Vary": {"Accept-Encoding"}}, policy.Options{}, policy.ReasonNone},
		{"status not in configured list", "GET", nil, 404, fresh, policy.Options{Statuses: []int{200}}, policy.ReasonStatusNotAllowed},
		{"status in configured list", "GET", nil, 200, fresh, policy.Options{Statuses: []int{200, 404}}, policy.ReasonNone},
		{"configured status stored with default TTL", "GET", nil, 302, http.Header{}, policy.Options{Statuses: []int{302}, DefaultTTL: time.Minute}, policy.ReasonNone},
		{"status with a status TTL stored without freshness", "GET", nil, 302, http.Header{}, policy.Options{StatusTTLs: map[int]time.Duration{302: time.Minute}}, policy.ReasonNone},
		{"status TTL of another status: 302 not stored", "GET", nil, 302, http.Header{}, policy.Options{StatusTTLs: map[int]time.Duration{404: time.Minute}}, policy.ReasonStatus},
		{"404 without freshness and only a status TTL for 410", "GET", nil, 404, http.Header{}, policy.Options{StatusTTLs: map[int]time.Duration{410: time.Minute}}, policy.ReasonNoFreshness},
		{"status TTL does not store no-store", "GET", nil, 404, http.Header{"Cache-Control": {"no-store"}}, policy.Options{StatusTTLs: map[int]time.Duration{404: time.Minute}}, policy.ReasonNoStore},
		{"status TTL does not store a private response", "GET", nil, 404, http.Header{"Cache-Control": {"private"}}, policy.Options{StatusTTLs: map[int]time.Duration{404: time.Minute}}, policy.ReasonPrivate},
		{"302 without explicit freshness is not stored (3)", "GET", nil, 302, http.Header{"Etag": {`"a"`}}, policy.Options{DefaultTTL: time.Minute}, policy.ReasonStatus},
		{"302 with max-age is stored (3)", "GET", nil, 302, fresh, policy.Options{}, policy.ReasonNone},
		{"302 with Expires is stored (3)", "GET", nil, 302, http.Header{"Expires": {"Fri, 27 Nov 2026 11:00:00 GMT"}}, policy.Options{}, policy.ReasonNone},
		{"302 with public and a validator is stored (3)", "GET", nil, 302, http.Header{"Cache-Control": {"public"}, "Etag": {`"a"`}}, policy.Options{}, policy.ReasonNone},
		{"500 with max-age is stored (explicit freshness)", "GET", nil, 500, fresh, policy.Options{}, policy.ReasonNone},
		{"404 cacheable by default with heuristic (4.2.2)", "GET", nil, 404, http.Header{"Last-Modified": {lm}}, policy.Options{}, policy.ReasonNone},
		{"no freshness, no validator, no default TTL", "GET", nil, 200, http.Header{"Content-Type": {"text/plain"}}, policy.Options{}, policy.ReasonNoFreshness},
		{"no freshness, no validator, default TTL", "GET", nil, 200, http.Header{}, policy.Options{DefaultTTL: time.Minute}, policy.ReasonNone},
		{"validator only is stored (revalidated each use)", "GET", nil, 200, http.Header{"Etag": {`"v1"`}}, policy.Options{}, policy.ReasonNone},
		{"no-cache with validator is stored (revalidated)", "GET", nil, 200, http.Header{"Cache-Control": {"no-cache"}, "Etag": {`"v1"`}}, policy.Options{}, policy.ReasonNone},
		{"no-cache without validator is not stored", "GET", nil, 200, http.Header{"Cache-Control": {"no-cache, max-age=60"}}, policy.Options{}, policy.ReasonNoCache},
		{"must-understand with understood status ignores no-store (5.2.2.3)", "GET", nil, 200, http.Header{"Cache-Control": {"must-understand, no-store, max-age=60"}}, policy.Options{}, policy.ReasonNone},
		{"must-understand with unknown status is not stored (5.2.2.3)", "GET", nil, 299, http.Header{"Cache-Control": {"must-understand, no-store, max-age=60"}}, policy.Options{}, policy.ReasonMustUnderstand},
		{"CDN-Cache-Control allows despite Cache-Control no-store (RFC 9213)", "GET", nil, 200, http.Header{"Cache-Control": {"no-store"}, "Cdn-Cache-Control": {"max-age=60"}}, policy.Options{}, policy.ReasonNone},
		{"CDN-Cache-Control no-store wins over Cache-Control", "GET", nil, 200, http.Header{"Cache-Control": {"max-age=60"}, "Cdn-Cache-Control": {"no-store"}}, policy.Options{}, policy.ReasonNoStore},
		{"CDN-Cache-Control makes Expires ignored", "GET", nil, 200, http.Header{"Cdn-Cache-Control": {"public"}, "Expires": {"Fri, 27 Nov 2026 11:00:00 GMT"}}, policy.Options{}, policy.ReasonNoFreshness},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req
			if req == nil {
				req = http.Header{}
			}
			ok, reason := policy.Storable(tt.method, req, tt.status, tt.h, tt.opts)
			if reason != tt.want || ok != (tt.want == policy.ReasonNone) {
				t.Errorf("Storable = %v, %q; want %v, %q", ok, reason, tt.want == policy.ReasonNone, tt.want)
			}
		})
	}
}

func TestCacheableByDefault(t *testing.T) {
	want := map[int]bool{200: true, 203: true, 204: true, 206: true, 300: true, 301: true, 308: true,
		404: true, 405: true, 410: true, 414: true, 501: true}
	for s := 100; s < 600; s++ {
		if got := policy.CacheableByDefault(s); got != want[s] {
			t.Errorf("CacheableByDefault(%d) = %v, want %v (RFC 9110 15.1)", s, got, want[s])
		}
	}
}

// Issue 11 item 6: RFC 9110 §9.3.3 — a POST response is storable (for
// GETs of its URI) only with explicit freshness and a Content-Location
// equal to the target URI.
func TestStorablePOST(t *testing.T) {
	target := &url.URL{Scheme: "https", Host: "example.com", Path: "/doc", RawQuery: "a=1"}
	fresh := "max-age=60"
	for _, tt := range []struct {
		name string
		h    http.Header
		req  http.Header
		want policy.Reason
	}{
		{"relative Content-Location equal, max-age (9.3.3)", http.Header{"Content-Location": {"/doc?a=1"}, "Cache-Control": {fresh}}, nil, policy.ReasonNone},
		{"absolute, host case-insensitive", http.Header{"Content-Location": {"https://EXAMPLE.com/doc?a=1"}, "Cache-Control": {fresh}}, nil, policy.ReasonNone},
		{"Expires is explicit freshness (5.3)", http.Header{"Content-Location": {"/doc?a=1"}, "Expires": {"Sun, 06 Nov 2044 08:49:37 GMT"}}, nil, policy.ReasonNone},
		{"no Content-Location", http.Header{"Cache-Control": {fresh}}, nil, policy.ReasonMethod},
		{"another path", http.Header{"Content-Location": {"/other"}, "Cache-Control": {fresh}}, nil, policy.ReasonMethod},
		{"another query", http.Header{"Content-Location": {"/doc?a=2"}, "Cache-Control": {fresh}}, nil, policy.ReasonMethod},
		{"another scheme", http.Header{"Content-Location": {"http://example.com/doc?a=1"}, "Cache-Control": {fresh}}, nil, policy.ReasonMethod},
		{"two Content-Locations", http.Header{"Content-Location": {"/doc?a=1", "/doc?a=1"}, "Cache-Control": {fresh}}, nil, policy.ReasonMethod},
		{"no explicit freshness (Last-Modified only)", http.Header{"Content-Location": {"/doc?a=1"}, "Last-Modified": {"Sun, 06 Nov 1994 08:49:37 GMT"}}, nil, policy.ReasonMethod},
		{"then the GET rules: private (5.2.2.7)", http.Header{"Content-Location": {"/doc?a=1"}, "Cache-Control": {"private, max-age=60"}}, nil, policy.ReasonPrivate},
		{"then the GET rules: Authorization (3.5)", http.Header{"Content-Location": {"/doc?a=1"}, "Cache-Control": {fresh}}, http.Header{"Authorization": {"x"}}, policy.ReasonAuthorization},
	} {
		ok, reason := policy.StorablePOST(tt.req, 200, tt.h, target, policy.Options{})
		if reason != tt.want || ok != (tt.want == policy.ReasonNone) {
			t.Errorf("%s: %v %q, want %q", tt.name, ok, reason, tt.want)
		}
	}
}
