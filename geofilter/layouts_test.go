package geofilter

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5" //nolint:gosec // MaxMind's update protocol
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-edge/edge/geofilter/geoupdate"
	"github.com/caddy-edge/edge/geofilter/rules"
	"github.com/caddy-edge/edge/internal/mmdbtest"
)

func writeDB(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBareDBEveryLayout: a bare `db <file>` (no fields) on each layout of
// the free databases gives country, continent and EU rules what they need.
func TestBareDBEveryLayout(t *testing.T) {
	nets := map[string]string{"192.0.2.0/25": "DE", "192.0.2.128/25": "US", "198.51.100.0/24": "CN", "203.0.113.0/24": "GB"}
	ipinfo := map[string]mmdbtest.IPinfoRecord{}
	for n, cc := range nets {
		ipinfo[n] = mmdbtest.IPinfoRecord{Country: cc, ASN: 64496, ASName: "Example"}
	}
	yes := true
	for name, db := range map[string][]byte{
		"GeoLite2-Country":                        mmdbtest.BuildCountry(nets),
		"DB-IP Country Lite":                      mmdbtest.DBIPCountryLite(nets),
		"IPinfo Lite":                             mmdbtest.IPinfoLite(ipinfo),
		"ip-location-db country, IPv4":            mmdbtest.IPLocationDBCountry(nets, 4),
		"ip-location-db country, IPv6":            mmdbtest.IPLocationDBCountry(nets, 6),
		"IPinfo older build (country, continent)": mmdbtest.IPinfoCountry(nets),
	} {
		t.Run(name, func(t *testing.T) {
			h := &Handler{
				Databases: []DatabaseConfig{{Path: writeDB(t, "db.mmdb", db)}},
				Rules: []Rule{
					{Name: "cn", Action: rules.Deny, Conditions: rules.Conditions{Country: []string{"CN"}}},
					{Name: "eu", Action: rules.Allow, Conditions: rules.Conditions{EU: &yes}},
					{Name: "europe", Action: rules.Deny, Conditions: rules.Conditions{Continent: []string{"EU"}}},
				},
			}
			provision(t, h)
			for ip, want := range map[string]string{"198.51.100.1": "cn", "192.0.2.1": "eu", "203.0.113.1": "europe", "192.0.2.200": "default"} {
				_, _, repl, _ := serve(h, http.MethodGet, "/", ip)
				if got, _ := repl.GetString("geo.rule"); got != want {
					cc, _ := repl.GetString("geo.country_code")
					cont, _ := repl.GetString("geo.continent_code")
					t.Errorf("%s (%s, %s): rule %q, want %q", ip, cc, cont, got, want)
				}
			}
		})
	}
}

// TestRulesNeedDatabaseFields: a rule whose condition no database can
// serve is a configuration error naming the rule, the files and the field.
func TestRulesNeedDatabaseFields(t *testing.T) {
	country, asn := fixtures(t)
	flat := writeDB(t, "flat.mmdb", mmdbtest.IPLocationDBCountry(map[string]string{"192.0.2.0/24": "DE"}, 4))
	anon := mmdbtest.Anonymous(t, map[string]mmdbtest.AnonymousRecord{"192.0.2.0/24": {IsAnonymous: true, IsTorExitNode: true}})
	yes := true
	deny := func(c rules.Conditions) []Rule {
		return []Rule{{Action: rules.Allow, Conditions: rules.Conditions{IP: []string{"10.0.0.0/8"}}}, {Action: rules.Deny, Conditions: c}}
	}
	for _, tt := range []struct {
		name string
		dbs  []string
		c    rules.Conditions
		want string // "" = loads
	}{
		{"country with an ASN database", []string{asn}, rules.Conditions{Country: []string{"CN"}},
			"rule #2: condition country reads country_code, which no database provides: " + asn + " (GeoLite2-ASN, layout geoip2-asn) provides asn, asn_org: add a database that has it"},
		{"not country with an ASN database", []string{asn}, rules.Conditions{Not: []rules.Conditions{{Country: []string{"DE"}}}}, "condition country reads country_code"},
		{"tor without an anonymous-IP database", []string{country, asn}, rules.Conditions{Anonymous: []string{"tor"}},
			"rule #2: condition anonymous tor reads is_tor_exit_node, which no database provides: " + country + " (GeoLite2-Country, layout geoip2-country) provides country_code, continent_code, in_eu; " + asn + " (GeoLite2-ASN, layout geoip2-asn) provides asn, asn_org: add an anonymous-IP database"},
		{"anonymous without one", []string{country}, rules.Conditions{Anonymous: []string{"any"}}, "condition anonymous reads any of is_anonymous"},
		{"asn with a country database", []string{country}, rules.Conditions{ASN: []string{"64496"}}, "condition asn reads asn"},
		{"subdivision with a country database", []string{country}, rules.Conditions{Subdivision: []string{"US-CA"}}, "condition subdivision reads subdivision_code"},
		{"country, continent and eu from a flat country database", []string{flat}, rules.Conditions{Country: []string{"DE"}, Continent: []string{"EU"}, EU: &yes}, ""},
		{"tor with an anonymous-IP database", []string{country, anon}, rules.Conditions{Anonymous: []string{"tor", "vpn"}, Country: []string{"DE"}}, ""},
		{"country from either of two", []string{asn, country}, rules.Conditions{Country: []string{"DE"}, ASN: []string{"64496"}}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := Handler{Rules: deny(tt.c)}
			for _, p := range tt.dbs {
				h.Databases = append(h.Databases, DatabaseConfig{Path: p})
			}
			err := load(&h)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				_ = h.Cleanup()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v\nwant it to contain %q", err, tt.want)
			}
		})
	}

	// The matcher with databases of its own is checked the same way.
	m := &MatchGeo{Databases: []DatabaseConfig{{Path: asn}}, Conditions: rules.Conditions{Country: []string{"DE"}}}
	ctx, cancel := newTestContext()
	defer cancel()
	if err := m.Provision(ctx); err == nil || !strings.Contains(err.Error(), "geo matcher: condition country reads country_code") {
		t.Errorf("matcher: err = %v", err)
	}
	_ = m.Cleanup()
}

// fakeUpdates serves one database both as MaxMind's update service (for
// edition GeoLite2-Country, account 42, key "k") and at /plain.mmdb with
// an ETag.
type fakeUpdates struct {
	mu   sync.Mutex
	db   []byte
	tag  int
	body func([]byte) []byte // nil: the database itself
}

func (f *fakeUpdates) set(db []byte) {
	f.mu.Lock()
	f.db, f.tag = db, f.tag+1
	f.mu.Unlock()
}

func (f *fakeUpdates) server(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /geoip/updates/metadata", func(w http.ResponseWriter, r *http.Request) {
		if u, p, _ := r.BasicAuth(); u != "42" || p != "k" {
			http.Error(w, `{"error":"bad key"}`, http.StatusUnauthorized)
			return
		}
		f.mu.Lock()
		sum := md5.Sum(f.db) //nolint:gosec
		f.mu.Unlock()
		fmt.Fprintf(w, `{"databases":[{"edition_id":%q,"md5":%q,"date":"2026-11-24"}]}`, r.URL.Query().Get("edition_id"), hex.EncodeToString(sum[:]))
	})
	mux.HandleFunc("GET /geoip/databases/{edition}/download", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		db := f.db
		f.mu.Unlock()
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		tw := tar.NewWriter(zw)
		name := r.PathValue("edition") + "_20261124/" + r.PathValue("edition") + ".mmdb"
		_ = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(db)), Typeflag: tar.TypeReg})
		_, _ = tw.Write(db)
		_ = tw.Close()
		_ = zw.Close()
		_, _ = w.Write(buf.Bytes())
	})
	mux.HandleFunc("GET /plain.mmdb", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		db, etag, body := f.db, fmt.Sprintf(`"%d"`, f.tag), f.body
		f.mu.Unlock()
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if body != nil {
			db = body(db)
		}
		w.Header().Set("ETag", etag)
		_, _ = w.Write(db)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// checkUpdate runs one update attempt of the updater of path now.
func checkUpdate(t *testing.T, path string) (geoupdate.Result, error) {
	t.Helper()
	var u *geoupdate.Updater
	updaters.Range(func(_, v any) bool {
		if e := v.(*updaterEntry); e.path == path {
			u = e.u
		}
		return true
	})
	if u == nil {
		t.Fatalf("no updater for %s", path)
	}
	return u.Check(context.Background())
}

// TestDatabaseUpdates: a database with update_url is downloaded when
// missing, replaced and reloaded when a new version is published, and kept
// when the download is garbage or of another kind; the updater stops with
// its last user.
func TestDatabaseUpdates(t *testing.T) {
	f := &fakeUpdates{}
	f.set(mmdbtest.IPLocationDBCountry(map[string]string{"192.0.2.0/24": "DE"}, 4))
	srv := f.server(t)
	path := filepath.Join(t.TempDir(), "sub", "country.mmdb")
	h := &Handler{
		Databases: []DatabaseConfig{{Path: path, Update: &UpdateConfig{URL: srv.URL + "/plain.mmdb"}}},
		Rules:     []Rule{{Action: rules.Deny, Conditions: rules.Conditions{Country: []string{"FR"}}}},
	}
	ctx, cancel := newTestContext()
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		t.Fatalf("provision (the missing file is downloaded first): %v", err)
	}
	country := func() string {
		_, _, repl, _ := serve(h, http.MethodGet, "/", "192.0.2.1")
		cc, _ := repl.GetString("geo.country_code")
		return cc
	}
	if got := country(); got != "DE" {
		t.Fatalf("after the first download: %s", got)
	}
	// A new version: downloaded, installed, reloaded at once.
	f.set(mmdbtest.IPLocationDBCountry(map[string]string{"192.0.2.0/24": "FR"}, 4))
	if res, err := checkUpdate(t, path); err != nil || res != geoupdate.Updated {
		t.Fatalf("update: %v %v", res, err)
	}
	if got := country(); got != "FR" {
		t.Errorf("after the update: %s, want FR", got)
	}
	// Unchanged: 304.
	if res, err := checkUpdate(t, path); err != nil || res != geoupdate.NotModified {
		t.Fatalf("unchanged: %v %v", res, err)
	}
	// Garbage, then a database of another kind: refused, FR stays.
	for _, bad := range []func([]byte) []byte{
		func(b []byte) []byte { return b[:len(b)/3] },
		func([]byte) []byte {
			return mmdbtest.BuildASN(map[string]mmdbtest.ASNRecord{"192.0.2.0/24": {Number: 1, Org: "x"}})
		},
	} {
		f.mu.Lock()
		f.body, f.tag = bad, f.tag+1
		f.mu.Unlock()
		if _, err := checkUpdate(t, path); err == nil {
			t.Error("a bad download was accepted")
		} else {
			t.Logf("refused: %v", err)
		}
		if got := country(); got != "FR" {
			t.Errorf("after a bad download: %s, want FR still", got)
		}
	}
	var info *geoupdate.Status
	for _, d := range listDatabases() {
		if d.Path == path {
			info = d.Update
		}
	}
	if info == nil || info.Source != srv.URL+"/plain.mmdb" || info.Failures != 2 || !strings.HasPrefix(info.LastResult, "error: ") || info.LastUpdate.IsZero() {
		t.Errorf("admin update state: %+v", info)
	}
	if err := h.Cleanup(); err != nil {
		t.Fatal(err)
	}
	n := 0
	updaters.Range(func(_, _ any) bool { n++; return true })
	if n != 0 {
		t.Errorf("%d updaters still running after the last user left", n)
	}
}

// TestDatabaseUpdatesMaxMindEdition: `db GeoLite2-Country { account_id
// license_key }` keeps the edition in Caddy's data directory, with the
// license key taken from the environment.
func TestDatabaseUpdatesMaxMindEdition(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv("GEOFILTER_TEST_LICENSE_KEY", "k")
	f := &fakeUpdates{}
	f.set(mmdbtest.BuildCountry(map[string]string{"192.0.2.0/24": "SE"}))
	srv := f.server(t)
	h := &Handler{
		Databases: []DatabaseConfig{{Path: "GeoLite2-Country", Update: &UpdateConfig{
			AccountID: "42", LicenseKey: "{env.GEOFILTER_TEST_LICENSE_KEY}", URL: srv.URL,
		}}},
		Rules: []Rule{{Action: rules.Deny, Conditions: rules.Conditions{Continent: []string{"EU"}}}},
	}
	provision(t, h)
	want := filepath.Join(DefaultDatabaseDir(), "GeoLite2-Country.mmdb")
	if b, err := os.ReadFile(want); err != nil || !bytes.Equal(b, f.db) {
		t.Fatalf("%s: %v", want, err)
	}
	if res, err := checkUpdate(t, want); err != nil || res != geoupdate.NotModified {
		t.Errorf("same release: %v %v", res, err)
	}
	if _, next, _, err := serve(h, http.MethodGet, "/", "192.0.2.1"); next || err == nil {
		t.Error("SE (Europe) not denied")
	}

	// A wrong key: the first download fails and the config is refused.
	t.Setenv("GEOFILTER_TEST_LICENSE_KEY", "wrong")
	h2 := &Handler{Databases: []DatabaseConfig{{Path: "GeoLite2-City", Update: &UpdateConfig{
		AccountID: "42", LicenseKey: "{env.GEOFILTER_TEST_LICENSE_KEY}", URL: srv.URL,
	}}}}
	if err := load(h2); err == nil || !strings.Contains(err.Error(), "the file is missing and the first download failed") || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong key: err = %v", err)
	}
}

func newTestContext() (caddy.Context, context.CancelFunc) {
	return caddy.NewContext(caddy.Context{Context: context.Background()})
}

// TestReloadKeepsFields: a replacement that lacks a field the current file
// provides (here, of the same kind) is refused and the current file keeps
// serving.
func TestReloadKeepsFields(t *testing.T) {
	path := writeDB(t, "country.mmdb", mmdbtest.IPinfoLite(map[string]mmdbtest.IPinfoRecord{"192.0.2.0/24": {Country: "DE", ASN: 64496, ASName: "Example"}}))
	d := openDBsForTest(t, -1, path)
	// A new version with the same fields: taken.
	mmdbtest.WriteFile(t, path, mmdbtest.IPinfoLite(map[string]mmdbtest.IPinfoRecord{"192.0.2.0/24": {Country: "FR", ASN: 64497, ASName: "Other"}}))
	if _, err := reloadDatabase(path); err != nil {
		t.Fatalf("same fields: %v", err)
	}
	// Country only: the ASN would be lost.
	mmdbtest.WriteFile(t, path, mmdbtest.IPLocationDBCountry(map[string]string{"192.0.2.0/24": "SE"}, 4))
	_, err := reloadDatabase(path)
	if err == nil || !strings.Contains(err.Error(), "the new version provides no asn") {
		t.Fatalf("err = %v, want the lost field named", err)
	}
	if got := lookupForTest(d, "192.0.2.1"); got.CountryCode != "FR" || got.ASN != 64497 {
		t.Errorf("after the refused reload: %+v", got)
	}
}
