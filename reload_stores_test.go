package edge_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddy-edge/edge/internal/caddytest"
	"github.com/caddy-edge/edge/internal/redistest"
)

// TestReloadSwitchingStores reloads through every kind of store and back,
// and through changes of their options, with requests between: each
// reload answers from the new store, and what the stores held open
// (goroutines, files, Redis connections) comes back to where it was.
func TestReloadSwitchingStores(t *testing.T) {
	if testing.Short() {
		t.Skip("reloads many configs")
	}
	srv := redistest.Start(t)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		io.WriteString(w, strings.Repeat("x", 300<<10)) // chunked in Redis
	}))
	defer origin.Close()
	dirA, dirB := t.TempDir(), t.TempDir()
	stores := []string{
		"store memory",
		"store disk {\n\t\t\tpath " + dirA + "\n\t\t}",
		// (timeouts that a loaded test machine meets)
		"store redis {\n\t\t\taddress " + srv.Addr + "\n\t\t\ttimeout 2s\n\t\t}",
		"store redis {\n\t\t\taddress " + srv.Addr + "\n\t\t\ttimeout 3s\n\t\t}",
		"store tiered {\n\t\t\tredis {\n\t\t\t\taddress " + srv.Addr + "\n\t\t\t\ttimeout 2s\n\t\t\t}\n\t\t}",
		"store tiered {\n\t\t\tdisk {\n\t\t\t\tpath " + dirB + "\n\t\t\t}\n\t\t}",
		"store disk {\n\t\t\tpath " + dirB + "\n\t\t\tmax_size 64MiB\n\t\t}",
	}
	config := func(store string) string {
		return `
http://localhost:{HTTP_PORT} {
	header >X-Result {http_cache.status}
	http_cache {
		` + store + `
	}
	reverse_proxy ` + strings.TrimPrefix(origin.URL, "http://") + ` {
		transport http {
			keepalive 1s
		}
	}
}
`
	}
	s := caddytest.Start(t, config(stores[0]))
	get := func(path string) string {
		resp, err := s.Client.Get(s.URL(path))
		for try := 0; err != nil && try < 3; try++ {
			resp, err = s.Client.Get(s.URL(path))
		}
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || len(b) != 300<<10 {
			t.Errorf("GET %s: %d bytes, %v", path, len(b), err)
		}
		return resp.Header.Get("X-Result") + " " + resp.Header.Get("Cache-Status")
	}
	get("/warm")
	get("/warm")
	s.Client.CloseIdleConnections()
	goroutines, fds := settle(t, 0, 0)
	for round := range 3 {
		for i, st := range append(stores[1:], stores[0]) {
			s.Load(t, config(st))
			s.Client.CloseIdleConnections()
			p := fmt.Sprintf("/r%d/%d", round, i)
			get(p)
			if r := get(p); !strings.HasPrefix(r, "hit ") {
				t.Errorf("store %d of round %d: second GET %s", i, round, r)
			}
		}
	}
	s.Client.CloseIdleConnections()
	time.Sleep(1500 * time.Millisecond) // the origin connections' keep-alive
	settle(t, goroutines, fds)
}

// A reload that changes a Redis store's options replaces its connection;
// the old config's requests still being served when the old connection is
// released end whole: a hit streaming a body of many chunks gets all of
// it.
func TestReloadChangingRedisKeepsHitsInFlight(t *testing.T) {
	srv := redistest.Start(t)
	const size = 16 << 20 // more than the socket buffers hold: the hit is in flight
	body := strings.Repeat("0123456789abcdef", size/16)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		io.WriteString(w, body)
	}))
	defer origin.Close()
	config := func(timeout string) string {
		return `
http://localhost:{HTTP_PORT} {
	header >X-Result {http_cache.status}
	http_cache {
		store redis {
			address ` + srv.Addr + `
			timeout ` + timeout + `
		}
	}
	reverse_proxy ` + strings.TrimPrefix(origin.URL, "http://") + `
}
`
	}
	s := caddytest.Start(t, config("2s"))
	if resp, err := s.Client.Get(s.URL("/big")); err != nil {
		t.Fatal(err)
	} else {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	resp, err := s.Client.Get(s.URL("/big"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if r := resp.Header.Get("X-Result"); r != "hit" {
		t.Fatalf("second GET: %s, want a hit", r)
	}
	first := make([]byte, 4096)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	s.Load(t, config("3s")) // another option: another connection
	rest, err := io.ReadAll(resp.Body)
	if got := len(first) + len(rest); err != nil || got != size {
		t.Errorf("the hit in flight during the reload got %d of %d bytes: %v", got, size, err)
	}
}
