package geofilter

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-edge/edge/geofilter/rules"
	"github.com/caddy-edge/edge/internal/mmdbtest"
)

// wrongTypeBeyondProbe builds a well-formed GeoLite2-Country database whose
// first 600 networks have distinct, good records (more than the probe at
// Open decodes), and whose 175.16.199.0/24 has its country.iso_code stored
// as an integer: the format is valid (Verify passes), the field's type is
// not.
func wrongTypeBeyondProbe(t *testing.T) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            "GeoLite2-Country",
		Description:             map[string]string{"en": "review fixture"},
		IncludeReservedNetworks: true,
		DisableIPv4Aliasing:     true,
		RecordSize:              24,
	})
	if err != nil {
		t.Fatal(err)
	}
	insert := func(cidr string, rec mmdbtype.Map) {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := tree.Insert(n, rec); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 600 {
		insert(fmt.Sprintf("1.%d.%d.0/24", i/256, i%256), mmdbtype.Map{
			"country": mmdbtype.Map{"iso_code": mmdbtype.String("DE"), "geoname_id": mmdbtype.Uint32(i + 1)},
		})
	}
	insert("175.16.199.0/24", mmdbtype.Map{
		"country": mmdbtype.Map{"iso_code": mmdbtype.Uint32(156), "geoname_id": mmdbtype.Uint32(1814991)},
	})
	path := filepath.Join(t.TempDir(), "country.mmdb")
	var buf bytes.Buffer
	if _, err := tree.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	mmdbtest.WriteFile(t, path, buf.Bytes())
	return path
}

// "Nothing fails open in silence": a record whose country field does not
// decode makes `deny country CN` miss the address (it is looked up as
// unknown). Such a database must be refused at load, or the failure must
// at least be logged, not dropped.
func TestUndecodableRecordIsNotSilent(t *testing.T) {
	path := wrongTypeBeyondProbe(t)
	logs, logged := observer.New(zap.WarnLevel)
	d, err := openDatabases([]DatabaseConfig{{Path: path}}, watchOptions{interval: -1, logger: zap.New(logs)})
	if err != nil {
		return // refused at load: fine
	}
	t.Cleanup(func() { d.close() })

	ip := netip.MustParseAddr("175.16.199.10")
	var res Result
	d.Lookup(ip, &res)
	cond := rules.Conditions{Country: []string{"CN"}}
	m, err := cond.Compile(nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Match(&rules.Input{IP: ip, Geo: &res}) {
		return
	}
	if logged.Len() == 0 {
		t.Errorf("deny country CN misses %s (looked up as %+v), and nothing was logged", ip, res)
	}
}
