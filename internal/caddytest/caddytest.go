// Package caddytest starts a real, in-process Caddy from a Caddyfile for
// integration tests.
//
// Caddy's own caddytest package listens on fixed ports (9080, 2999), which
// collide when go test runs several packages at once. This one picks free
// loopback ports for each server, so every package's tests can run in
// parallel with the others. Only one Caddy config is live per process, so
// tests that use it must not call t.Parallel.
package caddytest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	// Plug in the Caddyfile adapter and Caddy's standard modules.
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

// Server is a running Caddy.
type Server struct {
	// HTTPPort is the port of the http_port global option; sites written as
	// "http://localhost:{$HTTP_PORT}" or ":{$HTTP_PORT}" listen on it.
	HTTPPort int
	// AdminAddr is the admin API's address, host:port.
	AdminAddr string
	// Client is an HTTP client that does not follow redirects.
	Client *http.Client
}

// FreePort returns a TCP port that is free on every interface, for a
// server that Caddy will start a moment later.
//
// It is chosen at random below Linux's ephemeral range (32768-60999), where
// the kernel never hands out ports for listeners on port 0 (such as
// httptest origins) or for outgoing connections. Picking a port from the
// kernel with port 0 and closing it, as the obvious way does, races with
// the other test processes that go test runs side by side: one of their
// httptest origins could be given the same port before Caddy binds it.
//
// A port is never handed out twice in a process: Caddy binds with
// SO_REUSEPORT, so two servers given one port would both bind it and share
// its connections (a site's requests reaching the admin API).
func FreePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		port := 20000 + rand.IntN(12000)
		if !claim(port) {
			continue // handed out before in this process
		}
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
		if err != nil {
			continue // in use: try another (it stays claimed)
		}
		l.Close()
		return port
	}
	t.Fatal("finding a free port: 100 random ports in 20000-31999 were all in use")
	return 0
}

// handedOut holds the ports FreePort returned in this process.
var handedOut struct {
	mu    sync.Mutex // protects ports
	ports map[int]bool
}

// claim records port as handed out, and tells whether it was not before.
func claim(port int) bool {
	handedOut.mu.Lock()
	defer handedOut.mu.Unlock()
	if handedOut.ports[port] {
		return false
	}
	if handedOut.ports == nil {
		handedOut.ports = make(map[int]bool)
	}
	handedOut.ports[port] = true
	return true
}

// Start chooses free ports, then loads the Caddyfile into this process's
// Caddy as Load does. Caddy is stopped when the test ends.
func Start(t testing.TB, caddyfile string) *Server {
	t.Helper()
	s := &Server{
		HTTPPort:  FreePort(t),
		AdminAddr: fmt.Sprintf("127.0.0.1:%d", FreePort(t)),
		Client: &http.Client{
			Timeout:       30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	s.Load(t, caddyfile)
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping caddy: %v", err)
		}
	})
	return s
}

// Load replaces the running config with the Caddyfile, as `caddy reload`
// does. In the Caddyfile, {HTTP_PORT} and {ADMIN_ADDR} are replaced by the
// server's ports; a global options block with the admin address, http_port
// and automatic HTTPS off is prepended unless the Caddyfile starts with its
// own (then it must use both tokens itself).
func (s *Server) Load(t testing.TB, caddyfile string) {
	t.Helper()
	if !strings.HasPrefix(strings.TrimSpace(caddyfile), "{") {
		caddyfile = Global("") + caddyfile
	}
	caddyfile = strings.NewReplacer(
		"{HTTP_PORT}", fmt.Sprint(s.HTTPPort),
		"{ADMIN_ADDR}", s.AdminAddr,
	).Replace(caddyfile)
	cfg, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		t.Fatalf("adapting Caddyfile: %v\n%s", err, caddyfile)
	}
	for _, w := range warnings {
		t.Logf("Caddyfile warning: %s", w.String())
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("loading config: %v\n%s", err, cfg)
	}
}

// globalOptions are the global options Load prepends to a Caddyfile
// without its own block.
const globalOptions = "\tadmin {ADMIN_ADDR}\n\thttp_port {HTTP_PORT}\n\tauto_https off\n\tskip_install_trust\n\tpersist_config off\n"

// LoggedGlobal returns a global options block, to start a Caddyfile with,
// that has what Load would prepend and sends Caddy's default log (info and
// above, JSON) to logFile, for tests that read what was logged.
func LoggedGlobal(logFile string) string {
	return Global(`	log {
		output file ` + logFile + `
		format json
		level INFO
	}
`)
}

// Global returns a global options block, to start a Caddyfile with, that
// has what Load would prepend and the options in extra (whole lines).
func Global(extra string) string {
	return "{\n" + globalOptions + extra + "}\n"
}

// URL returns the address of path on the HTTP port, e.g.
// s.URL("/a") == "http://localhost:PORT/a".
func (s *Server) URL(path string) string {
	return fmt.Sprintf("http://localhost:%d%s", s.HTTPPort, path)
}

// AdminURL returns the address of path on the admin API.
func (s *Server) AdminURL(path string) string {
	return "http://" + s.AdminAddr + path
}

// Validate does what `caddy validate` does with the JSON config cfgJSON:
// it provisions every module of it, starts nothing, and cleans up.
func Validate(t testing.TB, cfgJSON []byte) error {
	t.Helper()
	var cfg caddy.Config
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		t.Fatalf("config JSON: %v", err)
	}
	return caddy.Validate(&cfg)
}

// ValidateSite validates, as `caddy validate` does, a Caddyfile whose one
// site (http://localhost:1, no admin endpoint) holds the directives site,
// and wants it accepted when want is empty, or refused with an error that
// contains want (ValidateWant).
func ValidateSite(t testing.TB, site, want string) {
	t.Helper()
	caddyfile := "{\n\tadmin off\n\tauto_https off\n}\nhttp://localhost:1 {\n" + site + "\n}\n"
	cfgJSON, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		t.Fatalf("adapting: %v\n%s", err, caddyfile)
	}
	ValidateWant(t, cfgJSON, want)
}

// ValidateWant validates the JSON config cfgJSON (Validate) and wants it
// accepted when want is empty, or refused with an error that contains
// want.
func ValidateWant(t testing.TB, cfgJSON []byte, want string) {
	t.Helper()
	err := Validate(t, cfgJSON)
	switch {
	case want == "" && err != nil:
		t.Errorf("refused: %v", err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Errorf("err = %v, want it to contain %q\n%s", err, want, cfgJSON)
	}
}
