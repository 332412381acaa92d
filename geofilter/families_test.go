package geofilter_test

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-edge/edge/internal/caddytest"
	"github.com/caddy-edge/edge/internal/mmdbtest"
)

// ip-location-db publishes its country databases as "-ipv4", "-ipv6" and
// both builds (the README lists them). With the IPv4 build alone, every
// IPv6 client is unknown: "deny country CN" lets CN through over IPv6,
// which most of its mobile clients use, and nothing said so. A filter (or
// a geo matcher with its own db) whose databases hold no IPv6 network, or
// no IPv4 one, for a field is warned about at load (an ASN database that
// knows IPv6 does not place IPv6 clients in a country); the two builds
// together are fine.
func TestDatabasesWithoutAnAddressFamilyWarned(t *testing.T) {
	dir := t.TempDir()
	v4 := filepath.Join(dir, "country-ipv4.mmdb")
	mmdbtest.WriteFile(t, v4, mmdbtest.IPLocationDBCountry(map[string]string{"198.51.100.0/24": "CN"}, 4))
	v6 := filepath.Join(dir, "country-ipv6.mmdb")
	mmdbtest.WriteFile(t, v6, mmdbtest.IPLocationDBCountry(map[string]string{"2001:db8::/32": "CN"}, 6))
	asn := filepath.Join(dir, "asn.mmdb")
	mmdbtest.WriteFile(t, asn, mmdbtest.IPLocationDBASN(map[string]mmdbtest.ASNRecord{"198.51.100.0/24": {Number: 4837, Org: "x"}, "2001:db8::/32": {Number: 4837, Org: "x"}}, 6))
	all := filepath.Join(dir, "country.mmdb")
	mmdbtest.WriteFile(t, all, mmdbtest.IPLocationDBCountry(map[string]string{"198.51.100.0/24": "CN", "2001:db8::/32": "CN"}, 6))
	for _, tt := range []struct {
		name string
		dbs  []string
		want string // in a warning; "" for none
	}{
		{"ipv4 build", []string{v4}, "no database holds an IPv6 network for country_code"},
		{"ipv6 build", []string{v6}, "no database holds an IPv4 network for country_code"},
		{"both builds", []string{v4, v6}, ""},
		{"ipv4 build beside an ASN database with both", []string{v4, asn}, "no database holds an IPv6 network for country_code"},
		{"ipvAll build", []string{all}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			logFile := filepath.Join(t.TempDir(), "caddy.log")
			dbs := ""
			for _, p := range tt.dbs {
				dbs += "\t\tdb " + p + "\n"
			}
			caddytest.Start(t, caddytest.LoggedGlobal(logFile)+`
http://localhost:{HTTP_PORT} {
	geofilter {
`+dbs+`		deny country CN
	}
	respond "through"
}
`)
			var got []string
			for _, msg := range warnings(t, logFile) {
				if strings.Contains(msg, "IPv4 network") || strings.Contains(msg, "IPv6 network") {
					got = append(got, msg)
				}
			}
			switch {
			case tt.want == "" && len(got) > 0:
				t.Errorf("warned: %q", got)
			case tt.want != "" && (len(got) != 1 || !strings.Contains(got[0], tt.want)):
				t.Errorf("warnings %q, want one with %q", got, tt.want)
			}
		})
	}
}

// A replacement that holds no network of a family the current file holds
// (the "-ipv4" build written over the one with both) is rejected as one
// that lacks a field is: swapped in, it would let every client of that
// family through a rule the current file enforces.
func TestReloadRejectsLostAddressFamily(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "country.mmdb")
	mmdbtest.WriteFile(t, path, mmdbtest.IPLocationDBCountry(map[string]string{"198.51.100.0/24": "CN", "2001:db8::/32": "CN"}, 6))
	s := caddytest.Start(t, globalTrusted+`
http://localhost:{HTTP_PORT} {
	geofilter {
		db `+path+`
		reload_interval off
		deny country CN
	}
	respond "through"
}
`)
	tmp := filepath.Join(dir, "new.mmdb")
	mmdbtest.WriteFile(t, tmp, mmdbtest.IPLocationDBCountry(map[string]string{"198.51.100.0/24": "CN"}, 4))
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	resp, err := s.Client.Post(s.AdminURL("/geofilter/reload?path="+url.QueryEscape(path)), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if info := adminInfo(t, s, path); !strings.Contains(info.LastResult, "IPv6") {
		t.Errorf("last_result %q, want the replacement rejected for its missing IPv6 networks", info.LastResult)
	}
	if code, body, _ := get(t, s, "GET", "/", "2001:db8::7"); code != http.StatusForbidden {
		t.Errorf("CN over IPv6 after the replacement: %d %q, want 403 from the last good file", code, body)
	}
}
