package geofilter_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/caddy-edge/edge/internal/caddytest"
	"github.com/caddy-edge/edge/internal/mmdbtest"
)

// No header other than Caddy's client_ip_headers (X-Forwarded-For by
// default, and only from trusted_proxies) changes the address looked up.
func TestClientAddressHeadersIgnored(t *testing.T) {
	country := mmdbtest.Country(t, map[string]string{"198.51.100.0/24": "CN", "127.0.0.0/8": "DE"})
	site := `
http://localhost:{HTTP_PORT} {
	geofilter {
		db ` + country + `
		deny country DE
	}
	respond "{geo.ip} {geo.country_code}"
}
`
	for name, global := range map[string]string{
		"untrusted": "",
		"trusted other": `{
	admin {ADMIN_ADDR}
	http_port {HTTP_PORT}
	auto_https off
	skip_install_trust
	persist_config off
	servers {
		trusted_proxies static 10.0.0.0/8
	}
}
`,
	} {
		t.Run(name, func(t *testing.T) {
			s := caddytest.Start(t, global+site)
			for _, h := range []string{"X-Forwarded-For", "X-Real-IP", "True-Client-IP", "CF-Connecting-IP", "Forwarded", "X-Client-IP"} {
				for _, v := range []string{ipCN, "for=" + ipCN, "::ffff:" + ipCN, ipCN + ":1234"} {
					req, _ := http.NewRequest("GET", s.URL("/"), nil)
					req.Header.Set(h, v)
					resp, err := s.Client.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 403 {
						t.Errorf("%s: %s: %d %q, want 403 (the peer, 127.0.0.1, is DE)", h, v, resp.StatusCode, b)
					}
				}
			}
		})
	}
}

// A geo matcher without a db of its own reads the lookup of the site's
// geofilter. When those databases cannot know the matcher's condition (a
// country condition, an ASN database only), the matcher never matches:
// `respond @cn 403` lets China through. README: "At load, each rule's (and
// each geo matcher's own) conditions are checked against what the databases
// provide"; the geo matcher section: a matcher that cannot work "fails the
// request with an error that says so (rather than silently not matching)".
func TestGeoMatcherNeedsUncheckedAgainstSiteDatabases(t *testing.T) {
	asn := mmdbtest.ASN(t, map[string]mmdbtest.ASNRecord{"198.51.100.0/24": {Number: 4837, Org: "China Unicom"}})
	cfg := globalTrusted + `
http://localhost:{HTTP_PORT} {
	geofilter {
		db ` + asn + `
		deny asn 64498
	}
	@cn geo country CN
	respond @cn "blocked" 403
	respond "through"
}
`
	s := caddytest.Start(t, cfg)
	code, body, _ := get(t, s, "GET", "/", ipCN)
	if code == 200 {
		t.Errorf("geo country CN with an ASN database only: %d %q: the matcher silently never matches", code, body)
	}
}
