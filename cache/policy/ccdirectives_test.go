package policy_test

import (
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache/policy"
)

func set(s int64) policy.Delta { return policy.Delta{Set: true, D: time.Duration(s) * time.Second} }

func TestParseCacheControl(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   policy.Directives
	}{
		{"absent field has no directives", nil, policy.Directives{}},
		{"empty value has no directives", []string{""}, policy.Directives{}},
		{"max-age read as seconds (5.2.2.1)", []string{"max-age=60"}, policy.Directives{MaxAge: set(60)}},
		{"names are case-insensitive (5.2)", []string{"Max-Age=60, NO-STORE, Public"},
			policy.Directives{MaxAge: set(60), NoStore: true, Public: true}},
		{"quoted delta equals token delta (5.2)", []string{`max-age="60"`}, policy.Directives{MaxAge: set(60)}},
		{"whitespace around elements and equals is tolerated", []string{"  public ,\tmax-age = 30 ,  s-maxage=10  "},
			policy.Directives{Public: true, MaxAge: set(30), SMaxAge: set(10)}},
		{"several field lines form one list (RFC 9110 5.3)", []string{"public", "max-age=5"},
			policy.Directives{Public: true, MaxAge: set(5)}},
		{"empty list elements are skipped", []string{",,public,,"}, policy.Directives{Public: true}},
		{"commas inside quoted-string do not split", []string{`no-cache="Set-Cookie, X-Foo", max-age=9`},
			policy.Directives{NoCache: true, NoCacheFields: []string{"Set-Cookie", "X-Foo"}, MaxAge: set(9)}},
		{"unknown extension with quoted commas is ignored whole", []string{`ext="a, no-store, b", max-age=1`},
			policy.Directives{MaxAge: set(1)}},
		{"quoted-pair unescaped in field list", []string{`private="X-\"A\""`},
			policy.Directives{Private: true, PrivateFields: []string{`X-"A"`}}},
		{"qualified private is private for a shared cache (5.2.2.7)", []string{`private="Set-Cookie"`},
			policy.Directives{Private: true, PrivateFields: []string{"Set-Cookie"}}},
		{"unqualified no-cache (5.2.2.4)", []string{"no-cache"}, policy.Directives{NoCache: true}},
		{"token-form qualified no-cache accepted", []string{"no-cache=Set-Cookie"},
			policy.Directives{NoCache: true, NoCacheFields: []string{"Set-Cookie"}}},
		{"invalid max-age is stale (4.2.1)", []string{"max-age=abc"}, policy.Directives{MaxAge: set(0)}},
		{"negative max-age is stale (1.2.2)", []string{"max-age=-5"}, policy.Directives{MaxAge: set(0)}},
		{"fractional max-age is stale", []string{"max-age=1.5"}, policy.Directives{MaxAge: set(0)}},
		{"max-age without value is stale", []string{"max-age"}, policy.Directives{MaxAge: set(0)}},
		{"max-age with empty value is stale", []string{"max-age="}, policy.Directives{MaxAge: set(0)}},
		{"max-age followed by garbage is stale", []string{"max-age=5 6"}, policy.Directives{MaxAge: set(0)}},
		{"huge max-age clamped to 2^31 s, not negative (1.2.2)", []string{"max-age=9300000000"},
			policy.Directives{MaxAge: policy.Delta{Set: true, D: policy.MaxDelta}}},
		{"enormous digit string clamped", []string{"s-maxage=999999999999999999999999999999"},
			policy.Directives{SMaxAge: policy.Delta{Set: true, D: policy.MaxDelta}}},
		{"exactly 2^31 kept", []string{"max-age=2147483648"},
			policy.Directives{MaxAge: policy.Delta{Set: true, D: policy.MaxDelta}}},
		{"duplicate identical max-age is fine", []string{"max-age=60, max-age=60"}, policy.Directives{MaxAge: set(60)}},
		{"conflicting max-age is stale (4.2.1)", []string{"max-age=60", "max-age=120"}, policy.Directives{MaxAge: set(0)}},
		{"conflicting s-maxage is stale (4.2.1)", []string{"s-maxage=60, s-maxage=1"}, policy.Directives{SMaxAge: set(0)}},
		{"conflicting stale-while-revalidate takes the smallest", []string{"stale-while-revalidate=60, stale-while-revalidate=30"},
			policy.Directives{StaleWhileRevalidate: set(30)}},
		{"conflicting stale-if-error takes the smallest", []string{"stale-if-error=10, stale-if-error=300"},
			policy.Directives{StaleIfError: set(10)}},
		{"invalid stale-if-error disables it", []string{"stale-if-error=x"}, policy.Directives{StaleIfError: set(0)}},
		{"max-stale without value accepts any staleness (5.2.1.2)", []string{"max-stale"}, policy.Directives{MaxStaleAny: true}},
		{"max-stale with value", []string{"max-stale=30"}, policy.Directives{MaxStale: set(30)}},
		{"max-stale any then a value keeps the value", []string{"max-stale, max-stale=30"}, policy.Directives{MaxStale: set(30)}},
		{"max-stale value then any keeps the value", []string{"max-stale=30, max-stale"}, policy.Directives{MaxStale: set(30)}},
		{"invalid max-stale allows no staleness", []string{"max-stale=abc"}, policy.Directives{MaxStale: set(0)}},
		{"min-fresh (5.2.1.3)", []string{"min-fresh=20"}, policy.Directives{MinFresh: set(20)}},
		{"conflicting min-fresh takes the largest", []string{"min-fresh=20, min-fresh=50, min-fresh=10"}, policy.Directives{MinFresh: set(50)}},
		{"invalid min-fresh ignored", []string{"min-fresh=soon"}, policy.Directives{}},
		{"all flags", []string{"no-store, no-cache, private, public, must-revalidate, proxy-revalidate, must-understand, no-transform, only-if-cached, immutable"},
			policy.Directives{NoStore: true, NoCache: true, Private: true, Public: true, MustRevalidate: true, ProxyRevalidate: true,
				MustUnderstand: true, NoTransform: true, OnlyIfCached: true, Immutable: true}},
		{"restrictive flag with garbage still applies", []string{"no-store junk"}, policy.Directives{NoStore: true}},
		{"permissive flag with garbage is ignored", []string{"public junk, immutable ?"}, policy.Directives{}},
		{"unterminated quote swallows the rest", []string{`no-cache="a, max-age=10`}, policy.Directives{NoCache: true}},
		{"garbage element skipped, next read", []string{`@@@, "quoted, junk", max-age=7`}, policy.Directives{MaxAge: set(7)}},
		{"long unknown name ignored", []string{"this-is-a-very-long-extension-directive-name=1, public"}, policy.Directives{Public: true}},
		{"non-ASCII bytes do not panic", []string{"max-age=\xff\xfe, \x00no-store"}, policy.Directives{MaxAge: set(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := policy.ParseCacheControl(tt.values)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseCacheControl(%q)\n got %+v\nwant %+v", tt.values, got, tt.want)
			}
		})
	}
}

func TestResponseDirectives(t *testing.T) {
	tests := []struct {
		name string
		h    http.Header
		want policy.Directives
	}{
		{"Cache-Control without targeted field",
			http.Header{"Cache-Control": {"max-age=60"}}, policy.Directives{MaxAge: set(60)}},
		{"CDN-Cache-Control replaces Cache-Control (RFC 9213 2.2)",
			http.Header{"Cache-Control": {"no-store"}, "Cdn-Cache-Control": {"max-age=600"}}, policy.Directives{MaxAge: set(600)}},
		{"CDN-Cache-Control given through Header.Set",
			func() http.Header {
				h := http.Header{}
				h.Set("CDN-Cache-Control", "no-store")
				h.Set("Cache-Control", "max-age=60")
				return h
			}(), policy.Directives{NoStore: true}},
		{"empty CDN-Cache-Control is ignored (RFC 9213 2.1)",
			http.Header{"Cache-Control": {"max-age=60"}, "Cdn-Cache-Control": {""}}, policy.Directives{MaxAge: set(60)}},
		{"invalid structured field is ignored (RFC 9213 2.1)",
			http.Header{"Cache-Control": {"max-age=60"}, "Cdn-Cache-Control": {"max-age=600,"}}, policy.Directives{MaxAge: set(60)}},
		{"uppercase key is an SF parse error, field ignored",
			http.Header{"Cache-Control": {"max-age=60"}, "Cdn-Cache-Control": {"Max-Age=600"}}, policy.Directives{MaxAge: set(60)}},
		{"unknown-only valid targeted field still replaces Cache-Control",
			http.Header{"Cache-Control": {"max-age=60"}, "Cdn-Cache-Control": {"foo"}}, policy.Directives{}},
		{"targeted field lines combine",
			http.Header{"Cdn-Cache-Control": {"max-age=60", "must-revalidate"}}, policy.Directives{MaxAge: set(60), MustRevalidate: true}},
		{"targeted duplicate keys: last wins (RFC 8941 4.2.2)",
			http.Header{"Cdn-Cache-Control": {"max-age=60, max-age=30"}}, policy.Directives{MaxAge: set(30)}},
		{"targeted decimal max-age is not consumed as integer: stale",
			http.Header{"Cdn-Cache-Control": {"max-age=1.5"}}, policy.Directives{MaxAge: set(0)}},
		{"targeted string max-age is stale",
			http.Header{"Cdn-Cache-Control": {`max-age="60"`}}, policy.Directives{MaxAge: set(0)}},
		{"targeted boolean false turns a flag off",
			http.Header{"Cdn-Cache-Control": {"no-store=?0, public"}}, policy.Directives{Public: true}},
		{"targeted no-cache string lists fields",
			http.Header{"Cdn-Cache-Control": {`no-cache="set-cookie, x-a"`}}, policy.Directives{NoCache: true, NoCacheFields: []string{"set-cookie", "x-a"}}},
		{"targeted parameters are ignored",
			http.Header{"Cdn-Cache-Control": {"max-age=60;foo=bar;baz, private"}}, policy.Directives{MaxAge: set(60), Private: true}},
		{"targeted inner list, token, bytes, date values parse",
			http.Header{"Cdn-Cache-Control": {`a=(1 "x" tok);p, b=:aGk=:, c=@1700000000, d=%"caf%c3%a9", e=?1, max-age=5`}}, policy.Directives{MaxAge: set(5)}},
		{"targeted huge integer clamped",
			http.Header{"Cdn-Cache-Control": {"s-maxage=999999999999999"}}, policy.Directives{SMaxAge: policy.Delta{Set: true, D: policy.MaxDelta}}},
		{"targeted integer over 15 digits is invalid: field ignored",
			http.Header{"Cache-Control": {"max-age=1"}, "Cdn-Cache-Control": {"max-age=9999999999999999"}}, policy.Directives{MaxAge: set(1)}},
		{"targeted negative max-age is stale",
			http.Header{"Cdn-Cache-Control": {"max-age=-1"}}, policy.Directives{MaxAge: set(0)}},
		{"targeted unterminated string: field ignored",
			http.Header{"Cache-Control": {"public"}, "Cdn-Cache-Control": {`no-cache="x`}}, policy.Directives{Public: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := policy.ResponseDirectives(tt.h)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ResponseDirectives(%v)\n got %+v\nwant %+v", tt.h, got, tt.want)
			}
		})
	}
}

func TestDirectivesString(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"empty", "", ""},
		{"canonical order and lowercase", "PUBLIC, Max-Age=60", "max-age=60, public"},
		{"invalid max-age serialized as the stale reading", "max-age=abc", "max-age=0"},
		{"max-stale without value", "max-stale", "max-stale"},
		{"qualified fields quoted and escaped", `no-cache="a, b\"c"`, `no-cache="a, b\"c"`},
		{"clamped delta", "s-maxage=99999999999", "s-maxage=2147483648"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := policy.ParseCacheControl([]string{tt.in}).String(); got != tt.want {
				t.Errorf("String = %q, want %q", got, tt.want)
			}
		})
	}
}
