// Package example_test runs example/Caddyfile as `make run` does and checks
// that the README's walk-throughs print what the README says. It is a
// package of its own so that it runs in a fresh process, as `make run`
// does: the counts in the README's metrics and stats are those since Caddy
// started.
package example_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	_ "github.com/caddy-edge/edge"
	"github.com/caddy-edge/edge/internal/caddytest"
	"github.com/caddy-edge/edge/internal/mmdbtest"
)

// volatile are the parts of an output that change from run to run: the
// origin's clock, and the age and remaining lifetime of a hit (0 or 1 s,
// depending on whether the second request falls in the next second).
var volatile = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`origin time \d+`), "origin time <unix time>"},
	{regexp.MustCompile(`(?m)^Age: \d+$`), "Age: <age>"},
	{regexp.MustCompile(`hit; ttl=\d+`), "hit; ttl=<ttl>"},
}

// normalise replaces the volatile parts of s, and the repository's
// directory (the test's stand-in for it), which the lookup API shows in
// the absolute path of each database, by <repository>.
func normalise(s, root string) string {
	if root != "" {
		s = strings.ReplaceAll(s, root+"/", "<repository>/")
	}
	for _, v := range volatile {
		s = v.re.ReplaceAllString(s, v.with)
	}
	return s
}

// TestExampleWalkthrough starts example/Caddyfile unchanged but for its
// ports, from a directory laid out as the repository (example/demo.mmdb
// and example/demo-asn.mmdb, written with the content of example/gendb),
// runs the curl commands of the README's walk-throughs as Go requests,
// and checks that the README shows each command with the output it gives.
func TestExampleWalkthrough(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	// The example resolves its relative paths against Caddy's working
	// directory, the repository root: run from a copy of that layout.
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "example"), 0o755); err != nil {
		t.Fatal(err)
	}
	mmdbtest.WriteFile(t, filepath.Join(root, "example", "demo.mmdb"), mmdbtest.BuildCountry(mmdbtest.DemoCountries()))
	mmdbtest.WriteFile(t, filepath.Join(root, "example", "demo-asn.mmdb"), mmdbtest.BuildASN(mmdbtest.DemoASNs()))
	t.Chdir(root)

	// Ports: the test's own, given as make gives them (the environment)
	// where caddytest does not need to know them.
	t.Setenv("ORIGIN_PORT", fmt.Sprint(caddytest.FreePort(t)))
	cf := string(raw)
	for _, token := range []string{"127.0.0.1:{$ADMIN_PORT:2019}", "{$EDGE_PORT:8080}", "{$ORIGIN_PORT:9000}"} {
		if !strings.Contains(cf, token) {
			t.Fatalf("example/Caddyfile has no %s", token)
		}
	}
	cf = strings.NewReplacer(
		"127.0.0.1:{$ADMIN_PORT:2019}", "{ADMIN_ADDR}",
		"{$EDGE_PORT:8080}", "{HTTP_PORT}",
	).Replace(cf)
	cf = cf[strings.Index(cf, "\n{")+1:] // the global options first, as caddytest wants
	s := caddytest.Start(t, cf)

	// Each command as the README shows it, and what it prints.
	type command struct {
		cmd string
		run func() string
	}
	edge := func(method, path, client, body string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, s.URL(path), strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if client != "" {
			req.Header.Set("X-Forwarded-For", client)
		}
		resp, err := s.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	admin := func(method, path, body string) string {
		t.Helper()
		req, err := http.NewRequest(method, s.AdminURL(path), strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := s.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		return string(b)
	}
	// curl -s: the body.
	body := func(resp *http.Response) string {
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	// curl -si ... | grep -iE pattern: status line, header lines (Go's
	// server writes them sorted) and body lines that match.
	grep := func(resp *http.Response, pattern string) string {
		lines := []string{resp.Proto + " " + resp.Status}
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range resp.Header {
				if !yield(k) {
					return
				}
			}
		}) {
			for _, v := range resp.Header[k] {
				lines = append(lines, k+": "+v)
			}
		}
		lines = append(lines, "")
		lines = append(lines, strings.Split(strings.TrimSuffix(body(resp), "\n"), "\n")...)
		re := regexp.MustCompile("(?i)" + pattern)
		var out []string
		for _, l := range lines {
			if re.MatchString(l) {
				out = append(out, l)
			}
		}
		return strings.Join(out, "\n") + "\n"
	}
	metrics := func(prefix string) string {
		var out []string
		for l := range strings.SplitSeq(admin("GET", "/metrics", ""), "\n") {
			if strings.HasPrefix(l, prefix) {
				out = append(out, l)
			}
		}
		return strings.Join(out, "\n") + "\n"
	}
	purge := fmt.Sprintf(`{"url": "http://localhost:%d/time"}`, s.HTTPPort)

	blocks := [][]command{
		// Try it
		{
			{`curl -si localhost:8080/time | grep -iE '^(cache-status|age)|origin'`,
				func() string { return grep(edge("GET", "/time", "", ""), `^(cache-status|age)|origin`) }},
			{`curl -si localhost:8080/time | grep -iE '^(cache-status|age)|origin'`,
				func() string { return grep(edge("GET", "/time", "", ""), `^(cache-status|age)|origin`) }},
			{`curl -s -X POST localhost:2019/http_cache/purge -d '{"url": "http://localhost:8080/time"}'`,
				func() string { return admin("POST", "/http_cache/purge", purge) }},
			{`curl -s -H 'X-Forwarded-For: 81.2.69.142' localhost:8080/whereami`,
				func() string { return body(edge("GET", "/whereami", "81.2.69.142", "")) }},
			{`curl -s -H 'X-Forwarded-For: 175.16.199.10' localhost:8080/whereami`,
				func() string { return body(edge("GET", "/whereami", "175.16.199.10", "")) }},
		},
		// geofilter: Try it
		{
			{`curl -s -H 'X-Forwarded-For: 81.2.69.142' localhost:8080/whereami`,
				func() string { return body(edge("GET", "/whereami", "81.2.69.142", "")) }},
			{`curl -si -H 'X-Forwarded-For: 81.2.69.142' localhost:8080/hello | grep -i x-country`,
				func() string { return grep(edge("GET", "/hello", "81.2.69.142", ""), `x-country`) }},
			{`curl -si -H 'X-Forwarded-For: 175.16.199.10' localhost:8080/whereami`,
				func() string {
					resp := edge("GET", "/whereami", "175.16.199.10", "")
					return resp.Proto + " " + resp.Status + "\n...\n" + body(resp)
				}},
			{`curl -s -o /dev/null -w '%{http_code}\n' -H 'X-Forwarded-For: 203.0.113.5' localhost:8080/`,
				func() string {
					resp := edge("GET", "/", "203.0.113.5", "")
					body(resp)
					return fmt.Sprintln(resp.StatusCode)
				}},
			{`curl -s 'localhost:2019/geofilter/lookup?ip=175.16.199.10'`,
				func() string { return admin("GET", "/geofilter/lookup?ip=175.16.199.10", "") }},
			{`curl -s localhost:2019/metrics | grep '^caddy_geofilter_decisions'`,
				func() string { return metrics("caddy_geofilter_decisions") }},
		},
		// Operations: hit ratio
		{
			{`curl -s localhost:2019/http_cache/stats`,
				func() string { return admin("GET", "/http_cache/stats", "") }},
		},
	}
	consoles := consoleBlocks(string(readme))
	for _, block := range blocks {
		var transcript strings.Builder
		for _, c := range block {
			out := c.run()
			if !strings.HasSuffix(out, "\n") {
				out += "\n" // curl prints no newline, the shell prompt starts a line
			}
			fmt.Fprintf(&transcript, "$ %s\n%s", c.cmd, out)
		}
		got := normalise(transcript.String(), root)
		found := false
		for _, c := range consoles {
			if normalise(c, "") == got {
				found = true
			}
		}
		if !found {
			t.Errorf("README.md has no console block that reads (parts that change between runs in <>):\n%s", got)
		}
	}
}

// consoleBlocks returns the contents of the README's ```console blocks.
func consoleBlocks(readme string) []string {
	var blocks []string
	var cur *strings.Builder
	for l := range strings.SplitSeq(readme, "\n") {
		switch {
		case cur == nil && strings.TrimSpace(l) == "```console":
			cur = new(strings.Builder)
		case cur != nil && strings.TrimSpace(l) == "```":
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(l + "\n")
		}
	}
	return blocks
}
