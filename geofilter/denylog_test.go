package geofilter_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/caddy-edge/edge/internal/caddytest"
	"github.com/caddy-edge/edge/internal/mmdbtest"
)

// A deny is a decision of the filter, not a failure of the server: a deny
// rule answering 503 (or any 5xx) without a body must not make Caddy log
// an error line, with its stack trace, for each denied request, which any
// client of a denied country could then send by the thousand. The client
// gets the same answer: the status, no body. With handle_errors, the deny
// is still the Caddy error that the routes restyle.
func TestDeny5xxDoesNotLogAnErrorPerRequest(t *testing.T) {
	country := mmdbtest.Country(t, map[string]string{"127.0.0.0/8": "CN"})
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	global := caddytest.LoggedGlobal(logFile)
	site := func(extra string) string {
		return `
http://localhost:{HTTP_PORT} {
	geofilter {
		db ` + country + `
		rule deny cn {
			country CN
			status 503
		}
	}
	respond "through"
` + extra + `
}
`
	}
	count := func() int {
		t.Helper()
		f, err := os.Open(logFile)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		n := 0
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil && m["level"] == "error" {
				n++
			}
		}
		return n
	}
	get := func(s *caddytest.Server) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, s.URL("/"), nil)
		resp, err := do(t, s, req) // the second request comes after a reload
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}

	s := caddytest.Start(t, global+site(""))
	for range 20 {
		if code, body := get(s); code != http.StatusServiceUnavailable || body != "" {
			t.Fatalf("denied: %d %q, want 503 and no body", code, body)
		}
	}
	if n := count(); n != 0 {
		t.Errorf("%d error lines for 20 denied requests, want none", n)
	}

	// With handle_errors, the deny is still a Caddy error the routes style.
	s.Load(t, global+site("\thandle_errors {\n\t\trespond \"styled {err.status_code}\"\n\t}"))
	s.Client.CloseIdleConnections()
	if code, body := get(s); code != http.StatusServiceUnavailable || body != "styled 503" {
		t.Errorf("denied with handle_errors: %d %q, want 503 \"styled 503\"", code, body)
	}
}
