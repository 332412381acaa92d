package cache_test

import (
	"io"
	"net/http"
	"testing"
	"time"
)

// Issue 11 item 4: If-Modified-Since on a fresh stored response without
// Last-Modified is answered with 304 when the stored Date is not after the
// request's date (RFC 9111 §4.3.2), and with the full response otherwise.
func TestIfModifiedSinceWithoutLastModified(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "body")
	})
	s := startCache(t, o, "")
	expect(t, "fill", get(t, s, "/ims"), 200, "body", "miss", "stored")
	later := time.Now().Add(time.Minute).UTC().Format(http.TimeFormat)
	earlier := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	expect(t, "IMS after the stored Date", get(t, s, "/ims", "If-Modified-Since", later), 304, "", "hit", "hit")
	expect(t, "IMS before the stored Date", get(t, s, "/ims", "If-Modified-Since", earlier), 200, "body", "hit", "hit")
	if n := o.n.Load(); n != 1 {
		t.Errorf("origin got %d requests, want 1", n)
	}
}
