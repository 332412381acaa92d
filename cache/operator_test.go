package cache_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/caddy-edge/edge/cache"
	"github.com/caddy-edge/edge/internal/caddytest"
)

// Two sites put a memory tier in front of one disk directory, the second
// with another disk max_size (an operator's slip, which the disk store
// warns about and serves with the first size). They are one store to the
// admin API ("tiered:disk:<dir>"), so a purge must empty the memory tier
// of both: a memory tier per spelling of the back store's options would
// keep serving, on one site, what the purge removed.
func TestAdminPurgeReachesEveryTieredFront(t *testing.T) {
	dir := t.TempDir()
	o := newOrigin(t, serve("tiered", "Cache-Control", "max-age=600"))
	site := func(host, diskOpts string) string {
		return `
http://` + host + `:{HTTP_PORT} {
	header >X-Result {http_cache.status}
	http_cache {
		store tiered {
			disk ` + dir + ` {
				` + diskOpts + `
			}
		}
	}
	reverse_proxy ` + o.addr() + `
}
`
	}
	s := caddytest.Start(t, site("localhost", "max_size 64MiB")+site("127.0.0.1", "max_size 32MiB"))
	site2 := &caddytest.Server{HTTPPort: s.HTTPPort, AdminAddr: s.AdminAddr, Client: &http.Client{}}
	get2 := func(p string) result {
		t.Helper()
		resp, err := site2.Client.Get(strings.Replace(s.URL(p), "localhost", "127.0.0.1", 1))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return result{status: resp.StatusCode, header: resp.Header}
	}
	for _, p := range []string{"/a", "/b"} {
		expect(t, "fill site 1 "+p, get(t, s, p), 200, "tiered", "miss")
		expect(t, "hit site 1 "+p, get(t, s, p), 200, "tiered", "hit")
		expect(t, "fill site 2 "+p, get2(p), 200, "*", "miss")
		expect(t, "hit site 2 "+p, get2(p), 200, "*", "hit")
	}
	if n := adminPurge(t, s, `{"prefix": "http://"}`); n < 4 {
		t.Errorf("purged %d entries, want at least 4", n)
	}
	expect(t, "site 1 after the purge", get(t, s, "/a"), 200, "tiered", "miss")
	expect(t, "site 2 after the purge", get2("/a"), 200, "*", "miss")

	expect(t, "refill site 2", get2("/b"), 200, "*", "miss")
	expect(t, "hit site 2 again", get2("/b"), 200, "*", "hit")
	if n := adminPurge(t, s, `{"url": "`+strings.Replace(s.URL("/b"), "localhost", "127.0.0.1", 1)+`"}`); n < 1 {
		t.Errorf("purged %d entries, want 1", n)
	}
	expect(t, "site 2 after the URL purge", get2("/b"), 200, "*", "miss")
}

// A key template may name the original request ({http.request.orig_uri.*},
// e.g. to keep the full path under handle_path). The key of a purge or an
// invalidation is built for a URL, not a request Caddy received: it must
// neither panic (Caddy's placeholder reads the original request from the
// context) nor miss. A client's POST that the origin answers with 200
// invalidates the URL; an admin purge by URL removes it.
func TestOrigURIKeyPurgeAndInvalidation(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			w.Header().Set("Cache-Control", "max-age=600")
		}
		io.WriteString(w, "orig "+r.URL.Path)
	})
	s := startCache(t, o, "key {http.request.host}{http.request.orig_uri.path}")
	expect(t, "fill", get(t, s, "/p"), 200, "orig /p", "miss", "stored")
	expect(t, "hit", get(t, s, "/p"), 200, "orig /p", "hit")
	req, _ := http.NewRequest(http.MethodPost, s.URL("/p"), strings.NewReader("x"))
	resp, err := s.Client.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	expect(t, "after the POST", get(t, s, "/p"), 200, "orig /p", "miss", "stored")
	resp, err = http.Post(s.AdminURL("/http_cache/purge"), "application/json", strings.NewReader(`{"url": "`+s.URL("/p")+`"}`))
	if err != nil {
		t.Fatalf("purge: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"purged":1`) {
		t.Errorf("purge: %d %s, want purged 1", resp.StatusCode, b)
	}
	expect(t, "after the purge", get(t, s, "/p"), 200, "orig /p", "miss", "stored")
}

// A reload that fails leaves the running config as it was: the stores it
// shares with the new config keep their size (and their entries), rather
// than take the size of a config that never ran. Here the new config
// shrinks the memory store to 1 MiB and has a disk store that cannot be
// opened.
func TestFailedReloadKeepsStoreSize(t *testing.T) {
	o := newOrigin(t, serve(strings.Repeat("x", 200<<10), "Cache-Control", "max-age=600"))
	s := startCache(t, o, "store memory {\n\tname failedreload\n\tmax_size 64MiB\n}")
	for i := range 10 {
		expect(t, "fill", get(t, s, fmt.Sprintf("/f%d", i)), 200, "*", "miss", "stored")
	}
	bad := "{\n\tadmin " + s.AdminAddr + "\n\thttp_port " + fmt.Sprint(s.HTTPPort) + "\n\tauto_https off\n\tpersist_config off\n}\n" +
		strings.ReplaceAll(siteConfig(o, "store memory {\n\tname failedreload\n\tmax_size 1MiB\n}"), "{HTTP_PORT}", fmt.Sprint(s.HTTPPort)) +
		"http://127.0.0.1:" + fmt.Sprint(s.HTTPPort) + " {\n\thttp_cache {\n\t\tstore disk /dev/null/cache\n\t}\n\trespond ok\n}\n"
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(bad), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := caddy.Load(cfg, true); err == nil {
		t.Fatal("the bad config loaded")
	}
	st := storeStats(t, s, "memory/failedreload")
	if st["capacity"] != 64<<20 || st["entries"] != 10 {
		t.Errorf("after a failed reload the store has capacity %d and %d entries, want %d and 10", st["capacity"], st["entries"], 64<<20)
	}
	for i := range 10 {
		expect(t, "after the failed reload", get(t, s, fmt.Sprintf("/f%d", i)), 200, "*", "hit", "hit")
	}
}

// storeStats returns the numbers of the store named name in GET
// /http_cache/stats.
func storeStats(t *testing.T, s *caddytest.Server, name string) map[string]int64 {
	t.Helper()
	resp, err := http.Get(s.AdminURL("/http_cache/stats"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Stores []map[string]any `json:"stores"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	for _, m := range st.Stores {
		if m["name"] == name {
			out := make(map[string]int64)
			for k, v := range m {
				if f, ok := v.(float64); ok {
					out[k] = int64(f)
				}
			}
			return out
		}
	}
	t.Fatalf("no store %s in %+v", name, st.Stores)
	return nil
}

// Two sites share a store and build one key for a URL: a purge of the URL
// reaches the entry once, and reports it once, soft or not.
func TestPurgeURLCountsASharedEntryOnce(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("ETag", `"s"`)
		if r.Header.Get("If-None-Match") == `"s"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, "shared")
	})
	site := func(host string) string {
		return `
http://` + host + `:{HTTP_PORT} {
	header >X-Result {http_cache.status}
	http_cache {
		store memory {
			name purgeonce
		}
		key /same{http.request.uri.path}
	}
	reverse_proxy ` + o.addr() + `
}
`
	}
	s := caddytest.Start(t, site("localhost")+site("127.0.0.1"))
	expect(t, "fill", get(t, s, "/p"), 200, "shared", "miss", "stored")
	if n := adminPurge(t, s, `{"url": "`+s.URL("/p")+`", "soft": true}`); n != 1 {
		t.Errorf("soft purge: %d entries, want 1", n)
	}
	expect(t, "soft-purged", get(t, s, "/p"), 200, "shared", "revalidated")
	if n := adminPurge(t, s, `{"url": "`+s.URL("/p")+`"}`); n != 1 {
		t.Errorf("purge: %d entries, want 1", n)
	}
}

// A store that fails a purge (here a Redis that is down) does not keep the
// purge from the other stores: they are purged, and the answer is an
// error that names the failing store.
func TestPurgeGoesOnPastAFailingStore(t *testing.T) {
	dir := t.TempDir()
	o := newOrigin(t, serve("kept", "Cache-Control", "max-age=600"))
	down := caddytest.FreePort(t) // nothing listens: every Redis operation fails
	s := caddytest.Start(t, `
http://localhost:{HTTP_PORT} {
	header >X-Result {http_cache.status}
	http_cache {
		store redis {
			address 127.0.0.1:`+fmt.Sprint(down)+`
		}
	}
	reverse_proxy `+o.addr()+`
}
http://127.0.0.1:{HTTP_PORT} {
	header >X-Result {http_cache.status}
	http_cache {
		store tiered {
			disk `+dir+`
		}
	}
	reverse_proxy `+o.addr()+`
}
`)
	site2 := strings.Replace(s.URL("/t"), "localhost", "127.0.0.1", 1)
	get2 := func() string {
		t.Helper()
		resp, err := s.Client.Get(site2)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("X-Result")
	}
	get2()
	if r := get2(); r != "hit" {
		t.Fatalf("site 2 before the purge: %s, want hit", r)
	}
	resp, err := http.Post(s.AdminURL("/http_cache/purge"), "application/json", strings.NewReader(`{"prefix": "http://"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(b), "redis:") {
		t.Errorf("purge with a store down: %d %s, want 500 naming the redis store", resp.StatusCode, b)
	}
	if r := get2(); r != "miss" {
		t.Errorf("site 2 after the purge: %s, want miss (its store was not purged)", r)
	}
}

// http_cache inside handle_path sees the path with its prefix stripped.
// Two such blocks in front of two origins share the default store: the
// default key must still tell /a/x from /b/x, and a purge of the URL the
// client requested must find its entry.
func TestDefaultKeyUnderHandlePath(t *testing.T) {
	a := newOrigin(t, serve("from a", "Cache-Control", "max-age=600"))
	b := newOrigin(t, serve("from b", "Cache-Control", "max-age=600"))
	s := caddytest.Start(t, `
http://localhost:{HTTP_PORT} {
	header >X-Result {http_cache.status}
	handle_path /a/* {
		http_cache
		reverse_proxy `+a.addr()+`
	}
	handle_path /b/* {
		http_cache
		reverse_proxy `+b.addr()+`
	}
}
`)
	expect(t, "a", get(t, s, "/a/x"), 200, "from a", "miss", "stored")
	expect(t, "b", get(t, s, "/b/x"), 200, "from b", "miss", "stored")
	expect(t, "a again", get(t, s, "/a/x"), 200, "from a", "hit")
	if n := adminPurge(t, s, `{"url": "`+s.URL("/a/x")+`"}`); n != 1 {
		t.Errorf("purge of %s: %d entries, want 1", s.URL("/a/x"), n)
	}
	expect(t, "a after the purge", get(t, s, "/a/x"), 200, "from a", "miss", "stored")
	expect(t, "b after the purge of a", get(t, s, "/b/x"), 200, "from b", "hit")
}

// A rewrite that depends on something else than the URL (here a header;
// a country in practice) sends one URL to two resources: each is its own
// entry, and a purge or an unsafe request of the URL as clients request
// it removes both.
func TestDefaultKeyOfRewrittenRequest(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		if r.Method == http.MethodPost {
			return
		}
		io.WriteString(w, "page "+r.URL.Path)
	})
	s := caddytest.Start(t, `
http://localhost:{HTTP_PORT} {
	header >X-Result {http_cache.status}
	@eu header X-Region eu
	rewrite @eu /eu{uri}
	http_cache
	reverse_proxy `+o.addr()+`
}
`)
	expect(t, "world", get(t, s, "/p"), 200, "page /p", "miss", "stored")
	expect(t, "eu", get(t, s, "/p", "X-Region", "eu"), 200, "page /eu/p", "miss", "stored")
	expect(t, "world again", get(t, s, "/p"), 200, "page /p", "hit")
	expect(t, "eu again", get(t, s, "/p", "X-Region", "eu"), 200, "page /eu/p", "hit")
	if n := adminPurge(t, s, `{"url": "`+s.URL("/p")+`"}`); n != 2 {
		t.Errorf("purge of %s: %d entries, want both, 2", s.URL("/p"), n)
	}
	expect(t, "world after the purge", get(t, s, "/p"), 200, "page /p", "miss", "stored")
	expect(t, "eu after the purge", get(t, s, "/p", "X-Region", "eu"), 200, "page /eu/p", "miss", "stored")
	// An unsafe request of the URL invalidates both (RFC 9111 §4.4), even
	// when it is itself rewritten.
	if r := do(t, s, http.MethodPost, "/p", "X-Region", "eu"); r.status != 200 {
		t.Fatalf("POST: %d", r.status)
	}
	expect(t, "world after the POST", get(t, s, "/p"), 200, "page /p", "miss")
	expect(t, "eu after the POST", get(t, s, "/p", "X-Region", "eu"), 200, "page /eu/p", "miss")
}

// startTryFilesSite starts a site that sends every URL that is not a file
// to one front controller (try_files {path} /index.php?{query}) before
// the cache, as PHP sites do, and tells the origin the client's URL in
// X-Original-URI, as php_fastcgi's REQUEST_URI would.
func startTryFilesSite(t *testing.T, o *origin) *caddytest.Server {
	t.Helper()
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "index.php"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return caddytest.Start(t, `
http://localhost:{HTTP_PORT} {
	header >X-Result {http_cache.status}
	root * `+root+`
	try_files {path} /index.php?{query}
	http_cache
	reverse_proxy `+o.addr()+` {
		header_up X-Original-URI {http.request.orig_uri}
	}
}
`)
}

// try_files before the cache sends every pretty URL to one front
// controller (/index.php?{query}): each URL is still its own entry.
func TestDefaultKeyAfterTryFiles(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "page "+r.Header.Get("X-Original-URI")+" via "+r.URL.Path)
	})
	s := startTryFilesSite(t, o)
	expect(t, "first post", get(t, s, "/blog/first"), 200, "page /blog/first via /index.php", "miss", "stored")
	expect(t, "second post", get(t, s, "/blog/second"), 200, "page /blog/second via /index.php", "miss", "stored")
	expect(t, "first post again", get(t, s, "/blog/first"), 200, "page /blog/first via /index.php", "hit")
}

// A background fetch (a stale-while-revalidate refresh, a range fill) of
// a rewritten request is the client's request again: what the next
// handlers read of the request before its rewrites
// ({http.request.orig_uri}, as php_fastcgi's REQUEST_URI) is the
// client's, not the rewritten URL, or the front controller would render
// another page and the refresh would store it under the client's URL.
func TestBackgroundFetchKeepsOriginalRequest(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		// Stale on arrival, within a long stale-while-revalidate window.
		w.Header().Set("Cache-Control", "max-age=1, stale-while-revalidate=3600")
		w.Header().Set("Age", "10")
		io.WriteString(w, "page "+r.Header.Get("X-Original-URI"))
	})
	s := startTryFilesSite(t, o)
	waitFor(t, "earlier fetches to end", func() bool { return cache.Flights() == 0 })
	expect(t, "miss", get(t, s, "/blog/first"), 200, "page /blog/first", "")
	expect(t, "stale", get(t, s, "/blog/first"), 200, "page /blog/first", "stale", "detail=stale-while-revalidate")
	waitFor(t, "the refresh", func() bool { return o.n.Load() == 2 && cache.Flights() == 0 })
	if got := o.last().Header.Get("X-Original-URI"); got != "/blog/first" {
		t.Errorf("the refresh's {http.request.orig_uri} is %q, want /blog/first", got)
	}
	expect(t, "after the refresh", get(t, s, "/blog/first"), 200, "page /blog/first", "stale")
}

// A tiered store's memory tier has metrics of its own ("front:" and the
// store's name): whether it is large enough shows in its entries, bytes
// and evictions, not in the back store's.
func TestTieredFrontHasMetrics(t *testing.T) {
	dir := t.TempDir()
	o := newOrigin(t, serve("front", "Cache-Control", "max-age=600"))
	s := startCache(t, o, "store tiered {\n\tmemory {\n\t\tmax_size 16MiB\n\t}\n\tdisk "+dir+"\n}")
	expect(t, "miss", get(t, s, "/f"), 200, "front", "miss")
	expect(t, "hit, which fills the memory tier", get(t, s, "/f"), 200, "front", "hit")
	b := scrapeMetrics(t, s)
	name := "tiered:disk:" + dir
	for _, want := range []string{
		`caddy_http_cache_entries{store="` + name + `"} 1`,
		`caddy_http_cache_entries{store="front:` + name + `"} 1`,
		`caddy_http_cache_capacity_bytes{store="front:` + name + `"} 1.6777216e+07`,
		`caddy_http_cache_evictions_total{store="front:` + name + `"} 0`,
	} {
		if !strings.Contains(b, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
