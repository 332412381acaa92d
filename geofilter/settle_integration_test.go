package geofilter_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-edge/edge/geofilter"
	"github.com/caddy-edge/edge/internal/caddytest"
	"github.com/caddy-edge/edge/internal/mmdbtest"
)

// TestIntegrationListRewrittenInPlaceSettles: an IP list rewritten in place
// (as `curl -o list.netset` or `cat new > list.netset` do: truncate, then
// write as the data comes) is read by the filter's checks between two
// writes, when the first half of its lines is there: a valid list of its
// own. It is not served: a client listed in the old list and in the second
// half of the new one stays denied throughout, while the admin API says the
// file is settling; once the writer is done and the file left alone, the
// whole new list is served.
func TestIntegrationListRewrittenInPlaceSettles(t *testing.T) {
	list := filepath.Join(t.TempDir(), "drop.netset")
	mmdbtest.WriteFile(t, list, []byte("# old\n198.51.100.0/24\n203.0.113.0/24\n"))
	s := caddytest.Start(t, globalTrusted+`
http://localhost:{HTTP_PORT} {
	geofilter {
		reload_interval 10ms
		deny ip_list `+list+`
	}
	respond "ok"
}
`)
	const (
		onlyOld    = "198.51.100.9" // in the old list only
		secondHalf = "203.0.113.9"  // in the old list and the new one's second half
		firstHalf  = "192.0.2.9"    // in the new list's first half only
	)
	code := func(client string) int {
		t.Helper()
		c, _, err := getQuiet(s, client)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	info := func() geofilter.DatabaseInfo { return adminInfo(t, s, list) }
	if code(onlyOld) != 403 || code(secondHalf) != 403 || code(firstHalf) != 200 {
		t.Fatal("the old list is not served at start")
	}

	// A client from the second half asks all along; it must never pass.
	var passed, asked atomic.Int64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if c, _, err := getQuiet(s, secondHalf); err == nil {
				asked.Add(1)
				if c != 403 {
					passed.Add(1)
				}
			}
		}
	}()
	defer func() {
		close(stop)
		<-done
		if n := passed.Load(); n > 0 {
			t.Errorf("%d of %d requests from %s were let through", n, asked.Load(), secondHalf)
		}
	}()

	fh, err := os.OpenFile(list, os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.WriteString("# new\n192.0.2.0/24\n"); err != nil {
		t.Fatal(err)
	}
	written := time.Now()
	// Checks see the half list (every 10 ms) until the admin API says so.
	since := time.Now()
	for deadline := since.Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		i := info()
		if strings.HasPrefix(i.LastResult, "settling: ") && i.LastCheck.After(since) {
			if i.Reloads != 0 || i.Failures != 0 {
				t.Errorf("while settling: %+v", i)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the half-written list is not reported settling within 10 s: %+v", i)
		}
	}
	// The writer waits for more data (300 ms, well within the 1 s settle
	// time): many checks see the half list unchanged. It is still the old
	// list that decides.
	time.Sleep(time.Until(written.Add(300 * time.Millisecond)))
	if code(onlyOld) != 403 || code(firstHalf) != 200 {
		t.Error("the half-written list was served")
	}
	if _, err := fh.WriteString("203.0.113.0/24\n"); err != nil {
		t.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
	// Once settled, the whole new list is served.
	for deadline := time.Now().Add(10 * time.Second); code(firstHalf) != 403; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the new list was not loaded within 10 s: %+v", info())
		}
	}
	if code(onlyOld) != 200 || code(secondHalf) != 403 {
		t.Error("the new list is not served whole")
	}
	if i := info(); i.Reloads != 1 || i.Failures != 0 {
		t.Errorf("after the settled rewrite: %+v, want one reload and no failure", i)
	}
}
