// Package geodb reads MaxMind-format (.mmdb) geo databases: GeoIP2 and
// GeoLite2 (country, city, ASN, anonymous-IP), DB-IP, IPinfo and any other
// layout described by field paths. It decodes only the fields the filter
// needs. It knows nothing of Caddy.
package geodb

import (
	"errors"
	"net/netip"
	"time"
)

// Result is what the databases know of one address. Zero value = nothing known.
type Result struct {
	Found           bool   // at least one database had a record for the address
	CountryCode     string // ISO 3166-1 alpha-2, "" when unknown
	ContinentCode   string // AF AN AS EU NA OC SA, "" when unknown
	InEU            bool
	SubdivisionCode string // first subdivision's ISO code, "" when unknown
	City            string // English name
	ASN             uint32
	ASNOrg          string

	IsAnonymous, IsAnonymousVPN, IsHostingProvider, IsPublicProxy, IsTorExitNode, IsResidentialProxy bool
}

// Kind is the kind of a database, from its metadata's database_type.
type Kind string

// The kinds of database.
const (
	KindCountry   Kind = "country"
	KindCity      Kind = "city"
	KindASN       Kind = "asn"
	KindAnonymous Kind = "anonymous"
	KindCustom    Kind = "custom"
)

// FieldPaths overrides where fields live, for databases with another layout.
type FieldPaths map[string][]any

// DB is one open .mmdb file.
type DB struct{}

// Open opens the database at path.
func Open(path string, fields FieldPaths) (*DB, error) {
	return nil, errors.New("geodb: not implemented")
}

// Kind returns the kind of the database.
func (d *DB) Kind() Kind { return "" }

// BuildTime returns when the database was built, from its metadata.
func (d *DB) BuildTime() time.Time { return time.Time{} }

// Lookup merges what this database knows of ip into r.
func (d *DB) Lookup(ip netip.Addr, r *Result) error { return nil }

// Close releases the database.
func (d *DB) Close() error { return nil }
