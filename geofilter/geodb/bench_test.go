package geodb_test

import (
	"net/netip"
	"testing"

	"github.com/caddy-edge/edge/geofilter/geodb"
	"github.com/caddy-edge/edge/internal/mmdbtest"
)

// benchNets returns a few hundred networks, so the search tree has some depth.
func benchNets() map[string]string {
	codes := []string{"GB", "US", "SE", "CN", "DE", "FR", "JP", "BR"}
	nets := make(map[string]string)
	for i := range 256 {
		nets[netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(i), byte(i * 7), 0, 0}), 16).String()] = codes[i%len(codes)]
	}
	nets["81.2.69.0/24"] = "GB"
	return nets
}

func BenchmarkLookupCountry(b *testing.B) {
	db := open(b, mmdbtest.Country(b, benchNets()), nil)
	ip := netip.MustParseAddr("81.2.69.142")
	var r geodb.Result
	b.ReportAllocs()
	for b.Loop() {
		r = geodb.Result{}
		if err := db.Lookup(ip, &r); err != nil || r.CountryCode != "GB" {
			b.Fatal(err, r)
		}
	}
}

func BenchmarkLookupCity(b *testing.B) {
	nets := map[string]mmdbtest.CityRecord{}
	for n, cc := range benchNets() {
		nets[n] = mmdbtest.CityRecord{Country: cc, Subdivision: "ENG", City: "London"}
	}
	db := open(b, mmdbtest.City(b, nets), nil)
	ip := netip.MustParseAddr("81.2.69.142")
	var r geodb.Result
	b.ReportAllocs()
	for b.Loop() {
		r = geodb.Result{}
		if err := db.Lookup(ip, &r); err != nil || r.City != "London" {
			b.Fatal(err, r)
		}
	}
}

func BenchmarkLookupNotFound(b *testing.B) {
	db := open(b, mmdbtest.Country(b, benchNets()), nil)
	ip := netip.MustParseAddr("203.0.113.9")
	var r geodb.Result
	b.ReportAllocs()
	for b.Loop() {
		r = geodb.Result{}
		if err := db.Lookup(ip, &r); err != nil || r.Found {
			b.Fatal(err, r)
		}
	}
}
