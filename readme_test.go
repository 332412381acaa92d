package edge_test

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-edge/edge/internal/mmdbtest"
)

// A codeBlock is a fenced code block of a Markdown file.
type codeBlock struct {
	lang string // the first word of the info string: caddyfile, json, sh, ...
	info string // the rest of it: "syntax" marks a grammar, not a config
	line int    // line of the opening fence
	text string
}

func markdownBlocks(t *testing.T, path string) []codeBlock {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var (
		blocks []codeBlock
		cur    *codeBlock
		body   strings.Builder
	)
	for i, l := range strings.Split(string(raw), "\n") {
		fence := strings.HasPrefix(strings.TrimSpace(l), "```")
		switch {
		case fence && cur == nil:
			lang, info, _ := strings.Cut(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "```")), " ")
			cur = &codeBlock{lang: lang, info: info, line: i + 1}
			body.Reset()
		case fence:
			cur.text = body.String()
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			body.WriteString(l + "\n")
		}
	}
	if cur != nil {
		t.Fatalf("%s:%d: code block never closed", path, cur.line)
	}
	return blocks
}

// makeVars returns the variables the Makefile sets with ?=.
func makeVars(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile("Makefile")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for m := range slices.Values(regexp.MustCompile(`(?m)^([A-Z_]+)\s*\?=\s*(\S+)\s*$`).FindAllStringSubmatch(string(raw), -1)) {
		vars[m[1]] = m[2]
	}
	return vars
}

// siteAddress tells a complete Caddyfile (global options or a site block
// first) from a block of directives meant to go inside a site.
var siteAddress = regexp.MustCompile(`^(\{|[a-z]+://|[\w.-]*[.:][\w.:-]*\s*\{|localhost\b)`)

// TestReadmeCaddyfiles checks every Caddyfile in the README as a user who
// pastes it would: `caddy fmt` leaves it unchanged (else Caddy warns
// "Caddyfile input is not formatted"), and `caddy adapt` accepts it, with
// no warning. A block of directives is adapted inside a site block, as it
// is meant to be used; a block marked "caddyfile syntax" is a grammar
// (placeholders like <path>), checked for formatting only.
func TestReadmeCaddyfiles(t *testing.T) {
	n := 0
	for _, b := range markdownBlocks(t, "README.md") {
		if b.lang != "caddyfile" {
			continue
		}
		n++
		if w, diff := caddyfile.FormattingDifference("README.md", []byte(b.text)); diff {
			t.Errorf("README.md:%d: caddy fmt would change the block (line %d of it): %s\n%s", b.line, w.Line, w.Message, b.text)
		}
		if b.info == "syntax" {
			continue
		}
		cf := b.text
		if first := firstToken(cf); !siteAddress.MatchString(first) {
			cf = "http://localhost {\n" + cf + "}\n"
		}
		_, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), nil)
		if err != nil {
			t.Errorf("README.md:%d: caddy adapt: %v\n%s", b.line, err, cf)
			continue
		}
		for _, w := range warnings {
			if !strings.Contains(w.Message, "not formatted") { // wrapped blocks are not; checked above
				t.Errorf("README.md:%d: caddy adapt warns: %s", b.line, w.String())
			}
		}
	}
	if n < 5 {
		t.Errorf("found %d caddyfile blocks in README.md; the parser must have missed some", n)
	}
}

// firstToken returns the first line of a Caddyfile that is not a comment.
func firstToken(cf string) string {
	sc := bufio.NewScanner(strings.NewReader(cf))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			return l
		}
	}
	return ""
}

// TestJSONConfigs runs `caddy validate` (provisioning every module, as
// Caddy does before it serves) on each JSON block of the README and on the
// complete configurations in example/. A handler object is validated inside
// a route of a server; paths to the demo databases resolve, as in the
// example, against the working directory, here a copy of the repository's
// layout with databases of the demo content.
func TestJSONConfigs(t *testing.T) {
	type config struct {
		name string
		raw  []byte
	}
	var configs []config
	for _, b := range markdownBlocks(t, "README.md") {
		if b.lang != "json" {
			continue
		}
		configs = append(configs, config{"README.md:" + itoa(b.line), []byte(b.text)})
	}
	files, _ := filepath.Glob("example/*.json")
	if len(files) < 2 {
		t.Errorf("example/ has %d JSON configs, want one per handler", len(files))
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		configs = append(configs, config{f, raw})
	}

	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "example"), 0o755); err != nil {
		t.Fatal(err)
	}
	mmdbtest.WriteFile(t, filepath.Join(root, "example", "demo.mmdb"), mmdbtest.BuildCountry(mmdbtest.DemoCountries()))
	mmdbtest.WriteFile(t, filepath.Join(root, "example", "demo-asn.mmdb"), mmdbtest.BuildASN(mmdbtest.DemoASNs()))
	t.Chdir(root)

	for _, c := range configs {
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(c.raw, &probe); err != nil {
			t.Errorf("%s: not JSON: %v", c.name, err)
			continue
		}
		raw := c.raw
		switch {
		case probe["apps"] != nil:
		case probe["handler"] != nil:
			raw = []byte(`{"apps": {"http": {"servers": {"s": {"listen": ["127.0.0.1:0"], "routes": [{"handle": [` + string(c.raw) + `]}]}}}}}`)
		default:
			t.Errorf("%s: neither a config (apps) nor a handler", c.name)
			continue
		}
		var cfg caddy.Config
		if err := caddy.StrictUnmarshalJSON(raw, &cfg); err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if err := caddy.Validate(&cfg); err != nil {
			t.Errorf("%s: caddy validate: %v", c.name, err)
		}
	}
}

// TestReadmeCommands checks the shell blocks of the README against what
// they name: the build lines against the Makefile and the Dockerfile, the
// make targets and variables against the Makefile, and the admin routes
// curl asks for against the routes the plugin registers. Every command of
// an sh block must be one of these, so a new one gets a check here.
func TestReadmeCommands(t *testing.T) {
	vars := makeVars(t)
	mk, err := os.ReadFile("Makefile")
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]bool{}
	for m := range slices.Values(regexp.MustCompile(`(?m)^([a-z][\w-]*):`).FindAllStringSubmatch(string(mk), -1)) {
		targets[m[1]] = true
	}
	buildLine := regexp.MustCompile(`\$\(XCADDY\) build (\S+) (--with \S+)`).FindStringSubmatch(string(mk))
	if buildLine == nil {
		t.Fatal("Makefile: no $(XCADDY) build line")
	}
	if buildLine[1] != "$(CADDY_VERSION)" {
		t.Errorf("Makefile builds Caddy %s, not $(CADDY_VERSION)", buildLine[1])
	}

	routes := adminRoutes(t)
	adminCall := regexp.MustCompile(`localhost:2019(/[^\s'?"]*)`)
	for _, b := range markdownBlocks(t, "README.md") {
		switch b.lang {
		case "sh":
			for l := range strings.SplitSeq(b.text, "\n") {
				l = strings.TrimSpace(l)
				if i := strings.Index(l, " #"); i >= 0 {
					l = strings.TrimSpace(l[:i])
				}
				if l == "" || strings.HasPrefix(l, "#") {
					continue
				}
				checkCommand(t, b.line, l, vars, targets, buildLine[2])
			}
		case "console":
			for l := range strings.SplitSeq(b.text, "\n") {
				if !strings.HasPrefix(l, "$ ") {
					continue
				}
				for _, m := range adminCall.FindAllStringSubmatch(l, -1) {
					if !routes[m[1]] {
						t.Errorf("README.md:%d: %q asks the admin API for %s, which no module serves", b.line, l, m[1])
					}
				}
			}
		case "text":
			checkLayout(t, b)
		case "caddyfile", "json", "promql":
			// TestReadmeCaddyfiles, TestJSONConfigs, TestDashboardQueries
		default:
			t.Errorf("README.md:%d: code block of language %q, which no test checks", b.line, b.lang)
		}
	}

	goMod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	caddyReq := regexp.MustCompile(`(?m)^\s+github.com/caddyserver/caddy/v2 (\S+)$`).FindSubmatch(goMod)
	if caddyReq == nil || string(caddyReq[1]) != vars["CADDY_VERSION"] {
		t.Errorf("go.mod requires Caddy %s; the Makefile builds %s", caddyReq, vars["CADDY_VERSION"])
	}
	goLine := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(goMod)
	readme, _ := os.ReadFile("README.md")
	flat := strings.Join(strings.Fields(string(readme)), " ") // sentences across line breaks
	if caddyReq != nil && !strings.Contains(flat, "Caddy "+string(caddyReq[1])+" and newer v2 releases. "+string(caddyReq[1])+" is the version `go.mod` requires") {
		t.Errorf("README.md's supported Caddy versions do not start at go.mod's requirement, %s", caddyReq[1])
	}
	if goLine == nil || !strings.Contains(flat, "`go.mod`'s `go` line: "+string(goLine[1])) {
		t.Errorf("README.md does not give go.mod's go line (%s)", goLine)
	}
}

func checkCommand(t *testing.T, line int, cmd string, vars map[string]string, targets map[string]bool, makeWith string) {
	t.Helper()
	f := strings.Fields(cmd)
	switch {
	case f[0] == "make":
		for _, a := range f[1:] {
			if name, _, ok := strings.Cut(a, "="); ok {
				if _, known := vars[name]; !known {
					t.Errorf("README.md:%d: %q sets %s, which the Makefile does not use", line, cmd, name)
				}
			} else if !targets[a] {
				t.Errorf("README.md:%d: %q: the Makefile has no target %s", line, cmd, a)
			}
		}
	case strings.HasPrefix(cmd, "go install github.com/caddyserver/xcaddy/cmd/xcaddy@"):
		if want := "xcaddy@" + vars["XCADDY_VERSION"]; !strings.HasSuffix(cmd, want) {
			t.Errorf("README.md:%d: %q: the Makefile pins %s", line, cmd, want)
		}
	case f[0] == "xcaddy" && len(f) > 2 && f[1] == "build":
		if f[2] != vars["CADDY_VERSION"] {
			t.Errorf("README.md:%d: %q builds Caddy %s; the Makefile, %s", line, cmd, f[2], vars["CADDY_VERSION"])
		}
		with := strings.Join(f[3:], " ")
		if strings.Contains(with, "=") && with != makeWith {
			t.Errorf("README.md:%d: %q: the checkout form must be the Makefile's (%s)", line, cmd, makeWith)
		}
	case f[0] == "docker":
		if _, err := os.Stat("Dockerfile"); err != nil {
			t.Errorf("README.md:%d: %q: %v", line, cmd, err)
		}
	default:
		t.Errorf("README.md:%d: command %q: no test checks it (add a case in readme_test.go)", line, cmd)
	}
}

// checkLayout checks a layout block: each entry (a word ending in / or .go
// at the start of a line, indented entries under the last unindented
// directory) exists, and every Go package under cache/, geofilter/ and
// internal/ has its entry.
func checkLayout(t *testing.T, b codeBlock) {
	t.Helper()
	named := map[string]bool{}
	defer func() {
		_ = filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return err
			}
			if d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && path != "." {
				return filepath.SkipDir
			}
			top, _, _ := strings.Cut(path, "/")
			if top != "cache" && top != "geofilter" && top != "internal" {
				return nil
			}
			if gos, _ := filepath.Glob(filepath.Join(path, "*.go")); len(gos) > 0 && !named[path] {
				t.Errorf("README.md:%d: the layout does not name the package %s/", b.line, path)
			}
			return nil
		})
	}()
	parent := ""
	for l := range strings.SplitSeq(b.text, "\n") {
		word := strings.Fields(l)
		if len(word) == 0 {
			continue
		}
		name := word[0]
		if !strings.HasSuffix(name, "/") && !strings.HasSuffix(name, ".go") && !strings.Contains(name, "/") {
			continue // the continuation of a description
		}
		path := name
		if strings.HasPrefix(l, " ") {
			path = parent + name
		} else if strings.HasSuffix(name, "/") {
			parent = name
		}
		named[strings.TrimSuffix(path, "/")] = true
		if _, err := os.Stat(strings.TrimSuffix(path, "/")); err != nil {
			t.Errorf("README.md:%d: the layout names %s: %v", b.line, path, err)
		}
	}
}

// adminRoutes returns the paths the plugin's admin modules serve, and the
// ones Caddy serves itself that the README uses.
func adminRoutes(t *testing.T) map[string]bool {
	t.Helper()
	routes := map[string]bool{"/metrics": true, "/config/": true}
	for _, id := range []string{"admin.api.http_cache", "admin.api.geofilter"} {
		info, err := caddy.GetModule(id)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range info.New().(caddy.AdminRouter).Routes() {
			routes[r.Pattern] = true
		}
	}
	return routes
}

// TestDockerfile lints the Dockerfile, as no container engine runs in CI:
// every instruction is one Docker knows, the images are the official
// caddy:<version>-builder and caddy:<version> of the Makefile's
// CADDY_VERSION, the binary is built with the Makefile's xcaddy line (the
// checkout form, on the copied sources) and copied from the build stage.
func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	version := strings.TrimPrefix(makeVars(t)["CADDY_VERSION"], "v")
	// Join continuation lines, drop comments.
	text := regexp.MustCompile(`\\\n\s*`).ReplaceAllString(string(raw), " ")
	known := map[string]bool{"FROM": true, "RUN": true, "CMD": true, "LABEL": true, "EXPOSE": true, "ENV": true,
		"ADD": true, "COPY": true, "ENTRYPOINT": true, "VOLUME": true, "USER": true, "WORKDIR": true, "ARG": true,
		"ONBUILD": true, "STOPSIGNAL": true, "HEALTHCHECK": true, "SHELL": true}
	var froms []string
	stages := map[string]bool{}
	var build string
	for l := range strings.SplitSeq(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Fields(l)
		if !known[f[0]] {
			t.Errorf("Dockerfile: unknown instruction %q", l)
			continue
		}
		switch f[0] {
		case "FROM":
			froms = append(froms, f[1])
			if len(f) == 4 && strings.EqualFold(f[2], "AS") {
				stages[f[3]] = true
			}
		case "COPY":
			if from, ok := strings.CutPrefix(f[1], "--from="); ok && !stages[from] {
				t.Errorf("Dockerfile: %q copies from an unknown stage", l)
			}
		case "RUN":
			if strings.Contains(l, "xcaddy build") {
				build = l
			}
		}
	}
	if want := []string{"caddy:" + version + "-builder", "caddy:" + version}; !slices.Equal(froms, want) {
		t.Errorf("Dockerfile builds FROM %v, want %v (the Makefile's CADDY_VERSION)", froms, want)
	}
	if !strings.Contains(build, "xcaddy build v"+version+" ") ||
		!strings.Contains(build, "--with github.com/caddy-edge/edge@v0.0.0=") {
		t.Errorf("Dockerfile: the xcaddy line %q is not the Makefile's (Caddy v%s, the checkout form)", build, version)
	}
	if !strings.Contains(string(raw), "COPY --from=builder /usr/bin/caddy /usr/bin/caddy") {
		t.Error("Dockerfile does not copy the built binary over the official image's")
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestReadmeModules checks that the README's table of modules lists every
// module the plugin registers (those whose Go type is in this module), so
// that a new store or handler gets its row.
func TestReadmeModules(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	ours := 0
	for _, id := range caddy.Modules() {
		info, err := caddy.GetModule(id)
		if err != nil {
			t.Fatal(err)
		}
		typ := reflect.TypeOf(info.New())
		if typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		if !strings.HasPrefix(typ.PkgPath(), "github.com/caddy-edge/edge") {
			continue
		}
		ours++
		if !strings.Contains(string(readme), "\n| `"+id+"` |") {
			t.Errorf("README.md's module table has no row for %s", id)
		}
	}
	if ours < 6 {
		t.Errorf("found %d modules of the plugin, want at least the 6 of DESIGN.md", ours)
	}
}

// TestReadmeOptionTables checks that every option of a Caddyfile syntax
// block (the lines one level inside the directive) has a row in the option
// table that follows the block, so that an option added to the syntax gets
// its default and meaning.
func TestReadmeOptionTables(t *testing.T) {
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	for _, b := range markdownBlocks(t, "README.md") {
		if b.lang != "caddyfile" || b.info != "syntax" {
			continue
		}
		// The table: the first run of lines starting with | after the block.
		var table strings.Builder
		end := b.line + strings.Count(b.text, "\n") + 1 // the closing fence, 1-based
		for _, l := range lines[end:] {
			if strings.HasPrefix(l, "|") {
				table.WriteString(strings.ReplaceAll(l, `\|`, "|") + "\n")
			} else if table.Len() > 0 || strings.HasPrefix(l, "#") {
				break
			}
		}
		if table.Len() == 0 {
			t.Errorf("README.md:%d: syntax block without an option table after it", b.line)
			continue
		}
		for l := range strings.SplitSeq(b.text, "\n") {
			if !strings.HasPrefix(l, "\t") || strings.HasPrefix(l, "\t\t") {
				continue
			}
			opt := strings.Fields(l)[0]
			if strings.HasPrefix(opt, "<") || opt == "}" {
				continue
			}
			if !strings.Contains(table.String(), "| `"+opt) {
				t.Errorf("README.md:%d: option %s of the syntax has no row in the table after it", b.line, opt)
			}
		}
	}
}

// TestReadmeTestNames checks that every test, fuzz target and benchmark the
// README names as proof exists, so a renamed test does not leave a claim
// without its evidence.
func TestReadmeTestNames(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]bool{}
	decl := regexp.MustCompile(`(?m)^func ((?:Test|Fuzz|Benchmark)\w+)\(`)
	err = filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && path != ".") {
			return filepath.SkipDir
		}
		if strings.HasSuffix(path, "_test.go") {
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range decl.FindAllSubmatch(src, -1) {
				defined[string(m[1])] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	named := regexp.MustCompile("`((?:Test|Fuzz|Benchmark)[A-Z]\\w*)").FindAllSubmatch(readme, -1)
	for _, m := range named {
		if !defined[string(m[1])] {
			t.Errorf("README.md names %s, which no _test.go file defines", m[1])
		}
	}
	if len(named) == 0 {
		t.Error("README.md names no test; the pattern must be wrong")
	}
}
