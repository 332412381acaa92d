package geofilter_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	_ "github.com/caddy-edge/edge"
	"github.com/caddy-edge/edge/geofilter"
	"github.com/caddy-edge/edge/internal/caddytest"
	"github.com/caddy-edge/edge/internal/mmdbtest"
)

// The addresses of the integration tests, by country.
const (
	ipDE = "192.0.2.10"
	ipUS = "192.0.2.200"
	ipCN = "198.51.100.7"
	ipGB = "203.0.113.9"
	ipFR = "2001:db8::1"
)

var countryNets = map[string]string{
	"192.0.2.0/25":    "DE",
	"192.0.2.128/25":  "US",
	"198.51.100.0/24": "CN",
	"203.0.113.0/24":  "GB",
	"2001:db8::/32":   "FR",
}

// globalTrusted is the global options block of a Caddy that trusts
// X-Forwarded-For from loopback, so a test can choose the client address.
const globalTrusted = `{
	admin {ADMIN_ADDR}
	http_port {HTTP_PORT}
	auto_https off
	skip_install_trust
	persist_config off
	servers {
		trusted_proxies static 127.0.0.1/8 ::1
	}
	metrics
}
`

// get sends a request as if from client (through X-Forwarded-For when
// client is not empty) and returns status, body and headers.
func get(t *testing.T, s *caddytest.Server, method, path, client string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	if client != "" {
		req.Header.Set("X-Forwarded-For", client)
	}
	resp, err := do(t, s, req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

// do sends req (which has no body). When Caddy swaps configs, the old
// server may accept a connection and then close it unanswered; the request
// never reached a handler, so it is sent again on a new connection, as
// Go's transport does itself for idle connections it reuses: up to twice
// more, for a loaded machine on which the swap takes longer (CI saw two
// closed connections in a row once).
func do(t *testing.T, s *caddytest.Server, req *http.Request) (*http.Response, error) {
	resp, err := s.Client.Do(req)
	for try := 0; try < 2 && err != nil && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)); try++ {
		t.Logf("%s %s: %v (connection closed by a config swap); sending it again", req.Method, req.URL, err)
		s.Client.CloseIdleConnections()
		resp, err = s.Client.Do(req)
	}
	return resp, err
}

func expect(t *testing.T, s *caddytest.Server, method, path, client string, wantStatus int, wantBody string) http.Header {
	t.Helper()
	code, body, hdr := get(t, s, method, path, client)
	if code != wantStatus || (wantBody != "" && body != wantBody) {
		t.Errorf("%s %s from %s: %d %q, want %d %q", method, path, client, code, body, wantStatus, wantBody)
	}
	return hdr
}

// TestIntegration runs one real Caddy through several configs (Caddy has
// one config per process, so these are sequential sub-tests).
func TestIntegration(t *testing.T) {
	dir := t.TempDir()
	country := filepath.Join(dir, "country.mmdb")
	mmdbtest.WriteFile(t, country, mmdbtest.BuildCountry(countryNets))

	var originSaw atomic.Value
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		originSaw.Store(r.Header.Get("X-Country"))
		io.WriteString(w, "origin "+r.URL.Path)
	}))
	defer origin.Close()
	euOrigin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "eu origin "+r.URL.Path)
	}))
	defer euOrigin.Close()
	host := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

	s := caddytest.Start(t, globalTrusted+`
http://localhost:{HTTP_PORT} {
	geofilter {
		db `+country+`
		deny country CN
		allow ip 10.0.0.0/8
		rule deny us-admin {
			country US
			path /admin/*
			method POST
			status 451
			body "not for {geo.country_code}"
			header X-Reason geo
		}
		log country GB
		deny country unknown
	}
	handle_errors {
		respond "styled {err.status_code}"
	}
	respond "{geo.country_code} {geo.continent_code} {geo.decision} {geo.rule}"
}
`)

	t.Run("trusted proxy chooses the client address", func(t *testing.T) {
		expect(t, s, "GET", "/", ipDE, 200, "DE EU allow default")
		expect(t, s, "GET", "/", ipFR, 200, "FR EU allow default")
		expect(t, s, "GET", "/", "::ffff:"+ipDE, 200, "DE EU allow default")
		// A deny without a body is a Caddy error, restyled by handle_errors.
		expect(t, s, "GET", "/", ipCN, 403, "styled 403")
		expect(t, s, "GET", "/", "10.1.2.3", 200, "unknown unknown allow #2")
		expect(t, s, "GET", "/", "172.16.0.1", 403, "styled 403")
		expect(t, s, "GET", "/", ipGB, 200, "GB EU log #4")
	})

	t.Run("rule with path and method matchers and a custom response", func(t *testing.T) {
		hdr := expect(t, s, "POST", "/admin/users", ipUS, 451, "not for US")
		if hdr.Get("X-Reason") != "geo" {
			t.Errorf("X-Reason = %q", hdr.Get("X-Reason"))
		}
		expect(t, s, "GET", "/admin/users", ipUS, 200, "US NA allow default")
		expect(t, s, "POST", "/public", ipUS, 200, "US NA allow default")
		expect(t, s, "POST", "/admin/users", ipDE, 200, "DE EU allow default")
	})

	t.Run("metrics on caddy's registry", func(t *testing.T) {
		resp, err := s.Client.Get(s.AdminURL("/metrics"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{
			`caddy_geofilter_decisions_total{action="deny",country="CN"}`,
			`caddy_geofilter_decisions_total{action="log",country="GB"}`,
			`caddy_geofilter_lookups_not_found_total`,
		} {
			if !strings.Contains(string(body), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})

	t.Run("admin lookup through the real admin endpoint", func(t *testing.T) {
		resp, err := s.Client.Get(s.AdminURL("/geofilter/lookup?ip=" + ipCN))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var lr geofilter.LookupResponse
		if err := json.NewDecoder(resp.Body).Decode(&lr); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%d %v", resp.StatusCode, err)
		}
		if len(lr.Databases) != 1 || lr.Databases[0].Result == nil || lr.Databases[0].Result.CountryCode != "CN" {
			t.Errorf("databases %+v", lr.Databases)
		}
		if len(lr.Filters) != 1 || lr.Filters[0].Decision != "deny" || lr.Filters[0].Rule != "#1" {
			t.Errorf("filters %+v", lr.Filters)
		}
	})

	t.Run("a config reload keeps the database open", func(t *testing.T) {
		before := loadedAt(t, s, country)
		s.Load(t, globalTrusted+`
http://localhost:{HTTP_PORT} {
	geofilter {
		db `+country+`
		deny country DE
	}
	respond "{geo.country_code} {geo.decision}"
}
`)
		expect(t, s, "GET", "/", ipDE, 403, "")
		expect(t, s, "GET", "/", ipCN, 200, "CN allow")
		if after := loadedAt(t, s, country); after != before {
			t.Errorf("database reopened by the config reload: loaded at %s, then %s", before, after)
		}
	})

	t.Run("geo matcher and placeholders in later directives", func(t *testing.T) {
		s.Load(t, globalTrusted+`
http://localhost:{HTTP_PORT} {
	geofilter {
		db `+country+`
	}
	@eu geo continent EU
	reverse_proxy @eu `+host(euOrigin)+`
	reverse_proxy `+host(origin)+` {
		header_up X-Country {geo.country_code}
	}
}
`)
		expect(t, s, "GET", "/x", ipDE, 200, "eu origin /x")
		expect(t, s, "GET", "/x", ipFR, 200, "eu origin /x")
		expect(t, s, "GET", "/x", ipUS, 200, "origin /x")
		if got := originSaw.Load(); got != "US" {
			t.Errorf("origin saw X-Country %v, want US", got)
		}
		expect(t, s, "GET", "/x", "10.0.0.1", 200, "origin /x")
		if got := originSaw.Load(); got != "unknown" {
			t.Errorf("origin saw X-Country %v, want unknown", got)
		}
	})

	t.Run("named matcher in a rule, log_only and default deny", func(t *testing.T) {
		s.Load(t, globalTrusted+`
http://localhost:{HTTP_PORT} {
	@api path /api/*
	geofilter {
		db `+country+`
		rule allow {
			country DE
			@api
		}
		default deny
	}
	respond "{geo.decision}"
}
http://127.0.0.1:{HTTP_PORT} {
	geofilter {
		db `+country+`
		deny country CN
		log_only
	}
	respond "{geo.decision} {geo.rule}"
}
`)
		expect(t, s, "GET", "/api/x", ipDE, 200, "allow")
		expect(t, s, "GET", "/web", ipDE, 403, "")
		expect(t, s, "GET", "/api/x", ipUS, 403, "")

		// log_only lets the request through and says what it would do.
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/", s.HTTPPort), nil)
		req.Header.Set("X-Forwarded-For", ipCN)
		resp, err := do(t, s, req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "would_deny #1" {
			t.Errorf("log_only: %d %q", resp.StatusCode, body)
		}
	})
}

// TestIntegrationUntrustedPeer checks that, without trusted_proxies, a
// client cannot choose its country with X-Forwarded-For.
func TestIntegrationUntrustedPeer(t *testing.T) {
	country := mmdbtest.Country(t, map[string]string{"198.51.100.0/24": "CN", "127.0.0.0/8": "DE"})
	s := caddytest.Start(t, `
http://localhost:{HTTP_PORT} {
	geofilter {
		db `+country+`
		deny country DE
	}
	respond "{geo.ip} {geo.country_code}"
}
`)
	// The peer is 127.0.0.1 (DE here, denied); pretending to be from CN
	// does not help.
	expect(t, s, "GET", "/", ipCN, 403, "")
	expect(t, s, "GET", "/", "", 403, "")
}

// TestIntegrationReloadUnderLoad replaces the database while requests
// flow: with a good file (the answers switch) and with a corrupt one (the
// last good database keeps serving); no request fails.
func TestIntegrationReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	country := filepath.Join(dir, "country.mmdb")
	mmdbtest.WriteFile(t, country, mmdbtest.BuildCountry(map[string]string{"192.0.2.0/24": "DE"}))
	s := caddytest.Start(t, globalTrusted+`
http://localhost:{HTTP_PORT} {
	geofilter {
		db `+country+`
		reload_interval 1h
		deny country CN
	}
	respond "{geo.country_code}"
}
`)
	reload := func() geofilter.DatabaseInfo {
		t.Helper()
		resp, err := s.Client.Post(s.AdminURL("/geofilter/reload?path="+country), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var infos []geofilter.DatabaseInfo
		if err := json.NewDecoder(resp.Body).Decode(&infos); err != nil || resp.StatusCode != 200 || len(infos) != 1 {
			t.Fatalf("reload: %d %v %v", resp.StatusCode, infos, err)
		}
		return infos[0]
	}

	// phase is what the answers may be: 0 DE only, 1 DE or CN (the swap is
	// in progress), 2 CN only.
	var phase atomic.Int32
	var failures atomic.Int64
	var bad sync.Map
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				// The answer may be that of any phase the request overlapped.
				pStart := phase.Load()
				code, body, _ := getQuiet(s, ipDE)
				pEnd := phase.Load()
				ok := (pStart <= 1 && code == 200 && body == "DE") || (pEnd >= 1 && code == 403)
				if !ok {
					failures.Add(1)
					bad.Store(fmt.Sprintf("phases %d-%d: %d %q", pStart, pEnd, code, body), true)
				}
			}
		})
	}

	// A good replacement: 192.0.2.0/24 is now CN, so it is denied.
	phase.Store(1)
	mmdbtest.WriteFile(t, country, mmdbtest.BuildCountry(map[string]string{"192.0.2.0/24": "CN"}))
	if info := reload(); info.LastResult != "ok" {
		t.Errorf("good replacement: %+v", info)
	}
	phase.Store(2)
	for range 20 {
		if code, _, _ := getQuiet(s, ipDE); code != 403 {
			t.Fatalf("after the reload, %s still allowed", ipDE)
		}
	}

	// A corrupt replacement is rejected; CN stays.
	mmdbtest.WriteFile(t, country, mmdbtest.CorruptBytes())
	if info := reload(); !strings.HasPrefix(info.LastResult, "error") || info.Failures == 0 {
		t.Errorf("corrupt replacement: %+v", info)
	}
	for range 20 {
		if code, _, _ := getQuiet(s, ipDE); code != 403 {
			t.Fatalf("after a corrupt replacement, %s allowed", ipDE)
		}
	}
	close(stop)
	wg.Wait()
	if n := failures.Load(); n > 0 {
		bad.Range(func(k, _ any) bool { t.Error(k); return true })
		t.Fatalf("%d requests got a wrong answer during the reloads", n)
	}

	// Both reloads are counted on Caddy's metrics.
	resp, err := s.Client.Get(s.AdminURL("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`caddy_geofilter_database_reloads_total{result="ok"}`,
		`caddy_geofilter_database_reloads_total{result="error"}`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// getQuiet is get for goroutines: errors become status 0.
func getQuiet(s *caddytest.Server, client string) (int, string, error) {
	req, _ := http.NewRequest("GET", s.URL("/"), nil)
	req.Header.Set("X-Forwarded-For", client)
	resp, err := s.Client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), nil
}

// loadedAt returns when the file at path was loaded, as GET
// /geofilter/databases on s's admin API says.
func loadedAt(t *testing.T, s *caddytest.Server, path string) string {
	t.Helper()
	return adminInfo(t, s, path).LoadedAt.String()
}

// adminInfo returns what GET /geofilter/databases on s's admin API says of
// the file at path.
func adminInfo(t *testing.T, s *caddytest.Server, path string) geofilter.DatabaseInfo {
	t.Helper()
	abs, _ := filepath.Abs(path)
	resp, err := s.Client.Get(s.AdminURL("/geofilter/databases"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []geofilter.DatabaseInfo
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	for _, d := range list {
		if d.Path == abs {
			return d
		}
	}
	t.Fatalf("%s is not listed by the admin API", abs)
	return geofilter.DatabaseInfo{}
}

// TestIntegrationAccessLog checks the "geo" object that every access log
// entry gets.
func TestIntegrationAccessLog(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "access.log")
	country := mmdbtest.Country(t, countryNets)
	s := caddytest.Start(t, globalTrusted+`
http://localhost:{HTTP_PORT} {
	log {
		output file `+logFile+`
		format json
	}
	geofilter {
		db `+country+`
		deny country CN
	}
	respond "ok"
}
`)
	expect(t, s, "GET", "/a", ipCN, 403, "")
	expect(t, s, "GET", "/b", ipDE, 200, "ok")

	// Caddy writes the access log entry just after the response; wait for
	// both entries (bounded), then check them.
	type entry struct {
		Request struct{ URI string } `json:"request"`
		Geo     map[string]any       `json:"geo"`
	}
	var entries []entry
	for deadline := time.Now().Add(10 * time.Second); len(entries) < 2 && time.Now().Before(deadline); {
		entries = entries[:0]
		raw, _ := os.ReadFile(logFile)
		for line := range strings.SplitSeq(strings.TrimSpace(string(raw)), "\n") {
			var e entry
			if json.Unmarshal([]byte(line), &e) == nil && e.Request.URI != "" {
				entries = append(entries, e)
			}
		}
		if len(entries) < 2 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	want := map[string]map[string]any{
		"/a": {"country": "CN", "decision": "deny", "rule": "#1"},
		"/b": {"country": "DE", "decision": "allow", "rule": "default"},
	}
	if len(entries) != 2 {
		t.Fatalf("%d access log entries, want 2", len(entries))
	}
	for _, e := range entries {
		w := want[e.Request.URI]
		for k, v := range w {
			if e.Geo[k] != v {
				t.Errorf("%s: geo.%s = %v, want %v (geo %v)", e.Request.URI, k, e.Geo[k], v, e.Geo)
			}
		}
	}
}

// TestIntegrationCEL uses the geo matcher inside a CEL expression.
func TestIntegrationCEL(t *testing.T) {
	country := mmdbtest.Country(t, countryNets)
	s := caddytest.Start(t, globalTrusted+`
http://localhost:{HTTP_PORT} {
	geofilter {
		db `+country+`
	}
	@euOrPublic expression geo({'continent': ['EU'], 'country': ['DE', 'FR']}) || path('/public/*')
	respond @euOrPublic "yes"
	respond "no"
}
`)
	expect(t, s, "GET", "/", ipDE, 200, "yes")
	expect(t, s, "GET", "/", ipFR, 200, "yes")
	expect(t, s, "GET", "/", ipGB, 200, "no")
	expect(t, s, "GET", "/", ipUS, 200, "no")
	expect(t, s, "GET", "/public/x", ipUS, 200, "yes")
}

// TestModulesRegistered checks that the plugin registers the modules
// DESIGN.md promises for the filter.
func TestModulesRegistered(t *testing.T) {
	for _, id := range []string{"http.handlers.geofilter", "http.matchers.geo", "admin.api.geofilter"} {
		if _, err := caddy.GetModule(id); err != nil {
			t.Errorf("module %s: %v", id, err)
		}
	}
}

// TestIntegrationAdminDuringReload asks the admin API while configs are
// replaced (and their handlers cleaned up): with -race, this catches an
// admin lookup touching a handler that is being torn down.
func TestIntegrationAdminDuringReload(t *testing.T) {
	country := mmdbtest.Country(t, countryNets)
	other := mmdbtest.Country(t, map[string]string{"192.0.2.0/24": "NL"})
	cfg := func(db string) string {
		return globalTrusted + `
http://localhost:{HTTP_PORT} {
	geofilter {
		db ` + db + `
		deny country CN
	}
	respond "{geo.country_code}"
}
`
	}
	s := caddytest.Start(t, cfg(country))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var errs, answered atomic.Int64
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := s.Client.Get(s.AdminURL("/geofilter/lookup?ip=" + ipDE))
			if err != nil {
				errs.Add(1)
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				errs.Add(1)
				continue
			}
			answered.Add(1)
		}
	})
	for i := range 6 {
		if i%2 == 0 {
			s.Load(t, cfg(other))
			expect(t, s, "GET", "/", ipDE, 200, "NL")
		} else {
			s.Load(t, cfg(country))
			expect(t, s, "GET", "/", ipDE, 200, "DE")
		}
	}
	close(stop)
	wg.Wait()
	// The admin server itself restarts with each config, so a few
	// connection errors are expected; a data race fails the test under -race.
	t.Logf("%d admin requests answered, %d failed during config loads", answered.Load(), errs.Load())
	if answered.Load() == 0 {
		t.Error("the admin API never answered a lookup while configs were loaded")
	}
	// Once the loads are over, the admin API answers from the last config.
	resp, err := s.Client.Get(s.AdminURL("/geofilter/lookup?ip=" + ipDE))
	if err != nil {
		t.Fatalf("admin lookup after the reloads: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"DE"`) {
		t.Errorf("admin lookup after the reloads = %d %s, want 200 with country DE", resp.StatusCode, body)
	}
}
