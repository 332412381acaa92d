package geofilter

import (
	"context"
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
// request straight to the next handler. Both prepare the request as a Caddy
// server does for each request (vars with client_ip, a replacer with the
// http placeholders, access-log fields), which is not counted apart; the
// request itself is parsed once. The access-log field is set, as in a
// server that writes an access log.
func BenchmarkServeHTTP(b *testing.B) {
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	w := httptest.NewRecorder()
	base := httptest.NewRequest("GET", "/", nil)
	b.Run("without", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r := caddyRequest(base, "192.0.2.1")
			next.ServeHTTP(w, r)
		}
	})
	b.Run("with", func(b *testing.B) {
		h := benchHandler(b)
		b.ReportAllocs()
		for b.Loop() {
			r := caddyRequest(base, "192.0.2.1")
			if err := h.ServeHTTP(w, r, next); err != nil {
				b.Fatal(err)
			}
		}
	})
	// A server without access log: the "geo" log field is not set.
	b.Run("with-no-access-log", func(b *testing.B) {
		h := benchHandler(b)
		srv := new(caddyhttp.Server)
		b.ReportAllocs()
		for b.Loop() {
			r := caddyRequest(base, "192.0.2.1")
			r = r.WithContext(context.WithValue(r.Context(), caddyhttp.ServerCtxKey, srv))
			if err := h.ServeHTTP(w, r, next); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// caddyRequest returns base prepared as caddyhttp.PrepareRequest does.
func caddyRequest(base *http.Request, clientIP string) *http.Request {
	ctx := context.WithValue(base.Context(), caddyhttp.VarsCtxKey, map[string]any{
		caddyhttp.TrustedProxyVarKey: false,
		caddyhttp.ClientIPVarKey:     clientIP,
	})
	ctx = context.WithValue(ctx, caddyhttp.ExtraLogFieldsCtxKey, new(caddyhttp.ExtraLogFields))
	r := base.WithContext(ctx)
	caddyhttp.NewTestReplacer(r)
	return r
}
