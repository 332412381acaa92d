package geofilter_test

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-edge/edge/internal/caddytest"
	"github.com/caddy-edge/edge/internal/mmdbtest"
)

// warnings returns the messages of the warn lines of the JSON log at path.
func warnings(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["level"] == "warn" {
			msg, _ := m["msg"].(string)
			out = append(out, msg)
		}
	}
	return out
}

// caddy-maxmind-geolocation's allow_countries, and nginx's "map ... {
// default no; DE yes; }" then "if ($allowed = no) { return 403; }", let
// only the listed countries in. Written as "allow country DE AT" here,
// with the default action allow and no deny rule, it lets every request
// through, the listed ones and all others: nothing says so. Such a filter
// is warned about at load, with the fix (default deny). A filter with a
// deny rule, a default deny, or no allow rule at all (a database for the
// placeholders and the geo matcher) is not.
func TestAllowRulesWithoutDenyWarned(t *testing.T) {
	country := mmdbtest.Country(t, map[string]string{"198.51.100.0/24": "CN", "192.0.2.0/24": "DE"})
	const want = "no rule denies"
	for _, tt := range []struct {
		name, rules string
		warned      bool
	}{
		{"allow only", "allow country DE AT", true},
		{"allow and log", "allow country DE AT\n\t\tlog country CN", true},
		{"allow and default deny", "allow country DE AT\n\t\tdefault deny", false},
		{"allow and a deny rule", "allow ip 192.0.2.1\n\t\tdeny country CN", false},
		{"no rule", "", false},
		{"log only", "log country CN", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			logFile := filepath.Join(t.TempDir(), "caddy.log")
			caddytest.Start(t, caddytest.LoggedGlobal(logFile)+`
http://localhost:{HTTP_PORT} {
	geofilter {
		db `+country+`
		`+tt.rules+`
	}
	respond "through"
}
`)
			warned := false
			for _, msg := range warnings(t, logFile) {
				warned = warned || strings.Contains(msg, want)
			}
			if warned != tt.warned {
				t.Errorf("warned %v, want %v; warnings: %q", warned, tt.warned, warnings(t, logFile))
			}
		})
	}
}

// Caddy runs map, vars, root and the log_* directives before geofilter
// (which runs just before header): a geo matcher without a db of its own
// on one of them ("log_skip @monitoring", "vars @eu ...") has no lookup to
// read, and fails every request. The error said to add a geofilter to a
// site that has one; it now names the order, and the way out (a db on the
// matcher).
func TestGeoMatcherBeforeGeofilterSaysWhy(t *testing.T) {
	country := mmdbtest.Country(t, map[string]string{"127.0.0.0/8": "DE"})
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	s := caddytest.Start(t, caddytest.LoggedGlobal(logFile)+`
http://localhost:{HTTP_PORT} {
	geofilter {
		db `+country+`
		deny country CN
	}
	@de geo country DE
	vars @de region de
	respond "through"
}
`)
	resp, err := s.Client.Get(s.URL("/"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 500 {
		t.Fatalf("status %d, want the matcher's error", resp.StatusCode)
	}
	f, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(f), "log_name and log_level run before geofilter") {
		t.Errorf("the error does not say that the directive runs before geofilter:\n%s", f)
	}
}
