package geodb

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/caddy-edge/edge/internal/mmdbtest"
)

// decodeByPath is the reference decoder: one DecodePath per field, as the
// maxminddb documentation shows it. The one-pass walk must agree with it.
func (d *DB) decodeByPath(res maxminddb.Result, r *Result) error {
	for _, p := range d.paths {
		var err error
		switch p.field {
		case fCountryCode:
			err = res.DecodePath(&r.CountryCode, p.path...)
		case fContinentCode:
			err = res.DecodePath(&r.ContinentCode, p.path...)
		case fInEU:
			err = res.DecodePath(&r.InEU, p.path...)
		case fSubdivisionCode:
			err = res.DecodePath(&r.SubdivisionCode, p.path...)
		case fCity:
			err = res.DecodePath(&r.City, p.path...)
		case fASN:
			err = res.DecodePath((*asnValue)(&r.ASN), p.path...)
		case fASNOrg:
			err = res.DecodePath(&r.ASNOrg, p.path...)
		case fIsAnonymous:
			err = res.DecodePath(&r.IsAnonymous, p.path...)
		case fIsAnonymousVPN:
			err = res.DecodePath(&r.IsAnonymousVPN, p.path...)
		case fIsHostingProvider:
			err = res.DecodePath(&r.IsHostingProvider, p.path...)
		case fIsPublicProxy:
			err = res.DecodePath(&r.IsPublicProxy, p.path...)
		case fIsTorExitNode:
			err = res.DecodePath(&r.IsTorExitNode, p.path...)
		case fIsResidentialProxy:
			err = res.DecodePath(&r.IsResidentialProxy, p.path...)
		}
		if err != nil {
			return err
		}
	}
	if d.deriveEU && r.CountryCode != "" {
		r.InEU = IsEU(r.CountryCode)
	}
	return nil
}

// testDBs returns fixture databases and, when present, MaxMind's official
// test databases.
func testDBs(t testing.TB) map[string]*DB {
	t.Helper()
	paths := map[string]string{
		"country": mmdbtest.Country(t, map[string]string{"81.2.69.0/24": "GB", "89.160.20.0/24": "SE"}),
		"city": mmdbtest.City(t, map[string]mmdbtest.CityRecord{
			"81.2.69.0/24": {Country: "GB", Subdivision: "ENG", City: "London"}, "89.160.20.0/24": {Country: "SE"},
		}),
	}
	for dir := "."; ; dir = filepath.Join(dir, "..") {
		abs, _ := filepath.Abs(dir)
		if _, err := os.Stat(filepath.Join(abs, "shared", "testdata", "mmdb")); err == nil {
			for _, n := range []string{"GeoIP2-Country-Test", "GeoIP2-City-Test", "GeoLite2-ASN-Test", "GeoIP2-Anonymous-IP-Test"} {
				paths[n] = filepath.Join(abs, "shared", "testdata", "mmdb", n+".mmdb")
			}
			break
		}
		if abs == "/" || filepath.Dir(abs) == abs {
			break
		}
	}
	dbs := map[string]*DB{}
	for name, p := range paths {
		db, err := Open(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		dbs[name] = db
	}
	return dbs
}

// TestWalkAgreesWithDecodePath decodes every network of each database both
// ways.
func TestWalkAgreesWithDecodePath(t *testing.T) {
	for name, db := range testDBs(t) {
		n := 0
		for res := range db.reader.Networks() {
			var walked, byPath Result
			_, errW := db.decode(res, &walked)
			errP := db.decodeByPath(res, &byPath)
			if (errW == nil) != (errP == nil) || walked != byPath {
				t.Errorf("%s %s: walk %+v (%v), DecodePath %+v (%v)", name, res.Prefix(), walked, errW, byPath, errP)
			}
			n++
		}
		if n == 0 {
			t.Errorf("%s: no networks", name)
		}
	}
}

func benchmarkDecode(b *testing.B, byPath bool) {
	for _, name := range []string{"country", "city", "GeoIP2-City-Test"} {
		db, ok := testDBs(b)[name]
		if !ok {
			continue
		}
		b.Run(name, func(b *testing.B) {
			res := db.reader.Lookup(netip.MustParseAddr("81.2.69.160"))
			b.ReportAllocs()
			var r Result
			for b.Loop() {
				r = Result{}
				if byPath {
					_ = db.decodeByPath(res, &r)
				} else {
					_, _ = db.decode(res, &r)
				}
			}
			if r.CountryCode != "GB" {
				b.Fatal(r)
			}
		})
	}
}

func BenchmarkDecodeWalk(b *testing.B)       { benchmarkDecode(b, false) }
func BenchmarkDecodeDecodePath(b *testing.B) { benchmarkDecode(b, true) }
