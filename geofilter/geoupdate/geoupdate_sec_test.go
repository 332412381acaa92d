package geoupdate_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-edge/edge/geofilter/geoupdate"
	"github.com/caddy-edge/edge/internal/mmdbtest"
)

// A direct download's URL often carries the account's secret in its query
// (IPinfo: ?token=...); Status.Source leaves the query out for that reason.
// A failed request must not put it back into the status (shown by the
// admin API) or the error (logged).
func TestURLTokenNotInErrors(t *testing.T) {
	// A listener that accepts and closes at once: the request fails with a
	// *url.Error, whose message quotes the URL.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	u := newUpdater(t, geoupdate.Config{
		Path:    filepath.Join(t.TempDir(), "db.mmdb"),
		URL:     "http://" + ln.Addr().String() + "/data/lite.mmdb?token=SECRET-TOKEN",
		Timeout: 5 * time.Second,
	})
	_, err = u.Check(context.Background())
	if err == nil {
		t.Fatal("Check succeeded against a closed connection")
	}
	if strings.Contains(err.Error(), "SECRET-TOKEN") {
		t.Errorf("error quotes the token: %v", err)
	}
	if st := u.Status(); strings.Contains(st.LastResult, "SECRET-TOKEN") {
		t.Errorf("status (admin API) quotes the token: %s", st.LastResult)
	}
}

// A direct download that redirects to another host (a CDN, a storage
// bucket) must not hand that host the token in the query, which Go's
// client sends as the Referer of the redirected request.
func TestURLTokenNotSentToRedirectTarget(t *testing.T) {
	var (
		mu      sync.Mutex
		referer string
	)
	data := mmdbtest.BuildCountry(map[string]string{"81.2.69.0/24": "GB"})
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		referer = r.Header.Get("Referer")
		mu.Unlock()
		_, _ = w.Write(data)
	}))
	t.Cleanup(storage.Close)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, storage.URL+"/bucket/lite.mmdb?sig=x", http.StatusFound)
	}))
	t.Cleanup(origin.Close)
	u := newUpdater(t, geoupdate.Config{
		Path: filepath.Join(t.TempDir(), "db.mmdb"),
		URL:  origin.URL + "/data/lite.mmdb?token=SECRET-TOKEN",
	})
	if _, err := u.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Contains(referer, "SECRET-TOKEN") {
		t.Errorf("the redirect target got the token in Referer: %s", referer)
	}
}
