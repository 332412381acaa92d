package main

import (
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/caddy-edge/edge/geofilter/geodb"
	"github.com/caddy-edge/edge/internal/mmdbtest"
)

// TestDemoDatabases writes the demo databases and checks them against the
// table in the package documentation, which the README walk-through uses.
func TestDemoDatabases(t *testing.T) {
	dir := t.TempDir()
	cpath, apath := filepath.Join(dir, "demo.mmdb"), filepath.Join(dir, "demo-asn.mmdb")
	if err := write(cpath, mmdbtest.BuildCountry(mmdbtest.DemoCountries())); err != nil {
		t.Fatal(err)
	}
	if err := write(apath, mmdbtest.BuildASN(mmdbtest.DemoASNs())); err != nil {
		t.Fatal(err)
	}
	var dbs []*geodb.DB
	for _, p := range []string{cpath, apath} {
		db, err := geodb.Open(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		dbs = append(dbs, db)
	}
	if dbs[0].Kind() != geodb.KindCountry || dbs[1].Kind() != geodb.KindASN {
		t.Fatalf("kinds %s, %s", dbs[0].Kind(), dbs[1].Kind())
	}
	for _, tt := range []struct {
		addr      string
		country   string
		continent string
		eu        bool
		asn       uint32
	}{
		{"81.2.69.142", "GB", "EU", false, 20712},
		{"89.160.20.112", "SE", "EU", true, 29518},
		{"216.160.83.56", "US", "NA", false, 209},
		{"175.16.199.1", "CN", "AS", false, 4837},
		{"192.0.2.10", "FR", "EU", true, 64496},
		{"198.51.100.10", "BR", "SA", false, 64497},
		{"203.0.113.10", "RU", "EU", false, 64498},
		{"2001:db8::1", "JP", "AS", false, 64499},
		{"2001:db8:1::1", "DE", "EU", true, 64500},
		{"127.0.0.1", "", "", false, 0},
	} {
		var r geodb.Result
		for _, db := range dbs {
			if err := db.Lookup(netip.MustParseAddr(tt.addr), &r); err != nil {
				t.Fatal(err)
			}
		}
		if r.CountryCode != tt.country || r.ContinentCode != tt.continent || r.InEU != tt.eu || r.ASN != tt.asn || r.Found != (tt.country != "") {
			t.Errorf("%s: %+v, want %s %s eu=%v AS%d", tt.addr, r, tt.country, tt.continent, tt.eu, tt.asn)
		}
	}
}
