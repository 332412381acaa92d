package policy_test

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache/policy"
)

// checkDeltas fails when a parsed delta is negative or beyond 2^31 s
// (RFC 9111 §1.2.2).
func checkDeltas(t *testing.T, d policy.Directives) {
	t.Helper()
	for _, v := range []policy.Delta{d.MaxAge, d.SMaxAge, d.MaxStale, d.MinFresh, d.StaleWhileRevalidate, d.StaleIfError} {
		if v.D < 0 || v.D > policy.MaxDelta || v.D%time.Second != 0 || (!v.Set && v.D != 0) {
			t.Fatalf("bad delta %+v in %+v", v, d)
		}
	}
}

// FuzzParseCacheControl checks, for any field value: no panic; every delta
// within [0, 2^31 s]; String is a fixed point (parsing the serialization
// gives the same directives); the CDN-Cache-Control parser, freshness and
// Evaluate never panic nor yield negative lifetimes or ages. Seeds in
// testdata/fuzz/FuzzParseCacheControl (described in testdata/fuzz/README.md)
// plus the ones below.
func FuzzParseCacheControl(f *testing.F) {
	for _, s := range []string{
		"max-age=60, public",                     // common response
		`no-cache="Set-Cookie, X-A", private`,    // qualified, commas in quotes
		"max-age=9300000000",                     // overflow clamp
		"max-age=60, max-age=61",                 // conflicting duplicate
		"max-stale, min-fresh=5, only-if-cached", // request directives
		`ext="a\"b", "unterminated`,              // quoted-pair, unterminated quote
		"max-age=1;a=(1 2), no-cache=?0",         // structured-field syntax
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := policy.ParseCacheControl([]string{s})
		checkDeltas(t, d)
		again := policy.ParseCacheControl([]string{d.String()})
		if !reflect.DeepEqual(d, again) {
			t.Fatalf("String not a fixed point:\n in %q\n d  %+v\n s  %q\n d2 %+v", s, d, d.String(), again)
		}
		// Splitting the value over two field lines at a top-level comma
		// must not change anything (RFC 9110 §5.3).
		if i := strings.LastIndexByte(s, ','); i >= 0 && !strings.ContainsAny(s, `"`) {
			if split := policy.ParseCacheControl([]string{s[:i], s[i+1:]}); !reflect.DeepEqual(d, split) {
				t.Fatalf("field lines split changes result: %+v vs %+v", d, split)
			}
		}
		h := http.Header{"Cache-Control": {s}, "Cdn-Cache-Control": {s}, "Expires": {s}, "Date": {s}, "Age": {s}, "Last-Modified": {s}}
		checkDeltas(t, policy.ResponseDirectives(h))
		fr := policy.ResponseFreshness(h, t0, policy.Options{})
		if fr.Lifetime < 0 || fr.StaleIfError < 0 || fr.StaleWhileRevalidate < 0 {
			t.Fatalf("negative freshness %+v", fr)
		}
		dec := policy.Evaluate(http.Header{"Cache-Control": {s}, "Pragma": {s}}, h, fr, t0, t0, t0.Add(time.Minute))
		if dec.Age < 0 || dec.Age > policy.MaxDelta {
			t.Fatalf("age out of range: %+v", dec)
		}
		policy.Storable("GET", http.Header{"Cache-Control": {s}}, 200, h, policy.Options{})
	})
}

// FuzzVaryKey checks that VaryKey never panics, is stable, does not depend
// on the order of the Vary names, and that NormalizeAcceptEncoding agrees
// with EncodingAcceptable: two values with one normalized form accept the
// same codings.
func FuzzVaryKey(f *testing.F) {
	f.Add("Accept-Encoding, Accept-Language", "gzip, br;q=0.9", "en-US,en;q=0.5")
	f.Add("*", "", "")
	f.Add("x-a,X-B", "*;q=0, identity", "a=1&b=%")
	f.Fuzz(func(t *testing.T, vary, ae, other string) {
		n := policy.NormalizeAcceptEncoding(ae)
		if n == "" || strings.ContainsAny(n, "&=") {
			t.Fatalf("NormalizeAcceptEncoding(%q) = %q", ae, n)
		}
		// The normalized form, read back as an Accept-Encoding, accepts
		// exactly what ae accepts, for the codings it names and a few more.
		var elems []string
		for _, e := range strings.Split(n, ",") {
			switch {
			case e == "!identity":
				e = "identity;q=0"
			case strings.HasPrefix(e, "-"):
				e = e[1:] + ";q=0"
			}
			elems = append(elems, e)
		}
		back := strings.Join(elems, ", ")
		for _, c := range append(strings.Split(strings.ToLower(ae), ","), "gzip", "br", "deflate", "", "x-gzip") {
			c, _, _ = strings.Cut(strings.TrimSpace(c), ";")
			var ce []string
			if c != "" {
				ce = []string{c}
			}
			if strings.ContainsAny(c, "%!*&=") || strings.HasPrefix(c, "-") {
				continue // escaped in the normalized form
			}
			a := policy.EncodingAcceptable(ce, http.Header{"Accept-Encoding": {ae}})
			b := policy.EncodingAcceptable(ce, http.Header{"Accept-Encoding": {back}})
			if a != b {
				t.Fatalf("coding %q: acceptable to %q is %v, to its normal form %q (%q) %v", c, ae, a, n, back, b)
			}
		}
		req := http.Header{"Accept-Encoding": {ae}}
		for _, name := range strings.Split(vary, ",") {
			if name = strings.TrimSpace(name); name != "" && name != "Accept-Encoding" {
				req[http.CanonicalHeaderKey(name)] = []string{other}
			}
		}
		k1, ok1 := policy.VaryKey([]string{vary}, req)
		names := strings.Split(vary, ",")
		for i, j := 0, len(names)-1; i < j; i, j = i+1, j-1 {
			names[i], names[j] = names[j], names[i]
		}
		k2, ok2 := policy.VaryKey(names, req)
		if k1 != k2 || ok1 != ok2 {
			t.Fatalf("Vary order matters: %q/%v vs %q/%v", k1, ok1, k2, ok2)
		}
	})
}
