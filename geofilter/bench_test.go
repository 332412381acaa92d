package geofilter

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-edge/edge/geofilter/rules"
)

// benchHandler is a typical filter: a country and an ASN database, an
// office allow-list, two deny rules and a log rule.
func benchHandler(b *testing.B) *Handler {
	country, asn := fixtures(b)
	h := &Handler{
		Databases: []DatabaseConfig{{Path: country}, {Path: asn}},
		Rules: []Rule{
			{Action: rules.Allow, Conditions: rules.Conditions{IP: []string{"10.0.0.0/8", "172.16.0.0/12"}}},
			{Action: rules.Deny, Conditions: rules.Conditions{Country: []string{"CN", "RU", "KP", "IR"}}},
			{Action: rules.Deny, Conditions: rules.Conditions{ASN: []string{"64511", "64512"}}},
			{Action: rules.Log, Conditions: rules.Conditions{Continent: []string{"AF"}}},
		},
	}
	provision(b, h)
	// Production logs at Info: the per-request Debug line costs nothing.
	h.logger = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.InfoLevel))
	return h
}

// BenchmarkDecide is the per-request cost of the filter's work: one lookup
// in two databases and the rule evaluation, for an address that is allowed
// by default (the common case).
func BenchmarkDecide(b *testing.B) {
	h := benchHandler(b)
	ip := netip.MustParseAddr("192.0.2.1")
	var res Result // as in the handler, the result lives in the request's lookup
	b.ReportAllocs()
	for b.Loop() {
		res = Result{}
		h.src.dbs.Lookup(ip, &res)
		d, err := h.set.Decide(&rules.Input{IP: ip, Geo: &res}, nil)
		if err != nil || d.Action != rules.Allow || res.CountryCode != "DE" {
			b.Fatal(d, err, res)
		}
	}
}

// BenchmarkServeHTTP compares a request through the handler with the same
// request straight to the next handler; both prepare the request as a Caddy
// server does (vars, replacer, log fields), which is not counted apart.
func BenchmarkServeHTTP(b *testing.B) {
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	w := httptest.NewRecorder()
	b.Run("without", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r, _, _ := request("GET", "/", "192.0.2.1")
			next.ServeHTTP(w, r)
		}
	})
	b.Run("with", func(b *testing.B) {
		h := benchHandler(b)
		b.ReportAllocs()
		for b.Loop() {
			r, _, _ := request("GET", "/", "192.0.2.1")
			if err := h.ServeHTTP(w, r, next); err != nil {
				b.Fatal(err)
			}
		}
	})
}
