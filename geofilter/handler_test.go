package geofilter

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-edge/edge/geofilter/rules"
	"github.com/caddy-edge/edge/internal/mmdbtest"
)

// fixtures writes the databases the handler tests use: a country database
// (DE, US, CN, GB and an IPv6 network) and an ASN database.
func fixtures(t testing.TB) (country, asn string) {
	t.Helper()
	country = mmdbtest.Country(t, map[string]string{
		"192.0.2.0/25":    "DE",
		"192.0.2.128/25":  "US",
		"198.51.100.0/24": "CN",
		"203.0.113.0/24":  "GB",
		"2001:db8::/32":   "FR",
	})
	asn = mmdbtest.ASN(t, map[string]mmdbtest.ASNRecord{
		"192.0.2.0/24": {Number: 64496, Org: "Example Net"},
	})
	return country, asn
}

// provision provisions h in a fresh Caddy context, cleaned up with the test.
func provision(t testing.TB, h *Handler) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatalf("provision: %v", err)
	}
	if err := h.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	t.Cleanup(func() {
		if err := h.Cleanup(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

// load loads h as Caddy does (caddy.Context.LoadModule): Provision, then
// Validate, and Cleanup after either fails. It returns the error that
// refused the config, if any.
func load(h *Handler) error {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	err := h.Provision(ctx)
	if err == nil {
		err = h.Validate()
	}
	if err != nil {
		if cerr := h.Cleanup(); cerr != nil {
			return fmt.Errorf("%v; cleanup: %v", err, cerr)
		}
	}
	return err
}

// request returns a request as a Caddy server prepares it: vars with the
// client_ip, a replacer and the extra log fields.
func request(method, target, clientIP string) (*http.Request, *caddy.Replacer, *caddyhttp.ExtraLogFields) {
	r := httptest.NewRequest(method, target, nil)
	repl := caddy.NewReplacer()
	extra := new(caddyhttp.ExtraLogFields)
	ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: clientIP})
	ctx = context.WithValue(ctx, caddyhttp.ExtraLogFieldsCtxKey, extra)
	return r.WithContext(ctx), repl, extra
}

// serve runs h on a request from clientIP and returns the response,
// whether the next handler ran, the request's replacer and the error the
// handler returned.
func serve(h *Handler, method, target, clientIP string) (*httptest.ResponseRecorder, bool, *caddy.Replacer, error) {
	r, repl, _ := request(method, target, clientIP)
	w := httptest.NewRecorder()
	nextRan := false
	err := h.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		nextRan = true
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
	return w, nextRan, repl, err
}

func statusOf(t *testing.T, err error) int {
	t.Helper()
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) {
		t.Fatalf("error %v is not a caddyhttp.HandlerError", err)
	}
	return he.StatusCode
}

func TestHandlerDecisions(t *testing.T) {
	country, asn := fixtures(t)
	h := &Handler{
		Databases: []DatabaseConfig{{Path: country}, {Path: asn}},
		Rules: []Rule{
			{Action: rules.Allow, Conditions: rules.Conditions{IP: []string{"198.51.100.7"}}},
			{Action: rules.Deny, Conditions: rules.Conditions{Country: []string{"CN"}}},
			{Name: "admin", Action: rules.Deny, Conditions: rules.Conditions{Country: []string{"US"}},
				MatchRaw: caddy.ModuleMap{"path": []byte(`["/admin/*"]`)}, DenyResponse: DenyResponse{Status: 451}},
			{Action: rules.Log, Conditions: rules.Conditions{ASN: []string{"64496"}}},
			{Action: rules.Deny, Conditions: rules.Conditions{Country: []string{"unknown"}}},
		},
	}
	provision(t, h)
	tests := []struct {
		name, ip, path string
		status         int // 0: next ran
		decision, rule string
		country        string
	}{
		{"allowed by ip before the country deny", "198.51.100.7", "/", 0, "allow", "#1", "CN"},
		{"denied by country", "198.51.100.8", "/", 403, "deny", "#2", "CN"},
		{"ipv4-mapped address is normalised", "::ffff:198.51.100.8", "/", 403, "deny", "#2", "CN"},
		{"rule with a path matcher", "192.0.2.200", "/admin/x", 451, "deny", "admin", "US"},
		{"path matcher does not match", "192.0.2.200", "/public", 0, "log", "#4", "US"},
		{"log rule then default allow", "192.0.2.1", "/", 0, "log", "#4", "DE"},
		{"default allow", "203.0.113.9", "/", 0, "allow", "default", "GB"},
		{"unknown address", "10.1.2.3", "/", 403, "deny", "#5", "unknown"},
		{"ipv6", "2001:db8::1", "/", 0, "allow", "default", "FR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, nextRan, repl, err := serve(h, "GET", tt.path, tt.ip)
			if tt.status == 0 {
				if err != nil || !nextRan || w.Code != http.StatusNoContent {
					t.Fatalf("want the request let through; err=%v nextRan=%v code=%d", err, nextRan, w.Code)
				}
			} else {
				if nextRan {
					t.Fatal("next handler ran for a denied request")
				}
				if got := statusOf(t, err); got != tt.status {
					t.Fatalf("status %d, want %d", got, tt.status)
				}
			}
			if got := repl.ReplaceAll("{geo.decision} {geo.rule} {geo.country_code}", ""); got != tt.decision+" "+tt.rule+" "+tt.country {
				t.Errorf("placeholders %q, want %q", got, tt.decision+" "+tt.rule+" "+tt.country)
			}
		})
	}
}

// A rule whose only condition is a request matcher (an allow for health
// checks ahead of a country deny) loads: Provision clears MatchRaw when it
// loads the matchers, and Validate, which runs after it, must still count
// them as the rule's condition.
func TestHandlerRuleWithOnlyARequestMatcher(t *testing.T) {
	country, _ := fixtures(t)
	h := &Handler{
		Databases: []DatabaseConfig{{Path: country}},
		Rules: []Rule{
			{Name: "health", Action: rules.Allow, MatchRaw: caddy.ModuleMap{"path": []byte(`["/healthz"]`)}},
			{Action: rules.Deny, Conditions: rules.Conditions{Country: []string{"CN"}}},
		},
	}
	if err := load(h); err != nil {
		t.Fatalf("a rule with only a request matcher was refused: %v", err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	if _, nextRan, _, err := serve(h, "GET", "/healthz", "198.51.100.8"); err != nil || !nextRan {
		t.Errorf("/healthz from CN: want it allowed by the health rule; err=%v nextRan=%v", err, nextRan)
	}
	if _, nextRan, _, err := serve(h, "GET", "/", "198.51.100.8"); nextRan || statusOf(t, err) != http.StatusForbidden {
		t.Errorf("/ from CN: want 403; err=%v nextRan=%v", err, nextRan)
	}
}

func TestHandlerClientIPFromCaddyOnly(t *testing.T) {
	country, _ := fixtures(t)
	h := &Handler{
		Databases: []DatabaseConfig{{Path: country}},
		Rules:     []Rule{{Action: rules.Deny, Conditions: rules.Conditions{Country: []string{"CN"}}}},
	}
	provision(t, h)
	// Caddy decided the client is 203.0.113.9 (GB); a forged header must
	// not change that.
	r, _, _ := request("GET", "/", "203.0.113.9")
	r.Header.Set("X-Forwarded-For", "198.51.100.8")
	r.Header.Set("X-Real-IP", "198.51.100.8")
	err := h.ServeHTTP(httptest.NewRecorder(), r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
	if err != nil {
		t.Fatalf("request from GB with a forged CN header was denied: %v", err)
	}
}

func TestHandlerDenyResponse(t *testing.T) {
	country, _ := fixtures(t)
	page := t.TempDir() + "/blocked.html"
	mmdbtest.WriteFile(t, page, []byte("<h1>blocked</h1>"))
	h := &Handler{
		Databases: []DatabaseConfig{{Path: country}},
		Rules: []Rule{
			{Action: rules.Deny, Conditions: rules.Conditions{Country: []string{"CN"}},
				DenyResponse: DenyResponse{Status: 451, Body: "not in {geo.country_code}",
					Headers: http.Header{"X-Reason": {"geo {geo.country_code}"}, "Retry-After": {"3600"}}}},
			{Action: rules.Deny, Conditions: rules.Conditions{Country: []string{"GB"}}, DenyResponse: DenyResponse{File: page}},
			{Action: rules.Deny, Conditions: rules.Conditions{Country: []string{"DE"}},
				DenyResponse: DenyResponse{Status: 302, Headers: http.Header{"Location": {"https://example.com/eu"}}}},
		},
	}
	provision(t, h)

	w, nextRan, _, err := serve(h, "GET", "/", "198.51.100.8")
	if err != nil || nextRan {
		t.Fatalf("err=%v nextRan=%v", err, nextRan)
	}
	if w.Code != 451 || w.Body.String() != "not in CN" || w.Header().Get("X-Reason") != "geo CN" ||
		w.Header().Get("Retry-After") != "3600" || w.Header().Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("got %d %q %v", w.Code, w.Body, w.Header())
	}

	w, _, _, err = serve(h, "GET", "/", "203.0.113.9")
	if err != nil || w.Code != 403 || w.Body.String() != "<h1>blocked</h1>" || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Errorf("file: err=%v %d %q %v", err, w.Code, w.Body, w.Header())
	}

	w, _, _, err = serve(h, "HEAD", "/", "203.0.113.9")
	if err != nil || w.Code != 403 || w.Body.Len() != 0 || w.Header().Get("Content-Length") != "16" {
		t.Errorf("HEAD: err=%v %d %q %v", err, w.Code, w.Body, w.Header())
	}

	w, _, _, err = serve(h, "GET", "/", "192.0.2.1")
	if err != nil || w.Code != 302 || w.Header().Get("Location") != "https://example.com/eu" {
		t.Errorf("redirect: err=%v %d %v", err, w.Code, w.Header())
	}
}

// The default deny answers with its own response, as a deny rule does;
// allowed requests and rules are not affected.
func TestHandlerDefaultDenyResponse(t *testing.T) {
	country, _ := fixtures(t)
	h := &Handler{
		Databases: []DatabaseConfig{{Path: country}},
		Rules:     []Rule{{Action: rules.Allow, Conditions: rules.Conditions{Country: []string{"DE"}}}},
		Default:   "deny",
		DefaultResponse: &DenyResponse{
			Status:  451,
			Body:    "not from {geo.country_code} ({geo.rule})",
			Headers: http.Header{"Retry-After": {"3600"}},
		},
	}
	provision(t, h)
	w, nextRan, _, err := serve(h, "GET", "/", "198.51.100.8")
	if err != nil || nextRan {
		t.Fatalf("err=%v nextRan=%v", err, nextRan)
	}
	if w.Code != 451 || w.Body.String() != "not from CN (default)" || w.Header().Get("Retry-After") != "3600" ||
		w.Header().Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("default deny: %d %q %v", w.Code, w.Body, w.Header())
	}
	if _, nextRan, _, err := serve(h, "GET", "/", "192.0.2.1"); err != nil || !nextRan {
		t.Errorf("allowed by a rule: err=%v nextRan=%v", err, nextRan)
	}

	// Only the status: still a Caddy error, for handle_errors.
	h2 := &Handler{Databases: []DatabaseConfig{{Path: country}}, Default: "deny", DefaultResponse: &DenyResponse{Status: 404}}
	provision(t, h2)
	if _, nextRan, _, err := serve(h2, "GET", "/", "192.0.2.1"); nextRan || statusOf(t, err) != 404 {
		t.Errorf("status only: err=%v nextRan=%v", err, nextRan)
	}

	for _, bad := range []struct {
		h    Handler
		want string
	}{
		{Handler{DefaultResponse: &DenyResponse{Status: 451}}, "default_response: only for default deny"},
		{Handler{Default: "deny", DefaultResponse: &DenyResponse{Status: 200}}, "default_response: bad status 200"},
		{Handler{Default: "deny", DefaultResponse: &DenyResponse{Body: "a", File: "b"}}, "default_response: body and file are mutually exclusive"},
		{Handler{Default: "deny", DefaultResponse: &DenyResponse{File: "/nonexistent/blocked.html"}}, "default_response: reading deny file"},
	} {
		if err := load(&bad.h); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v: err = %v, want %q", bad.h.DefaultResponse, err, bad.want)
		}
	}
}

func TestHandlerLogOnly(t *testing.T) {
	country, _ := fixtures(t)
	h := &Handler{
		Databases: []DatabaseConfig{{Path: country}},
		Rules:     []Rule{{Name: "no-cn", Action: rules.Deny, Conditions: rules.Conditions{Country: []string{"CN"}}}},
		Default:   "deny",
		LogOnly:   true,
	}
	provision(t, h)
	core, logs := observer.New(zapcore.InfoLevel)
	h.logger = zap.New(core)
	for _, ip := range []string{"198.51.100.8", "203.0.113.9"} {
		_, nextRan, repl, err := serve(h, "GET", "/", ip)
		if err != nil || !nextRan {
			t.Fatalf("%s: log_only blocked: err=%v", ip, err)
		}
		if got := repl.ReplaceAll("{geo.decision}", ""); got != "would_deny" {
			t.Errorf("%s: decision %q, want would_deny", ip, got)
		}
	}
	entries := logs.FilterMessage("geofilter decision").All()
	if len(entries) != 2 {
		t.Fatalf("%d Info logs, want one per would-be deny: %v", len(entries), entries)
	}
	if f := entries[0].ContextMap(); f["rule"] != "no-cn" || f["country"] != "CN" || f["decision"] != "would_deny" {
		t.Errorf("log fields %v", f)
	}
	if f := entries[1].ContextMap(); f["rule"] != "default" || f["country"] != "GB" {
		t.Errorf("log fields %v", f)
	}
}

func TestHandlerPlaceholdersAndLogFields(t *testing.T) {
	city := mmdbtest.City(t, map[string]mmdbtest.CityRecord{
		"192.0.2.0/24": {Country: "GB", Subdivision: "ENG", City: "London"},
	})
	_, asn := fixtures(t)
	anon := mmdbtest.Anonymous(t, map[string]mmdbtest.AnonymousRecord{
		"192.0.2.0/24": {IsAnonymous: true, IsAnonymousVPN: true},
	})
	h := &Handler{Databases: []DatabaseConfig{{Path: city}, {Path: asn}, {Path: anon}}}
	provision(t, h)
	r, repl, _ := request("GET", "/", "192.0.2.10")
	nextSaw := ""
	err := h.ServeHTTP(httptest.NewRecorder(), r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		nextSaw = repl.ReplaceAll("{geo.country_code}|{geo.continent_code}|{geo.in_eu}|{geo.subdivision_code}|{geo.city}|{geo.asn}|{geo.asn_org}|{geo.is_anonymous}|{geo.decision}|{geo.rule}|{geo.ip}", "")
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if want := "GB|EU|false|ENG|London|64496|Example Net|true|allow|default|192.0.2.10"; nextSaw != want {
		t.Errorf("placeholders\n got %s\nwant %s", nextSaw, want)
	}
	// An unknown address: country and continent are "unknown", the rest empty.
	_, _, repl, _ = serve(h, "GET", "/", "10.0.0.1")
	if got, want := repl.ReplaceAll("{geo.country_code}|{geo.continent_code}|{geo.city}|{geo.asn}|{geo.is_anonymous}", ""), "unknown|unknown|||false"; got != want {
		t.Errorf("unknown address: %q, want %q", got, want)
	}
	// The access log's "geo" object (attached through ExtraLogFields; the
	// integration test reads it from a real access log).
	r, _, _ = request("GET", "/", "192.0.2.10")
	if err := h.ServeHTTP(httptest.NewRecorder(), r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })); err != nil {
		t.Fatal(err)
	}
	enc := zapcore.NewMapObjectEncoder()
	if err := requestLookup(r).MarshalLogObject(enc); err != nil {
		t.Fatal(err)
	}
	if f := enc.Fields; f["country"] != "GB" || f["decision"] != "allow" || f["rule"] != "default" || f["asn"] != uint32(64496) {
		t.Errorf("geo log object %v", f)
	}
}

// Two filters on one request (a site-wide one and a stricter one for a
// path) share the request's lookup: the second reuses the record, and the
// placeholders and the log object show the second's decision.
func TestHandlerTwoFiltersOneRequest(t *testing.T) {
	country, _ := fixtures(t)
	site := &Handler{Databases: []DatabaseConfig{{Path: country}}}
	provision(t, site)
	strict := &Handler{
		Databases: []DatabaseConfig{{Path: country}},
		Rules:     []Rule{{Name: "eu-only", Action: rules.Log, Conditions: rules.Conditions{Continent: []string{"EU"}}}},
	}
	provision(t, strict)
	r, repl, _ := request("GET", "/", "192.0.2.1")
	var first *lookup
	saw := ""
	err := site.ServeHTTP(httptest.NewRecorder(), r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		first = requestLookup(r)
		return strict.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			saw = repl.ReplaceAll("{geo.country_code} {geo.decision} {geo.rule}", "")
			return nil
		}))
	}))
	if err != nil {
		t.Fatal(err)
	}
	if want := "DE log eu-only"; saw != want {
		t.Errorf("placeholders after the second filter: %q, want %q", saw, want)
	}
	if l := requestLookup(r); l != first || l.decision != decisionLog {
		t.Errorf("the second filter made a new record (%p, first %p) or kept the first's decision %q", l, first, l.decision)
	}
}

func TestHandlerMetrics(t *testing.T) {
	country, _ := fixtures(t)
	h := &Handler{
		Databases: []DatabaseConfig{{Path: country}},
		Rules:     []Rule{{Action: rules.Deny, Conditions: rules.Conditions{Country: []string{"CN"}}}},
	}
	provision(t, h)
	denyCN := testutil.ToFloat64(decisions.WithLabelValues("deny", "CN"))
	allowUnknown := testutil.ToFloat64(decisions.WithLabelValues("allow", "unknown"))
	notFound := testutil.ToFloat64(lookupsNotFound)
	serve(h, "GET", "/", "198.51.100.8")
	serve(h, "GET", "/", "198.51.100.9")
	serve(h, "GET", "/", "10.0.0.1")
	if got := testutil.ToFloat64(decisions.WithLabelValues("deny", "CN")) - denyCN; got != 2 {
		t.Errorf("deny CN counted %v, want 2", got)
	}
	if got := testutil.ToFloat64(decisions.WithLabelValues("allow", "unknown")) - allowUnknown; got != 1 {
		t.Errorf("allow unknown counted %v, want 1", got)
	}
	if got := testutil.ToFloat64(lookupsNotFound) - notFound; got != 1 {
		t.Errorf("not found counted %v, want 1", got)
	}

	// A filter without databases looks nothing up, so finds nothing missing.
	ipOnly := &Handler{Rules: []Rule{{Action: rules.Deny, Conditions: rules.Conditions{IP: []string{"10.0.0.0/8"}}}}}
	provision(t, ipOnly)
	notFound = testutil.ToFloat64(lookupsNotFound)
	serve(ipOnly, "GET", "/", "192.0.2.1")
	if got := testutil.ToFloat64(lookupsNotFound) - notFound; got != 0 {
		t.Errorf("a filter without databases counted %v lookups not found", got)
	}
}

// TestHandlerLoadErrors: a config that cannot work is refused at load, with
// an error that says why, and what was opened is released.
func TestHandlerLoadErrors(t *testing.T) {
	country, _ := fixtures(t)
	tests := []struct {
		name string
		h    Handler
		want string
	}{
		{"missing database", Handler{Databases: []DatabaseConfig{{Path: "/nonexistent/x.mmdb"}}}, "/nonexistent/x.mmdb"},
		{"corrupt database", Handler{Databases: []DatabaseConfig{{Path: mmdbtest.Corrupt(t)}}}, "opening databases"},
		{"country rule without db", Handler{Rules: []Rule{{Action: rules.Deny, Conditions: rules.Conditions{Country: []string{"CN"}}}}}, "rule #1: needs a database"},
		{"missing ip_list", Handler{Rules: []Rule{{Action: rules.Deny, Conditions: rules.Conditions{IPList: []string{"/nonexistent/drop.netset"}}}}}, "ip_list /nonexistent/drop.netset"},
		{"missing deny file", Handler{Databases: []DatabaseConfig{{Path: country}}, Rules: []Rule{{Action: rules.Deny, Conditions: rules.Conditions{Country: []string{"CN"}}, DenyResponse: DenyResponse{File: "/nonexistent/page.html"}}}}, "reading deny file"},
		{"bad default", Handler{Default: "log"}, `default: unknown action "log"`},
		{"rule without action", Handler{Rules: []Rule{{Conditions: rules.Conditions{IP: []string{"10.0.0.0/8"}}}}}, "rule #1: missing action"},
		{"rule without condition", Handler{Rules: []Rule{{Action: rules.Deny}}}, "rule #1: no condition"},
		{"bad country in JSON", Handler{Databases: []DatabaseConfig{{Path: country}}, Rules: []Rule{{Action: rules.Deny, Conditions: rules.Conditions{Country: []string{"China"}}}}}, `bad country code "China"`},
		{"status on allow", Handler{Rules: []Rule{{Action: rules.Allow, Conditions: rules.Conditions{IP: []string{"10.0.0.0/8"}}, DenyResponse: DenyResponse{Status: 403}}}}, "only for deny rules"},
		{"unknown matcher", Handler{Rules: []Rule{{Action: rules.Deny, MatchRaw: caddy.ModuleMap{"nope": []byte(`{}`)}}}}, "loading matchers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.h
			if err := load(&h); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestMatcher(t *testing.T) {
	country, _ := fixtures(t)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	newMatcher := func(m *MatchGeo) *MatchGeo {
		if err := m.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Cleanup() })
		return m
	}
	eu := newMatcher(&MatchGeo{Conditions: rules.Conditions{Continent: []string{"EU"}}})
	euOwn := newMatcher(&MatchGeo{Conditions: rules.Conditions{Continent: []string{"EU"}}, Databases: []DatabaseConfig{{Path: country}}})
	office := newMatcher(&MatchGeo{Conditions: rules.Conditions{IP: []string{"10.0.0.0/8"}}})

	h := &Handler{Databases: []DatabaseConfig{{Path: country}}}
	provision(t, h)

	// With a geofilter handler before it, the matcher reuses its lookup.
	for ip, want := range map[string]bool{"192.0.2.1": true, "203.0.113.9": true, "192.0.2.200": false, "10.0.0.1": false} {
		r, _, _ := request("GET", "/", ip)
		var got bool
		var err error
		h.ServeHTTP(httptest.NewRecorder(), r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			got, err = eu.MatchWithError(r)
			return nil
		}))
		if err != nil || got != want {
			t.Errorf("%s after geofilter: match=%v err=%v, want %v", ip, got, err, want)
		}
		r, _, _ = request("GET", "/", ip)
		if got, err := euOwn.MatchWithError(r); err != nil || got != want {
			t.Errorf("%s with its own db: match=%v err=%v, want %v", ip, got, err, want)
		}
	}
	// Without a handler and without a db: a clear error, not a silent miss.
	r, _, _ := request("GET", "/", "192.0.2.1")
	if _, err := eu.MatchWithError(r); err == nil || !strings.Contains(err.Error(), "no geofilter handler ran") {
		t.Errorf("err = %v, want the no-lookup error", err)
	}
	// An address-only matcher needs no database.
	r, _, _ = request("GET", "/", "10.2.3.4")
	if got, err := office.MatchWithError(r); err != nil || !got {
		t.Errorf("ip matcher: %v %v", got, err)
	}
}

func TestClientIP(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":        "192.0.2.1",
		"::ffff:192.0.2.1": "192.0.2.1",
		"fe80::1%eth0":     "fe80::1",
		"2001:db8::1":      "2001:db8::1",
	} {
		r, _, _ := request("GET", "/", in)
		if got := clientIP(r); got != netip.MustParseAddr(want) {
			t.Errorf("clientIP(%q) = %v, want %v", in, got, want)
		}
	}
	r, _, _ := request("GET", "/", "garbage")
	if got := clientIP(r); got.IsValid() {
		t.Errorf("garbage parsed as %v", got)
	}
}

func TestHandlerIPList(t *testing.T) {
	list := t.TempDir() + "/drop.netset"
	mmdbtest.WriteFile(t, list, []byte("# Spamhaus DROP style\n198.51.100.0/24 ; SBL1\n2001:db8:bad::/48\n"))
	h := &Handler{Rules: []Rule{
		{Action: rules.Deny, Conditions: rules.Conditions{IPList: []string{list}}},
	}}
	provision(t, h)
	for ip, denied := range map[string]bool{
		"198.51.100.1": true, "::ffff:198.51.100.1": true, "2001:db8:bad::1": true,
		"198.51.101.1": false, "2001:db8::1": false,
	} {
		_, nextRan, _, err := serve(h, "GET", "/", ip)
		if denied && (nextRan || statusOf(t, err) != 403) {
			t.Errorf("%s: not denied (err=%v)", ip, err)
		}
		if !denied && (!nextRan || err != nil) {
			t.Errorf("%s: denied (err=%v)", ip, err)
		}
	}
}

func TestCountDecision(t *testing.T) {
	for _, c := range []struct{ action, country string }{
		{"allow", "DE"}, {"deny", "ZZ"}, {"log", "unknown"}, {"would_deny", "other"}, {"allow", "AA"},
	} {
		before := testutil.ToFloat64(decisions.WithLabelValues(c.action, c.country))
		countDecision(c.action, c.country)
		countDecision(c.action, c.country) // the second time from the cache
		if got := testutil.ToFloat64(decisions.WithLabelValues(c.action, c.country)) - before; got != 2 {
			t.Errorf("%s %s counted %v, want 2", c.action, c.country, got)
		}
	}
}
