package redis

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache/store"
	"github.com/caddy-edge/edge/internal/redistest"
)

// readAll reads f from off to its end, as the cache's followers do, and
// returns what it read and the error that ended it (nil at io.EOF).
func readAll(t *testing.T, f store.Follower) ([]byte, error) {
	t.Helper()
	var got []byte
	p := make([]byte, 700)
	for {
		n, err := f.ReadAt(p, int64(len(got)))
		got = append(got, p[:n]...)
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		if n == 0 {
			t.Fatalf("follower waits at %d bytes of a body that ended", len(got))
		}
	}
}

// A writer keeps the chunks it sent in memory for its followers: when
// Redis starts refusing writes midway, Write does not fail, the followers
// (the first client among them, in the cache) read the body to its end,
// and nothing is stored; the memory kept for them is given back when they
// are done. When other writers hold all the memory chunks may be kept in
// (keptLimit), the chunks are in Redis only, and the followers of a body
// Redis then refuses are cut (ErrNotStored), never given a short body as
// whole.
func TestFollowersReadABodyRedisFailedToStore(t *testing.T) {
	srv := redistest.Start(t, "--maxmemory-policy", "noeviction")
	c := newTestClient(t, Options{ChunkSize: 1024}, srv.Addr)
	body := bytes.Repeat([]byte("0123456789abcdef"), 640) // 10 KiB: ten chunks
	ctx := context.Background()

	for _, spent := range []bool{false, true} {
		key := "kept"
		if spent {
			key = "not-kept"
			c.kept.Add(keptLimit) // the other writers' chunks
		}
		w, err := c.Put(ctx, key, entry(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(body[:3000]); err != nil {
			t.Fatal(err)
		}
		// The first waiting request comes once chunks are sent.
		f, ok := w.(store.Following).Follow()
		if !ok {
			t.Fatal("Follow refused")
		}
		srv.Do("CONFIG", "SET", "maxmemory", "1")
		if n, err := w.Write(body[3000:]); n != len(body)-3000 || err != nil {
			t.Fatalf("%s: Write after Redis refused writes = %d, %v; want every byte taken", key, n, err)
		}
		if err := w.Commit(); err == nil {
			t.Fatalf("%s: Commit of a body Redis refused: no error", key)
		}
		got, err := readAll(t, f)
		switch {
		case !spent && (err != nil || !bytes.Equal(got, body)):
			t.Errorf("%s: follower read %d bytes, %v; want the whole body", key, len(got), err)
		case spent && (!errors.Is(err, store.ErrNotStored) || !bytes.Equal(got, body[:len(got)])):
			t.Errorf("%s: follower read %d bytes, %v; want a prefix, then %v", key, len(got), err, store.ErrNotStored)
		}
		f.Close()
		if spent {
			c.kept.Add(-keptLimit)
		}
		if k := c.kept.Load(); k != 0 {
			t.Errorf("%s: %d bytes still counted as kept once the follower closed", key, k)
		}
		srv.Do("CONFIG", "SET", "maxmemory", "0")
		for deadline := time.Now().Add(5 * time.Second); time.Now().UnixNano() < c.downUntil.Load(); {
			if time.Now().After(deadline) {
				t.Fatal("the store did not try Redis again")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if _, _, err := c.Get(ctx, key); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: Get of the body Redis refused: %v, want %v", key, err, store.ErrNotFound)
		}
	}

	// Stored: the follower reads it whole, from what is kept, and the
	// memory is given back once it closes, not before.
	w, err := c.Put(ctx, "stored", entry(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	f, ok := w.(store.Following).Follow()
	if !ok {
		t.Fatal("Follow refused")
	}
	if _, err := w.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if k := c.kept.Load(); k == 0 {
		t.Error("nothing kept for an open follower of a committed body")
	}
	if got, err := readAll(t, f); err != nil || !bytes.Equal(got, body) {
		t.Errorf("follower of a stored body: %d bytes, %v; want the whole body", len(got), err)
	}
	f.Close()
	if k := c.kept.Load(); k != 0 {
		t.Errorf("%d bytes still counted as kept once the follower closed", k)
	}
	_, b, err := c.Get(ctx, "stored")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got, err := io.ReadAll(b); err != nil || !bytes.Equal(got, body) {
		t.Errorf("hit: %d bytes, %v", len(got), err)
	}
}

// A follower reads a chunk that was not kept (past keptLimit) from Redis,
// as a hit does: when it is gone there (evicted under maxmemory), the
// follower is cut (ErrNotStored), never given other bytes.
func TestFollowerOfAChunkGoneFromRedisIsCut(t *testing.T) {
	srv := redistest.Start(t)
	c := newTestClient(t, Options{ChunkSize: 1024}, srv.Addr)
	body := bytes.Repeat([]byte("0123456789abcdef"), 640)
	c.kept.Add(keptLimit) // the other writers' chunks
	defer c.kept.Add(-keptLimit)
	w, err := c.Put(context.Background(), "k", entry(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if _, err := w.Write(body[:3000]); err != nil {
		t.Fatal(err)
	}
	f, ok := w.(store.Following).Follow()
	if !ok {
		t.Fatal("Follow refused")
	}
	defer f.Close()
	p := make([]byte, 100)
	if n, err := f.ReadAt(p, 1500); err != nil || !bytes.Equal(p[:n], body[1500:1500+n]) || n == 0 {
		t.Fatalf("ReadAt(1500) from Redis = %d, %v", n, err)
	}
	srv.Do("FLUSHALL")
	if n, err := f.ReadAt(p, 100); !errors.Is(err, store.ErrNotStored) {
		t.Errorf("ReadAt of a chunk gone from Redis = %d, %v; want %v", n, err, store.ErrNotStored)
	}
}
