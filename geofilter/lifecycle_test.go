package geofilter

import (
	"os"
	"testing"
	"time"

	"github.com/caddy-edge/edge/internal/mmdbtest"
)

// The checks of a shared file follow the reload_interval of the newest
// config that holds it: a config that goes away (a reload that failed
// validation after the databases were opened, a site removed) takes its
// interval with it, and the interval of the configs still running applies
// again.
func TestIntervalOfAReleasedUserDoesNotStay(t *testing.T) {
	path := mmdbtest.Country(t, map[string]string{"81.2.69.0/24": "GB"})
	running := openObservedForTest(t, watchOptions{interval: -1, user: "geofilter running"}, path)
	w := running.entries[0]
	if got := time.Duration(w.interval.Load()); got != -1 {
		t.Fatalf("interval %v, want -1 (off)", got)
	}
	// A reload opens the file with frequent checks, and fails.
	failed, err := openDatabases([]DatabaseConfig{{Path: path}}, watchOptions{interval: time.Second, user: "geofilter failed"})
	if err != nil {
		t.Fatal(err)
	}
	if got := time.Duration(w.interval.Load()); got != time.Second {
		t.Fatalf("interval while the reload is provisioned %v, want 1s", got)
	}
	if err := failed.close(); err != nil {
		t.Fatal(err)
	}
	if got := time.Duration(w.interval.Load()); got != -1 {
		t.Errorf("interval once the failed reload is gone: %v, want the running config's -1 (off)", got)
	}
}

// A forced check (POST /geofilter/reload, or the updater's reload of a file
// it replaced) that comes when the last user has just released the file
// does nothing: it would load the file again and hold a file descriptor
// for an entry nobody uses any more.
func TestCheckAfterDestructHoldsNoFile(t *testing.T) {
	path := mmdbtest.Country(t, map[string]string{"81.2.69.0/24": "GB"})
	d, err := openDatabases([]DatabaseConfig{{Path: path}}, watchOptions{interval: -1})
	if err != nil {
		t.Fatal(err)
	}
	w := d.entries[0]
	ws := watchers(w.path) // what the admin API's reload found, before...
	if len(ws) != 1 {
		t.Fatalf("%d watchers for %s", len(ws), path)
	}
	if err := d.close(); err != nil { // ...the config is unloaded
		t.Fatal(err)
	}
	before := openFiles(t)
	mmdbtest.WriteFile(t, path+".new", mmdbtest.BuildCountry(map[string]string{"81.2.69.0/24": "SE"}))
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	_, _ = ws[0].check(true)
	w.mu.Lock()
	pinned := w.pin != nil || w.seenPin != nil
	w.mu.Unlock()
	if pinned || openFiles(t) > before {
		t.Errorf("a check after the last release holds a file open (pin %v, open files %d, before %d)", pinned, openFiles(t), before)
	}
}

// openFiles returns the number of the process's open file descriptors.
func openFiles(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(fds)
}
