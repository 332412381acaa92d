package edge_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"

	_ "github.com/caddy-edge/edge"
	"github.com/caddy-edge/edge/internal/caddytest"
)

// TestModulesRegistered checks what `caddy list-modules` shows: every module
// the plugin promises in DESIGN.md.
func TestModulesRegistered(t *testing.T) {
	for _, id := range []string{
		"http.handlers.http_cache",
		"http.cache.stores.memory",
		"http.cache.stores.disk",
		"http_cache_disk",
		"http.cache.stores.redis",
		"http.cache.stores.tiered",
		"admin.api.http_cache",
		"http.handlers.geofilter",
		"http.matchers.geo",
		"admin.api.geofilter",
	} {
		if _, err := caddy.GetModule(id); err != nil {
			t.Errorf("module %s: %v", id, err)
		}
	}
}

// TestProxyThroughHandlers runs a real Caddy with both directives in front
// of reverse_proxy, with no order line, and checks that a request reaches the
// origin and its answer comes back.
func TestProxyThroughHandlers(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []string
	)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.Path)
		mu.Unlock()
		w.Header().Set("X-Origin", "yes")
		io.WriteString(w, "hello from origin "+r.URL.Path)
	}))
	defer origin.Close()

	s := caddytest.Start(t, `
http://localhost:{HTTP_PORT} {
	geofilter
	http_cache
	reverse_proxy `+strings.TrimPrefix(origin.URL, "http://")+`
}
`)
	resp, err := s.Client.Get(s.URL("/greeting"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", resp.StatusCode, body)
	}
	if got, want := string(body), "hello from origin /greeting"; got != want {
		t.Errorf("body %q, want %q", got, want)
	}
	if resp.Header.Get("X-Origin") != "yes" {
		t.Errorf("origin header lost: %v", resp.Header)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0] != "/greeting" {
		t.Errorf("origin saw %v, want [/greeting]", seen)
	}
}
