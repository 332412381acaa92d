package geodb

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/oschwald/maxminddb-golang/v2"
)

// The probe of a database at Open: the records of the first networks of its
// search tree (each distinct record decoded once), plus those of a few
// well-known public addresses. It is how a layout is recognised, and how a
// database that cannot serve a field is refused at load rather than found
// to know nothing at each request.
const (
	probeNetworks = 4096 // networks of the tree walked at most
	probeRecords  = 512  // distinct records decoded at most
)

// probeAddrs are well-known public addresses (public resolvers, MaxMind's
// test network, RIPE NCC), so that a database whose first networks happen
// to be empty of a field still shows it.
var probeAddrs = []netip.Addr{
	netip.MustParseAddr("8.8.8.8"),
	netip.MustParseAddr("1.1.1.1"),
	netip.MustParseAddr("9.9.9.9"),
	netip.MustParseAddr("81.2.69.160"),
	netip.MustParseAddr("193.0.6.139"),
	netip.MustParseAddr("2001:4860:4860::8888"),
	netip.MustParseAddr("2606:4700:4700::1111"),
	netip.MustParseAddr("2001:67c:2e8:22::c100:68b"),
}

// probedRecord is one record the probe decoded.
type probedRecord struct {
	offset uintptr
	prefix netip.Prefix // a network that maps to it
	value  any          // the whole record, decoded generically
}

// probe decodes the records of the first networks of the tree and of the
// well-known addresses. A record that does not decode is an error: the
// database is corrupt.
func (d *DB) probe() ([]probedRecord, error) {
	var recs []probedRecord
	seen := make(map[uintptr]bool)
	add := func(res maxminddb.Result) error {
		if err := res.Err(); err != nil {
			return err
		}
		if !res.Found() || seen[res.Offset()] {
			return nil
		}
		seen[res.Offset()] = true
		var v any
		if err := res.Decode(&v); err != nil {
			return fmt.Errorf("record of %s: %w", res.Prefix(), err)
		}
		recs = append(recs, probedRecord{offset: res.Offset(), prefix: res.Prefix(), value: v})
		return nil
	}
	for _, ip := range probeAddrs {
		if ip.Is6() && d.reader.Metadata.IPVersion == 4 {
			continue
		}
		if err := add(d.reader.Lookup(d.treeAddr(ip))); err != nil {
			return nil, fmt.Errorf("probing %s: %w", ip, err)
		}
	}
	n := 0
	for res := range d.reader.Networks() {
		if err := add(res); err != nil {
			return nil, fmt.Errorf("reading networks: %w", err)
		}
		if n++; n == probeNetworks || len(recs) >= probeRecords {
			break
		}
	}
	return recs, nil
}

// candidates are, for each field, the places where the known layouts keep
// it, in order of preference: MaxMind's (GeoIP2, GeoLite2, and DB-IP,
// IP2Location's MMDB, which copy it), then the flat keys of ip-location-db
// (country_code, and city in its city builds; autonomous_system_number and
// autonomous_system_organization in its ASN builds) and IPinfo (country_code, continent_code, asn, as_name;
// country and continent in its older country builds).
var candidates = [numFields][][]any{
	fCountryCode:        {{"country", "iso_code"}, {"country_code"}, {"country"}},
	fContinentCode:      {{"continent", "code"}, {"continent_code"}, {"continent"}},
	fInEU:               {{"country", "is_in_european_union"}},
	fSubdivisionCode:    {{"subdivisions", 0, "iso_code"}},
	fCity:               {{"city", "names", "en"}, {"city"}},
	fASN:                {{"autonomous_system_number"}, {"asn"}, {"traits", "autonomous_system_number"}},
	fASNOrg:             {{"autonomous_system_organization"}, {"as_name"}, {"traits", "autonomous_system_organization"}},
	fIsAnonymous:        {{"is_anonymous"}, {"traits", "is_anonymous"}},
	fIsAnonymousVPN:     {{"is_anonymous_vpn"}, {"traits", "is_anonymous_vpn"}},
	fIsHostingProvider:  {{"is_hosting_provider"}, {"traits", "is_hosting_provider"}},
	fIsPublicProxy:      {{"is_public_proxy"}, {"traits", "is_public_proxy"}},
	fIsTorExitNode:      {{"is_tor_exit_node"}, {"traits", "is_tor_exit_node"}},
	fIsResidentialProxy: {{"is_residential_proxy"}, {"traits", "is_residential_proxy"}},
}

// anyFound reports whether any probed record has a value for any field of
// layout.
func anyFound(recs []probedRecord, layout FieldPaths) bool {
	for name, p := range layout {
		if foundIn(recs, fieldIndex(name), p) {
			return true
		}
	}
	return false
}

// foundIn reports whether any probed record has, at path, a value field f
// can take (f < 0: any value).
func foundIn(recs []probedRecord, f int, path []any) bool {
	for _, rec := range recs {
		if v, ok := resolve(rec.value, path); ok && fits(f, v) {
			return true
		}
	}
	return false
}

// resolve follows path through a generically decoded record.
func resolve(v any, path []any) (any, bool) {
	for _, e := range path {
		switch k := e.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil, false
			}
			if v, ok = m[k]; !ok {
				return nil, false
			}
		case int:
			s, ok := v.([]any)
			if !ok {
				return nil, false
			}
			if k < 0 {
				k += len(s)
			}
			if k < 0 || k >= len(s) {
				return nil, false
			}
			v = s[k]
		default:
			return nil, false
		}
	}
	return v, true
}

// fits reports whether v is a value field f can take when guessing a
// layout: a two-letter code for the country and continent, a non-empty
// string for names, a number (or "AS64496") for the ASN, a boolean for a flag.
func fits(f int, v any) bool {
	switch f {
	case -1:
		return true
	case fCountryCode, fContinentCode:
		s, ok := v.(string)
		return ok && countryIndex(s) >= 0
	case fSubdivisionCode, fCity, fASNOrg:
		s, ok := v.(string)
		return ok && s != ""
	case fASN:
		switch n := v.(type) {
		case string:
			_, ok := parseASN(n)
			return ok
		case uint64, uint32, uint16, int32, int, uint:
			return true
		}
		return false
	default:
		_, ok := v.(bool)
		return ok
	}
}

// formatPath writes a path as the Caddyfile's fields option takes it.
func formatPath(p []any) string {
	parts := make([]string, len(p))
	for i, e := range p {
		parts[i] = fmt.Sprint(e)
	}
	return strings.Join(parts, " ")
}

// layoutName names a layout taken from the database type, for the admin
// API.
func layoutName(dbType string, layout FieldPaths) string {
	switch {
	case strings.Contains(strings.ToLower(dbType), "ipinfo"):
		return "ipinfo"
	case layout["is_tor_exit_node"] != nil && layout["country_code"] == nil:
		return "geoip2-anonymous-ip"
	case layout["is_tor_exit_node"] != nil:
		return "geoip2-enterprise"
	case layout["city"] != nil:
		return "geoip2-city"
	case layout["country_code"] != nil:
		return "geoip2-country"
	}
	return "geoip2-asn"
}

// kindFromFields is the kind of a database of an unknown type from the
// fields found in it.
func kindFromFields(m uint16) Kind {
	const anon = 1<<fIsAnonymous | 1<<fIsAnonymousVPN | 1<<fIsHostingProvider | 1<<fIsPublicProxy | 1<<fIsTorExitNode | 1<<fIsResidentialProxy
	switch {
	case m&anon != 0:
		return KindAnonymous
	case m&(1<<fCity|1<<fSubdivisionCode) != 0:
		return KindCity
	case m&(1<<fCountryCode) != 0:
		return KindCountry
	case m&(1<<fASN|1<<fASNOrg) != 0:
		return KindASN
	}
	return KindCustom
}

// Layout tells how the fields were found: "geoip2-country", "geoip2-city",
// "geoip2-asn", "geoip2-anonymous-ip", "geoip2-enterprise" or "ipinfo" (the
// layout the database type names), "detected" (found by the probe), or
// "custom" (field paths given).
func (d *DB) Layout() string { return d.layout }

// Provides reports whether the database can fill the field (a name of
// [FieldNames]): it has a path for it that the probe confirmed (or the
// layout its type names does), or the field is derived from one it has
// (continent_code and in_eu from country_code).
func (d *DB) Provides(field string) bool {
	i := fieldIndex(field)
	return i >= 0 && d.provides&(1<<i) != 0
}

// Fields returns the names of the fields the database can fill (see
// [DB.Provides]), in [FieldNames] order.
func (d *DB) Fields() []string {
	var out []string
	for i, n := range fieldNames {
		if d.provides&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// Paths returns where the database's fields are read, by field name.
func (d *DB) Paths() FieldPaths {
	out := make(FieldPaths, len(d.paths))
	for _, p := range d.paths {
		out[fieldNames[p.field]] = append([]any(nil), p.path...)
	}
	return out
}

// Probed returns how many distinct records the probe at Open decoded.
func (d *DB) Probed() int { return d.probed }
