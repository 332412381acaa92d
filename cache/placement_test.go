package cache_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/caddy-edge/edge/internal/caddytest"
)

// Issue 8 item 10: http_cache after reverse_proxy (or respond, error) in a
// route never sees a request; such a config is refused at load, as
// `caddy validate` and `caddy run` load it. Placements where it can run
// are accepted, after forward_auth too.
func TestPlacementAfterTerminalRefused(t *testing.T) {
	for _, tt := range []struct {
		name, site, want string
	}{
		{"after reverse_proxy in a route", "route {\n\treverse_proxy 127.0.0.1:9\n\thttp_cache\n}", "http_cache is placed after reverse_proxy"},
		{"after respond in a route", "route {\n\trespond \"x\"\n\thttp_cache\n}", "http_cache is placed after static_response"},
		{"after reverse_proxy in a nested handle", "handle /a/* {\n\troute {\n\t\treverse_proxy 127.0.0.1:9\n\t\thttp_cache\n\t}\n}", "http_cache is placed after reverse_proxy"},
		{"before reverse_proxy in a route", "route {\n\thttp_cache\n\treverse_proxy 127.0.0.1:9\n}", ""},
		{"after a reverse_proxy with a matcher", "route {\n\treverse_proxy /api/* 127.0.0.1:9\n\thttp_cache\n\treverse_proxy 127.0.0.1:8\n}", ""},
		{"site block: sorted by directive order", "reverse_proxy 127.0.0.1:9\nhttp_cache", ""},
		// forward_auth is a reverse_proxy whose handle_response route goes on
		// to the next handler for an allowed request: the README's order.
		{"after forward_auth in a site block", "forward_auth 127.0.0.1:9 {\n\turi /auth\n}\nhttp_cache\nreverse_proxy 127.0.0.1:8", ""},
		{"after forward_auth in a route", "route {\n\tforward_auth 127.0.0.1:9 {\n\t\turi /auth\n\t}\n\thttp_cache\n\treverse_proxy 127.0.0.1:8\n}", ""},
		// replace_status only changes the status of the response the
		// proxy then writes: it never goes on to the next handler.
		{"after a reverse_proxy with replace_status only", "route {\n\treverse_proxy 127.0.0.1:9 {\n\t\t@nf status 404\n\t\treplace_status @nf 200\n\t}\n\thttp_cache\n}", "http_cache is placed after reverse_proxy"},
		{"after a reverse_proxy with handle_response", "route {\n\treverse_proxy 127.0.0.1:9 {\n\t\t@ok status 2xx\n\t\thandle_response @ok {\n\t\t\trespond \"x\"\n\t\t}\n\t}\n\thttp_cache\n\treverse_proxy 127.0.0.1:8\n}", ""},
	} {
		t.Run(tt.name, func(t *testing.T) { caddytest.ValidateSite(t, tt.site, tt.want) })
	}
}

// A route before http_cache's is loaded when the cache is provisioned
// (checkPlacement): a reverse_proxy there with replace_status only is
// terminal as well, one with a handle_response route is not.
func TestPlacementAfterLoadedProxy(t *testing.T) {
	for _, tt := range []struct {
		name, handleResponse, want string
	}{
		{"replace_status only", `{"status_code": 200}`, "http_cache is placed after reverse_proxy"},
		{"a handle_response route", `{"routes": [{"handle": [{"handler": "vars"}]}]}`, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfgJSON := `{"admin": {"disabled": true}, "apps": {"http": {"servers": {"s": {"listen": ["localhost:1"], "automatic_https": {"disable": true}, "routes": [
				{"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "127.0.0.1:9"}], "handle_response": [` + tt.handleResponse + `]}]},
				{"handle": [{"handler": "http_cache"}]}
			]}}}}}`
			caddytest.ValidateWant(t, []byte(cfgJSON), tt.want)
		})
	}
}

// An authentication handler after http_cache in a route block lets a hit
// through without it: Caddy starts (the config works, and credentialed
// responses are stored only with explicit freshness), with a warning that
// names it. The directive order of a site block puts the cache after them,
// with no warning.
func TestPlacementBeforeAuthenticationWarned(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	o := newOrigin(t, serve("page", "Cache-Control", "max-age=60"))
	const warning = "http_cache runs before an authentication handler"
	for _, tt := range []struct {
		name, site, handler string
	}{
		{"forward_auth in a route", "route {\n\thttp_cache\n\tforward_auth " + o.addr() + " {\n\t\turi /auth\n\t}\n\treverse_proxy " + o.addr() + "\n}", "forward_auth"},
		{"basic_auth in a route", "route {\n\thttp_cache\n\tbasic_auth {\n\t\talice " + string(hash) + "\n\t}\n\treverse_proxy " + o.addr() + "\n}", "authentication"},
		{"forward_auth in a site block", "forward_auth " + o.addr() + " {\n\turi /auth\n}\nhttp_cache\nreverse_proxy " + o.addr(), ""},
		{"basic_auth in a site block", "basic_auth {\n\talice " + string(hash) + "\n}\nhttp_cache\nreverse_proxy " + o.addr(), ""},
		{"X-Accel-Redirect route after the cache", "route {\n\thttp_cache\n\treverse_proxy " + o.addr() + " {\n\t\t@accel header X-Accel-Redirect *\n\t\thandle_response @accel {\n\t\t\trespond \"file\"\n\t\t}\n\t}\n}", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			logFile := filepath.Join(t.TempDir(), "caddy.log")
			caddytest.Start(t, caddytest.LoggedGlobal(logFile)+"http://localhost:{HTTP_PORT} {\n"+tt.site+"\n}\n")
			lines := logLines(t, logFile, "warn", warning)
			switch {
			case tt.handler == "" && len(lines) > 0:
				t.Errorf("warned: %v", lines)
			case tt.handler != "" && len(lines) == 0:
				t.Errorf("no warning %q", warning)
			case tt.handler != "" && !strings.HasPrefix(fmt.Sprint(lines[0]["handler"]), tt.handler):
				t.Errorf("warning names %v, want %s", lines[0]["handler"], tt.handler)
			}
		})
	}
}
