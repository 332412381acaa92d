package geofilter_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/caddy-edge/edge/internal/caddytest"
	"github.com/caddy-edge/edge/internal/mmdbtest"
)

// TestIntegrationFreeDatabases runs a real Caddy on a bare `db <file>` of
// ip-location-db's flat layout (no description, an IPv4-only tree): the
// country rule, the derived continent and EU membership all work. Then
// configs that could never work as written are refused at load, naming
// the line or the rule, and the running config keeps serving.
func TestIntegrationFreeDatabases(t *testing.T) {
	dir := t.TempDir()
	flat := filepath.Join(dir, "geo-whois-asn-country-ipv4.mmdb")
	if err := os.WriteFile(flat, mmdbtest.IPLocationDBCountry(countryNets, 4), 0o644); err != nil {
		t.Fatal(err)
	}
	asn := mmdbtest.ASN(t, map[string]mmdbtest.ASNRecord{"192.0.2.0/24": {Number: 64496, Org: "Example"}})
	s := caddytest.Start(t, globalTrusted+`
http://localhost:{HTTP_PORT} {
	geofilter {
		db `+flat+`
		deny country CN
		deny not eu {
			path /eu-only
		}
	}
	respond "{geo.country_code} {geo.continent_code} {geo.in_eu}"
}
`)
	expect(t, s, "GET", "/", ipDE, 200, "DE EU true")
	expect(t, s, "GET", "/", ipGB, 200, "GB EU false")
	expect(t, s, "GET", "/", ipUS, 200, "US NA false")
	expect(t, s, "GET", "/", ipCN, 403, "")
	expect(t, s, "GET", "/eu-only", ipDE, 200, "DE EU true")
	expect(t, s, "GET", "/eu-only", ipGB, 403, "")

	for _, tt := range []struct {
		name, rules, db, want string
	}{
		{"UK is not a country code", "deny country UK", flat, `bad country code "UK": not an assigned ISO 3166-1 alpha-2 code: the United Kingdom is GB`},
		{"XX", "deny country DE XX", flat, `bad country code "XX"`},
		{"tor without an anonymous-IP database", "deny tor", flat, "rule #1: condition anonymous tor reads is_tor_exit_node, which no database provides: " + flat},
		{"country from an ASN database", "deny country CN", asn, "condition country reads country_code, which no database provides: " + asn + " (GeoLite2-ASN, layout geoip2-asn) provides asn, asn_org"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cf := strings.NewReplacer("{HTTP_PORT}", "0", "{ADMIN_ADDR}", s.AdminAddr).Replace(globalTrusted + `
http://localhost:{HTTP_PORT} {
	geofilter {
		db ` + tt.db + `
		` + tt.rules + `
	}
	respond "x"
}
`)
			cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), nil)
			if err == nil {
				err = caddy.Load(cfg, true)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tt.want)
			}
			t.Logf("refused: %v", err)
			// The running config keeps serving.
			expect(t, s, "GET", "/", ipCN, 403, "")
		})
	}
}
