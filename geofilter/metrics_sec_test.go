package geofilter_test

import (
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-edge/edge/internal/caddytest"
	"github.com/caddy-edge/edge/internal/mmdbtest"
)

// A site may use the geo matcher alone, with a db of its own (README, the
// geo matcher). Its database reloads are counted like a geofilter's, so
// caddy_geofilter_database_reloads_total must be on that config's /metrics,
// though no geofilter handler registered it.
func TestMatcherOnlyConfigExposesReloadMetrics(t *testing.T) {
	dir := t.TempDir()
	country := filepath.Join(dir, "country.mmdb")
	mmdbtest.WriteFile(t, country, mmdbtest.BuildCountry(map[string]string{"192.0.2.0/24": "DE"}))
	s := caddytest.Start(t, `
http://localhost:{HTTP_PORT} {
	@de geo {
		db `+country+`
		reload_interval 1h
		country DE
	}
	respond @de "de"
	respond "other"
}
`)
	mmdbtest.WriteFile(t, country, mmdbtest.BuildCountry(map[string]string{"192.0.2.0/24": "CN"}))
	resp, err := s.Client.Post(s.AdminURL("/geofilter/reload?path="+country), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"ok`) {
		t.Fatalf("reload: %d %s", resp.StatusCode, b)
	}
	resp, err = s.Client.Get(s.AdminURL("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `caddy_geofilter_database_reloads_total{result="ok"}`; !strings.Contains(string(metrics), want) {
		t.Errorf("/metrics of a config with a geo matcher and no geofilter lacks %s", want)
	}
}
