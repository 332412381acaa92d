package geofilter_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-edge/edge/internal/caddytest"
	"github.com/caddy-edge/edge/internal/mmdbtest"
)

// The names a database holds reach the {geo.*} placeholders, and from
// them header fields: header_up to the origin, header to the client. A
// database whose names hold control characters (a CR, LF or NUL: a custom
// or corrupt file, an AS name as its registrant wrote it) must neither
// make every request of its network fail (Go refuses a request with such
// a field: 502) nor put a NUL in the response header (the client sees a
// malformed response). The names are given without them.
func TestPlaceholdersFromHostileDatabaseNames(t *testing.T) {
	city := mmdbtest.City(t, map[string]mmdbtest.CityRecord{
		"127.0.0.0/8": {Country: "DE", Subdivision: "BE\r\nX-Sub: 1", City: "Ber\x00lin\r\nX-Injected: 1"},
	})
	asn := mmdbtest.ASN(t, map[string]mmdbtest.ASNRecord{"127.0.0.0/8": {Number: 64496, Org: "Evil\nSet-Cookie: a=b\x7f"}})
	var (
		mu  sync.Mutex
		got http.Header
	)
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.Header.Clone()
		mu.Unlock()
		io.WriteString(w, "ok")
	}))
	t.Cleanup(o.Close)
	s := caddytest.Start(t, `
http://localhost:{HTTP_PORT} {
	geofilter {
		db `+city+`
		db `+asn+`
	}
	header X-City {geo.city}
	header X-Org {geo.asn_org}
	reverse_proxy `+strings.TrimPrefix(o.URL, "http://")+` {
		header_up X-City {geo.city}
		header_up X-Org {geo.asn_org}
		header_up X-Sub {geo.subdivision_code}
	}
}
`)
	resp, err := s.Client.Get(s.URL("/"))
	if err != nil {
		t.Fatalf("a client of a network whose names hold control characters: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok" {
		t.Fatalf("a client of a network whose names hold control characters: %d %q, want 200 from the origin", resp.StatusCode, b)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, f := range []struct{ name, got, want string }{
		{"X-City to the origin", got.Get("X-City"), "Ber lin  X-Injected: 1"},
		{"X-Org to the origin", got.Get("X-Org"), "Evil Set-Cookie: a=b"},
		{"X-Sub to the origin", got.Get("X-Sub"), "BE  X-Sub: 1"},
		{"X-City to the client", resp.Header.Get("X-City"), "Ber lin  X-Injected: 1"},
	} {
		if f.got != f.want {
			t.Errorf("%s: %q, want %q", f.name, f.got, f.want)
		}
	}
	if len(got.Values("Set-Cookie")) != 0 || got.Get("X-Injected") != "" || resp.Header.Get("X-Injected") != "" {
		t.Errorf("a field injected: origin got %q, client got %q", got, resp.Header)
	}
}
