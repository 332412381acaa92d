package geofilter_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-edge/edge/internal/caddytest"
	"github.com/caddy-edge/edge/internal/mmdbtest"
)

// TestExampleWalkthrough runs the edge site of example/Caddyfile (on free
// ports, with databases of the same content as the demo ones) and checks the
// README's walk-through: an address allowed with its country echoed, a CN
// address denied with 451.
func TestExampleWalkthrough(t *testing.T) {
	raw, err := os.ReadFile("../example/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	cf := string(raw)
	// Keep the sites, replace the global options with the test's own (and
	// the same trusted proxies), and point at fixture databases.
	i := strings.Index(cf, "\nhttp://localhost:8080 {")
	if i < 0 {
		t.Fatal("no edge site in example/Caddyfile")
	}
	dir := t.TempDir()
	country, asn := filepath.Join(dir, "demo.mmdb"), filepath.Join(dir, "demo-asn.mmdb")
	mmdbtest.WriteFile(t, country, mmdbtest.BuildCountry(map[string]string{
		"81.2.69.0/24": "GB", "175.16.199.0/24": "CN", "203.0.113.0/24": "RU",
	}))
	mmdbtest.WriteFile(t, asn, mmdbtest.BuildASN(map[string]mmdbtest.ASNRecord{
		"81.2.69.0/24":   {Number: 20712, Org: "Andrews & Arnold Ltd"},
		"203.0.113.0/24": {Number: 64498, Org: "Documentation AS 64498"},
	}))
	origin := caddytest.FreePort(t)
	sites := strings.NewReplacer(
		"http://localhost:8080", "http://localhost:{HTTP_PORT}",
		"localhost:9000", fmt.Sprintf("localhost:%d", origin),
		"db demo.mmdb", "db "+country,
		"db demo-asn.mmdb", "db "+asn,
	).Replace(cf[i:])
	s := caddytest.Start(t, globalTrusted+sites)

	get := func(path, client string) (int, string, string) {
		req, _ := http.NewRequest("GET", s.URL(path), nil)
		req.Header.Set("X-Forwarded-For", client)
		resp, err := s.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header.Get("X-Country")
	}
	if code, body, hdr := get("/whereami", "81.2.69.142"); code != 200 || hdr != "GB" ||
		body != "81.2.69.142: country GB, continent EU, AS20712 Andrews & Arnold Ltd, decision allow\n" {
		t.Errorf("allowed: %d %q X-Country=%q", code, body, hdr)
	}
	if code, _, _ := get("/hello", "81.2.69.142"); code != 200 {
		t.Errorf("/hello from GB: %d", code)
	}
	if code, body, _ := get("/whereami", "175.16.199.10"); code != 451 || body != "Not available in your country (CN)\n" {
		t.Errorf("denied: %d %q", code, body)
	}
	if code, _, _ := get("/whereami", "203.0.113.5"); code != 403 {
		t.Errorf("AS64498: %d, want 403", code)
	}
}
