package cache_test

import (
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-edge/edge/cache"
)

// min_uses counts up to 100,000 URLs at a time. What it keeps of each must
// not be the URL: a client sending URLs of Caddy's 16 KiB header limit,
// each once, would make the count hold about 2 GiB, out of every store's
// budget (nginx keeps a hash of the key in keys_zone). 1,000 URLs of 32
// KiB here, requested once each, must leave the heap much as it was.
func TestMinUsesDoesNotKeepTheURLs(t *testing.T) {
	testMarksDoNotKeepTheURLs(t, &cache.Handler{MinUses: 2}, "max-age=3600", "detail=min-uses")
}

// The same for hit-for-miss marks (at most 10,000): any client makes a
// key hit-for-miss by asking for an uncacheable URL, which would hold
// 160 MiB of URLs at the header limit.
func TestHitForMissDoesNotKeepTheURLs(t *testing.T) {
	testMarksDoNotKeepTheURLs(t, &cache.Handler{}, "no-store", "detail=no-store")
}

func testMarksDoNotKeepTheURLs(t *testing.T, h *cache.Handler, cc, detail string) {
	provisioned(t, h)
	origin := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Cache-Control", cc)
		_, err := w.Write([]byte("body"))
		return err
	})
	long := strings.Repeat("a", 32<<10)
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	for i := range 1000 {
		w := &discardWriter{h: make(http.Header)}
		r := benchRequest(t, fmt.Sprintf("http://example.com/%d/%s", i, long))
		if err := h.ServeHTTP(w, r, origin); err != nil {
			t.Fatal(err)
		}
		if cs := w.h.Get("Cache-Status"); !strings.Contains(cs, detail) {
			t.Fatalf("request %d: Cache-Status %q, want %s", i, cs, detail)
		}
	}
	after := heap()
	runtime.KeepAlive(h)
	if grown := int64(after) - int64(before); grown > 4<<20 {
		t.Errorf("the heap grew by %d KiB for 1,000 URLs of 32 KiB marked (%s): the marks keep the URLs", grown>>10, detail)
	}
}
