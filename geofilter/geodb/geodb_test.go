package geodb_test

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/caddy-edge/edge/geofilter/geodb"
	"github.com/caddy-edge/edge/internal/mmdbtest"
)

func open(t testing.TB, path string, fields geodb.FieldPaths) *geodb.DB {
	t.Helper()
	db, err := geodb.Open(path, fields)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func lookup(t testing.TB, db *geodb.DB, addr string) geodb.Result {
	t.Helper()
	var r geodb.Result
	if err := db.Lookup(netip.MustParseAddr(addr), &r); err != nil {
		t.Fatalf("Lookup(%s): %v", addr, err)
	}
	return r
}

func TestLookupKinds(t *testing.T) {
	country := open(t, mmdbtest.Country(t, map[string]string{
		"81.2.69.0/24": "GB", "89.160.20.0/24": "SE", "2001:db8::/32": "JP",
	}), nil)
	city := open(t, mmdbtest.City(t, map[string]mmdbtest.CityRecord{
		"81.2.69.0/24": {Country: "GB", Subdivision: "ENG", City: "London"},
	}), nil)
	asn := open(t, mmdbtest.ASN(t, map[string]mmdbtest.ASNRecord{
		"1.128.0.0/11": {Number: 1221, Org: "Telstra Pty Ltd"},
	}), nil)
	anon := open(t, mmdbtest.Anonymous(t, map[string]mmdbtest.AnonymousRecord{
		"1.2.0.0/16":      {IsAnonymous: true, IsAnonymousVPN: true},
		"81.2.69.0/24":    {IsAnonymous: true, IsTorExitNode: true, IsPublicProxy: true},
		"71.160.223.0/24": {IsAnonymous: true, IsHostingProvider: true, IsResidentialProxy: true},
		"192.0.2.0/24":    {}, // an empty record, as MaxMind's databases have
	}), nil)

	tests := []struct {
		name string
		db   *geodb.DB
		kind geodb.Kind
		addr string
		want geodb.Result
	}{
		{"country EU member", country, geodb.KindCountry, "89.160.20.112",
			geodb.Result{Found: true, CountryCode: "SE", ContinentCode: "EU", InEU: true}},
		{"country not in EU", country, geodb.KindCountry, "81.2.69.142",
			geodb.Result{Found: true, CountryCode: "GB", ContinentCode: "EU"}},
		{"country IPv6", country, geodb.KindCountry, "2001:db8::1",
			geodb.Result{Found: true, CountryCode: "JP", ContinentCode: "AS"}},
		{"country IPv4-mapped IPv6 is looked up as IPv4", country, geodb.KindCountry, "::ffff:81.2.69.142",
			geodb.Result{Found: true, CountryCode: "GB", ContinentCode: "EU"}},
		{"country unknown address", country, geodb.KindCountry, "192.0.2.1", geodb.Result{}},
		{"city", city, geodb.KindCity, "81.2.69.160",
			geodb.Result{Found: true, CountryCode: "GB", ContinentCode: "EU", SubdivisionCode: "ENG", City: "London"}},
		{"asn", asn, geodb.KindASN, "1.130.1.1",
			geodb.Result{Found: true, ASN: 1221, ASNOrg: "Telstra Pty Ltd"}},
		{"asn unknown", asn, geodb.KindASN, "2.2.2.2", geodb.Result{}},
		{"anonymous empty record is not a find", anon, geodb.KindAnonymous, "192.0.2.1", geodb.Result{}},
		{"anonymous vpn", anon, geodb.KindAnonymous, "1.2.3.4",
			geodb.Result{Found: true, IsAnonymous: true, IsAnonymousVPN: true}},
		{"anonymous tor and proxy", anon, geodb.KindAnonymous, "81.2.69.1",
			geodb.Result{Found: true, IsAnonymous: true, IsTorExitNode: true, IsPublicProxy: true}},
		{"anonymous hosting and residential", anon, geodb.KindAnonymous, "71.160.223.9",
			geodb.Result{Found: true, IsAnonymous: true, IsHostingProvider: true, IsResidentialProxy: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.db.Kind(); got != tt.kind {
				t.Errorf("Kind() = %q, want %q", got, tt.kind)
			}
			if got := lookup(t, tt.db, tt.addr); got != tt.want {
				t.Errorf("Lookup(%s) = %+v, want %+v", tt.addr, got, tt.want)
			}
		})
	}
}

func TestLookupMergesDatabases(t *testing.T) {
	country := open(t, mmdbtest.Country(t, map[string]string{"81.2.69.0/24": "GB"}), nil)
	asn := open(t, mmdbtest.ASN(t, map[string]mmdbtest.ASNRecord{"81.2.0.0/16": {Number: 20712, Org: "Andrews & Arnold"}}), nil)
	var r geodb.Result
	for _, db := range []*geodb.DB{country, asn} {
		if err := db.Lookup(netip.MustParseAddr("81.2.69.5"), &r); err != nil {
			t.Fatal(err)
		}
	}
	want := geodb.Result{Found: true, CountryCode: "GB", ContinentCode: "EU", ASN: 20712, ASNOrg: "Andrews & Arnold"}
	if r != want {
		t.Errorf("merged = %+v, want %+v", r, want)
	}
	// A database without a record for the address leaves what is known alone.
	r = geodb.Result{Found: true, CountryCode: "GB"}
	if err := asn.Lookup(netip.MustParseAddr("192.0.2.1"), &r); err != nil {
		t.Fatal(err)
	}
	if r.CountryCode != "GB" || !r.Found {
		t.Errorf("lookup of unknown address changed result: %+v", r)
	}
}

func TestBuildTime(t *testing.T) {
	db := open(t, mmdbtest.Country(t, map[string]string{"81.2.69.0/24": "GB"}), nil)
	if got := db.BuildTime(); !got.Equal(mmdbtest.BuildEpoch) {
		t.Errorf("BuildTime() = %v, want %v", got, mmdbtest.BuildEpoch)
	}
	if got := db.Type(); got != mmdbtest.TypeCountry {
		t.Errorf("Type() = %q", got)
	}
}

func TestFieldPaths(t *testing.T) {
	path := mmdbtest.Custom(t, map[string]string{"81.2.69.0/24": "FR", "216.160.83.0/24": "US"})

	// A database of an unknown type with flat keys the probe knows opens
	// without fields.
	if db := open(t, path, nil); db.Layout() != "detected" || db.Kind() != geodb.KindCountry {
		t.Errorf("unknown type without fields: layout %q, kind %q; want detected, country", db.Layout(), db.Kind())
	} else if got, want := lookup(t, db, "81.2.69.7"), (geodb.Result{Found: true, CountryCode: "FR", ContinentCode: "EU", InEU: true, ASN: 64496}); got != want {
		t.Errorf("detected lookup = %+v, want %+v", got, want)
	}

	// Paths as they arrive from JSON: []any of strings and float64.
	db := open(t, path, geodb.FieldPaths{"country_code": {"country_code"}, "asn": {"asn"}})
	if db.Kind() != geodb.KindCustom {
		t.Errorf("Kind() = %q, want custom", db.Kind())
	}
	got := lookup(t, db, "81.2.69.7")
	want := geodb.Result{Found: true, CountryCode: "FR", ContinentCode: "EU", InEU: true, ASN: 64496}
	if got != want {
		t.Errorf("custom lookup = %+v, want %+v (continent and EU derived from the country, ASN parsed from \"AS64496\")", got, want)
	}
	if got := lookup(t, db, "216.160.83.1"); got.CountryCode != "US" || got.InEU {
		t.Errorf("custom lookup US = %+v", got)
	}

	// A database that keeps its codes in lower case still matches rules
	// and the geo matcher, which use upper case.
	lower := open(t, mmdbtest.Custom(t, map[string]string{"192.0.2.0/24": "de"}), geodb.FieldPaths{"country_code": {"country_code"}})
	if got := lookup(t, lower, "192.0.2.1"); got.CountryCode != "DE" || got.ContinentCode != "EU" || !got.InEU {
		t.Errorf("lower-case country = %+v, want DE in EU", got)
	}

	// Overriding a known layout: read the registered country instead, and
	// switch the EU flag off (it is then derived from the country).
	cdb := open(t, mmdbtest.Country(t, map[string]string{"81.2.69.0/24": "GB", "89.160.20.0/24": "SE"}),
		geodb.FieldPaths{"country_code": {"registered_country", "iso_code"}, "in_eu": {}})
	if got := lookup(t, cdb, "81.2.69.1"); got.CountryCode != "GB" || got.ContinentCode != "EU" || got.InEU {
		t.Errorf("override = %+v, want GB in EU (continent), not in the EU", got)
	}
	if got := lookup(t, cdb, "89.160.20.1"); got.CountryCode != "SE" || !got.InEU {
		t.Errorf("override = %+v, want SE, in the EU (derived)", got)
	}
	if cdb.Layout() != "custom" || !cdb.Provides("in_eu") {
		t.Errorf("layout %q, fields %v: want custom, in_eu derived", cdb.Layout(), cdb.Fields())
	}
	// A city database whose city names are switched off.
	nocity := open(t, mmdbtest.City(t, map[string]mmdbtest.CityRecord{"81.2.69.0/24": {Country: "GB", City: "London"}}),
		geodb.FieldPaths{"city": {}})
	if got := lookup(t, nocity, "81.2.69.1"); got.City != "" || got.CountryCode != "GB" || nocity.Provides("city") {
		t.Errorf("city switched off: %+v, fields %v", got, nocity.Fields())
	}
	// An array index given as a JSON number.
	city := open(t, mmdbtest.City(t, map[string]mmdbtest.CityRecord{"81.2.69.0/24": {Country: "GB", Subdivision: "ENG"}}),
		geodb.FieldPaths{"subdivision_code": {"subdivisions", float64(-1), "iso_code"}})
	if got := lookup(t, city, "81.2.69.1"); got.SubdivisionCode != "ENG" {
		t.Errorf("subdivision by negative index = %q", got.SubdivisionCode)
	}
}

func TestOpenErrors(t *testing.T) {
	country := mmdbtest.Country(t, map[string]string{"81.2.69.0/24": "GB"})
	tests := []struct {
		name   string
		path   string
		fields geodb.FieldPaths
		want   string
	}{
		{"corrupt file", mmdbtest.Corrupt(t), nil, "MaxMind DB"},
		{"unknown field", country, geodb.FieldPaths{"colour": {"x"}}, `unknown field "colour"`},
		{"bad path element", country, geodb.FieldPaths{"country_code": {true}}, "country_code"},
		{"fractional index", country, geodb.FieldPaths{"country_code": {"a", 1.5}}, "array index"},
		{"field of the wrong type", country, geodb.FieldPaths{"asn": {"country"}}, "asn"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := geodb.Open(tt.path, tt.fields)
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
	_, err := geodb.Open(t.TempDir()+"/missing.mmdb", nil)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.mmdb") {
		t.Errorf("missing file: err = %v, want not-exist naming the file", err)
	}
}

func TestLookupAllocations(t *testing.T) {
	db := open(t, mmdbtest.City(t, map[string]mmdbtest.CityRecord{"81.2.69.0/24": {Country: "GB", Subdivision: "ENG", City: "London"}}), nil)
	ip := netip.MustParseAddr("81.2.69.1")
	var r geodb.Result
	db.Lookup(ip, &r) // warm the string cache
	allocs := testing.AllocsPerRun(100, func() {
		r = geodb.Result{}
		_ = db.Lookup(ip, &r)
	})
	if allocs != 0 {
		t.Errorf("Lookup allocates %v times per call, want 0", allocs)
	}
}

func TestResultJSON(t *testing.T) {
	b, err := json.Marshal(geodb.Result{Found: true, CountryCode: "GB", ASN: 64496, IsTorExitNode: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"found":true,"country_code":"GB","asn":64496,"is_tor_exit_node":true}`; string(b) != want {
		t.Errorf("JSON = %s, want %s", b, want)
	}
	// Every JSON key but "found" is a field name that FieldPaths accepts.
	typ := reflect.TypeFor[geodb.Result]()
	var keys []string
	for i := 1; i < typ.NumField(); i++ {
		keys = append(keys, strings.TrimSuffix(typ.Field(i).Tag.Get("json"), ",omitempty"))
	}
	if got, want := strings.Join(keys, " "), strings.Join(geodb.FieldNames(), " "); got != want {
		t.Errorf("JSON keys %q, want the field names %q", got, want)
	}
}

// TestKinds checks the kind and layout taken from the metadata's
// database_type, for the names MaxMind, DB-IP and IPinfo use.
func TestKinds(t *testing.T) {
	countryRec := mmdbtype.Map{
		"country":   mmdbtype.Map{"iso_code": mmdbtype.String("DE"), "is_in_european_union": mmdbtype.Bool(true)},
		"continent": mmdbtype.Map{"code": mmdbtype.String("EU")},
		"city":      mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String("Berlin")}},
		"traits": mmdbtype.Map{
			"autonomous_system_number": mmdbtype.Uint32(3320), "autonomous_system_organization": mmdbtype.String("DTAG"),
			"is_anonymous": mmdbtype.Bool(true), "is_public_proxy": mmdbtype.Bool(true),
		},
	}
	asnRec := mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(3320), "autonomous_system_organization": mmdbtype.String("DTAG")}
	ipinfoRec := mmdbtype.Map{
		"country_code": mmdbtype.String("DE"), "continent_code": mmdbtype.String("EU"),
		"asn": mmdbtype.String("AS3320"), "as_name": mmdbtype.String("DTAG"),
	}
	for _, tt := range []struct {
		dbType string
		rec    mmdbtype.Map
		kind   geodb.Kind
		want   geodb.Result
	}{
		{"GeoIP2-Country", countryRec, geodb.KindCountry, geodb.Result{Found: true, CountryCode: "DE", ContinentCode: "EU", InEU: true}},
		{"DBIP-Country-Lite", countryRec, geodb.KindCountry, geodb.Result{Found: true, CountryCode: "DE", ContinentCode: "EU", InEU: true}},
		{"dbip-city-lite", countryRec, geodb.KindCity, geodb.Result{Found: true, CountryCode: "DE", ContinentCode: "EU", InEU: true, City: "Berlin"}},
		{"GeoIP2-Enterprise", countryRec, geodb.KindCity, geodb.Result{Found: true, CountryCode: "DE", ContinentCode: "EU", InEU: true, City: "Berlin", ASN: 3320, ASNOrg: "DTAG", IsAnonymous: true, IsPublicProxy: true}},
		{"DBIP-Location-ISP (compat=Enterprise)", countryRec, geodb.KindCity, geodb.Result{Found: true, CountryCode: "DE", ContinentCode: "EU", InEU: true, City: "Berlin", ASN: 3320, ASNOrg: "DTAG", IsAnonymous: true, IsPublicProxy: true}},
		{"GeoIP2-ISP", asnRec, geodb.KindASN, geodb.Result{Found: true, ASN: 3320, ASNOrg: "DTAG"}},
		{"DBIP-ASN-Lite (compat=GeoLite2-ASN)", asnRec, geodb.KindASN, geodb.Result{Found: true, ASN: 3320, ASNOrg: "DTAG"}},
		{"ipinfo ipinfo_lite.mmdb", ipinfoRec, geodb.KindCountry, geodb.Result{Found: true, CountryCode: "DE", ContinentCode: "EU", InEU: true, ASN: 3320, ASNOrg: "DTAG"}},
		{"ipinfo asn.mmdb", ipinfoRec, geodb.KindASN, geodb.Result{Found: true, CountryCode: "DE", ContinentCode: "EU", InEU: true, ASN: 3320, ASNOrg: "DTAG"}},
	} {
		t.Run(tt.dbType, func(t *testing.T) {
			data, err := mmdbtest.Build(tt.dbType, mmdbtest.BuildEpoch, map[string]mmdbtype.DataType{"192.0.2.0/24": tt.rec})
			if err != nil {
				t.Fatal(err)
			}
			db, err := geodb.OpenBytes(data, nil)
			if err != nil {
				t.Fatal(err)
			}
			if db.Kind() != tt.kind {
				t.Errorf("Kind() = %q, want %q", db.Kind(), tt.kind)
			}
			var r geodb.Result
			if err := db.Lookup(netip.MustParseAddr("192.0.2.1"), &r); err != nil {
				t.Fatal(err)
			}
			if r != tt.want {
				t.Errorf("Lookup = %+v, want %+v", r, tt.want)
			}
		})
	}
}
