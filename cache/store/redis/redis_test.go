package redis

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-edge/edge/cache/store"
	"github.com/caddy-edge/edge/cache/store/storetest"
	"github.com/caddy-edge/edge/internal/redistest"
)

var prefixN atomic.Int64

// newTestClient returns a connected Client on srv's addresses with a
// prefix of its own, closed when the test ends.
func newTestClient(t testing.TB, opts Options, addrs ...string) *Client {
	t.Helper()
	if opts.Prefix == "" {
		opts.Prefix = "test" + strconv.FormatInt(prefixN.Add(1), 10) + ":"
	}
	opts.Client.InitAddress = addrs
	if opts.Timeout == 0 {
		opts.Timeout = 2 * time.Second // the race detector on a loaded machine is slow
	}
	c := NewClient(opts)
	t.Cleanup(c.Close)
	waitUp(t, c)
	return c
}

// waitUp waits until c has connected.
func waitUp(t testing.TB, c *Client) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.rc.Load() == nil {
		if time.Now().After(deadline) {
			t.Fatal("redis store did not connect within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAcceptance(t *testing.T) {
	srv := redistest.Start(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		return newTestClient(t, Options{MaxObjectSize: 16 << 20}, srv.Addr)
	})
}

// TestAcceptanceSmallChunks runs the suite with 1 KiB chunks, so that most
// bodies are chunked.
func TestAcceptanceSmallChunks(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the default-chunk run covers the suite")
	}
	srv := redistest.Start(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		return newTestClient(t, Options{ChunkSize: 1024, MaxObjectSize: 16 << 20}, srv.Addr)
	})
}

// TestAcceptanceCluster runs the suite against a three-node Redis Cluster
// (no replicas), with small chunks so that entries span many keys.
func TestAcceptanceCluster(t *testing.T) {
	nodes := redistest.Cluster(t, 3)
	addrs := []string{nodes[0].Addr, nodes[1].Addr, nodes[2].Addr}
	storetest.Run(t, func(t *testing.T) store.Store {
		return newTestClient(t, Options{ChunkSize: 4096, MaxObjectSize: 16 << 20}, addrs...)
	})
}

func put(t *testing.T, s store.Store, key string, e *store.Entry, body []byte) {
	t.Helper()
	w, err := s.Put(context.Background(), key, e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func entry(ttl time.Duration) *store.Entry {
	now := time.Now()
	return &store.Entry{Status: 200, RequestTime: now, ResponseTime: now, Expires: now.Add(ttl), Size: -1, Tags: []string{"t1"}}
}

// TestValuesBoundedAndExpiring checks what Redis holds: no value larger
// than a chunk, and every key of an entry expiring with it.
func TestValuesBoundedAndExpiring(t *testing.T) {
	srv := redistest.Start(t)
	c := newTestClient(t, Options{}, srv.Addr)
	body := bytes.Repeat([]byte("0123456789abcdef"), (3*ChunkSize+100)/16)
	put(t, c, "big", entry(time.Hour), body)
	put(t, c, "small", entry(time.Hour), []byte("small"))

	keys := strings.Fields(srv.Do("--scan", "--pattern", c.opts.Prefix+"[ect]*"))
	if len(keys) != 1+4+1+1 { // big's meta and 4 chunks, small's meta, the tag set
		t.Errorf("redis holds %d entry keys, want 7: %q", len(keys), keys)
	}
	for _, k := range keys {
		if n, _ := strconv.Atoi(srv.Do("strlen", k)); n > ChunkSize+1024 {
			t.Errorf("%s holds %d bytes, more than a chunk", k, n)
		}
		ttl, _ := strconv.Atoi(srv.Do("pttl", k))
		if ttl <= 0 || ttl > int((time.Hour+readGrace).Milliseconds()) {
			t.Errorf("%s: PTTL %d ms, want the entry's hour (plus the read grace)", k, ttl)
		}
	}
	_, b, err := c.Get(context.Background(), "big")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.(*chunkBody); !ok {
		t.Fatalf("a %d-byte body came back as %T, want chunked", len(body), b)
	}
	// The body streams: no Read returns more than a chunk.
	p := make([]byte, len(body))
	if n, err := b.Read(p); err != nil || n != ChunkSize {
		t.Errorf("first Read = %d, %v; want one chunk of %d", n, err, ChunkSize)
	}
}

// TestEvictedChunkIsAMiss deletes a chunk, as maxmemory eviction would: the
// entry is then a miss, never a short body.
func TestEvictedChunkIsAMiss(t *testing.T) {
	srv := redistest.Start(t)
	c := newTestClient(t, Options{ChunkSize: 1024}, srv.Addr)
	put(t, c, "k", entry(time.Hour), bytes.Repeat([]byte("x"), 5000))
	chunks := strings.Fields(srv.Do("--scan", "--pattern", c.opts.Prefix+"c*"))
	if len(chunks) != 5 {
		t.Fatalf("%d chunk keys, want 5", len(chunks))
	}
	srv.Do("del", chunks[2])
	if _, _, err := c.Get(context.Background(), "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get with an evicted chunk = %v, want ErrNotFound", err)
	}
	if c.Evictions() != 1 {
		t.Errorf("Evictions() = %d, want 1", c.Evictions())
	}

	// A chunk evicted while the body is read fails the read.
	put(t, c, "k2", entry(time.Hour), bytes.Repeat([]byte("y"), 5000))
	_, b, err := c.Get(context.Background(), "k2")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range strings.Fields(srv.Do("--scan", "--pattern", c.opts.Prefix+"c*")) {
		srv.Do("del", k)
	}
	if got, err := io.ReadAll(b); !errors.Is(err, errChunkGone) {
		t.Fatalf("reading a body whose chunks are gone: %d bytes, %v; want errChunkGone", len(got), err)
	}
}

// TestMaxmemoryEviction fills a Redis with maxmemory and allkeys-lru far
// beyond its memory: every hit is complete, the rest are misses.
func TestMaxmemoryEviction(t *testing.T) {
	srv := redistest.Start(t, "--maxmemory", "8mb", "--maxmemory-policy", "allkeys-lru")
	c := newTestClient(t, Options{ChunkSize: 16 << 10}, srv.Addr)
	ctx := context.Background()
	body := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 100<<10) }
	for i := range 200 { // 20 MB into 8 MB
		w, err := c.Put(ctx, "k"+strconv.Itoa(i), entry(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		w.Write(body(i))
		w.Commit() // may fail with OOM when the index cannot grow: then it is a miss
	}
	hits := 0
	for i := range 200 {
		_, b, err := c.Get(ctx, "k"+strconv.Itoa(i))
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(b)
		if err != nil && !errors.Is(err, errChunkGone) {
			t.Fatal(err)
		}
		if err == nil {
			if !bytes.Equal(got, body(i)) {
				t.Fatalf("k%d: a hit returned %d bytes, want the whole %d-byte body", i, len(got), 100<<10)
			}
			hits++
		}
	}
	if hits == 200 {
		t.Errorf("all 200 entries complete with 8 MB for 20 MB: redis evicted nothing, the test tested nothing")
	}
	t.Logf("%d of 200 entries complete after eviction", hits)
}

// TestRedisDown checks the outage behaviour: no operation waits longer
// than the timeout, reads miss, writes keep nothing, and the store
// recovers by itself when Redis is back.
func TestRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	const timeout = 100 * time.Millisecond
	c := newTestClient(t, Options{Timeout: timeout}, srv.Addr)
	ctx := context.Background()
	put(t, c, "k", entry(time.Hour), []byte("v"))

	srv.Stop()
	errs := c.Errors()
	for i := range 50 {
		start := time.Now()
		_, _, err := c.Get(ctx, "k")
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get while redis is down = %v, want ErrNotFound", err)
		}
		w, err := c.Put(ctx, "k"+strconv.Itoa(i), entry(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("x"))
		w.Commit()
		// Generous: the point is no dial or retry loop of seconds.
		if d := time.Since(start); d > 10*timeout {
			t.Fatalf("Get and Put took %v while redis is down, timeout %v", d, timeout)
		}
	}
	if _, err := c.PurgeTag(ctx, "t1", false); err == nil {
		t.Error("PurgeTag while redis is down succeeded")
	}
	if c.Errors() <= errs {
		t.Error("no errors counted while redis is down")
	}

	srv.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for {
		w, err := c.Put(ctx, "after", entry(time.Hour))
		if err == nil {
			w.Write([]byte("back"))
			w.Commit()
		}
		if _, b, err := c.Get(ctx, "after"); err == nil {
			if got, _ := io.ReadAll(b); string(got) == "back" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the store did not recover within 10s of redis coming back")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestIndexSweep checks that expired keys leave the index (and the stats)
// without a purge.
func TestIndexSweep(t *testing.T) {
	srv := redistest.Start(t)
	c := newTestClient(t, Options{}, srv.Addr)
	put(t, c, "short", entry(50*time.Millisecond), []byte("x"))
	put(t, c, "long", entry(time.Hour), []byte("y"))
	time.Sleep(100 * time.Millisecond)
	c.sweep()
	if st := c.Stats(); st.Entries != 1 || st.Bytes != 1 {
		t.Errorf("Stats after the sweep = %+v, want the one live entry", st)
	}
}

// TestInvalidations checks that a change made by one client is pushed to
// another's subscribers.
func TestInvalidations(t *testing.T) {
	srv := redistest.Start(t)
	a := newTestClient(t, Options{Prefix: "inv:"}, srv.Addr)
	b := newTestClient(t, Options{Prefix: "inv:"}, srv.Addr)
	got := make(chan []string, 10)
	defer b.Subscribe(func(keys []string) { got <- keys })()
	put(t, a, "k{x}", entry(time.Hour), []byte("v1"))
	select {
	case keys := <-got:
		if len(keys) != 1 || keys[0] != "k{x}" {
			t.Errorf("invalidated %q, want [k{x}]", keys)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no invalidation within 5s")
	}
}

func TestCodecRejectsGarbage(t *testing.T) {
	e := entry(time.Hour)
	e.Header = store.Fields{"A", "1", "A", "2"}
	e.Size = 4
	v := encodeMeta("key", 7, 0, e, []byte("body"))
	if _, err := decodeMeta(v); err != nil {
		t.Fatal(err)
	}
	for i := range len(v) {
		if _, err := decodeMeta(v[:i]); err == nil && i < len(v) {
			// A cut inside the body changes its length: refused too.
			t.Errorf("decodeMeta accepted the value cut at %d of %d", i, len(v))
		}
	}
}

// TestCanceledRequestIsNoOutage: a request whose client went away cancels
// its store operation; that must not keep the store away from Redis.
func TestCanceledRequestIsNoOutage(t *testing.T) {
	srv := redistest.Start(t)
	c := newTestClient(t, Options{}, srv.Addr)
	put(t, c, "k", entry(time.Hour), []byte("v"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c.Get(ctx, "k")
	if _, _, err := c.Get(context.Background(), "k"); err != nil {
		t.Fatalf("Get after a canceled Get = %v, want a hit", err)
	}
	if c.Errors() != 0 {
		t.Errorf("Errors() = %d after a canceled request, want 0", c.Errors())
	}
}

// TestFullRedisStillServesHits: a Redis at maxmemory under noeviction
// (Redis's default policy) refuses writes with OOM but still answers
// reads. A refused write is no outage: the store keeps serving its hits
// instead of sending every request to the origin.
func TestFullRedisStillServesHits(t *testing.T) {
	srv := redistest.Start(t, "--maxmemory", "4mb", "--maxmemory-policy", "noeviction")
	c := newTestClient(t, Options{}, srv.Addr)
	ctx := context.Background()
	put(t, c, "k", entry(time.Hour), []byte("v"))
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		w, perr := c.Put(ctx, "fill"+strconv.Itoa(i), entry(time.Hour))
		if perr != nil {
			t.Fatal(perr)
		}
		w.Write(bytes.Repeat([]byte("x"), 64<<10))
		err = w.Commit()
	}
	if err == nil || !strings.Contains(err.Error(), "OOM") {
		t.Fatalf("filling a 4 MB redis: last Commit = %v, want an OOM error", err)
	}
	if _, b, err := c.Get(ctx, "k"); err != nil {
		t.Fatalf("Get after redis refused a write = %v, want the stored hit", err)
	} else {
		b.Close()
	}
}

// TestPurgeTagCollidingHash: two tags whose FNV-1a hashes collide (found
// by a cycle search; an origin can send such tags) must not share a set,
// or purging one forgets the entries of the other, which a purge of that
// other tag then leaves in place.
func TestPurgeTagCollidingHash(t *testing.T) {
	c, _ := storeCollidingTags(t)
	ctx := context.Background()
	if n, err := c.PurgeTag(ctx, tagA, false); n != 1 || err != nil {
		t.Fatalf("PurgeTag(%s) = %d, %v; want 1", tagA, n, err)
	}
	if n, err := c.PurgeTag(ctx, tagB, false); n != 1 || err != nil {
		t.Errorf("PurgeTag(%s) = %d, %v; want 1", tagB, n, err)
	}
	if _, _, err := c.Get(ctx, "b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(b) after purging its tag = %v, want ErrNotFound", err)
	}
}

// tagA and tagB share one FNV-1a hash (found by a cycle search; an
// origin can send such tags).
const tagA, tagB = "tag-314f5b677eb90cdf", "tag-35f824941954613d"

// storeCollidingTags starts a Redis and stores entry "a" tagged tagA and
// "b" tagged tagB.
func storeCollidingTags(t *testing.T) (*Client, *redistest.Server) {
	t.Helper()
	if hashTag(tagA) != hashTag(tagB) {
		t.Fatal("the two tags no longer share a hash: find another pair")
	}
	srv := redistest.Start(t)
	c := newTestClient(t, Options{}, srv.Addr)
	ea, eb := entry(time.Hour), entry(time.Hour)
	ea.Tags, eb.Tags = []string{tagA}, []string{tagB}
	put(t, c, "a", ea, []byte("a"))
	put(t, c, "b", eb, []byte("b"))
	return c, srv
}

// TestPurgeKeepsRefilledEntryIndexed: an entry stored again right after
// a purge deleted it (a popular URL refilled from the origin while the
// purge goes on) must stay in the tag's set and the prefix index, or the
// next purge misses it.
func TestPurgeKeepsRefilledEntryIndexed(t *testing.T) {
	for _, tt := range []struct {
		name  string
		purge func(c *Client) (int, error)
	}{
		{"tag", func(c *Client) (int, error) { return c.PurgeTag(context.Background(), "t1", false) }},
		{"prefix", func(c *Client) (int, error) { return c.PurgePrefix(context.Background(), "k", false) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := redistest.Start(t)
			opts := Options{Prefix: "refill:", ChunkSize: 1024}
			purger := newTestClient(t, opts, srv.Addr)
			refiller := newTestClient(t, opts, srv.Addr)
			watcher := newTestClient(t, opts, srv.Addr)
			ctx := context.Background()
			body := bytes.Repeat([]byte("x"), 2048) // chunked: the purge retires each body
			for i := range 200 {
				put(t, refiller, "k"+strconv.Itoa(i), entry(time.Hour), body)
			}
			watcher.Get(ctx, "sync") // the puts' invalidations have arrived
			var armed atomic.Bool
			refilled := make(chan error, 1)
			defer watcher.Subscribe(func(keys []string) {
				for _, k := range keys {
					if k == "k0" && armed.CompareAndSwap(true, false) {
						// k0 was just deleted by the purge: a request
						// stores it again.
						go func() {
							w, err := refiller.Put(ctx, "k0", entry(time.Hour))
							if err == nil {
								w.Write([]byte("new"))
								err = w.Commit()
							}
							refilled <- err
						}()
					}
				}
			})()
			armed.Store(true)
			if n, err := tt.purge(purger); n != 200 || err != nil {
				t.Fatalf("purge = %d, %v; want 200", n, err)
			}
			select {
			case err := <-refilled:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no invalidation of k0 within 5s")
			}
			if _, _, err := purger.Get(ctx, "k0"); err != nil {
				t.Fatalf("the refilled k0: %v", err)
			}
			if n, err := tt.purge(purger); n != 1 || err != nil {
				t.Errorf("second purge = %d, %v; want 1 (the refilled k0)", n, err)
			}
			if _, _, err := purger.Get(ctx, "k0"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Get(k0) after the second purge = %v, want ErrNotFound", err)
			}
		})
	}
}

// TestForeignValueNoHugeAllocation: a meta value written by another
// client of a shared Redis that claims a body of millions of chunks (its
// size matching) is refused as larger than the store keeps, not read by
// building a key name per chunk.
func TestForeignValueNoHugeAllocation(t *testing.T) {
	srv := redistest.Start(t)
	c := newTestClient(t, Options{ChunkSize: 1024, MaxObjectSize: 1 << 20}, srv.Addr)
	ctx := context.Background()
	const chunks = 1 << 18
	e := entry(time.Hour)
	e.Size = chunks * 1024
	v := encodeMeta("k", 7, chunks, e, nil)
	rc := *c.rc.Load()
	if err := rc.Do(ctx, rc.B().Set().Key(c.metaKey("k")).Value(rueidis.BinaryString(v)).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := c.Get(ctx, "k")
	runtime.ReadMemStats(&after)
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get of a foreign value = %v, want ErrNotFound", err)
	}
	// The process's other goroutines allocate too; a key name per chunk
	// is over 100 MB.
	if n := after.TotalAlloc - before.TotalAlloc; n > 16<<20 {
		t.Errorf("Get of a value claiming %d chunks allocated %d bytes", chunks, n)
	}
}

// TestManyTagsNoOutage: a response with tens of thousands of tags (a
// 40 KB Cache-Tag field of an origin suffices) would cost three commands
// per tag in one pipeline, past the timeout, and the failure would keep
// the store away from Redis for every other request. It is not stored,
// as too large, and the store goes on serving.
func TestManyTagsNoOutage(t *testing.T) {
	srv := redistest.Start(t)
	c := newTestClient(t, Options{Timeout: 100 * time.Millisecond}, srv.Addr)
	ctx := context.Background()
	put(t, c, "k", entry(time.Hour), []byte("v"))
	e := entry(time.Hour)
	e.Tags = nil
	for i := range 20000 {
		e.Tags = append(e.Tags, "p"+strconv.Itoa(i))
	}
	w, err := c.Put(ctx, "many", e)
	if err == nil {
		w.Write([]byte("v"))
		err = w.Commit()
	}
	if !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("storing an entry with 20000 tags = %v, want ErrTooLarge", err)
	}
	if _, b, err := c.Get(ctx, "k"); err != nil {
		t.Fatalf("Get after storing an entry with 20000 tags = %v, want the stored hit", err)
	} else {
		b.Close()
	}

	// Repeats count once.
	e.Tags = make([]string, 20000)
	for i := range e.Tags {
		e.Tags[i] = "same"
	}
	put(t, c, "repeated", e, []byte("v"))
	if got, _, err := c.Get(ctx, "repeated"); err != nil || len(got.Tags) != 1 {
		t.Errorf("Get of an entry stored with one tag 20000 times = %v, %v; want one tag", got, err)
	}
}

// TestEntriesOfLargeBodies: listing entries reads their metadata, not the
// bodies stored inline with it: a page of 200 entries of 250 KB each
// (50 MB) would not arrive within the timeout, the listing would always
// fail, and the failure would keep the store away from Redis for every
// request.
func TestEntriesOfLargeBodies(t *testing.T) {
	srv := redistest.Start(t)
	c := newTestClient(t, Options{}, srv.Addr)
	body := bytes.Repeat([]byte("x"), 250<<10)
	for i := range 200 {
		put(t, c, "k"+strconv.Itoa(i), entry(time.Hour), body)
	}
	put(t, c, "small", entry(time.Hour), []byte("v"))
	big := entry(time.Hour) // metadata longer than a listing reads at first
	big.Header = store.Fields{"X-Big", strings.Repeat("b", 20<<10)}
	put(t, c, "bigheader", big, []byte("v"))
	c.opts.Timeout = 100 * time.Millisecond
	ctx := context.Background()
	l, err := c.Entries(ctx, "", "", 1000)
	if err != nil || len(l) != 202 {
		t.Fatalf("Entries = %d entries, %v; want 202", len(l), err)
	}
	for _, le := range l {
		switch le.Key {
		case "small":
		case "bigheader":
			if got := le.Entry.Header.Get("X-Big"); len(got) != 20<<10 {
				t.Errorf("bigheader: listed with an X-Big of %d bytes, want %d", len(got), 20<<10)
			}
		default:
			if want := int64(len(body)); le.Entry.Size != want {
				t.Errorf("%s: listed with size %d, want %d", le.Key, le.Entry.Size, want)
			}
		}
	}
	if _, b, err := c.Get(ctx, "small"); err != nil {
		t.Fatalf("Get after listing = %v, want the stored hit", err)
	} else {
		b.Close()
	}
}

// TestWrongPasswordKeepsAway: a password refused when a connection is
// made again (the password was changed on the server) is an outage, not
// a refused command: the store stays away from Redis instead of opening a
// connection for every request.
func TestWrongPasswordKeepsAway(t *testing.T) {
	srv := redistest.Start(t)
	srv.Do("config", "set", "requirepass", "old")
	o := Options{}
	o.Client.Password = "old"
	c := newTestClient(t, o, srv.Addr)
	put(t, c, "k", entry(time.Hour), []byte("v"))
	srv.Do("-a", "old", "--no-auth-warning", "config", "set", "requirepass", "new")
	srv.Do("-a", "new", "--no-auth-warning", "client", "kill", "type", "normal")
	conns := func() int {
		for _, l := range strings.Fields(srv.Do("-a", "new", "--no-auth-warning", "info", "stats")) {
			if v, ok := strings.CutPrefix(l, "total_connections_received:"); ok {
				n, _ := strconv.Atoi(v)
				return n
			}
		}
		t.Fatal("no total_connections_received in INFO")
		return 0
	}
	before := conns()
	for range 50 {
		c.Get(context.Background(), "k")
	}
	if n := conns() - before - 1; n > 5 { // the INFO's own connection
		t.Errorf("50 Gets with a refused password opened %d connections", n)
	}
}

// TestPurgeTagLegacySet: entries whose tags an earlier version put in the
// set named by the tag's hash alone, shared by two tags of one hash, are
// still purged by their tags.
func TestPurgeTagLegacySet(t *testing.T) {
	c, srv := storeCollidingTags(t)
	ctx := context.Background()
	legacy := c.tagPre + "{" + hashTag(tagA) + "}"
	srv.Do("sunionstore", legacy, c.tagKey(tagA), c.tagKey(tagB))
	srv.Do("del", c.tagKey(tagA), c.tagKey(tagB))
	for _, tt := range []struct{ tag, key string }{{tagA, "a"}, {tagB, "b"}} {
		if n, err := c.PurgeTag(ctx, tt.tag, false); n != 1 || err != nil {
			t.Errorf("PurgeTag(%s) = %d, %v; want 1, the entry in the earlier set", tt.tag, n, err)
		}
		if _, _, err := c.Get(ctx, tt.key); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(%s) after purging its tag = %v, want ErrNotFound", tt.key, err)
		}
	}
}

// A maxmemory-policy of allkeys-* may evict the index keys purges need:
// the store warns once connected, and does not under volatile-lru.
func TestWarnsOfAllkeysEviction(t *testing.T) {
	for _, policy := range []string{"allkeys-lru", "volatile-lru"} {
		t.Run(policy, func(t *testing.T) {
			srv := redistest.Start(t, "--maxmemory", "64mb", "--maxmemory-policy", policy)
			core, logs := observer.New(zap.WarnLevel)
			c := newTestClient(t, Options{Logger: zap.New(core)}, srv.Addr)
			select {
			case <-c.checked:
			case <-time.After(10 * time.Second):
				t.Fatal("not connected and checked after 10 s")
			}
			c.Close()
			warned := logs.FilterMessageSnippet("maxmemory-policy").Len() > 0
			if warned != strings.HasPrefix(policy, "allkeys-") {
				t.Errorf("maxmemory-policy %s: warned %v; logs: %v", policy, warned, logs.All())
			}
		})
	}
}

// A Redis that refuses writes while it serves reads for another reason
// than memory (NOREPLICAS: min-replicas-to-write not met; MISCONF: its
// snapshots fail, under stop-writes-on-bgsave-error, the default) keeps
// serving hits, as a full one does.
func TestWriteRefusingRedisStillServesHits(t *testing.T) {
	srv := redistest.Start(t)
	c := newTestClient(t, Options{}, srv.Addr)
	ctx := context.Background()
	put(t, c, "k", entry(time.Hour), []byte("v"))
	rc := *c.rc.Load()
	if err := rc.Do(ctx, rc.B().ConfigSet().ParameterValue().ParameterValue("min-replicas-to-write", "1").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	w, err := c.Put(ctx, "other", entry(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("x"))
	if err := w.Commit(); err == nil || !strings.Contains(err.Error(), "NOREPLICAS") {
		t.Fatalf("Commit with no replica = %v, want a NOREPLICAS error", err)
	}
	if _, b, err := c.Get(ctx, "k"); err != nil {
		t.Fatalf("Get after redis refused a write = %v, want the stored hit", err)
	} else {
		b.Close()
	}
}

// A hit's body that Redis is slow to give (a herd of hits of a large
// entry through one connection, a Redis busy for a moment) is read to its
// end, not cut when a chunk takes longer than the store's timeout, nor
// when the circuit opens meanwhile for a lookup that timed out: the
// response is under way, and cannot go to the origin instead. A hundred
// hits of a 4 MiB entry had 86 of 300 cut with the 100 ms timeout.
func TestSlowChunkReadsDoNotCutAHit(t *testing.T) {
	srv := redistest.Start(t, "--enable-debug-command", "yes")
	c := newTestClient(t, Options{ChunkSize: 1024, Timeout: 100 * time.Millisecond}, srv.Addr)
	body := bytes.Repeat([]byte("0123456789abcdef"), 256) // 4 KiB: four chunks
	ctx := context.Background()
	put(t, c, "k", entry(time.Hour), body)
	_, b, err := c.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := make([]byte, 1024)
	if _, err := io.ReadFull(b, got); err != nil {
		t.Fatal(err)
	}
	slept := make(chan string, 1)
	go func() { slept <- srv.Do("DEBUG", "SLEEP", "0.5") }()
	time.Sleep(100 * time.Millisecond) // Redis is asleep
	// A lookup meanwhile times out and opens the circuit.
	if _, _, err := c.Get(ctx, "other"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("lookup while Redis sleeps: %v", err)
	}
	if time.Now().UnixNano() >= c.downUntil.Load() {
		t.Fatal("the circuit did not open for the lookup that timed out")
	}
	rest, err := io.ReadAll(b)
	if err != nil || !bytes.Equal(append(got, rest...), body) {
		t.Errorf("the rest of the hit's body: %d bytes, %v; want %d", len(rest), err, len(body)-len(got))
	}
	<-slept
}
