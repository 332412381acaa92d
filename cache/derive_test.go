package cache_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-edge/edge/cache"
)

// Two sites with different options share a memory store too small to keep
// every entry decoded. The entries a hit decodes again get the derived
// data of the site that stored them, so that the site's hits reuse it
// instead of parsing the header at each hit.
func TestDecodedEntriesDeriveWithTheirSitesOptions(t *testing.T) {
	store := []byte(`{"module":"memory","name":"derive-test","max_size":1048576}`)
	a := &cache.Handler{StoreRaw: store}
	b := &cache.Handler{StoreRaw: store, DefaultTTL: caddy.Duration(time.Minute)}
	provisioned(t, a)
	provisioned(t, b)
	origin := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Etag", `"`+r.URL.Path+`"`)
		if strings.HasSuffix(r.URL.Path, "0") {
			w.Header().Set("Vary", "Accept-Encoding") // a vary marker too
		}
		_, err := w.Write([]byte("body"))
		return err
	})
	const n = 1000
	w := &discardWriter{h: make(http.Header)}
	for i := range n {
		for site, h := range map[string]*cache.Handler{"a": a, "b": b} {
			clear(w.h)
			r := benchRequest(t, "http://"+site+".example/"+strconv.Itoa(i))
			if err := h.ServeHTTP(w, r, origin); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx := context.Background()
	listed, err := a.Store.Entries(ctx, "", "", 4*n)
	if err != nil {
		t.Fatal(err)
	}
	checked, markers := 0, 0
	for _, l := range listed {
		e, body, err := a.Store.Get(ctx, l.Key)
		if err != nil {
			continue // evicted meanwhile
		}
		body.Close()
		h := a
		if strings.Contains(l.Key, "b.example") {
			h = b
		}
		if !cache.DerivedFor(h, e) {
			t.Fatalf("entry %s has derived data %T not of its site's options", l.Key, e.Derived)
		}
		checked++
		if e.Status == 0 {
			markers++
		}
	}
	if checked < n || markers < n/20 {
		t.Errorf("only %d entries, %d of them vary markers, checked: the store kept too few", checked, markers)
	}

	// A reload with other options: the new handler is provisioned, the
	// old ones cleaned up. Their entries are now derived for the new one.
	c := &cache.Handler{StoreRaw: store, DefaultTTL: caddy.Duration(2 * time.Minute)}
	provisioned(t, c)
	a.Cleanup()
	b.Cleanup()
	for _, l := range listed {
		e, body, err := c.Store.Get(ctx, l.Key)
		if err != nil {
			continue
		}
		body.Close()
		if !cache.DerivedFor(c, e) {
			t.Fatalf("after the reload, entry %s has derived data not of the new options", l.Key)
		}
	}
}
