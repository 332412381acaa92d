package geofilter

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-edge/edge/geofilter/geodb"
	"github.com/caddy-edge/edge/geofilter/geoupdate"
	"github.com/caddy-edge/edge/geofilter/rules"
	"github.com/caddy-edge/edge/internal/mmdbtest"
)

// adminDo calls the admin route for path the way Caddy's admin server does
// and returns the status and body.
func adminDo(t *testing.T, method, target string) (int, []byte) {
	t.Helper()
	u, _ := url.Parse(target)
	var route caddy.AdminRoute
	for _, r := range (Admin{}).Routes() {
		if r.Pattern == u.Path {
			route = r
		}
	}
	if route.Handler == nil {
		t.Fatalf("no admin route %s", u.Path)
	}
	w := httptest.NewRecorder()
	err := route.Handler.ServeHTTP(w, httptest.NewRequest(method, target, nil))
	if err != nil {
		var api caddy.APIError
		if !errors.As(err, &api) {
			t.Fatalf("%s %s: error %v is not a caddy.APIError", method, target, err)
		}
		return api.HTTPStatus, []byte(api.Err.Error())
	}
	return w.Code, w.Body.Bytes()
}

func filterID(h *Handler) int {
	filters.mu.RLock()
	defer filters.mu.RUnlock()
	return filters.live[h]
}

func TestAdmin(t *testing.T) {
	country, asn := fixtures(t)
	h := &Handler{
		Databases: []DatabaseConfig{{Path: country}, {Path: asn}},
		Rules: []Rule{
			{Name: "no-cn", Action: rules.Deny, Conditions: rules.Conditions{Country: []string{"CN"}}},
			{Name: "watch", Action: rules.Log, Conditions: rules.Conditions{ASN: []string{"64496"}}},
		},
	}
	provision(t, h)

	t.Run("lookup", func(t *testing.T) {
		code, body := adminDo(t, "GET", "/geofilter/lookup?ip=::ffff:192.0.2.1")
		if code != http.StatusOK {
			t.Fatalf("status %d: %s", code, body)
		}
		var resp LookupResponse
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatal(err)
		}
		if resp.IP != "192.0.2.1" || len(resp.Databases) != 2 {
			t.Fatalf("response %s", body)
		}
		byPath := map[string]DatabaseAnswer{}
		for _, d := range resp.Databases {
			byPath[d.Path] = d
		}
		if d := byPath[country]; d.Result == nil || d.Result.CountryCode != "DE" || d.Result.ASN != 0 || d.Kind != "country" {
			t.Errorf("country db answer %+v", d)
		}
		if d := byPath[asn]; d.Result == nil || d.Result.ASN != 64496 || d.Result.CountryCode != "" || d.Kind != "asn" {
			t.Errorf("asn db answer %+v", d)
		}
		var mine *FilterAnswer
		for i := range resp.Filters {
			if resp.Filters[i].ID == filterID(h) {
				mine = &resp.Filters[i]
			}
		}
		if mine == nil {
			t.Fatalf("filter %d not in %s", filterID(h), body)
		}
		if mine.Country != "DE" || mine.Result.ASN != 64496 || mine.Decision != "log" || mine.Rule != "watch" || mine.LogRule != "watch" {
			t.Errorf("filter answer %+v", mine)
		}

		_, body = adminDo(t, "GET", "/geofilter/lookup?ip=198.51.100.1")
		json.Unmarshal(body, &resp)
		for _, f := range resp.Filters {
			if f.ID == filterID(h) && (f.Decision != "deny" || f.Rule != "no-cn") {
				t.Errorf("CN address: %+v", f)
			}
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, c := range []struct {
			method, target string
			want           int
		}{
			{"POST", "/geofilter/lookup?ip=192.0.2.1", http.StatusMethodNotAllowed},
			{"GET", "/geofilter/lookup?ip=not-an-ip", http.StatusBadRequest},
			{"GET", "/geofilter/lookup", http.StatusBadRequest},
			{"DELETE", "/geofilter/databases", http.StatusMethodNotAllowed},
			{"GET", "/geofilter/reload", http.StatusMethodNotAllowed},
			{"POST", "/geofilter/reload?path=/nonexistent.mmdb", http.StatusNotFound},
		} {
			if code, body := adminDo(t, c.method, c.target); code != c.want {
				t.Errorf("%s %s: %d %s, want %d", c.method, c.target, code, body, c.want)
			}
		}
	})

	t.Run("databases and reload", func(t *testing.T) {
		abs, _ := filepath.Abs(country)
		code, body := adminDo(t, "GET", "/geofilter/databases")
		var list []DatabaseInfo
		if err := json.Unmarshal(body, &list); err != nil || code != http.StatusOK {
			t.Fatalf("%d %s %v", code, body, err)
		}
		found := false
		for _, d := range list {
			if d.Path == abs {
				found = d.Kind == "country" && !d.BuildTime.IsZero()
			}
		}
		if !found {
			t.Errorf("%s not listed as a country database: %s", abs, body)
		}
		code, body = adminDo(t, "POST", "/geofilter/reload?path="+url.QueryEscape(country))
		if err := json.Unmarshal(body, &list); err != nil || code != http.StatusOK || len(list) != 1 || list[0].Path != abs {
			t.Fatalf("reload: %d %s %v", code, body, err)
		}
		if list[0].LastResult != "ok" && list[0].LastResult != "unchanged" {
			t.Errorf("reload result %q", list[0].LastResult)
		}
		code, body = adminDo(t, "POST", "/geofilter/reload")
		if err := json.Unmarshal(body, &list); err != nil || code != http.StatusOK || len(list) < 2 {
			t.Fatalf("reload all: %d %s %v", code, body, err)
		}
	})
}

// The admin lookup answers from the databases that serve requests: a file
// replaced on disk shows only once it is reloaded, and then at once.
func TestAdminLookupFollowsReload(t *testing.T) {
	path := mmdbtest.Country(t, map[string]string{"192.0.2.0/24": "DE"})
	h := &Handler{
		Databases:      []DatabaseConfig{{Path: path}},
		ReloadInterval: caddy.Duration(-1), // reloads only when forced
		Rules:          []Rule{{Name: "no-us", Action: rules.Deny, Conditions: rules.Conditions{Country: []string{"US"}}}},
	}
	provision(t, h)
	abs, _ := filepath.Abs(path)
	lookup := func() (DatabaseAnswer, FilterAnswer) {
		t.Helper()
		code, body := adminDo(t, "GET", "/geofilter/lookup?ip=192.0.2.1")
		var resp LookupResponse
		if err := json.Unmarshal(body, &resp); err != nil || code != http.StatusOK {
			t.Fatalf("%d %s %v", code, body, err)
		}
		var db DatabaseAnswer
		for _, d := range resp.Databases {
			if d.Path == abs {
				db = d
			}
		}
		for _, f := range resp.Filters {
			if f.ID == filterID(h) {
				return db, f
			}
		}
		t.Fatalf("filter %d not in %s", filterID(h), body)
		return db, FilterAnswer{}
	}
	check := func(when, country, decision string) {
		t.Helper()
		db, f := lookup()
		if db.Result == nil || db.Result.CountryCode != country || db.Kind != "country" {
			t.Errorf("%s: database answer %+v, want %s", when, db, country)
		}
		if f.Country != country || f.Decision != decision {
			t.Errorf("%s: filter answer %+v, want %s %s", when, f, country, decision)
		}
	}

	check("at start", "DE", "allow")
	mmdbtest.WriteFile(t, path, mmdbtest.BuildCountry(map[string]string{"192.0.2.0/24": "US"}))
	check("replaced on disk, not reloaded", "DE", "allow")
	if _, err := reloadDatabase(path); err != nil {
		t.Fatal(err)
	}
	check("after the reload", "US", "deny")
	mmdbtest.WriteFile(t, path, mmdbtest.CorruptBytes())
	if _, err := reloadDatabase(path); err == nil {
		t.Fatal("reload of a corrupt file succeeded")
	}
	check("after a rejected reload", "US", "deny")
}

// TestAdminDatabasesOpenings: GET /geofilter/databases lists each opening
// of a file (a file read with other fields is another opening) with its
// layout, its fields, who uses it and, when it is updated automatically,
// the state of its updates; an opening goes away with its last user.
func TestAdminDatabasesOpenings(t *testing.T) {
	country, _ := fixtures(t)
	abs, _ := filepath.Abs(country)
	fields := geodb.FieldPaths{"country_code": {"registered_country", "iso_code"}}
	plain := &Handler{Databases: []DatabaseConfig{{Path: country}}}
	provision(t, plain)
	withFields := &Handler{Databases: []DatabaseConfig{{Path: country, Fields: fields}}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := withFields.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	m := &MatchGeo{Conditions: rules.Conditions{Country: []string{"CN"}}, Databases: []DatabaseConfig{{Path: country}}}
	if err := m.Provision(ctx); err != nil {
		t.Fatal(err)
	}

	openings := func() []DatabaseInfo {
		t.Helper()
		code, body := adminDo(t, "GET", "/geofilter/databases")
		var list, mine []DatabaseInfo
		if err := json.Unmarshal(body, &list); err != nil || code != http.StatusOK {
			t.Fatalf("%d %s %v", code, body, err)
		}
		for _, d := range list {
			if d.Path == abs {
				mine = append(mine, d)
			}
		}
		return mine
	}
	plainUser := "geofilter " + strconv.Itoa(plain.id)
	fieldsUser := "geofilter " + strconv.Itoa(withFields.id)
	list := openings()
	if len(list) != 2 {
		t.Fatalf("%d openings of %s, want 2: %+v", len(list), abs, list)
	}
	var byLayout, byFields DatabaseInfo
	for _, d := range list {
		if d.Fields == nil {
			byLayout = d
		} else {
			byFields = d
		}
	}
	if byLayout.Layout != "geoip2-country" || byLayout.Type != "GeoLite2-Country" || byLayout.Kind != "country" ||
		!slices.Contains(byLayout.Provides, "country_code") || !slices.Contains(byLayout.Provides, "in_eu") {
		t.Errorf("opening with the layout's fields: %+v", byLayout)
	}
	if len(byLayout.Users) != 2 || byLayout.Users[0] != "geo matcher "+strconv.Itoa(m.id) || byLayout.Users[1] != plainUser {
		t.Errorf("users of the opening with the layout's fields: %q, want the matcher and %s", byLayout.Users, plainUser)
	}
	if !reflect.DeepEqual(byFields.Fields, fields) || byFields.Layout != "custom" && byFields.Layout != "geoip2-country" {
		t.Errorf("opening with fields: %+v", byFields)
	}
	if !slices.Equal(byFields.Users, []string{fieldsUser}) {
		t.Errorf("users of the opening with fields: %q, want [%s]", byFields.Users, fieldsUser)
	}
	if byLayout.Update != nil {
		t.Errorf("update state of a file not updated automatically: %+v", byLayout.Update)
	}

	// An updater reports its state through the opening it keeps current.
	for _, w := range watchers(abs) {
		if wf, ok := w.(*watchedFile[geodb.DB]); ok && wf.snapshot().Fields == nil {
			wf.setUpdateState(func() *geoupdate.Status {
				return &geoupdate.Status{Source: "GeoLite2-Country", LastResult: "not_modified"}
			})
		}
	}
	for _, d := range openings() {
		if got := d.Update != nil && d.Update.LastResult == "not_modified"; got != (d.Fields == nil) {
			t.Errorf("update state of opening %v: %+v", d.Fields, d.Update)
		}
	}

	// The users go away with their configs.
	if err := withFields.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := m.Cleanup(); err != nil {
		t.Fatal(err)
	}
	list = openings()
	if len(list) != 1 || list[0].Fields != nil || !slices.Equal(list[0].Users, []string{plainUser}) {
		t.Errorf("after the matcher and the handler with fields are cleaned up: %+v", list)
	}
}
