package policy_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache/policy"
)

// The hit path parses the request's Cache-Control and evaluates the
// stored response once per request: these must stay allocation-free.

func BenchmarkParseCacheControl(b *testing.B) {
	for _, bc := range []struct{ name, v string }{
		{"request", "no-cache"},
		{"response", "public, max-age=3600, s-maxage=600, stale-while-revalidate=30, stale-if-error=86400, must-revalidate"},
		{"qualified", `private="Set-Cookie", no-cache="X-A, X-B", max-age=0`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			v := []string{bc.v}
			b.ReportAllocs()
			for b.Loop() {
				policy.ParseCacheControl(v)
			}
		})
	}
}

func BenchmarkResponseDirectivesCDN(b *testing.B) {
	h := http.Header{"Cache-Control": {"max-age=60"}, "Cdn-Cache-Control": {"max-age=3600, stale-if-error=60"}}
	b.ReportAllocs()
	for b.Loop() {
		policy.ResponseDirectives(h)
	}
}

func BenchmarkEvaluate(b *testing.B) {
	stored := http.Header{
		"Cache-Control": {"public, max-age=3600"},
		"Date":          {httpDate(t0)},
		"Age":           {"12"},
		"Content-Type":  {"text/html"},
	}
	f := policy.ResponseFreshness(stored, t0, policy.Options{})
	req := http.Header{"Accept": {"*/*"}, "Cache-Control": {"max-age=0"}}
	now := t0.Add(time.Minute)
	b.Run("Evaluate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			policy.Evaluate(req, stored, f, t0, t0, now)
		}
	})
	ia := policy.CorrectedInitialAge(stored, t0, t0)
	b.Run("EvaluateAge", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			policy.EvaluateAge(req, f, policy.AgeAt(ia, t0, now))
		}
	})
}

func BenchmarkStorable(b *testing.B) {
	req := http.Header{"Accept": {"*/*"}}
	h := http.Header{"Cache-Control": {"public, max-age=3600"}, "Etag": {`"v1"`}, "Vary": {"Accept-Encoding"}}
	b.ReportAllocs()
	for b.Loop() {
		policy.Storable("GET", req, 200, h, policy.Options{})
	}
}

func BenchmarkVaryKey(b *testing.B) {
	req := http.Header{"Accept-Encoding": {"gzip, deflate, br, zstd"}, "Accept-Language": {"en-US,en;q=0.5"}}
	vary := []string{"Accept-Encoding, Accept-Language"}
	b.ReportAllocs()
	for b.Loop() {
		policy.VaryKey(vary, req)
	}
}

func BenchmarkNormalizeAcceptEncoding(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		policy.NormalizeAcceptEncoding("gzip, deflate, br;q=0.9, zstd;q=0.8, *;q=0.1")
	}
}
