package cache_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/caddy-edge/edge/cache/store/disk"
	"github.com/caddy-edge/edge/internal/caddytest"
)

// diskStats returns the numbers of the disk store in dir in GET
// /http_cache/stats.
func diskStats(t *testing.T, s *caddytest.Server, dir string) map[string]int64 {
	t.Helper()
	return storeStats(t, s, "disk:"+dir)
}

// The disk store through a real Caddy: entries survive a restart of Caddy
// and are served again with their correct Age; a reload keeps the store
// open and applies a new max_size; stopping Caddy closes it.
func TestDiskStoreRestartReloadStop(t *testing.T) {
	dir := t.TempDir()
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<17) // 2 MiB: sent from the file
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Age", "100") // already 100 s old: the Age must keep counting from there
		w.Header().Set("ETag", `"e"`)
		if r.Header.Get("If-None-Match") == `"e"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if r.URL.Path == "/big" {
			w.Write(big)
			return
		}
		io.WriteString(w, "small "+r.URL.Path)
	})
	conf := func(size string) string {
		return siteConfig(o, "store disk {\n\tpath "+dir+"\n\tmax_size "+size+"\n}")
	}
	s := caddytest.Start(t, conf("64MiB"))
	expect(t, "first", get(t, s, "/a"), 200, "small /a", "miss")
	expect(t, "second", get(t, s, "/a"), 200, "small /a", "hit")
	if r := get(t, s, "/big"); r.body != string(big) {
		t.Fatalf("big miss: %d bytes", len(r.body))
	}
	r := get(t, s, "/big")
	expect(t, "big hit", r, 200, "*", "hit")
	if r.body != string(big) {
		t.Errorf("big hit: %d bytes, want %d", len(r.body), len(big))
	}
	rr := get(t, s, "/big", "Range", "bytes=1000000-1000015")
	if rr.status != http.StatusPartialContent || rr.body != string(big[1000000:1000016]) {
		t.Errorf("range of the big hit: %d %q", rr.status, rr.body)
	}

	// Reload with another size: same store, same entries, new budget.
	reload(t, s, conf("32MiB"))
	waitFor(t, "the new max_size", func() bool { return diskStats(t, s, dir)["capacity"] == 32<<20 })
	expect(t, "hit after reload", get(t, s, "/a"), 200, "small /a", "hit")

	// Restart: stop Caddy (the store closes and releases the directory),
	// then start a new one on the same directory.
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	if d := disk.Dirs(); len(d) != 0 {
		t.Fatalf("disk stores still open after Caddy stopped: %v", d)
	}
	c, err := disk.Open(disk.Config{Dir: dir})
	if err != nil {
		t.Fatalf("the directory is still locked after Caddy stopped: %v", err)
	}
	c.Close()

	n := o.n.Load()
	// The same ports: the cache key has the host and port.
	s2 := &caddytest.Server{HTTPPort: s.HTTPPort, AdminAddr: s.AdminAddr, Client: &http.Client{}}
	s2.Load(t, conf("64MiB"))
	r = get(t, s2, "/a")
	expect(t, "hit after restart", r, 200, "small /a", "hit")
	if age, _ := strconv.Atoi(r.header.Get("Age")); age < 100 || age > 400 {
		t.Errorf("Age after restart = %q, want 100 plus the seconds since it was stored", r.header.Get("Age"))
	}
	r = get(t, s2, "/big")
	expect(t, "big hit after restart", r, 200, "*", "hit")
	if r.body != string(big) {
		t.Errorf("big hit after restart: %d bytes", len(r.body))
	}
	if o.n.Load() != n {
		t.Errorf("the origin got %d requests after the restart, want 0", o.n.Load()-n)
	}
	if st := diskStats(t, s2, dir); st["entries"] != 2 {
		t.Errorf("stats after restart: %v, want 2 entries", st)
	}
	// The admin API lists, soft-purges and purges the disk store's entries.
	_, p := listEntries(t, s2, "store=disk:"+dir)
	if len(p.Entries) != 2 || p.Entries[0].Key != s2.URL("/a") || p.Entries[0].Age < 100 {
		t.Errorf("entries of the disk store: %+v", p.Entries)
	}
	if n := adminPurge(t, s2, `{"url": "`+s2.URL("/a")+`", "soft": true}`); n != 1 {
		t.Errorf("soft purge: %d", n)
	}
	expect(t, "soft-purged", get(t, s2, "/a"), 200, "small /a", "revalidated")
	if n := adminPurge(t, s2, `{"prefix": "`+s2.URL("/")+`"}`); n != 2 {
		t.Errorf("purge: %d, want 2", n)
	}
	expect(t, "purged", get(t, s2, "/a"), 200, "small /a", "miss")
}

// max_entries through a real Caddy: the store holds no more entries than
// it, and a reload to a lower bound evicts down to it once the old config
// is unloaded.
func TestDiskStoreMaxEntries(t *testing.T) {
	dir := t.TempDir()
	o := newOrigin(t, serve("small", "Cache-Control", "max-age=3600"))
	conf := func(n string) string {
		return siteConfig(o, "store disk {\n\tpath "+dir+"\n\tmax_entries "+n+"\n}")
	}
	s := caddytest.Start(t, conf("3"))
	for i := range 5 {
		expect(t, "fill", get(t, s, fmt.Sprint("/", i)), 200, "small", "miss", "stored")
	}
	if st := diskStats(t, s, dir); st["entries"] != 3 || st["evictions"] != 2 {
		t.Errorf("max_entries 3 after 5 stored: %v", st)
	}
	expect(t, "the last stored", get(t, s, "/4"), 200, "small", "hit")
	reload(t, s, conf("1"))
	waitFor(t, "max_entries 1 after the reload", func() bool { return diskStats(t, s, dir)["entries"] == 1 })
}

// A disk store without a path, or one whose directory cannot be created,
// is refused at load with a message that names it.
func TestDiskStoreBadConfig(t *testing.T) {
	o := newOrigin(t, serve("x"))
	for _, tc := range []struct{ block, want string }{
		{"store disk", "path is required"},
		{"store disk {\n max_size 10GiB\n}", "path is required"},
		{"store disk /tmp/x {\n max_size 100KiB\n}", "minimum is 1MiB"},
		{"store disk /tmp/x {\n bogus 1\n}", "unrecognized disk store option 'bogus'"},
	} {
		_, _, err := adaptCaddyfile(siteConfig(o, tc.block))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error with %q", tc.block, err, tc.want)
		}
	}
	// A path that cannot be a directory: refused when the config loads.
	cfg, _, err := adaptCaddyfile(siteConfig(o, "store disk /dev/null/cache"))
	if err != nil {
		t.Fatal(err)
	}
	if err := caddy.Load(cfg, true); err == nil || !strings.Contains(err.Error(), "disk store") {
		t.Errorf("loading a disk store under /dev/null: %v, want a disk store error", err)
	}
	caddy.Stop()
}

func adaptCaddyfile(caddyfile string) ([]byte, []caddyconfig.Warning, error) {
	port := caddytest.FreePort(&testing.T{})
	full := fmt.Sprintf("{\n\tadmin off\n\tauto_https off\n\tpersist_config off\n}\n%s", strings.ReplaceAll(caddyfile, "{HTTP_PORT}", fmt.Sprint(port)))
	return caddyconfig.GetAdapter("caddyfile").Adapt([]byte(full), nil)
}

// holdDiskEnv names the directory a child process of the test binary opens
// as a disk store and holds until its stdin closes (TestMain).
const holdDiskEnv = "EDGE_TEST_HOLD_DISK_STORE"

func TestMain(m *testing.M) {
	if dir := os.Getenv(holdDiskEnv); dir != "" {
		holdDiskStore(dir)
	}
	os.Exit(m.Run())
}

// holdDiskStore runs when the test binary is the child process that holds
// a disk store: it opens dir, says "held", and keeps it until stdin ends.
func holdDiskStore(dir string) {
	c, err := disk.Open(disk.Config{Dir: dir})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	fmt.Println("held")
	io.Copy(io.Discard, os.Stdin)
	c.Close()
	os.Exit(0)
}

// A disk store directory that another Caddy process serves from: `caddy
// validate` of the config passes (it provisions the store in a process of
// its own, and must not be refused on the host that runs Caddy), while
// starting a config with it is refused with a message that names it. Once
// the other process is gone, the config starts.
func TestDiskStoreInUseByAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	release := holdDisk(t, dir)

	o := newOrigin(t, serve("page", "Cache-Control", "max-age=60"))
	caddyfile := siteConfig(o, "store disk "+dir)
	cfgJSON, _, err := adaptCaddyfile(caddyfile)
	if err != nil {
		t.Fatal(err)
	}
	if err := caddytest.Validate(t, cfgJSON); err != nil {
		t.Errorf("caddy validate while another process holds the store: %v", err)
	}
	err = caddy.Load(cfgJSON, true)
	caddy.Stop()
	if err == nil || !strings.Contains(err.Error(), "in use by another process") || !strings.Contains(err.Error(), dir) {
		t.Errorf("starting while another process holds the store: %v, want an in-use error naming %s", err, dir)
	}

	release()
	s := caddytest.Start(t, caddyfile)
	expect(t, "once the other process is gone", get(t, s, "/a"), 200, "page", "miss", "stored")
	expect(t, "and again", get(t, s, "/a"), 200, "page", "hit")
}
