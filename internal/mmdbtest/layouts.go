package mmdbtest

import (
	"testing"

	"strconv"
	"strings"

	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Fixtures in the layouts of the free and commercial databases users
// download, written from the metadata and records of the real files (the
// records hold only what the real ones hold, for the networks given):
//
//	vendor, build                     database_type              record
//	MaxMind GeoIP2/GeoLite2 Country   GeoLite2-Country           {country: {iso_code, is_in_european_union, names}, continent: {code, names}, ...}
//	DB-IP Lite, MaxMind-compatible    DBIP-Country-Lite          the same as MaxMind's
//	                                  DBIP-ASN-Lite (compat=GeoLite2-ASN)  {autonomous_system_number, autonomous_system_organization}
//	IPinfo Lite                       ipinfo lite.mmdb           {country_code, country, continent_code, continent, asn: "AS64496", as_name, as_domain}
//	IPinfo's older country builds     ipinfo country.mmdb        {country: "DE", country_name, continent: "EU", continent_name}
//	ip-location-db *-country-mmdb     country ipv4|ipv6|ipvAll   {country_code}, empty description
//	ip-location-db *-asn-mmdb         asn ipv4|ipv6|ipvAll       {autonomous_system_number, autonomous_system_organization}, empty description
//
// ip-location-db's "ipv4" builds have an IPv4-only tree (ip_version 4); its
// "ipv6" and "ipvAll" builds an IPv6 tree.

// IPLocationDBCountry returns a country database as ip-location-db builds
// them (e.g. the npm packages @ip-location-db/geolite2-country-mmdb and
// @ip-location-db/geo-whois-asn-country-mmdb): flat {"country_code": "DE"}
// records, database_type "country ipv4" (ipVersion 4, an IPv4-only tree) or
// "country ipvAll" (ipVersion 6), and an empty description.
func IPLocationDBCountry(nets map[string]string, ipVersion int) []byte {
	recs := make(map[string]mmdbtype.DataType, len(nets))
	for n, cc := range nets {
		recs[n] = mmdbtype.Map{"country_code": mmdbtype.String(cc)}
	}
	return mustBuildMeta(Meta{Type: ipLocationType("country", ipVersion), IPVersion: ipVersion}, recs)
}

// IPLocationDBASN returns an ASN database as ip-location-db builds them
// (@ip-location-db/asn-mmdb and the like): flat autonomous_system_number and
// autonomous_system_organization, an empty description.
func IPLocationDBASN(nets map[string]ASNRecord, ipVersion int) []byte {
	recs := make(map[string]mmdbtype.DataType, len(nets))
	for n, a := range nets {
		recs[n] = mmdbtype.Map{
			"autonomous_system_number":       mmdbtype.Uint32(a.Number),
			"autonomous_system_organization": mmdbtype.String(a.Org),
		}
	}
	return mustBuildMeta(Meta{Type: ipLocationType("asn", ipVersion), IPVersion: ipVersion}, recs)
}

func ipLocationType(kind string, ipVersion int) string {
	if ipVersion == 4 {
		return kind + " ipv4"
	}
	return kind + " ipvAll"
}

// IPinfoRecord is what an IPinfo Lite database holds for one network.
type IPinfoRecord struct {
	Country string // ISO code; the continent is filled in from Continents
	ASN     uint32
	ASName  string
}

// IPinfoLite returns a database in the layout of IPinfo Lite: flat
// country_code, country (name), continent_code, continent (name), asn as a
// string "AS64496", as_name, as_domain.
func IPinfoLite(nets map[string]IPinfoRecord) []byte {
	recs := make(map[string]mmdbtype.DataType, len(nets))
	for n, r := range nets {
		m := mmdbtype.Map{
			"country_code": mmdbtype.String(r.Country),
			"country":      mmdbtype.String("Country " + r.Country),
		}
		if c, ok := Continents[r.Country]; ok {
			m["continent_code"] = mmdbtype.String(c)
			m["continent"] = mmdbtype.String("Continent " + c)
		}
		if r.ASN != 0 {
			m["asn"] = mmdbtype.String("AS" + strconv.FormatUint(uint64(r.ASN), 10))
			m["as_name"] = mmdbtype.String(r.ASName)
			m["as_domain"] = mmdbtype.String(strings.ToLower(strings.Fields(r.ASName + " x")[0]) + ".example")
		}
		recs[n] = m
	}
	return mustBuildMeta(Meta{Type: "ipinfo lite.mmdb", Description: "IPinfo Lite (test fixture)"}, recs)
}

// IPinfoCountry returns a database in the layout of IPinfo's older free
// country builds: the ISO code at "country", the continent code at
// "continent", and their names beside them.
func IPinfoCountry(nets map[string]string) []byte {
	recs := make(map[string]mmdbtype.DataType, len(nets))
	for n, cc := range nets {
		m := mmdbtype.Map{"country": mmdbtype.String(cc), "country_name": mmdbtype.String("Country " + cc)}
		if c, ok := Continents[cc]; ok {
			m["continent"] = mmdbtype.String(c)
			m["continent_name"] = mmdbtype.String("Continent " + c)
		}
		recs[n] = m
	}
	return mustBuildMeta(Meta{Type: "ipinfo country.mmdb", Description: "IPinfo country (test fixture)"}, recs)
}

// DBIPCountryLite returns a DB-IP "IP to Country Lite" database: MaxMind's
// country layout under DB-IP's database_type.
func DBIPCountryLite(nets map[string]string) []byte {
	recs := make(map[string]mmdbtype.DataType, len(nets))
	for n, cc := range nets {
		m := countryRecord(cc)
		delete(m, "registered_country") // DB-IP's records have none
		recs[n] = m
	}
	return mustBuildMeta(Meta{Type: "DBIP-Country-Lite", Description: "DB-IP Country Lite (test fixture)"}, recs)
}

// DBIPASNLite returns a DB-IP "IP to ASN Lite" database, MaxMind-compatible.
func DBIPASNLite(nets map[string]ASNRecord) []byte {
	recs := make(map[string]mmdbtype.DataType, len(nets))
	for n, a := range nets {
		recs[n] = mmdbtype.Map{
			"autonomous_system_number":       mmdbtype.Uint32(a.Number),
			"autonomous_system_organization": mmdbtype.String(a.Org),
		}
	}
	return mustBuildMeta(Meta{Type: "DBIP-ASN-Lite (compat=GeoLite2-ASN)", Description: "DB-IP ASN Lite (test fixture)"}, recs)
}

func mustBuildMeta(m Meta, records map[string]mmdbtype.DataType) []byte {
	b, err := BuildMeta(m, records)
	if err != nil {
		panic("mmdbtest: " + err.Error())
	}
	return b
}

// Unknown writes a database of an unknown type (TypeCustom) whose records
// keep the country code at "cc", where no known layout has it: it opens only
// with field paths ({"country_code": ["cc"]}). It returns its path.
func Unknown(t testing.TB, nets map[string]string) string {
	t.Helper()
	recs := make(map[string]mmdbtype.DataType, len(nets))
	for n, cc := range nets {
		recs[n] = mmdbtype.Map{"cc": mmdbtype.String(cc)}
	}
	return writeTemp(t, "unknown.mmdb", mustBuildMeta(Meta{Type: TypeCustom}, recs))
}
