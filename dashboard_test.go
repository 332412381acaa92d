package edge_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddy-edge/edge/internal/caddytest"
	"github.com/caddy-edge/edge/internal/mmdbtest"
)

// exportedMetrics runs a real Caddy with both handlers and the metrics
// option, makes every counter count once (a miss, a hit, a purge, allow and
// deny decisions, an address no database knows, a database reload), and
// returns the label names of each metric family its /metrics shows.
func exportedMetrics(t *testing.T) map[string]map[string]bool {
	t.Helper()
	db := filepath.Join(t.TempDir(), "country.mmdb")
	mmdbtest.WriteFile(t, db, mmdbtest.BuildCountry(map[string]string{"81.2.69.0/24": "GB", "175.16.199.0/24": "CN"}))
	s := caddytest.Start(t, `{
	admin {ADMIN_ADDR}
	http_port {HTTP_PORT}
	auto_https off
	persist_config off
	servers {
		trusted_proxies static 127.0.0.1/8 ::1
	}
	metrics
}

http://localhost:{HTTP_PORT} {
	geofilter {
		db `+db+`
		deny country CN
	}
	http_cache
	route {
		header Cache-Control max-age=60
		respond "hello"
	}
}
`)
	do := func(method, url, client, body string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		if client != "" {
			req.Header.Set("X-Forwarded-For", client)
		}
		resp, err := s.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	do("GET", s.URL("/a"), "81.2.69.1", "")    // allow GB, miss
	do("GET", s.URL("/a"), "81.2.69.1", "")    // hit
	do("GET", s.URL("/a"), "175.16.199.1", "") // deny CN
	do("GET", s.URL("/b"), "", "")             // 127.0.0.1: not found
	do("POST", s.AdminURL("/http_cache/purge"), "", fmt.Sprintf(`{"url": "%s"}`, s.URL("/a")))
	mmdbtest.WriteFile(t, db, mmdbtest.BuildCountry(map[string]string{"81.2.69.0/24": "GB"}))
	do("POST", s.AdminURL("/geofilter/reload"), "", "")

	resp, err := s.Client.Get(s.AdminURL("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	families := map[string]map[string]bool{}
	sample := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? `)
	label := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
	for l := range strings.SplitSeq(string(text), "\n") {
		m := sample.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		if families[m[1]] == nil {
			families[m[1]] = map[string]bool{}
		}
		for _, lm := range label.FindAllStringSubmatch(m[2], -1) {
			families[m[1]][lm[1]] = true
		}
	}
	return families
}

// scrapeLabels are the labels Prometheus adds when it scrapes a target.
var scrapeLabels = map[string]bool{"instance": true, "job": true}

var (
	metricName  = regexp.MustCompile(`\bcaddy_[a-zA-Z0-9_:]+`)
	selector    = regexp.MustCompile(`\b(caddy_[a-zA-Z0-9_:]+)\{([^}]*)\}`)
	matcherName = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	grouping    = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
)

// checkQuery reports the metrics a PromQL query names that Caddy does not
// export, and the labels it selects or groups by that those metrics lack.
func checkQuery(t *testing.T, where, expr string, exported map[string]map[string]bool) {
	t.Helper()
	names := metricName.FindAllString(expr, -1)
	if len(names) == 0 {
		t.Errorf("%s: query names no caddy_ metric: %s", where, expr)
	}
	labels := map[string]bool{}
	for _, n := range names {
		ls, ok := exported[n]
		if !ok {
			t.Errorf("%s: metric %s is not exported (query %s)", where, n, expr)
			continue
		}
		for l := range ls {
			labels[l] = true
		}
	}
	for _, m := range selector.FindAllStringSubmatch(expr, -1) {
		for _, lm := range matcherName.FindAllStringSubmatch(m[2], -1) {
			if !exported[m[1]][lm[1]] && !scrapeLabels[lm[1]] {
				t.Errorf("%s: %s has no label %s (query %s)", where, m[1], lm[1], expr)
			}
		}
	}
	for _, m := range grouping.FindAllStringSubmatch(expr, -1) {
		for l := range strings.SplitSeq(m[1], ",") {
			if l = strings.TrimSpace(l); l != "" && !labels[l] && !scrapeLabels[l] {
				t.Errorf("%s: grouping by %s, which none of its metrics has (query %s)", where, l, expr)
			}
		}
	}
}

// TestDashboardQueries checks each query of the Grafana dashboard and each
// PromQL block of the README against the metrics a running Caddy with the
// plugin exports: the metric names, and the labels they select and group
// by. It also checks that the dashboard covers what the README promises.
func TestDashboardQueries(t *testing.T) {
	raw, err := os.ReadFile("docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	exported := exportedMetrics(t)
	used := map[string]bool{}
	for _, p := range dash.Panels {
		for _, q := range p.Targets {
			checkQuery(t, "dashboard panel "+p.Title, q.Expr, exported)
			for _, n := range metricName.FindAllString(q.Expr, -1) {
				used[n] = true
			}
		}
	}
	for _, v := range dash.Templating.List {
		if v.Definition != "" {
			checkQuery(t, "dashboard variable "+v.Name, v.Definition, exported)
		}
	}
	// What the README says the dashboard shows.
	for _, want := range []string{
		"caddy_http_cache_requests_total",        // cache results, hit ratio
		"caddy_http_cache_origin_requests_total", // origin requests
		"caddy_http_cache_stored_bytes",          // store bytes
		"caddy_geofilter_decisions_total",        // decisions by action and country
		"caddy_geofilter_database_reloads_total", // database reloads
	} {
		if !used[want] {
			t.Errorf("the dashboard has no panel on %s", want)
		}
	}

	n := 0
	for _, b := range markdownBlocks(t, "README.md") {
		if b.lang == "promql" {
			n++
			checkQuery(t, "README.md:"+itoa(b.line), b.text, exported)
		}
	}
	if n == 0 {
		t.Error("README.md has no promql block (the hit ratio recipe)")
	}
}
