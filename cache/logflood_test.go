package cache_test

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-edge/edge/internal/caddytest"
	"github.com/caddy-edge/edge/internal/redistest"
)

// loggedSite is a Caddyfile of one site with http_cache (its block
// lines) in front of o, whose logs (Caddy's default logger) go, as JSON,
// to a file in a temporary directory; it returns the Caddyfile and the
// file.
func loggedSite(t *testing.T, o *origin, options string) (string, string) {
	t.Helper()
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	return caddytest.LoggedGlobal(logFile) + siteConfig(o, options), logFile
}

// logLines returns the lines of the JSON log file at level (e.g.
// "error") whose message contains msg.
func logLines(t *testing.T, file, level, msg string) []map[string]any {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		if m["level"] == level && strings.Contains(m["msg"].(string), msg) {
			out = append(out, m)
		}
	}
	return out
}

// allowedLines is how many error lines per kinds of failure, each logged
// at most once every 10 s, may have been written since start.
func allowedLines(start time.Time, kinds int) int {
	return kinds * (1 + int(time.Since(start)/(10*time.Second)))
}

// missesLogRateLimited sends 40 misses (path(i)) that the store fails to
// keep, with what is failing said by failing, and checks that each is
// answered, that hits go on, and that the log has an error line but at
// most one of each of kinds messages per 10 s, not one per miss.
func missesLogRateLimited(t *testing.T, s *caddytest.Server, logFile, failing string, kinds int, path func(int) string) {
	t.Helper()
	const n = 40
	start := time.Now()
	for i := range n {
		r := get(t, s, path(i))
		if r.status != 200 || r.body != "v" {
			t.Fatalf("miss %d with %s: %d %q", i, failing, r.status, r.body)
		}
	}
	expect(t, "hit with "+failing, get(t, s, "/warm"), 200, "v", "hit", "hit")
	lines := logLines(t, logFile, "error", "")
	if len(lines) == 0 {
		t.Fatalf("no error logged with %s on every write", failing)
	}
	if len(lines) > allowedLines(start, kinds) {
		t.Errorf("%d error lines for %d misses with %s, want at most %d (one of each of %d messages per 10 s); the next: %.300v", len(lines), n, failing, allowedLines(start, kinds), kinds, lines[kinds])
	}
}

// A Redis at maxmemory under noeviction refuses every write (OOM) while it
// still serves reads: each miss then fails to store its response. That is
// one failure of the store, not one per request: the cache must not write
// an error line per request (which any client sending misses, each with
// its own URL in the line, would turn into a flood of the operator's log),
// but one line, then at most one every 10 s with the number not logged.
func TestStoreWriteFailuresLogRateLimited(t *testing.T) {
	srv := redistest.Start(t)
	o := newOrigin(t, serve("v", "Cache-Control", "max-age=600"))
	cf, logFile := loggedSite(t, o, "store redis {\n address "+srv.Addr+"\n timeout 2s\n}")
	s := caddytest.Start(t, cf)
	expect(t, "fill", get(t, s, "/warm"), 200, "v", "miss", "stored")
	waitFor(t, "the hit", func() bool { return get(t, s, "/warm").header.Get("X-Result") == "hit" })
	srv.Do("CONFIG", "SET", "maxmemory", "1")
	srv.Do("CONFIG", "SET", "maxmemory-policy", "noeviction")
	missesLogRateLimited(t, s, logFile, "Redis refusing writes", 1, func(i int) string {
		return "/p" + strconv.Itoa(i) + "?" + strings.Repeat("x", 2000)
	})
}

// The disk store promises (README, "Disk full or read-only") that failed
// writes are logged at most once every 10 s, with the number not logged.
// Its temporary directory made unusable, every miss fails to start its
// file: the handler must not log each one again.
func TestDiskWriteFailuresLogRateLimited(t *testing.T) {
	dir := t.TempDir()
	o := newOrigin(t, serve("v", "Cache-Control", "max-age=600"))
	cf, logFile := loggedSite(t, o, "store disk {\n path "+dir+"\n}")
	s := caddytest.Start(t, cf)
	expect(t, "fill", get(t, s, "/warm"), 200, "v", "miss", "stored")
	// A file where the directory of the files being written was: as a
	// file system that went read-only or whose inodes ran out, every new
	// file fails.
	tmp := filepath.Join(dir, "tmp")
	if err := os.RemoveAll(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	missesLogRateLimited(t, s, logFile, "the disk failing", 2, func(i int) string { return "/p" + strconv.Itoa(i) })
}
