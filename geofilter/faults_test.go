package geofilter_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-edge/edge/geofilter"
	"github.com/caddy-edge/edge/internal/caddytest"
	"github.com/caddy-edge/edge/internal/mmdbtest"
)

// TestFaultFilesReplacedUnderLoad: while clients send requests, the
// country database and the IP list of a filter are replaced, in turn, by
// garbage, a truncated copy, another kind of file, an empty file, nothing
// (deleted), and last by a good file written slowly (in chunks with pauses,
// as a slow copy over the old file writes it), all found by the filter's
// own checks (reload_interval). What the clients get: every decision comes
// from the last good file while the bad ones are in place (a client in the
// database's DE network gets 200 "DE", a listed client 403), never an error
// and never "unknown"; once the good file is whole, its answers take over
// (the DE network is now CN: 403; the listed client is no longer listed:
// 200).
func TestFaultFilesReplacedUnderLoad(t *testing.T) {
	dir := t.TempDir()
	country := filepath.Join(dir, "country.mmdb")
	list := filepath.Join(dir, "drop.netset")
	mmdbtest.WriteFile(t, country, mmdbtest.BuildCountry(map[string]string{"192.0.2.0/24": "DE"}))
	mmdbtest.WriteFile(t, list, []byte("# drop\n203.0.113.0/24\n"))
	s := caddytest.Start(t, globalTrusted+`
http://localhost:{HTTP_PORT} {
	geofilter {
		db `+country+`
		reload_interval 10ms
		deny country CN
		deny ip_list `+list+`
	}
	respond "{geo.country_code}"
}
`)
	const (
		inDB   = "192.0.2.10"  // DE, then CN
		listed = "203.0.113.9" // listed, then not
	)
	// For each client, the answer of the old files and of the new ones.
	type answer struct {
		code int
		body string
	}
	old := map[string]answer{inDB: {200, "DE"}, listed: {403, ""}}
	repl := map[string]answer{inDB: {403, ""}, listed: {200, "unknown"}}
	// swapped[c]: 0 only the old answer is right, 1 either (the good file
	// is being swapped in), 2 only the new one.
	var swapped [2]atomic.Int32
	clients := []string{inDB, listed}

	var (
		requests, failures atomic.Int64
		mu                 sync.Mutex
		bad                []string
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; i < 1_000_000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c := (g + i) % 2
				pStart := swapped[c].Load()
				code, body, err := getQuiet(s, clients[c])
				pEnd := swapped[c].Load()
				requests.Add(1)
				a := answer{code, body}
				if a.code == 403 {
					a.body = "" // the default deny body is Caddy's
				}
				ok := err == nil && ((pStart <= 1 && a == old[clients[c]]) || (pEnd >= 1 && a == repl[clients[c]]))
				if !ok {
					failures.Add(1)
					mu.Lock()
					if len(bad) < 10 {
						bad = append(bad, fmt.Sprintf("%s (swap phase %d-%d): %d %q %v", clients[c], pStart, pEnd, code, body, err))
					}
					mu.Unlock()
				}
			}
		})
	}
	defer func() {
		close(stop)
		wg.Wait()
		t.Logf("%d requests", requests.Load())
		if n := failures.Load(); n > 0 {
			t.Errorf("%d of %d requests got a wrong answer, e.g.:\n%s", n, requests.Load(), strings.Join(bad, "\n"))
		}
	}()

	// info returns what the admin API says of the file at path.
	info := func(path string) geofilter.DatabaseInfo { return adminInfo(t, s, path) }
	// rejected waits (at most 10 s) until a check made after now has
	// rejected the file at path.
	rejected := func(what, path string) {
		t.Helper()
		since := time.Now()
		deadline := since.Add(10 * time.Second)
		for {
			i := info(path)
			if i.LastCheck.After(since) && strings.HasPrefix(i.LastResult, "error") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not rejected by a check within 10 s: %+v", what, i)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	write := func(path string, data []byte) { // in place, as cp does
		t.Helper()
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	good := mmdbtest.BuildCountry(map[string]string{"192.0.2.0/24": "CN"})
	asn := mmdbtest.BuildASN(map[string]mmdbtest.ASNRecord{"192.0.2.0/24": {Number: 64500, Org: "x"}})
	for _, f := range []struct {
		name string
		path string
		do   func(path string)
	}{
		{"database: garbage", country, func(p string) { mmdbtest.WriteFile(t, p, []byte("<html>503 Service Unavailable</html>")) }},
		{"database: truncated copy", country, func(p string) { mmdbtest.WriteFile(t, p, good[:len(good)*2/3]) }},
		{"database: another kind (ASN)", country, func(p string) { mmdbtest.WriteFile(t, p, asn) }},
		{"database: an IP list", country, func(p string) { mmdbtest.WriteFile(t, p, []byte("192.0.2.0/24\n")) }},
		{"database: empty", country, func(p string) { write(p, nil) }},
		{"database: deleted", country, func(p string) { os.Remove(p) }},
		{"list: garbage", list, func(p string) { mmdbtest.WriteFile(t, p, []byte("<html>503 Service Unavailable</html>")) }},
		{"list: truncated mid-line", list, func(p string) { mmdbtest.WriteFile(t, p, []byte("198.51.100.0/24\n203.0.1")) }},
		{"list: another kind (a database)", list, func(p string) { mmdbtest.WriteFile(t, p, good) }},
		{"list: empty", list, func(p string) { write(p, nil) }},
		{"list: deleted", list, func(p string) { os.Remove(p) }},
	} {
		f.do(f.path)
		rejected(f.name, f.path)
		time.Sleep(30 * time.Millisecond) // a few more checks, under load
	}

	// Good files, written in four chunks with pauses into the path the
	// last check found empty: no part of them is served before the whole
	// is there. A database is cut anywhere (its metadata is at its end). A
	// list is cut at the end of a line, where what came so far is a valid
	// list on its own: only the settle time of a file written in place
	// (or re-created after a check found it gone) keeps it from being
	// served.
	listData := []byte("# drop\n198.51.100.0/24\n198.51.100.0/24\n198.51.100.0/24\n")
	var listCuts []int
	for i := 0; len(listCuts) < 3; {
		i += strings.Index(string(listData[i:]), "\n") + 1
		listCuts = append(listCuts, i)
	}
	n := len(good)
	for c, g := range []struct {
		path string
		data []byte
		cuts []int
	}{
		{country, good, []int{n / 4, n / 2, n * 3 / 4}},
		{list, listData, listCuts},
	} {
		fh, err := os.OpenFile(g.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		cuts := append(append([]int{0}, g.cuts...), len(g.data))
		for k := range 4 {
			if k == 3 {
				swapped[c].Store(1)
			}
			if _, err := fh.Write(g.data[cuts[k]:cuts[k+1]]); err != nil {
				t.Fatal(err)
			}
			if k < 3 {
				time.Sleep(60 * time.Millisecond) // several checks see the part
			}
		}
		fh.Close()
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, _, _ := getQuiet(s, clients[c])
			if code == repl[clients[c]].code {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the good %s was not picked up within 10 s: %+v", g.path, info(g.path))
			}
			time.Sleep(10 * time.Millisecond)
		}
		swapped[c].Store(2)
		time.Sleep(30 * time.Millisecond)
		if i := info(g.path); i.LastResult != "ok" && i.LastResult != "unchanged" {
			t.Errorf("%s after the good file: %+v", g.path, i)
		}
	}
}

// TestFaultClientAddressAppendingProxy: behind a trusted proxy that
// appends the peer it saw to the client's own X-Forwarded-For (as most load
// balancers do), a client in CN that sends "X-Forwarded-For: <a DE
// address>" arrives with "<DE>, <CN>". With trusted_proxies_strict, Caddy's
// client_ip is the rightmost address that is not a trusted proxy, and the
// client is denied (403); without it, Caddy takes the leftmost address,
// the one the client wrote, and lets it through (200) — which is why the
// README asks for trusted_proxies_strict with such proxies.
func TestFaultClientAddressAppendingProxy(t *testing.T) {
	country := mmdbtest.Country(t, countryNets)
	site := `
http://localhost:{HTTP_PORT} {
	geofilter {
		db ` + country + `
		deny country CN
	}
	respond "{geo.ip} {geo.country_code}"
}
`
	global := func(strict string) string {
		return `{
	admin {ADMIN_ADDR}
	http_port {HTTP_PORT}
	auto_https off
	skip_install_trust
	persist_config off
	servers {
		trusted_proxies static 127.0.0.1/8 ::1
		` + strict + `
	}
}
`
	}
	s := caddytest.Start(t, global("trusted_proxies_strict")+site)
	spoofed := ipDE + ", " + ipCN // what the client wrote, then what the proxy saw
	expect(t, s, "GET", "/", spoofed, 403, "")
	expect(t, s, "GET", "/", ipCN, 403, "")
	expect(t, s, "GET", "/", ipDE, 200, ipDE+" DE")

	s.Load(t, global("")+site)
	s.Client.CloseIdleConnections()
	expect(t, s, "GET", "/", spoofed, 200, ipDE+" DE")
}
