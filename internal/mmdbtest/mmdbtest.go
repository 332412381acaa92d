// Package mmdbtest writes small MaxMind DB (.mmdb) fixtures for tests with
// github.com/maxmind/mmdbwriter, in the layouts of MaxMind's databases:
// GeoLite2-Country, GeoLite2-City, GeoLite2-ASN, GeoIP2-Anonymous-IP, plus a
// custom layout (top-level "country_code") and a corrupt file.
//
// Each helper takes a map from network (CIDR, IPv4 or IPv6) to what that
// network should hold, writes the database into t.TempDir() and returns its
// path. The Build* functions return the bytes instead, for tests that need to
// write a database to a path of their choosing (hot reload), and for the demo
// database generator.
//
// The fixtures do not alias IPv4-mapped IPv6 addresses (::ffff:0:0/96) to the
// IPv4 networks, unlike MaxMind's own databases, so a reader that forgets to
// normalise ::ffff:a.b.c.d finds nothing. Reserved networks (documentation
// ranges such as 192.0.2.0/24, private ranges) may be used.
package mmdbtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Database types written in the metadata, as MaxMind spells them.
const (
	TypeCountry   = "GeoLite2-Country"
	TypeCity      = "GeoLite2-City"
	TypeASN       = "GeoLite2-ASN"
	TypeAnonymous = "GeoIP2-Anonymous-IP"
	TypeCustom    = "Example-Custom-Layout"
)

// BuildEpoch is the build time written in the metadata of every fixture
// unless a test builds with [Build] and its own epoch: 2026-01-02 03:04:05 UTC.
var BuildEpoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// CityRecord is what a city database holds for one network.
type CityRecord struct {
	Country     string // ISO 3166-1 alpha-2 code, e.g. "GB"
	Subdivision string // ISO code of the first subdivision, e.g. "ENG"; optional
	City        string // English name, e.g. "London"; optional
}

// ASNRecord is what an ASN database holds for one network.
type ASNRecord struct {
	Number uint32
	Org    string
}

// AnonymousRecord is what an anonymous-IP database holds for one network.
type AnonymousRecord struct {
	IsAnonymous, IsAnonymousVPN, IsHostingProvider, IsPublicProxy, IsTorExitNode, IsResidentialProxy bool
}

// Country writes a GeoLite2-Country database mapping each network to a
// country code and returns its path. Continent and EU membership are filled in
// from the code for the countries in [Continents]; other codes get no
// continent.
func Country(t testing.TB, nets map[string]string) string {
	t.Helper()
	return writeTemp(t, "country.mmdb", BuildCountry(nets))
}

// City writes a GeoLite2-City database and returns its path.
func City(t testing.TB, nets map[string]CityRecord) string {
	t.Helper()
	return writeTemp(t, "city.mmdb", BuildCity(nets))
}

// ASN writes a GeoLite2-ASN database and returns its path.
func ASN(t testing.TB, nets map[string]ASNRecord) string {
	t.Helper()
	return writeTemp(t, "asn.mmdb", BuildASN(nets))
}

// Anonymous writes a GeoIP2-Anonymous-IP database and returns its path.
func Anonymous(t testing.TB, nets map[string]AnonymousRecord) string {
	t.Helper()
	return writeTemp(t, "anonymous.mmdb", BuildAnonymous(nets))
}

// Custom writes a database of an unknown type (TypeCustom) that keeps the
// country code at the top-level key "country_code" and the ASN as an IPinfo
// style string ("AS64496") at "asn", where the probe of geodb finds them.
func Custom(t testing.TB, nets map[string]string) string {
	t.Helper()
	return writeTemp(t, "custom.mmdb", BuildCustom(nets))
}

// Corrupt writes a file that is not a MaxMind DB and returns its path.
func Corrupt(t testing.TB) string {
	t.Helper()
	return writeTemp(t, "corrupt.mmdb", CorruptBytes())
}

// CorruptBytes returns the content of a file that is not a MaxMind DB: the
// first half of a valid country database, as a download cut short would leave
// it.
func CorruptBytes() []byte {
	b := BuildCountry(map[string]string{"192.0.2.0/24": "GB"})
	return b[:len(b)/2]
}

// WriteFile replaces the file at path with data atomically, as geoipupdate
// does: write a temporary file in the same directory, then rename it.
func WriteFile(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// BuildCountry returns a GeoLite2-Country database (see [Country]).
func BuildCountry(nets map[string]string) []byte {
	recs := make(map[string]mmdbtype.DataType, len(nets))
	for n, cc := range nets {
		recs[n] = countryRecord(cc)
	}
	return mustBuild(TypeCountry, recs)
}

// BuildCity returns a GeoLite2-City database (see [City]).
func BuildCity(nets map[string]CityRecord) []byte {
	recs := make(map[string]mmdbtype.DataType, len(nets))
	for n, c := range nets {
		m := countryRecord(c.Country)
		if c.City != "" {
			m["city"] = mmdbtype.Map{"geoname_id": mmdbtype.Uint32(2643743), "names": names(c.City)}
		}
		if c.Subdivision != "" {
			m["subdivisions"] = mmdbtype.Slice{mmdbtype.Map{
				"iso_code": mmdbtype.String(c.Subdivision),
				"names":    names(c.Subdivision),
			}}
		}
		m["location"] = mmdbtype.Map{"accuracy_radius": mmdbtype.Uint16(100), "latitude": mmdbtype.Float64(51.5), "longitude": mmdbtype.Float64(-0.1)}
		recs[n] = m
	}
	return mustBuild(TypeCity, recs)
}

// BuildASN returns a GeoLite2-ASN database (see [ASN]).
func BuildASN(nets map[string]ASNRecord) []byte {
	recs := make(map[string]mmdbtype.DataType, len(nets))
	for n, a := range nets {
		recs[n] = mmdbtype.Map{
			"autonomous_system_number":       mmdbtype.Uint32(a.Number),
			"autonomous_system_organization": mmdbtype.String(a.Org),
		}
	}
	return mustBuild(TypeASN, recs)
}

// BuildAnonymous returns a GeoIP2-Anonymous-IP database (see [Anonymous]).
// As in MaxMind's database, only the flags that are true are written.
func BuildAnonymous(nets map[string]AnonymousRecord) []byte {
	recs := make(map[string]mmdbtype.DataType, len(nets))
	for n, a := range nets {
		m := mmdbtype.Map{}
		for k, v := range map[string]bool{
			"is_anonymous": a.IsAnonymous, "is_anonymous_vpn": a.IsAnonymousVPN,
			"is_hosting_provider": a.IsHostingProvider, "is_public_proxy": a.IsPublicProxy,
			"is_tor_exit_node": a.IsTorExitNode, "is_residential_proxy": a.IsResidentialProxy,
		} {
			if v {
				m[mmdbtype.String(k)] = mmdbtype.Bool(true)
			}
		}
		recs[n] = m
	}
	return mustBuild(TypeAnonymous, recs)
}

// BuildCustom returns a database of a custom layout (see [Custom]).
func BuildCustom(nets map[string]string) []byte {
	recs := make(map[string]mmdbtype.DataType, len(nets))
	for n, cc := range nets {
		recs[n] = mmdbtype.Map{
			"country_code": mmdbtype.String(cc),
			"asn":          mmdbtype.String("AS64496"),
		}
	}
	return mustBuild(TypeCustom, recs)
}

// Build returns a database of the given type holding the given records, keyed
// by network. It is the building block of the other helpers.
func Build(dbType string, buildEpoch time.Time, records map[string]mmdbtype.DataType) ([]byte, error) {
	return BuildMeta(Meta{Type: dbType, BuildEpoch: buildEpoch, Description: "caddy-edge test fixture"}, records)
}

// Meta is the metadata of a fixture built with [BuildMeta].
type Meta struct {
	Type        string    // database_type; may be empty
	BuildEpoch  time.Time // zero: BuildEpoch
	Description string    // "" writes an empty description map, as ip-location-db's builds have
	IPVersion   int       // 4: an IPv4-only tree (IPv6 networks cannot be inserted); 0 or 6: an IPv6 tree
}

// BuildMeta is [Build] with the metadata given in full.
func BuildMeta(m Meta, records map[string]mmdbtype.DataType) ([]byte, error) {
	if m.BuildEpoch.IsZero() {
		m.BuildEpoch = BuildEpoch
	}
	desc := map[string]string{}
	var langs []string
	if m.Description != "" {
		desc["en"] = m.Description
		langs = []string{"en"}
	}
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            m.Type,
		BuildEpoch:              m.BuildEpoch.Unix(),
		Description:             desc,
		Languages:               langs,
		IncludeReservedNetworks: true,
		DisableIPv4Aliasing:     true,
		RecordSize:              24,
		IPVersion:               m.IPVersion,
	})
	if err != nil {
		return nil, err
	}
	for n, rec := range records {
		_, ipnet, err := net.ParseCIDR(n)
		if err != nil {
			return nil, fmt.Errorf("network %q: %w", n, err)
		}
		if err := tree.Insert(ipnet, rec); err != nil {
			return nil, fmt.Errorf("inserting %s: %w", n, err)
		}
	}
	var buf bytes.Buffer
	if _, err := tree.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func mustBuild(dbType string, records map[string]mmdbtype.DataType) []byte {
	b, err := Build(dbType, BuildEpoch, records)
	if err != nil {
		panic("mmdbtest: " + err.Error())
	}
	return b
}

func writeTemp(t testing.TB, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func names(en string) mmdbtype.Map {
	return mmdbtype.Map{"en": mmdbtype.String(en)}
}

func countryRecord(cc string) mmdbtype.Map {
	cc = strings.ToUpper(cc)
	country := mmdbtype.Map{
		"geoname_id": mmdbtype.Uint32(1),
		"iso_code":   mmdbtype.String(cc),
		"names":      names(cc),
	}
	if EU[cc] {
		country["is_in_european_union"] = mmdbtype.Bool(true)
	}
	m := mmdbtype.Map{"country": country, "registered_country": country}
	if cont, ok := Continents[cc]; ok {
		m["continent"] = mmdbtype.Map{
			"code":       mmdbtype.String(cont),
			"geoname_id": mmdbtype.Uint32(2),
			"names":      names(cont),
		}
	}
	return m
}

// Continents maps the country codes the fixtures know to their continent.
var Continents = map[string]string{
	"AT": "EU", "BE": "EU", "CH": "EU", "DE": "EU", "ES": "EU", "FR": "EU", "GB": "EU", "IE": "EU",
	"IT": "EU", "NL": "EU", "NO": "EU", "PL": "EU", "RU": "EU", "SE": "EU", "UA": "EU",
	"CA": "NA", "MX": "NA", "US": "NA",
	"AR": "SA", "BR": "SA", "CL": "SA",
	"CN": "AS", "IN": "AS", "JP": "AS", "KR": "AS", "SG": "AS",
	"EG": "AF", "KE": "AF", "NG": "AF", "ZA": "AF",
	"AU": "OC", "NZ": "OC",
	"AQ": "AN",
}

// EU is the set of the fixtures' countries that are members of the European
// Union.
var EU = map[string]bool{
	"AT": true, "BE": true, "DE": true, "ES": true, "FR": true, "IE": true, "IT": true, "NL": true,
	"PL": true, "SE": true,
}
