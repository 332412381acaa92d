package geodb_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/caddy-edge/edge/geofilter/geodb"
	"github.com/caddy-edge/edge/internal/mmdbtest"
)

func openBytes(t testing.TB, b []byte, fields geodb.FieldPaths) *geodb.DB {
	t.Helper()
	db, err := geodb.OpenBytes(b, fields)
	if err != nil {
		t.Fatalf("OpenBytes: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestLayouts opens a fixture in the layout of each database users download
// with a bare `db <file>` (no fields) and checks country, continent, EU
// membership and ASN, over IPv4 and IPv6, with and without a description.
func TestLayouts(t *testing.T) {
	countries := map[string]string{"81.2.69.0/24": "GB", "89.160.20.0/24": "SE", "216.160.83.0/24": "US", "2001:db8:1::/48": "DE"}
	countries4 := map[string]string{"81.2.69.0/24": "GB", "89.160.20.0/24": "SE", "216.160.83.0/24": "US"}
	asns := map[string]mmdbtest.ASNRecord{"81.2.69.0/24": {Number: 20712, Org: "Andrews & Arnold Ltd"}, "2001:db8:1::/48": {Number: 64500, Org: "Doc AS"}}
	asns4 := map[string]mmdbtest.ASNRecord{"81.2.69.0/24": {Number: 20712, Org: "Andrews & Arnold Ltd"}}
	ipinfo := map[string]mmdbtest.IPinfoRecord{
		"81.2.69.0/24":    {Country: "GB", ASN: 20712, ASName: "Andrews & Arnold Ltd"},
		"89.160.20.0/24":  {Country: "SE", ASN: 29518, ASName: "Bredband2 AB"},
		"216.160.83.0/24": {Country: "US", ASN: 209, ASName: "CenturyLink"},
		"2001:db8:1::/48": {Country: "DE", ASN: 64500, ASName: "Doc AS"},
	}
	gb := geodb.Result{Found: true, CountryCode: "GB", ContinentCode: "EU"}
	se := geodb.Result{Found: true, CountryCode: "SE", ContinentCode: "EU", InEU: true}
	us := geodb.Result{Found: true, CountryCode: "US", ContinentCode: "NA"}
	de := geodb.Result{Found: true, CountryCode: "DE", ContinentCode: "EU", InEU: true}
	with := func(r geodb.Result, asn uint32, org string) geodb.Result { r.ASN, r.ASNOrg = asn, org; return r }

	tests := []struct {
		name   string
		db     []byte
		kind   geodb.Kind
		layout string
		want   map[string]geodb.Result
	}{
		{"GeoLite2-Country", mmdbtest.BuildCountry(countries), geodb.KindCountry, "geoip2-country",
			map[string]geodb.Result{"81.2.69.1": gb, "89.160.20.1": se, "216.160.83.1": us, "2001:db8:1::1": de, "127.0.0.1": {}}},
		{"GeoLite2-ASN", mmdbtest.BuildASN(asns), geodb.KindASN, "geoip2-asn",
			map[string]geodb.Result{"81.2.69.1": {Found: true, ASN: 20712, ASNOrg: "Andrews & Arnold Ltd"}, "2001:db8:1::2": {Found: true, ASN: 64500, ASNOrg: "Doc AS"}}},
		{"DB-IP Country Lite", mmdbtest.DBIPCountryLite(countries), geodb.KindCountry, "geoip2-country",
			map[string]geodb.Result{"81.2.69.1": gb, "89.160.20.1": se, "2001:db8:1::1": de}},
		{"DB-IP ASN Lite", mmdbtest.DBIPASNLite(asns), geodb.KindASN, "geoip2-asn",
			map[string]geodb.Result{"81.2.69.1": {Found: true, ASN: 20712, ASNOrg: "Andrews & Arnold Ltd"}}},
		{"IPinfo Lite", mmdbtest.IPinfoLite(ipinfo), geodb.KindCountry, "ipinfo",
			map[string]geodb.Result{
				"81.2.69.1": with(gb, 20712, "Andrews & Arnold Ltd"), "89.160.20.1": with(se, 29518, "Bredband2 AB"),
				"216.160.83.1": with(us, 209, "CenturyLink"), "2001:db8:1::1": with(de, 64500, "Doc AS"),
			}},
		{"IPinfo older country build", mmdbtest.IPinfoCountry(countries), geodb.KindCountry, "detected",
			map[string]geodb.Result{"81.2.69.1": gb, "89.160.20.1": se, "216.160.83.1": us, "2001:db8:1::1": de}},
		{"ip-location-db country, IPv4 tree, no description", mmdbtest.IPLocationDBCountry(countries4, 4), geodb.KindCountry, "detected",
			map[string]geodb.Result{"81.2.69.1": gb, "89.160.20.1": se, "216.160.83.1": us, "::ffff:89.160.20.1": se, "2001:db8:1::1": {}}},
		{"ip-location-db country, IPv6 tree, no description", mmdbtest.IPLocationDBCountry(countries, 6), geodb.KindCountry, "detected",
			map[string]geodb.Result{"81.2.69.1": gb, "89.160.20.1": se, "216.160.83.1": us, "2001:db8:1::1": de}},
		{"ip-location-db ASN, IPv4 tree", mmdbtest.IPLocationDBASN(asns4, 4), geodb.KindASN, "geoip2-asn",
			map[string]geodb.Result{"81.2.69.1": {Found: true, ASN: 20712, ASNOrg: "Andrews & Arnold Ltd"}}},
		{"ip-location-db ASN, IPv6 tree", mmdbtest.IPLocationDBASN(asns, 6), geodb.KindASN, "geoip2-asn",
			map[string]geodb.Result{"2001:db8:1::1": {Found: true, ASN: 64500, ASNOrg: "Doc AS"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openBytes(t, tt.db, nil)
			if db.Kind() != tt.kind || db.Layout() != tt.layout {
				t.Errorf("kind %q layout %q (type %q), want %q %q", db.Kind(), db.Layout(), db.Type(), tt.kind, tt.layout)
			}
			for addr, want := range tt.want {
				if got := lookup(t, db, addr); got != want {
					t.Errorf("Lookup(%s) = %+v, want %+v", addr, got, want)
				}
			}
		})
	}
}

// TestLayoutFields: what each layout provides, the fields the filter's
// rules check against at load.
func TestLayoutFields(t *testing.T) {
	for _, tt := range []struct {
		name string
		db   []byte
		want string
	}{
		{"GeoLite2-Country", mmdbtest.BuildCountry(map[string]string{"81.2.69.0/24": "GB"}), "country_code continent_code in_eu"},
		{"GeoLite2-City", mmdbtest.BuildCity(map[string]mmdbtest.CityRecord{"81.2.69.0/24": {Country: "GB", City: "London", Subdivision: "ENG"}}),
			"country_code continent_code in_eu subdivision_code city"},
		{"GeoLite2-ASN", mmdbtest.BuildASN(map[string]mmdbtest.ASNRecord{"81.2.69.0/24": {Number: 1, Org: "x"}}), "asn asn_org"},
		// Only is_anonymous and is_tor_exit_node are in the records: the
		// layout named by the type provides every flag all the same.
		{"GeoIP2-Anonymous-IP", mmdbtest.BuildAnonymous(map[string]mmdbtest.AnonymousRecord{"81.2.69.0/24": {IsAnonymous: true, IsTorExitNode: true}}),
			"is_anonymous is_anonymous_vpn is_hosting_provider is_public_proxy is_tor_exit_node is_residential_proxy"},
		{"ip-location-db country", mmdbtest.IPLocationDBCountry(map[string]string{"81.2.69.0/24": "GB"}, 4), "country_code continent_code in_eu"},
		{"IPinfo Lite", mmdbtest.IPinfoLite(map[string]mmdbtest.IPinfoRecord{"81.2.69.0/24": {Country: "GB", ASN: 1, ASName: "x"}}),
			"country_code continent_code in_eu asn asn_org"},
	} {
		db := openBytes(t, tt.db, nil)
		if got := strings.Join(db.Fields(), " "); got != tt.want {
			t.Errorf("%s: Fields() = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestRefusals: a database in which nothing the filter reads is found, and
// a hand-given field that is in no record, are refused with a message that
// says what is missing.
func TestRefusals(t *testing.T) {
	odd, err := mmdbtest.BuildMeta(mmdbtest.Meta{Type: "country ipv4", IPVersion: 4}, map[string]mmdbtype.DataType{
		"81.2.69.0/24": mmdbtype.Map{"cc": mmdbtype.String("GB")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := geodb.OpenBytes(odd, nil); err == nil || !strings.Contains(err.Error(), "no field the filter reads") || !strings.Contains(err.Error(), `"country ipv4"`) {
		t.Errorf("unknown layout: err = %v", err)
	}
	// With the field given by hand it opens.
	db := openBytes(t, odd, geodb.FieldPaths{"country_code": {"cc"}})
	if got := lookup(t, db, "81.2.69.1"); got.CountryCode != "GB" || got.ContinentCode != "EU" {
		t.Errorf("hand-given field: %+v", got)
	}
	_, err = geodb.OpenBytes(odd, geodb.FieldPaths{"country_code": {"country_code"}})
	if err == nil || !strings.Contains(err.Error(), "field country_code: no value at country_code") {
		t.Errorf("hand-given field not in the records: err = %v", err)
	}
}

// TestOpenSpecAllows: the metadata keys the MaxMind DB spec makes optional
// may be absent or empty; a truncated or garbage file is still refused.
func TestOpenSpecAllows(t *testing.T) {
	recs := map[string]mmdbtype.DataType{"81.2.69.0/24": mmdbtype.Map{"country_code": mmdbtype.String("GB")}}
	for _, m := range []mmdbtest.Meta{
		{Type: "country ipv4", IPVersion: 4},                        // empty description and languages
		{Type: "", IPVersion: 6},                                    // no database_type
		{Type: "GeoLite2-Country", Description: "with description"}, // as MaxMind writes them (flat records: detected)
	} {
		b, err := mmdbtest.BuildMeta(m, recs)
		if err != nil {
			t.Fatal(err)
		}
		db := openBytes(t, b, nil)
		if got := lookup(t, db, "81.2.69.1"); got.CountryCode != "GB" {
			t.Errorf("%+v: lookup = %+v", m, got)
		}
	}
	good := mmdbtest.IPLocationDBCountry(map[string]string{"81.2.69.0/24": "GB", "2001:db8::/32": "DE"}, 6)
	for name, b := range map[string][]byte{
		"truncated":          good[:len(good)/2],
		"truncated tree":     good[:100],
		"garbage":            []byte(strings.Repeat("not a database ", 100)),
		"no metadata":        append(append([]byte(nil), good[:len(good)-200]...), make([]byte, 200)...),
		"corrupt tree":       overwrite(good, 0, 64),
		"corrupt data":       overwrite(good, bytes.LastIndex(good, []byte("\xab\xcd\xefMaxMind.com"))-24, 24),
		"empty":              nil,
		"metadata only tail": good[len(good)-120:],
	} {
		if db, err := geodb.OpenBytes(b, nil); err == nil {
			db.Close()
			t.Errorf("%s: opened, want an error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// TestDerivedEveryCountry derives the continent and EU membership of every
// ISO 3166-1 code through a real database that gives only the country, and
// checks the table: 249 ISO codes plus XK, 27 EU members, and for the
// countries MaxMind's official test database has, the same continent and
// EU flag as MaxMind gives.
func TestDerivedEveryCountry(t *testing.T) {
	codes := geodb.Countries()
	if len(codes) != 250 {
		t.Fatalf("%d country codes, want 249 ISO 3166-1 codes and XK", len(codes))
	}
	var eu []string
	nets := make(map[string]string, len(codes))
	for i, cc := range codes {
		if geodb.IsEU(cc) {
			eu = append(eu, cc)
		}
		nets[fmt.Sprintf("10.%d.%d.0/24", i/256, i%256)] = cc
	}
	if want := "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK"; strings.Join(eu, " ") != want {
		t.Errorf("EU members %v, want the 27 members as of 2026-11-30: %s", eu, want)
	}
	db := openBytes(t, mmdbtest.IPLocationDBCountry(nets, 4), nil)
	for i, cc := range codes {
		got := lookup(t, db, fmt.Sprintf("10.%d.%d.1", i/256, i%256))
		cont := geodb.ContinentOf(cc)
		if !slices.Contains([]string{"AF", "AN", "AS", "EU", "NA", "OC", "SA"}, cont) {
			t.Errorf("%s: continent %q", cc, cont)
		}
		if got.CountryCode != cc || got.ContinentCode != cont || got.InEU != geodb.IsEU(cc) {
			t.Errorf("%s: lookup %+v, want continent %s, EU %v", cc, got, cont, geodb.IsEU(cc))
		}
	}
	for _, bad := range []string{"UK", "XX", "EU", "ZZ", "gb", "", "G", "GBR"} {
		if geodb.IsCountry(bad) || geodb.ContinentOf(bad) != "" || geodb.IsEU(bad) {
			t.Errorf("%q taken for a country", bad)
		}
	}

	// Against MaxMind's own data where it has the country.
	dir := officialTestData(t)
	checked := 0
	for _, name := range []string{"GeoIP2-Country-Test.json", "GeoIP2-City-Test.json", "GeoLite2-Country-Test.json"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		var raw []map[string]map[string]any
		if err := json.Unmarshal(b, &raw); err != nil {
			t.Fatal(err)
		}
		for _, m := range raw {
			for n, rec := range m {
				cc, cont := jstr(rec, "country", "iso_code"), jstr(rec, "continent", "code")
				if cc == "" || cont == "" {
					continue
				}
				checked++
				if geodb.ContinentOf(cc) != cont || geodb.IsEU(cc) != jbool(rec, "country", "is_in_european_union") {
					t.Errorf("%s %s: MaxMind says %s (EU %v), the table %s (EU %v)", name, n, cont,
						jbool(rec, "country", "is_in_european_union"), geodb.ContinentOf(cc), geodb.IsEU(cc))
				}
			}
		}
	}
	if checked == 0 {
		t.Error("no country checked against MaxMind's data")
	}
	t.Logf("%d records of MaxMind's test data agree", checked)
}

// TestDatabaseValueWins: a database's own continent and EU flag are kept,
// even where they differ from the table.
func TestDatabaseValueWins(t *testing.T) {
	b, err := mmdbtest.BuildMeta(mmdbtest.Meta{Type: "custom"}, map[string]mmdbtype.DataType{
		"81.2.69.0/24": mmdbtype.Map{"country_code": mmdbtype.String("TR"), "continent_code": mmdbtype.String("EU")},
		"89.0.0.0/24":  mmdbtype.Map{"country_code": mmdbtype.String("CY")},
	})
	if err != nil {
		t.Fatal(err)
	}
	db := openBytes(t, b, nil)
	if got := lookup(t, db, "81.2.69.1"); got.ContinentCode != "EU" {
		t.Errorf("database's continent lost: %+v", got)
	}
	if got := lookup(t, db, "89.0.0.1"); got.ContinentCode != "EU" || !got.InEU {
		t.Errorf("derived: %+v", got)
	}
	// MaxMind's layout: no is_in_european_union key means not in the EU,
	// never derived.
	gb := openBytes(t, mmdbtest.BuildCountry(map[string]string{"81.2.69.0/24": "GB"}), nil)
	if got := lookup(t, gb, "81.2.69.1"); got.InEU {
		t.Errorf("GB in the EU: %+v", got)
	}
}

// overwrite returns a copy of b with n bytes from off set to 0xff.
func overwrite(b []byte, off, n int) []byte {
	c := bytes.Clone(b)
	for i := off; i < off+n; i++ {
		c[i] = 0xff
	}
	return c
}

// TestFlatCity: ip-location-db's city builds keep the city name as a flat
// string beside country_code (and state names, not codes).
func TestFlatCity(t *testing.T) {
	b, err := mmdbtest.BuildMeta(mmdbtest.Meta{Type: "city ipv4", IPVersion: 4}, map[string]mmdbtype.DataType{
		"81.2.69.0/24": mmdbtype.Map{"country_code": mmdbtype.String("GB"), "city": mmdbtype.String("London"), "state1": mmdbtype.String("England")},
	})
	if err != nil {
		t.Fatal(err)
	}
	db := openBytes(t, b, nil)
	want := geodb.Result{Found: true, CountryCode: "GB", ContinentCode: "EU", City: "London"}
	if got := lookup(t, db, "81.2.69.1"); got != want || db.Kind() != geodb.KindCity {
		t.Errorf("lookup = %+v (kind %s), want %+v", got, db.Kind(), want)
	}
}

// TestIPinfoCountryASNBuild: IPinfo's free country_asn.mmdb ("ipinfo
// country_asn.mmdb") has the ASN where IPinfo Lite has it, but the country
// and continent at "country" and "continent", as its older country builds.
// Its type names the IPinfo layout, which the ASN confirms: the country
// must still be read, not be said to be provided and never found.
func TestIPinfoCountryASNBuild(t *testing.T) {
	data, err := mmdbtest.BuildMeta(mmdbtest.Meta{Type: "ipinfo country_asn.mmdb", Description: "IPinfo country_asn (test fixture)"},
		map[string]mmdbtype.DataType{"81.2.69.0/24": mmdbtype.Map{
			"country": mmdbtype.String("GB"), "country_name": mmdbtype.String("United Kingdom"),
			"continent": mmdbtype.String("EU"), "continent_name": mmdbtype.String("Europe"),
			"asn": mmdbtype.String("AS20712"), "as_name": mmdbtype.String("Andrews & Arnold Ltd"), "as_domain": mmdbtype.String("aa.net.uk"),
		}})
	if err != nil {
		t.Fatal(err)
	}
	db := openBytes(t, data, nil)
	want := geodb.Result{Found: true, CountryCode: "GB", ContinentCode: "EU", ASN: 20712, ASNOrg: "Andrews & Arnold Ltd"}
	if got := lookup(t, db, "81.2.69.1"); got != want {
		t.Errorf("Lookup = %+v, want %+v (paths %v)", got, want, db.Paths())
	}
}

// TestMergeKeepsNoStaleEU: MaxMind's records carry is_in_european_union only
// when it is true. Two databases that place an address in different
// countries (DB-IP in DE, then GeoLite2 in US) must merge to the later
// country with its own EU membership, not with the earlier one's flag.
func TestMergeKeepsNoStaleEU(t *testing.T) {
	dbip := openBytes(t, mmdbtest.DBIPCountryLite(map[string]string{"192.0.2.0/24": "DE"}), nil)
	geolite := openBytes(t, mmdbtest.BuildCountry(map[string]string{"192.0.2.0/24": "US"}), nil)
	var r geodb.Result
	for _, db := range []*geodb.DB{dbip, geolite} {
		if err := db.Lookup(netip.MustParseAddr("192.0.2.1"), &r); err != nil {
			t.Fatal(err)
		}
	}
	want := geodb.Result{Found: true, CountryCode: "US", ContinentCode: "NA"}
	if r != want {
		t.Errorf("merged = %+v, want %+v", r, want)
	}
}

// TestMergeKeepsNoStaleLocation: a later database that places an address
// in another country drops an earlier one's subdivision and city (a city
// database's Berlin must not stay beside a country database's FR); one
// that agrees on the country keeps them.
func TestMergeKeepsNoStaleLocation(t *testing.T) {
	city := openBytes(t, mmdbtest.BuildCity(map[string]mmdbtest.CityRecord{"192.0.2.0/24": {Country: "DE", Subdivision: "BE", City: "Berlin"}}), nil)
	for _, tc := range []struct {
		later string
		want  geodb.Result
	}{
		{"FR", geodb.Result{Found: true, CountryCode: "FR", ContinentCode: "EU", InEU: true}},
		{"DE", geodb.Result{Found: true, CountryCode: "DE", ContinentCode: "EU", InEU: true, SubdivisionCode: "BE", City: "Berlin"}},
	} {
		country := openBytes(t, mmdbtest.BuildCountry(map[string]string{"192.0.2.0/24": tc.later}), nil)
		var r geodb.Result
		for _, db := range []*geodb.DB{city, country} {
			if err := db.Lookup(netip.MustParseAddr("192.0.2.1"), &r); err != nil {
				t.Fatal(err)
			}
		}
		if r != tc.want {
			t.Errorf("city database, then a country database with %s: merged = %+v, want %+v", tc.later, r, tc.want)
		}
	}
}

// TestIPv4MappedTree: an IPv6 database whose IPv4 networks are written at
// their IPv4-mapped addresses (::ffff:81.2.69.0/120) and not at ::/96 must
// answer for IPv4 clients (and IPv4-mapped ones), not load and know no
// IPv4 address.
func TestIPv4MappedTree(t *testing.T) {
	data, err := mmdbtest.BuildMeta(mmdbtest.Meta{Type: "GeoLite2-Country", Description: "mapped"}, map[string]mmdbtype.DataType{
		"::ffff:81.2.69.0/120": mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String("GB")}},
		"2001:db8:1::/48":      mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String("DE"), "is_in_european_union": mmdbtype.Bool(true)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	db := openBytes(t, data, nil)
	gb := geodb.Result{Found: true, CountryCode: "GB", ContinentCode: "EU"}
	for addr, want := range map[string]geodb.Result{
		"81.2.69.1":        gb,
		"::ffff:81.2.69.1": gb,
		"81.2.70.1":        {},
		"2001:db8:1::1":    {Found: true, CountryCode: "DE", ContinentCode: "EU", InEU: true},
	} {
		if got := lookup(t, db, addr); got != want {
			t.Errorf("Lookup(%s) = %+v, want %+v", addr, got, want)
		}
	}
}
