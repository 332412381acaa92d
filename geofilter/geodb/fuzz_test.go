package geodb_test

import (
	"net/netip"
	"testing"

	"github.com/caddy-edge/edge/geofilter/geodb"
	"github.com/caddy-edge/edge/internal/mmdbtest"
)

// FuzzOpenBytes feeds damaged databases to OpenBytes: it must return an
// error or a DB whose lookups return errors or results, never panic.
func FuzzOpenBytes(f *testing.F) {
	f.Add(mmdbtest.BuildCountry(map[string]string{"81.2.69.0/24": "GB", "2001:db8::/32": "SE"}), uint16(0), byte(0))
	f.Add(mmdbtest.BuildCity(map[string]mmdbtest.CityRecord{"81.2.69.0/24": {Country: "GB", Subdivision: "ENG", City: "London"}}), uint16(100), byte(0xff))
	f.Add(mmdbtest.BuildASN(map[string]mmdbtest.ASNRecord{"81.2.0.0/16": {Number: 20712, Org: "A&A"}}), uint16(700), byte(0x20))
	f.Add(mmdbtest.BuildAnonymous(map[string]mmdbtest.AnonymousRecord{"1.2.0.0/16": {IsAnonymous: true}}), uint16(50), byte(1))
	f.Add(mmdbtest.IPLocationDBCountry(map[string]string{"81.2.69.0/24": "GB", "89.160.20.0/24": "SE"}, 4), uint16(30), byte(0x40))
	f.Add(mmdbtest.IPinfoLite(map[string]mmdbtest.IPinfoRecord{"81.2.69.0/24": {Country: "GB", ASN: 20712, ASName: "A&A"}}), uint16(200), byte(0x08))
	f.Fuzz(func(t *testing.T, data []byte, at uint16, b byte) {
		if len(data) > 0 {
			data[int(at)%len(data)] ^= b // damage one byte
		}
		db, err := geodb.OpenBytes(data, nil)
		if err != nil {
			return
		}
		for _, a := range []string{"81.2.69.1", "1.2.3.4", "2001:db8::1", "::ffff:81.2.1.1", "0.0.0.0"} {
			var r geodb.Result
			_ = db.Lookup(netip.MustParseAddr(a), &r)
		}
	})
}
