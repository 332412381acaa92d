package cache_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/caddy-edge/edge/internal/redistest"
)

// A request that follows a body being stored in Redis reads the chunks
// the writer already sent from the writer's memory, not from Redis: when
// they are gone from Redis meanwhile (evicted under maxmemory, flushed),
// it still gets the whole body, as the first client does. The entry then
// lacks a chunk, and is a miss, never a short body.
func TestFollowerOfARedisBodyGetsItWholeWhenItsChunksAreGone(t *testing.T) {
	srv := redistest.Start(t)
	// The first part fills the first 256 KiB chunk, which is sent to
	// Redis before the second part arrives.
	first, second := bytes.Repeat([]byte("a"), 300<<10), bytes.Repeat([]byte("b"), 50000)
	release := make(chan struct{})
	o := newOrigin(t, partsOrigin(first, second, release, nil))
	s := startFollowCache(t, o, "collapse_timeout 5s\nstore redis {\n\taddress "+srv.Addr+"\n\ttimeout 2s\n}\n")
	leader := leaderOf(t, s, "/gone", first)
	srv.Do("FLUSHALL")
	waiter := startFollowers(t, s, "/gone", 1, first)[0]
	if got := waiter.Header.Get("X-Result"); got != "collapsed" {
		t.Fatalf("the waiting request: {http_cache.status} %q, want collapsed", got)
	}
	close(release)
	expectRest(t, "the waiting request", waiter, second)
	expectRest(t, "the first client", leader, second)
	if n := o.n.Load(); n != 1 {
		t.Errorf("origin got %d requests while the body arrived, want 1", n)
	}
	landed(t)
	got := get(t, s, "/gone")
	if got.status != http.StatusOK || got.body != string(first)+string(second) || got.header.Get("X-Result") == "hit" {
		t.Errorf("then: status %d, %d bytes, %s; want the whole body, not a hit", got.status, len(got.body), got.header.Get("X-Result"))
	}
}
