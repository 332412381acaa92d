package geodb_test

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-edge/edge/geofilter/geodb"
)

// officialTestData finds MaxMind's official test databases: the folder
// shared/testdata/mmdb next to the repository (../shared/testdata/mmdb from
// its root), or beside any parent directory.
func officialTestData(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		cand := filepath.Join(dir, "shared", "testdata", "mmdb")
		if fi, err := os.Stat(cand); err == nil && fi.IsDir() {
			return cand
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("MaxMind test databases not found (looked for ../shared/testdata/mmdb from the repository root)")
		}
		dir = parent
	}
}

type sourceNet struct {
	prefix netip.Prefix
	rec    map[string]any
}

// loadSource reads a MaxMind source JSON: a list of {"network": record}.
// Networks written as IPv4-compatible IPv6 ("::1.2.0.0/112") become IPv4.
func loadSource(t *testing.T, path string) []sourceNet {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var raw []map[string]map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	var out []sourceNet
	for _, m := range raw {
		for n, rec := range m {
			p := netip.MustParsePrefix(n)
			if a := p.Addr(); a.Is6() && p.Bits() >= 96 {
				b16 := a.As16()
				if [12]byte(b16[:12]) == [12]byte{} {
					p = netip.PrefixFrom(netip.AddrFrom4([4]byte(b16[12:])), p.Bits()-96)
				}
			}
			out = append(out, sourceNet{p, rec})
		}
	}
	return out
}

// expected returns the record of the most specific source network holding
// ip, as the database builder resolves nesting.
func expected(nets []sourceNet, ip netip.Addr) (map[string]any, bool) {
	best := -1
	for i, n := range nets {
		if n.prefix.Contains(ip) && (best < 0 || n.prefix.Bits() >= nets[best].prefix.Bits()) {
			best = i
		}
	}
	if best < 0 {
		return nil, false
	}
	return nets[best].rec, true
}

func jget(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			s, ok := v.([]any)
			if !ok || k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

func jstr(v any, path ...any) string {
	s, _ := jget(v, path...).(string)
	return s
}

func jbool(v any, path ...any) bool {
	b, _ := jget(v, path...).(bool)
	return b
}

// wantFromSource is what geodb should return for a source record.
func wantFromSource(kind geodb.Kind, rec map[string]any) geodb.Result {
	var r geodb.Result
	switch kind {
	case geodb.KindCountry, geodb.KindCity:
		r.CountryCode = jstr(rec, "country", "iso_code")
		r.ContinentCode = jstr(rec, "continent", "code")
		r.InEU = jbool(rec, "country", "is_in_european_union")
		if kind == geodb.KindCity {
			r.SubdivisionCode = jstr(rec, "subdivisions", 0, "iso_code")
			r.City = jstr(rec, "city", "names", "en")
		}
	case geodb.KindASN:
		n, _ := jget(rec, "autonomous_system_number").(float64)
		r.ASN = uint32(n)
		r.ASNOrg = jstr(rec, "autonomous_system_organization")
	case geodb.KindAnonymous:
		r.IsAnonymous = jbool(rec, "is_anonymous")
		r.IsAnonymousVPN = jbool(rec, "is_anonymous_vpn")
		r.IsHostingProvider = jbool(rec, "is_hosting_provider")
		r.IsPublicProxy = jbool(rec, "is_public_proxy")
		r.IsTorExitNode = jbool(rec, "is_tor_exit_node")
		r.IsResidentialProxy = jbool(rec, "is_residential_proxy")
	}
	r.Found = r != (geodb.Result{})
	return r
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	b := a.AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	last, _ := netip.AddrFromSlice(b)
	return last
}

// TestOfficialDatabases compares lookups in MaxMind's official test
// databases with the source data they were built from: the first and last
// address of every network, plus addresses just outside of them.
func TestOfficialDatabases(t *testing.T) {
	dir := officialTestData(t)
	for _, tt := range []struct {
		db, source string
		kind       geodb.Kind
	}{
		{"GeoIP2-Country-Test.mmdb", "GeoIP2-Country-Test.json", geodb.KindCountry},
		{"GeoLite2-Country-Test.mmdb", "GeoLite2-Country-Test.json", geodb.KindCountry},
		{"GeoIP2-City-Test.mmdb", "GeoIP2-City-Test.json", geodb.KindCity},
		{"GeoLite2-ASN-Test.mmdb", "GeoLite2-ASN-Test.json", geodb.KindASN},
		{"GeoIP2-Anonymous-IP-Test.mmdb", "GeoIP2-Anonymous-IP-Test.json", geodb.KindAnonymous},
	} {
		t.Run(tt.db, func(t *testing.T) {
			db := open(t, filepath.Join(dir, tt.db), nil)
			if db.Kind() != tt.kind {
				t.Fatalf("Kind() = %q (type %q), want %q", db.Kind(), db.Type(), tt.kind)
			}
			if db.BuildTime().IsZero() || db.BuildTime().Year() < 2000 {
				t.Errorf("BuildTime() = %v", db.BuildTime())
			}
			nets := loadSource(t, filepath.Join(dir, tt.source))
			checked, found := 0, 0
			for _, n := range nets {
				p := n.prefix.Masked()
				addrs := []netip.Addr{p.Addr(), lastAddr(p), p.Addr().Prev(), lastAddr(p).Next()}
				if p.Addr().Is4() {
					addrs = append(addrs, netip.AddrFrom16(p.Addr().As16())) // ::ffff:a.b.c.d
				}
				for _, ip := range addrs {
					if !ip.IsValid() {
						continue
					}
					var want geodb.Result
					if rec, ok := expected(nets, ip.Unmap()); ok {
						want = wantFromSource(tt.kind, rec)
					}
					if want.Found {
						found++
					}
					var got geodb.Result
					if err := db.Lookup(ip, &got); err != nil {
						t.Errorf("Lookup(%s): %v", ip, err)
						continue
					}
					checked++
					if got != want {
						t.Errorf("Lookup(%s) = %+v, want %+v", ip, got, want)
					}
				}
			}
			if found < len(nets) {
				t.Errorf("only %d of %d checked addresses had a record: the sample misses networks", found, checked)
			}
			t.Logf("%d networks, %d addresses checked, %d with a record", len(nets), checked, found)
		})
	}
}

// TestOfficialBrokenDatabases opens the deliberately broken databases: each
// must give an error (at Open or at Lookup), never a panic.
func TestOfficialBrokenDatabases(t *testing.T) {
	dir := officialTestData(t)
	for _, name := range []string{
		"GeoIP2-City-Test-Broken-Double-Format.mmdb",
		"MaxMind-DB-test-broken-pointers-24.mmdb",
		"MaxMind-DB-test-broken-search-tree-24.mmdb",
	} {
		t.Run(name, func(t *testing.T) {
			// Field paths, so that the test databases' unknown type is not
			// what makes Open fail.
			fields := geodb.FieldPaths{"city": {"city", "names", "en"}, "country_code": {"country", "iso_code"}}
			db, err := geodb.Open(filepath.Join(dir, name), fields)
			if err != nil {
				if strings.Contains(err.Error(), "unknown database type") {
					t.Fatalf("failed for the wrong reason: %v", err)
				}
				t.Logf("Open: %v", err)
				return
			}
			defer db.Close()
			errs := 0
			for _, a := range []string{"1.1.1.1", "1.1.1.3", "2.125.160.216", "81.2.69.160", "::1:ffff:ffff", "2001:218::1"} {
				var r geodb.Result
				if err := db.Lookup(netip.MustParseAddr(a), &r); err != nil {
					errs++
				}
			}
			if errs == 0 {
				t.Error("broken database opened and every lookup succeeded")
			}
		})
	}
	// The healthy minimal test databases, of an unknown type, open with
	// field paths.
	db := open(t, filepath.Join(dir, "MaxMind-DB-test-mixed-24.mmdb"), geodb.FieldPaths{"city": {"ip"}})
	if db.Kind() != geodb.KindCustom {
		t.Errorf("Kind() = %q", db.Kind())
	}
}

// TestOfficialIPv4Only: an IPv6 address in an IPv4-only database is simply
// unknown, while IPv4 and IPv4-mapped addresses are found.
func TestOfficialIPv4Only(t *testing.T) {
	dir := officialTestData(t)
	db := open(t, filepath.Join(dir, "MaxMind-DB-test-ipv4-24.mmdb"), geodb.FieldPaths{"city": {"ip"}})
	for addr, want := range map[string]string{
		"1.1.1.1":         "1.1.1.1",
		"::ffff:1.1.1.3":  "1.1.1.2", // in 1.1.1.2/31
		"2001:db8::1":     "",
		"::1.1.1.1":       "",
		"255.255.255.255": "",
	} {
		r := lookup(t, db, addr)
		if r.City != want || r.Found != (want != "") {
			t.Errorf("Lookup(%s) = %+v, want %q", addr, r, want)
		}
	}
}
