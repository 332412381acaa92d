package cache_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/caddy-edge/edge/internal/redistest"
)

// A request that follows a body being stored in Redis reads the chunks
// already sent from Redis, as a hit does. When one of them is gone
// (evicted under maxmemory) its response is cut, never completed with
// other bytes; the first client, past that chunk, gets the whole body,
// and the entry, stored without the chunk, is a miss.
func TestFollowerOfARedisBodyWithAChunkGoneIsCut(t *testing.T) {
	srv := redistest.Start(t)
	// The first part fills the first 256 KiB chunk, which is sent to
	// Redis before the second part arrives.
	first, second := bytes.Repeat([]byte("a"), 300<<10), bytes.Repeat([]byte("b"), 50000)
	release := make(chan struct{})
	o := newOrigin(t, partsOrigin(first, second, release, nil))
	s := startFollowCache(t, o, "collapse_timeout 5s\nstore redis {\n\taddress "+srv.Addr+"\n\ttimeout 2s\n}\n")
	leader := leaderOf(t, s, "/gone", first)
	srv.Do("FLUSHALL")
	// Its header may have gone out or not when the read of the gone
	// chunk fails: either way the connection is closed, short.
	resp, err := s.Client.Get(s.URL("/gone"))
	close(release)
	if err == nil {
		defer resp.Body.Close()
		if got := resp.Header.Get("X-Result"); got != "collapsed" {
			t.Fatalf("the waiting request: {http_cache.status} %q, want collapsed", got)
		}
		expectCut(t, "the waiting request", resp, func(r rune) bool { return r == 'a' })
	}
	expectRest(t, "the first client", leader, second)
	if n := o.n.Load(); n != 1 {
		t.Errorf("origin got %d requests, want 1", n)
	}
	// The stored entry misses its first chunk: a miss, not a short body.
	landed(t)
	got := get(t, s, "/gone")
	if got.status != http.StatusOK || got.body != string(first)+string(second) {
		t.Errorf("then: status %d, %d bytes, want the whole body from the origin", got.status, len(got.body))
	}
}
