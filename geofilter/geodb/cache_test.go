package geodb

import (
	"net/netip"
	"sync"
	"testing"

	"github.com/caddy-edge/edge/internal/mmdbtest"
)

// uncached returns a copy of db that decodes every lookup.
func uncached(db *DB) *DB {
	u := *db
	u.cache = nil
	return &u
}

// TestRecordCache looks every network of each database up through the
// cache (twice, and merged over a result already holding other fields) and
// without it: the answers must be the same.
func TestRecordCache(t *testing.T) {
	for name, db := range testDBs(t) {
		plain := uncached(db)
		var addrs []netip.Addr
		for res := range db.reader.Networks() {
			addrs = append(addrs, res.Prefix().Addr())
		}
		for pass := range 2 {
			for _, ip := range addrs {
				start := Result{CountryCode: "ZZ", ASN: 1, IsTorExitNode: true}
				got, want := start, start
				errC := db.Lookup(ip, &got)
				errP := plain.Lookup(ip, &want)
				if got != want || (errC == nil) != (errP == nil) {
					t.Fatalf("%s pass %d %s: cached %+v (%v), uncached %+v (%v)", name, pass, ip, got, errC, want, errP)
				}
			}
		}
	}
}

// TestRecordCacheConcurrent hammers one database's cache from several
// goroutines with addresses whose records collide in the cache; run with
// -race.
func TestRecordCacheConcurrent(t *testing.T) {
	nets := map[string]mmdbtest.CityRecord{}
	want := map[netip.Addr]string{}
	for i := range 3000 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)
		city := "City " + p.Addr().String()
		nets[p.String()] = mmdbtest.CityRecord{Country: "GB", City: city}
		want[p.Addr().Next()] = city
	}
	db, err := Open(mmdbtest.City(t, nets), nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			n := 0
			for ip, city := range want {
				if n++; n%4 != g && n%3 != 0 {
					continue
				}
				var r Result
				if err := db.Lookup(ip, &r); err != nil || r.City != city || r.CountryCode != "GB" {
					t.Errorf("Lookup(%s) = %+v, %v; want %s", ip, r, err, city)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkLookupCityUncached is BenchmarkLookupCity without the record
// cache: the cost of a lookup whose record was not seen lately.
func BenchmarkLookupCityUncached(b *testing.B) {
	db, err := Open(mmdbtest.City(b, map[string]mmdbtest.CityRecord{
		"81.2.69.0/24":   {Country: "GB", Subdivision: "ENG", City: "London"},
		"89.160.20.0/24": {Country: "SE", City: "Linköping"},
	}), nil)
	if err != nil {
		b.Fatal(err)
	}
	db = uncached(db)
	ip := netip.MustParseAddr("81.2.69.142")
	b.ReportAllocs()
	var r Result
	for b.Loop() {
		r = Result{}
		_ = db.Lookup(ip, &r)
	}
	if r.City != "London" {
		b.Fatal(r)
	}
}
