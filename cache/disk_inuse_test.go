package cache_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-edge/edge/cache/store/disk"
	"github.com/caddy-edge/edge/internal/caddytest"
)

// holdDisk has a child process of the test binary hold the disk store
// directory dir (holdDiskEnv) until release is called or the test ends.
func holdDisk(t *testing.T, dir string) (release func()) {
	t.Helper()
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), holdDiskEnv+"="+dir)
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			stdin.Close()
			if err := child.Wait(); err != nil {
				t.Errorf("the other process: %v", err)
			}
		})
	}
	t.Cleanup(release)
	var out bytes.Buffer
	if _, err := io.CopyN(&out, stdout, int64(len("held\n"))); err != nil || out.String() != "held\n" {
		t.Fatalf("the other process: %q, %v", out.String(), err)
	}
	return release
}

// loadRefused loads cfgJSON, as caddy run does, and wants it refused for
// the directory dir that another process holds.
func loadRefused(t *testing.T, what string, cfgJSON []byte, dir string) {
	t.Helper()
	err := caddy.Load(cfgJSON, true)
	caddy.Stop()
	if err == nil || !strings.Contains(err.Error(), "in use by another process") || !strings.Contains(err.Error(), dir) {
		t.Errorf("%s: %v, want an in-use error naming %s", what, err, dir)
	}
}

// A disk store behind a tiered store's memory tier, in a directory another
// process holds: validate passes, starting is refused.
func TestDiskStoreInUseTiered(t *testing.T) {
	dir := t.TempDir()
	holdDisk(t, dir)
	o := newOrigin(t, serve("page", "Cache-Control", "max-age=60"))
	cfgJSON, _, err := adaptCaddyfile(siteConfig(o, "store tiered {\n\tdisk "+dir+"\n}"))
	if err != nil {
		t.Fatal(err)
	}
	if err := caddytest.Validate(t, cfgJSON); err != nil {
		t.Errorf("validate: %v", err)
	}
	loadRefused(t, "tiered", cfgJSON, dir)
}

// Two sites naming one directory another process holds: refused.
func TestDiskStoreInUseTwoSites(t *testing.T) {
	dir := t.TempDir()
	holdDisk(t, dir)
	o := newOrigin(t, serve("page", "Cache-Control", "max-age=60"))
	site := siteConfig(o, "store disk "+dir)
	two := site + strings.Replace(site, "http://localhost:{HTTP_PORT}", "http://127.0.0.1:{HTTP_PORT}", 1)
	cfgJSON, _, err := adaptCaddyfile(two)
	if err != nil {
		t.Fatal(err)
	}
	loadRefused(t, "two sites", cfgJSON, dir)
}

// A config that also configures the http_cache_disk app itself is refused
// the same, whichever of it and the http app Caddy provisions first.
func TestDiskStoreInUseExplicitApp(t *testing.T) {
	dir := t.TempDir()
	holdDisk(t, dir)
	o := newOrigin(t, serve("page", "Cache-Control", "max-age=60"))
	cfgJSON, _, err := adaptCaddyfile(siteConfig(o, "store disk "+dir))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(cfgJSON, &m); err != nil {
		t.Fatal(err)
	}
	m["apps"].(map[string]any)["http_cache_disk"] = map[string]any{}
	cfgJSON, _ = json.Marshal(m)
	for i := range 10 { // Go's map order: provisioned first or second
		loadRefused(t, fmt.Sprint("explicit app ", i), cfgJSON, dir)
	}
}

// A reload (POST /load, as caddy reload sends it) to a config naming a
// directory another process holds is refused with a message naming it,
// and the running config goes on serving from its store.
func TestDiskStoreInUseReload(t *testing.T) {
	dir := t.TempDir()
	holdDisk(t, dir)
	o := newOrigin(t, serve("page", "Cache-Control", "max-age=60"))
	s := caddytest.Start(t, siteConfig(o, ""))
	expect(t, "first", get(t, s, "/a"), 200, "page", "miss", "stored")
	cfg := caddytest.Global("") + strings.NewReplacer("{HTTP_PORT}", fmt.Sprint(s.HTTPPort)).Replace(siteConfig(o, "store disk "+dir))
	cfg = strings.NewReplacer("{HTTP_PORT}", fmt.Sprint(s.HTTPPort), "{ADMIN_ADDR}", s.AdminAddr).Replace(cfg)
	for range 5 {
		resp, err := http.Post(s.AdminURL("/load"), "text/caddyfile", strings.NewReader(cfg))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 || !strings.Contains(string(b), "in use by another process") || !strings.Contains(string(b), dir) {
			t.Errorf("reload: %d %s", resp.StatusCode, b)
		}
		expect(t, "the running config stays", get(t, s, "/a"), 200, "page", "hit")
	}
}

// caddy validate of a config whose directory another process holds still
// checks the rest of the store's configuration.
func TestDiskStoreInUseValidateChecks(t *testing.T) {
	dir := t.TempDir()
	holdDisk(t, dir)
	for _, c := range []struct{ store, want string }{
		{`{"module":"disk","path":"` + dir + `","max_size":1000}`, "below the minimum"},
		{`{"module":"disk","path":"` + dir + `","max_entries":-1}`, "max_entries must not be negative"},
		{`{"module":"tiered","memory":{"max_size":1000},"back":{"module":"disk","path":"` + dir + `"}}`, "below the minimum"},
	} {
		cfgJSON := `{"apps":{"http":{"servers":{"s":{"listen":[":0"],"routes":[{"handle":[{"handler":"http_cache","store":` + c.store + `}]}]}}}}}`
		if err := caddytest.Validate(t, []byte(cfgJSON)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.store, err, c.want)
		}
	}
}

// A config refused for a directory another process holds names every
// such directory, not only the first: the operator fixes them all at
// once. The free directory it opened meanwhile is closed and unlocked.
func TestDiskStoreInUseNamesEveryDirectory(t *testing.T) {
	held1, held2, free := t.TempDir(), t.TempDir(), t.TempDir()
	holdDisk(t, held1)
	holdDisk(t, held2)
	o := newOrigin(t, serve("page", "Cache-Control", "max-age=60"))
	site := siteConfig(o, "store disk "+held1)
	sites := site +
		strings.Replace(strings.Replace(site, "localhost", "127.0.0.1", 1), held1, free, 1) +
		strings.Replace(strings.Replace(site, "localhost", "[::1]", 1), held1, held2, 1)
	cfgJSON, _, err := adaptCaddyfile(sites)
	if err != nil {
		t.Fatal(err)
	}
	err = caddy.Load(cfgJSON, true)
	caddy.Stop()
	for _, dir := range []string{held1, held2} {
		if err == nil || !strings.Contains(err.Error(), dir) {
			t.Errorf("refused: %v, want it to name %s", err, dir)
		}
	}
	if err != nil && strings.Contains(err.Error(), free) {
		t.Errorf("refused: %v names the free directory %s", err, free)
	}
	if d := disk.Dirs(); len(d) != 0 {
		t.Errorf("open after the refusal: %v", d)
	}
	c, err := disk.Open(disk.Config{Dir: free})
	if err != nil {
		t.Fatalf("the free directory after the refusal: %v", err)
	}
	c.Close()
}
