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

// A direct download has no checksum from elsewhere (MaxMind's comes from
// the update service, over https): over plain http, anyone on the path
// could hand the filter a database of their own (every address in an
// allowed country, or none), and see the URL's token. http is refused
// but to this machine, as for MaxMind's endpoint, and so is a redirect
// from https to http elsewhere.
func TestPlainHTTPDownloadRefused(t *testing.T) {
	for _, raw := range []string{"http://mirror.example.com/db.mmdb", "http://192.0.2.1/db.mmdb?token=x"} {
		_, err := geoupdate.New(geoupdate.Config{Path: "x.mmdb", URL: raw})
		if err == nil || !strings.Contains(err.Error(), "use https") {
			t.Errorf("update_url %s: %v, want it refused (use https)", raw, err)
		}
	}

	data := mmdbtest.BuildCountry(map[string]string{"81.2.69.0/24": "GB"})
	origin := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://mirror.example.com/lite.mmdb", http.StatusFound)
	}))
	t.Cleanup(origin.Close)
	client := origin.Client()
	tls := client.Transport
	// The plain-http mirror, answered here: whoever is on its path.
	client.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.URL.Scheme == "http" {
			rec := httptest.NewRecorder()
			_, _ = rec.Write(data)
			return rec.Result(), nil
		}
		return tls.RoundTrip(r)
	})
	u := newUpdater(t, geoupdate.Config{Path: filepath.Join(t.TempDir(), "db.mmdb"), URL: origin.URL + "/lite.mmdb", Client: client})
	res, err := u.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "use https") {
		t.Errorf("redirect from https to a plain-http host: %v %v, want it refused", res, err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
