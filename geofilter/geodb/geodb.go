// Package geodb reads MaxMind-format (.mmdb) geo databases: GeoIP2 and
// GeoLite2 (country, city, ASN, anonymous-IP), DB-IP, IPinfo and any other
// layout described by field paths. It decodes only the fields the filter
// needs, straight into a caller-owned [Result]. It knows nothing of Caddy.
package geodb

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"
	"github.com/oschwald/maxminddb-golang/v2/mmdbdata"
)

// Result is what the databases know of one address. Zero value = nothing known.
//
// The JSON form (admin API) uses the snake_case field names of [FieldPaths].
type Result struct {
	Found           bool   `json:"found"`                      // at least one database had a record with one of the fields below for the address
	CountryCode     string `json:"country_code,omitempty"`     // ISO 3166-1 alpha-2, "" when unknown
	ContinentCode   string `json:"continent_code,omitempty"`   // AF AN AS EU NA OC SA, "" when unknown
	InEU            bool   `json:"in_eu,omitempty"`            // country is a member of the European Union
	SubdivisionCode string `json:"subdivision_code,omitempty"` // first subdivision's ISO code, "" when unknown
	City            string `json:"city,omitempty"`             // English name
	ASN             uint32 `json:"asn,omitempty"`              // autonomous system number, 0 when unknown
	ASNOrg          string `json:"asn_org,omitempty"`          // autonomous system organization

	IsAnonymous        bool `json:"is_anonymous,omitempty"`
	IsAnonymousVPN     bool `json:"is_anonymous_vpn,omitempty"`
	IsHostingProvider  bool `json:"is_hosting_provider,omitempty"`
	IsPublicProxy      bool `json:"is_public_proxy,omitempty"`
	IsTorExitNode      bool `json:"is_tor_exit_node,omitempty"`
	IsResidentialProxy bool `json:"is_residential_proxy,omitempty"`
}

// Kind is the kind of a database, from its metadata's database_type.
type Kind string

// The kinds of database.
const (
	KindCountry   Kind = "country"   // GeoIP2/GeoLite2-Country, DBIP-Country(-Lite), IPinfo country
	KindCity      Kind = "city"      // GeoIP2/GeoLite2-City, GeoIP2-Enterprise (with its traits), DBIP-City(-Lite)
	KindASN       Kind = "asn"       // GeoLite2-ASN, GeoIP2-ISP, DBIP-ASN(-Lite), IPinfo ASN
	KindAnonymous Kind = "anonymous" // GeoIP2-Anonymous-IP
	KindCustom    Kind = "custom"    // any other type; read through field paths only
)

// FieldPaths overrides where fields live, for databases with another layout
// (e.g. {"country_code": ["country_code"]} for a database that keeps the
// country at the top-level key country_code). Keys are the [Result] field
// names in snake_case (see [FieldNames]); values are paths of map keys
// (strings) and array indexes (integers; negative counts from the end). JSON
// numbers (float64) with integral values are accepted as indexes.
type FieldPaths map[string][]any

// The fields a database can fill, in Result order.
const (
	fCountryCode = iota
	fContinentCode
	fInEU
	fSubdivisionCode
	fCity
	fASN
	fASNOrg
	fIsAnonymous
	fIsAnonymousVPN
	fIsHostingProvider
	fIsPublicProxy
	fIsTorExitNode
	fIsResidentialProxy
	numFields
)

var fieldNames = [numFields]string{
	"country_code", "continent_code", "in_eu", "subdivision_code", "city", "asn", "asn_org",
	"is_anonymous", "is_anonymous_vpn", "is_hosting_provider", "is_public_proxy",
	"is_tor_exit_node", "is_residential_proxy",
}

// FieldNames returns the names that FieldPaths accepts as keys.
func FieldNames() []string { return slices.Clone(fieldNames[:]) }

func fieldIndex(name string) int {
	for i, n := range fieldNames {
		if n == name {
			return i
		}
	}
	return -1
}

// Default layouts, as MaxMind documents them for GeoIP2/GeoLite2 (and DB-IP
// copies them).
var (
	countryLayout = FieldPaths{
		"country_code":   {"country", "iso_code"},
		"continent_code": {"continent", "code"},
		"in_eu":          {"country", "is_in_european_union"},
	}
	cityLayout = FieldPaths{
		"country_code":     {"country", "iso_code"},
		"continent_code":   {"continent", "code"},
		"in_eu":            {"country", "is_in_european_union"},
		"subdivision_code": {"subdivisions", 0, "iso_code"},
		"city":             {"city", "names", "en"},
	}
	asnLayout = FieldPaths{
		"asn":     {"autonomous_system_number"},
		"asn_org": {"autonomous_system_organization"},
	}
	anonymousLayout = FieldPaths{
		"is_anonymous":         {"is_anonymous"},
		"is_anonymous_vpn":     {"is_anonymous_vpn"},
		"is_hosting_provider":  {"is_hosting_provider"},
		"is_public_proxy":      {"is_public_proxy"},
		"is_tor_exit_node":     {"is_tor_exit_node"},
		"is_residential_proxy": {"is_residential_proxy"},
	}
	// GeoIP2-Enterprise: the city layout plus the network's traits.
	enterpriseLayout = FieldPaths{
		"country_code":         {"country", "iso_code"},
		"continent_code":       {"continent", "code"},
		"in_eu":                {"country", "is_in_european_union"},
		"subdivision_code":     {"subdivisions", 0, "iso_code"},
		"city":                 {"city", "names", "en"},
		"asn":                  {"traits", "autonomous_system_number"},
		"asn_org":              {"traits", "autonomous_system_organization"},
		"is_anonymous":         {"traits", "is_anonymous"},
		"is_anonymous_vpn":     {"traits", "is_anonymous_vpn"},
		"is_hosting_provider":  {"traits", "is_hosting_provider"},
		"is_public_proxy":      {"traits", "is_public_proxy"},
		"is_tor_exit_node":     {"traits", "is_tor_exit_node"},
		"is_residential_proxy": {"traits", "is_residential_proxy"},
	}
	// IPinfo's free and paid databases keep flat keys; the ASN is a string
	// such as "AS15169".
	ipinfoLayout = FieldPaths{
		"country_code":   {"country_code"},
		"continent_code": {"continent_code"},
		"asn":            {"asn"},
		"asn_org":        {"as_name"},
	}
)

// kindOf derives the kind and the default layout from a database_type, e.g.
// "GeoLite2-Country", "GeoIP2-City", "DBIP-ASN-Lite (compat=GeoLite2-ASN)",
// "ipinfo standard_location.mmdb". ok is false for an unknown type.
func kindOf(dbType string) (Kind, FieldPaths, bool) {
	t := strings.ToLower(dbType)
	if strings.Contains(t, "ipinfo") {
		switch {
		case strings.Contains(t, "asn"):
			return KindASN, ipinfoLayout, true
		case strings.Contains(t, "country") || strings.Contains(t, "lite"):
			return KindCountry, ipinfoLayout, true
		}
		return "", nil, false
	}
	switch {
	case strings.Contains(t, "anonymous"):
		return KindAnonymous, anonymousLayout, true
	case strings.Contains(t, "enterprise"): // before "isp": DB-IP's "Location-ISP (compat=Enterprise)"
		return KindCity, enterpriseLayout, true
	case strings.Contains(t, "asn") || strings.Contains(t, "isp"):
		return KindASN, asnLayout, true
	case strings.Contains(t, "city"):
		return KindCity, cityLayout, true
	case strings.Contains(t, "country"):
		return KindCountry, countryLayout, true
	}
	return "", nil, false
}

// fieldPath is where one field lives in this database's records.
type fieldPath struct {
	field int
	path  []any
}

// DB is one open .mmdb file. Its methods are safe for concurrent use. The
// file is read into memory at Open, so that whatever later happens to the
// file (a rewrite in place, a truncation) cannot affect a DB in use.
type DB struct {
	reader   *maxminddb.Reader
	kind     Kind
	dbType   string
	layout   string      // how the fields were found, see Layout
	paths    []fieldPath // where each field lives, by field
	trie     *trie       // paths, compiled for a one-pass walk of a record
	provides uint16      // fields the database can fill (bit i: field i), derived ones included
	probed   int         // records decoded by the probe at Open
	deriveEU bool        // the layout has no EU flag: derive it from the country code
	v4mapped bool        // an IPv6 tree whose IPv4 data is at ::ffff:0:0/96, see ipv4Mapped
	hasV4    bool        // the tree holds IPv4 networks, see families
	hasV6    bool        // the tree holds IPv6 networks (other than IPv4's)

	// cache holds recently decoded records; nil disables it (tests).
	cache *[1 << recordCacheBits]atomic.Pointer[cachedRecord]
}

// Open reads and validates the database at path: the file must be a
// well-formed MaxMind DB (its whole search tree and data section are
// verified; the metadata keys the format makes optional may be absent or
// empty), and the fields must be found in its records. fields overrides
// where fields live (an empty path turns a field off); the fields not given
// are found as [OpenBytes] describes.
func Open(path string, fields FieldPaths) (*DB, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return OpenBytes(data, fields)
}

// OpenBytes is [Open] for a database already in memory. The DB keeps data,
// which must not be modified afterwards.
//
// Where the fields live is found from the metadata's database_type and a
// probe of the records (the first networks of the search tree and a few
// well-known public addresses): a database whose records have the layout
// its type names (GeoIP2, GeoLite2, DB-IP, IPinfo) is read with all of that
// layout, even a field the probe did not see, such as a rare anonymous
// flag; any other database is read from the fields the probe found, at the
// places the known layouts keep them (flat country_code, continent_code,
// asn, as_name, autonomous_system_number, ..., as ip-location-db writes
// them). A database in which nothing the filter reads is found is refused,
// as is a hand-given field that holds no value in any probed record.
//
// Whenever a record gives a country but no continent, the continent is
// derived from the country; when the layout has no EU flag, EU membership is
// derived from the country (see [ContinentOf] and [IsEU]).
func OpenBytes(data []byte, fields FieldPaths) (*DB, error) {
	if len(data) == 0 {
		return nil, errors.New("empty file")
	}
	reader, err := maxminddb.OpenBytes(data)
	if err != nil {
		return nil, fmt.Errorf("not a valid MaxMind DB: %w", err)
	}
	if err := verify(reader); err != nil {
		return nil, fmt.Errorf("corrupt MaxMind DB: %w", err)
	}
	d := &DB{reader: reader, dbType: reader.Metadata.DatabaseType, cache: new([1 << recordCacheBits]atomic.Pointer[cachedRecord])}
	d.v4mapped = ipv4Mapped(reader) // on a verified tree
	d.hasV4, d.hasV6 = families(reader)
	recs, err := d.probe()
	if err != nil {
		return nil, err
	}
	d.probed = len(recs)

	chosen := make(map[int][]any, numFields)
	kind, layout, known := kindOf(d.dbType)
	if known && anyFound(recs, layout) {
		// The records have the layout the type names: read all of it,
		// even a field the probe did not see (a rare flag). But a field
		// the probe found only at another known place is read there: one
		// vendor names several builds alike (IPinfo's country_asn.mmdb
		// keeps the country at "country", not at Lite's "country_code"),
		// and the layout's path would read nothing while the field is
		// said to be provided, so that a country rule never matched.
		for name, p := range layout {
			f := fieldIndex(name)
			if !foundIn(recs, f, p) {
				for _, c := range candidates[f] {
					if foundIn(recs, f, c) {
						p = c
						break
					}
				}
			}
			chosen[f] = p
			d.provides |= 1 << f
		}
		d.layout = layoutName(d.dbType, layout)
	} else {
		for f := range numFields {
			for _, p := range candidates[f] {
				if foundIn(recs, f, p) {
					chosen[f] = p
					d.provides |= 1 << f
					break
				}
			}
		}
		d.layout = "detected"
	}
	for name, p := range fields {
		i := fieldIndex(name)
		if i < 0 {
			return nil, fmt.Errorf("unknown field %q (known: %s)", name, strings.Join(fieldNames[:], ", "))
		}
		np, err := normalizePath(p)
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", name, err)
		}
		d.layout = "custom"
		if len(np) == 0 {
			delete(chosen, i) // an empty path switches the field off
			d.provides &^= 1 << i
			continue
		}
		if !foundIn(recs, -1, np) {
			return nil, fmt.Errorf("field %s: no value at %s in any of the %d records probed (database_type %q)", name, formatPath(np), len(recs), d.dbType)
		}
		chosen[i] = np
		d.provides |= 1 << i
	}
	if len(chosen) == 0 {
		return nil, fmt.Errorf("database type %q: no field the filter reads (%s) was found in the %d records probed: set the field paths (fields) to read it",
			d.dbType, strings.Join(fieldNames[:], ", "), len(recs))
	}
	switch {
	case known:
		d.kind = kind
	case len(fields) > 0:
		d.kind = KindCustom
	default:
		d.kind = kindFromFields(d.provides)
	}
	for i, p := range chosen {
		d.paths = append(d.paths, fieldPath{field: i, path: p})
	}
	sort.Slice(d.paths, func(a, b int) bool { return d.paths[a].field < d.paths[b].field })
	if d.trie, err = compile(d.paths); err != nil {
		return nil, err
	}
	_, hasEU := chosen[fInEU]
	_, hasCountry := chosen[fCountryCode]
	d.deriveEU = hasCountry && !hasEU
	if hasCountry {
		d.provides |= 1<<fContinentCode | 1<<fInEU
	}
	// Decode the probed records the way lookups will, so that a field path
	// of the wrong type is reported now rather than at each request.
	for _, rec := range recs {
		var r Result
		if _, err := d.decode(d.reader.LookupOffset(rec.offset), &r); err != nil {
			return nil, fmt.Errorf("record of %s: %w", rec.prefix, err)
		}
	}
	return d, nil
}

// verify checks the structure of the database with maxminddb's Verify (the
// metadata section decodes; every node of the search tree is in bounds, and
// no path is cyclic or deeper than 128 bits; the data section separator; every
// record the tree points to decodes within the data section), which a reader
// needs to be safe, but without Verify's checks of metadata keys that the
// MaxMind DB format spec (2.0) makes optional or lets vary: description
// (which Verify wants non-empty), languages, database_type (which Verify
// wants non-empty) and binary_format_minor_version (a later minor version
// stays readable). The Reader's metadata is restored before verify returns.
func verify(r *maxminddb.Reader) error {
	md := r.Metadata
	defer func() { r.Metadata = md }()
	r.Metadata.Description = map[string]string{"en": "-"}
	r.Metadata.Languages = nil
	if r.Metadata.DatabaseType == "" {
		r.Metadata.DatabaseType = "-"
	}
	r.Metadata.BinaryFormatMinorVersion = 0
	return r.Verify()
}

// ipv4Mapped reports whether the database is an IPv6 tree that keeps its
// IPv4 networks only at their IPv4-mapped addresses (::ffff:0:0/96), as a
// writer fed IPv4-mapped ranges (IP2Location's IPv6 CSVs) builds it, rather
// than at ::/96, where readers look IPv4 addresses up. Looked up the usual
// way, every IPv4 address of such a file would be unknown, while its probe
// (the networks of the tree) finds the fields: a country rule would load and
// never match.
func ipv4Mapped(r *maxminddb.Reader) bool {
	if r.Metadata.IPVersion != 6 {
		return false
	}
	has := func(p string) bool {
		for res := range r.NetworksWithin(netip.MustParsePrefix(p)) {
			return res.Err() == nil
		}
		return false
	}
	return !has("::/96") && has("::ffff:0:0/96")
}

// families reports whether the tree holds IPv4 networks (an IPv4 tree
// with any network; an IPv6 tree with one at ::/96 or ::ffff:0:0/96) and
// IPv6 ones (an IPv6 tree with one in 2000::/3, the global unicast space:
// aliases of the IPv4 networks, such as 6to4's 2002::/16, are not
// counted). A database without one of them knows no client of that
// family: ip-location-db publishes its "-ipv4" and "-ipv6" builds apart.
func families(r *maxminddb.Reader) (v4, v6 bool) {
	has := func(p string) bool {
		for res := range r.NetworksWithin(netip.MustParsePrefix(p)) {
			return res.Err() == nil
		}
		return false
	}
	if r.Metadata.IPVersion != 6 {
		return has("0.0.0.0/0"), false
	}
	return has("::/96") || has("::ffff:0:0/96"), has("2000::/3")
}

// Families reports whether the database holds IPv4 networks and IPv6
// networks: an address of a family it holds none of is never found.
func (d *DB) Families() (v4, v6 bool) { return d.hasV4, d.hasV6 }

// treeAddr returns the address at which ip is looked up in the tree.
func (d *DB) treeAddr(ip netip.Addr) netip.Addr {
	if d.v4mapped && ip.Is4() {
		return netip.AddrFrom16(ip.As16())
	}
	return ip
}

// normalizePath checks a path and turns JSON numbers into int indexes.
func normalizePath(p []any) ([]any, error) {
	out := make([]any, len(p))
	for i, e := range p {
		switch v := e.(type) {
		case string:
			out[i] = v
		case int:
			out[i] = v
		case float64:
			if v != math.Trunc(v) || math.Abs(v) > 1<<20 {
				return nil, fmt.Errorf("path element %v is not an array index", v)
			}
			out[i] = int(v)
		default:
			return nil, fmt.Errorf("path element %v (%T) must be a map key (string) or an array index (integer)", e, e)
		}
	}
	return out, nil
}

// Kind returns the kind of the database.
func (d *DB) Kind() Kind { return d.kind }

// Type returns the database_type of the metadata, e.g. "GeoLite2-Country".
func (d *DB) Type() string { return d.dbType }

// BuildTime returns when the database was built, from its metadata.
func (d *DB) BuildTime() time.Time { return d.reader.Metadata.BuildTime().UTC() }

// Lookup merges what this database knows of ip into r: fields the record
// holds overwrite those of r, the others are left alone, and r.Found is set
// when the database has a record for ip that holds at least one of the
// fields (a record without any, or with only false flags, is not a find). An IPv4-mapped IPv6 address is
// looked up as IPv4; an IPv6 address in an IPv4-only database is simply not
// found. It does not allocate for the built-in layouts.
func (d *DB) Lookup(ip netip.Addr, r *Result) error {
	ip = ip.Unmap()
	if ip.Is6() && d.reader.Metadata.IPVersion == 4 {
		return nil
	}
	res := d.reader.Lookup(d.treeAddr(ip))
	if err := res.Err(); err != nil {
		return err
	}
	if !res.Found() {
		return nil
	}
	off := res.Offset()
	var slot *atomic.Pointer[cachedRecord]
	if d.cache != nil {
		slot = &d.cache[(uint64(off)*0x9E3779B97F4A7C15)>>(64-recordCacheBits)]
		if e := slot.Load(); e != nil && e.offset == off {
			e.mergeInto(r)
			return nil
		}
	}
	e := &cachedRecord{offset: off}
	mask, err := d.decode(res, &e.r)
	e.mask = mask
	// A record that holds none of the fields (MaxMind's databases map some
	// networks to an empty record) tells nothing: the address stays unknown.
	e.found = e.r != (Result{})
	if err == nil && slot != nil {
		slot.Store(e)
	}
	e.mergeInto(r)
	return err
}

// decode reads the fields of the record into r and returns which fields the
// record holds (bit i: field i).
func (d *DB) decode(res maxminddb.Result, r *Result) (uint16, error) {
	w := walkers.Get().(*recordWalker)
	w.t, w.r, w.mask = d.trie, r, 0
	err := res.Decode(w)
	mask := w.mask
	w.t, w.r = nil, nil
	walkers.Put(w)
	if err == errWalkDone { //nolint:errorlint // passed through unwrapped, see walk.go
		err = nil
	}
	// Rules, the geo matcher and the placeholders use upper-case codes, as
	// MaxMind's, DB-IP's and IPinfo's databases store them; a database read
	// through custom fields may keep them in lower case ("de", "eu").
	r.CountryCode = upperASCII(r.CountryCode)
	r.ContinentCode = upperASCII(r.ContinentCode)
	if r.CountryCode != "" {
		// Derive what the record leaves out; the database's own value wins.
		if mask&(1<<fContinentCode) == 0 {
			if c := ContinentOf(r.CountryCode); c != "" {
				r.ContinentCode = c
				mask |= 1 << fContinentCode
			}
		}
		if d.deriveEU {
			r.InEU = IsEU(r.CountryCode)
			mask |= 1 << fInEU
		} else if mask&(1<<fInEU) == 0 {
			// MaxMind (and DB-IP) write is_in_european_union only when it
			// is true: a country without it is not in the EU. Said so, so
			// that the merge does not keep an earlier database's EU flag
			// for another country.
			r.InEU = false
			mask |= 1 << fInEU
		}
	}
	return mask, err
}

// recordCacheBits sizes the per-database cache of decoded records: 2^12
// slots (32 KiB, plus about 200 bytes per record held), direct-mapped by the
// record's offset. Country, ASN and anonymous-IP databases have a few
// thousand distinct records at most, and most of a site's traffic comes
// from few networks, so a lookup is usually the tree walk plus a copy; a
// miss decodes the record and allocates its entry. Reloading a database
// starts a new cache.
const recordCacheBits = 12

// cachedRecord is a decoded record of one database. It is immutable once
// stored.
type cachedRecord struct {
	offset uintptr // of the record in the data section
	mask   uint16  // fields the record holds (bit i: field i)
	found  bool    // the record holds a non-zero field
	r      Result
}

// mergeInto copies the fields the record holds into r.
func (e *cachedRecord) mergeInto(r *Result) {
	if e.found {
		r.Found = true
	}
	m, s := e.mask, &e.r
	if m == 0 {
		return
	}
	if m&(1<<fCountryCode) != 0 {
		if r.CountryCode != s.CountryCode {
			// Another country than an earlier database's: that one's
			// subdivision and city are of a place this record says the
			// address is not in ({geo.city} Berlin beside country FR).
			// This record's own, if any, are set below.
			r.SubdivisionCode, r.City = "", ""
		}
		r.CountryCode = s.CountryCode
	}
	if m&(1<<fContinentCode) != 0 {
		r.ContinentCode = s.ContinentCode
	}
	if m&(1<<fInEU) != 0 {
		r.InEU = s.InEU
	}
	if m&(1<<fSubdivisionCode) != 0 {
		r.SubdivisionCode = s.SubdivisionCode
	}
	if m&(1<<fCity) != 0 {
		r.City = s.City
	}
	if m&(1<<fASN) != 0 {
		r.ASN = s.ASN
	}
	if m&(1<<fASNOrg) != 0 {
		r.ASNOrg = s.ASNOrg
	}
	if m&(1<<fIsAnonymous) != 0 {
		r.IsAnonymous = s.IsAnonymous
	}
	if m&(1<<fIsAnonymousVPN) != 0 {
		r.IsAnonymousVPN = s.IsAnonymousVPN
	}
	if m&(1<<fIsHostingProvider) != 0 {
		r.IsHostingProvider = s.IsHostingProvider
	}
	if m&(1<<fIsPublicProxy) != 0 {
		r.IsPublicProxy = s.IsPublicProxy
	}
	if m&(1<<fIsTorExitNode) != 0 {
		r.IsTorExitNode = s.IsTorExitNode
	}
	if m&(1<<fIsResidentialProxy) != 0 {
		r.IsResidentialProxy = s.IsResidentialProxy
	}
}

// upperASCII returns s with its ASCII letters in upper case, without
// allocating when it has no lower-case letter.
func upperASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'a' <= s[i] && s[i] <= 'z' {
			return strings.ToUpper(s)
		}
	}
	return s
}

// Close releases the database. The DB must not be used afterwards.
func (d *DB) Close() error { return d.reader.Close() }

// asnValue decodes an autonomous system number stored as an integer
// (MaxMind, DB-IP) or as a string "AS64496" (IPinfo).
type asnValue uint32

// UnmarshalMaxMindDBCursor implements mmdbdata.CursorUnmarshaler.
func (a *asnValue) UnmarshalMaxMindDBCursor(c mmdbdata.Cursor) (mmdbdata.Cursor, error) {
	kind, err := c.Kind()
	if err != nil {
		return c, err
	}
	if kind == mmdbdata.KindString {
		s, next, err := c.ReadString()
		if err != nil {
			return next, err
		}
		n, ok := parseASN(s)
		if !ok {
			return next, fmt.Errorf("bad ASN %q", s)
		}
		*a = asnValue(n)
		return next, nil
	}
	v, signed, next, err := c.ReadInteger()
	if err != nil {
		return next, mmdbdata.NormalizeUnmarshalError[uint32](err)
	}
	if signed || v > math.MaxUint32 {
		return next, fmt.Errorf("ASN %d out of range", int64(v))
	}
	*a = asnValue(v)
	return next, nil
}

// parseASN parses "AS64496", "as64496" or "64496".
func parseASN(s string) (uint32, bool) {
	if len(s) > 2 && (s[0] == 'A' || s[0] == 'a') && (s[1] == 'S' || s[1] == 's') {
		s = s[2:]
	}
	if s == "" || len(s) > 10 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n > math.MaxUint32 {
		return 0, false
	}
	return uint32(n), true
}

// Interface guards
var (
	_ mmdbdata.CursorUnmarshaler = (*asnValue)(nil)
)
