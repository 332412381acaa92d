package geofilter_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

var update = flag.Bool("update", false, "rewrite the expected JSON of the .caddyfiletest golden files")

// TestCaddyfileAdapt adapts each testdata/*.caddyfiletest (a Caddyfile, a
// line of dashes, the expected JSON) the way `caddy adapt` does, with the
// plugin's directives and matcher registered.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			input, want, ok := strings.Cut(string(raw), "\n----------\n")
			if !ok {
				t.Fatal("no ---------- separator")
			}
			cfg, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input+"\n"), nil)
			if err != nil {
				t.Fatalf("adapting: %v", err)
			}
			for _, w := range warnings {
				t.Errorf("warning: %s", w.String())
			}
			var got bytes.Buffer
			if err := json.Indent(&got, cfg, "", "\t"); err != nil {
				t.Fatal(err)
			}
			if *update {
				if err := os.WriteFile(f, []byte(input+"\n----------\n"+got.String()+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if strings.TrimSpace(got.String()) != strings.TrimSpace(want) {
				t.Errorf("adapted JSON differs (go test -run TestCaddyfileAdapt -update rewrites it):\n%s", got.String())
			}
		})
	}
}

// TestCaddyfileAdaptErrors checks errors that only the full adapter sees,
// with the line they name.
func TestCaddyfileAdaptErrors(t *testing.T) {
	for _, tt := range []struct{ input, want string }{
		{"example.com {\n\tgeofilter {\n\t\trule deny {\n\t\t\t@nope\n\t\t}\n\t}\n}\n", "unrecognized matcher name: @nope, at Caddyfile:4"},
		{"example.com {\n\tgeofilter {\n\t\tdeny country XYZ\n\t}\n}\n", `country: bad country code "XYZ"`},
		{"example.com {\n\t@x geo planet Mars\n\trespond @x 403\n}\n", "unknown condition 'planet'"},
	} {
		_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(tt.input), nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err = %v, want %q", tt.input, err, tt.want)
		}
	}
}
