package geodb_test

import (
	"math/rand/v2"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/caddy-edge/edge/geofilter/geodb"
)

// Hostile files: MaxMind's broken test databases, every truncation and
// random byte corruptions of a real test database. Open must refuse or
// accept without panicking, and whatever it accepts must answer lookups
// without panicking, quickly.
func TestHostileDatabases(t *testing.T) {
	dir := officialTestData(t) + "/"
	good, err := os.ReadFile(dir + "GeoIP2-Country-Test.mmdb")
	if err != nil {
		t.Fatal(err)
	}
	addrs := []netip.Addr{
		netip.MustParseAddr("81.2.69.160"), netip.MustParseAddr("2a02:d6c0::1"),
		netip.MustParseAddr("1.2.3.4"), netip.MustParseAddr("::ffff:81.2.69.160"),
	}
	try := func(name string, data []byte) {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("%s: panic: %v", name, p)
			}
		}()
		start := time.Now()
		db, err := geodb.OpenBytes(data, nil)
		if err == nil {
			for _, a := range addrs {
				var r geodb.Result
				_ = db.Lookup(a, &r)
			}
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s: %s", name, d)
		}
	}
	for _, f := range []string{"MaxMind-DB-test-broken-pointers-24.mmdb", "MaxMind-DB-test-broken-search-tree-24.mmdb", "GeoIP2-City-Test-Broken-Double-Format.mmdb"} {
		b, err := os.ReadFile(dir + f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := geodb.OpenBytes(b, nil); err == nil && f != "GeoIP2-City-Test-Broken-Double-Format.mmdb" {
			t.Errorf("%s accepted", f)
		}
		try(f, b)
	}
	for n := 0; n < len(good); n += 7 {
		if _, err := geodb.OpenBytes(append([]byte(nil), good[:n]...), nil); err == nil {
			t.Errorf("truncated at %d of %d accepted", n, len(good))
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		b := append([]byte(nil), good...)
		for range 1 + rng.IntN(4) {
			b[rng.IntN(len(b))] = byte(rng.Uint32())
		}
		try("mutation "+string(rune('0'+i%10)), b)
	}
}
