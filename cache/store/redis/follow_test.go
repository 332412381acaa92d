package redis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
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
// whole; when the memory was given back by then, the rest is kept, and
// the followers read the first chunks from Redis (which still serves

// followedAfter puts e under key, writes first, and then follows the body,
// as the first waiting request does once chunks are sent.
func followedAfter(t *testing.T, c *Client, key string, e *store.Entry, first []byte) (store.Writer, store.Follower) {
	t.Helper()
	w, err := c.Put(context.Background(), key, e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(first); err != nil {
		t.Fatal(err)
	}
	f, ok := w.(store.Following).Follow()
	if !ok {
		t.Fatal("Follow refused")
	}
	return w, f
}

// reads) and the rest from memory.
func TestFollowersReadABodyRedisFailedToStore(t *testing.T) {
	srv := redistest.Start(t, "--maxmemory-policy", "noeviction")
	c := newTestClient(t, Options{ChunkSize: 1024}, srv.Addr)
	body := bytes.Repeat([]byte("0123456789abcdef"), 640) // 10 KiB: ten chunks
	ctx := context.Background()

	for _, key := range []string{"kept", "not-kept", "kept-from-the-failure"} {
		spent := key == "not-kept"
		if key != "kept" {
			c.kept.Add(keptLimit) // the other writers' chunks
		}
		w, f := followedAfter(t, c, key, entry(time.Hour), body[:3000])
		if key == "kept-from-the-failure" {
			c.kept.Add(-keptLimit) // the other writers are done
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

// A body whose entry expires while it is written (a short-lived response
// from a slow origin) is not stored, which is no failure: Commit says
// nothing. Its followers, the first client of the fetch among them, still
// read it to its end, whether its chunks are kept or, when other writers
// hold all the memory chunks may be kept in (keptLimit), in Redis only.
func TestFollowersReadABodyThatExpiredWhileWritten(t *testing.T) {
	srv := redistest.Start(t)
	var late atomic.Int64 // how far the store's clock is ahead
	c := newTestClient(t, Options{ChunkSize: 1024, Now: func() time.Time {
		return time.Now().Add(time.Duration(late.Load()))
	}}, srv.Addr)
	body := bytes.Repeat([]byte("0123456789abcdef"), 640) // ten chunks
	ctx := context.Background()
	for _, spent := range []bool{false, true} {
		key := "kept"
		if spent {
			key = "not-kept"
			c.kept.Add(keptLimit) // the other writers' chunks
		}
		late.Store(0)
		w, f := followedAfter(t, c, key, entry(time.Minute), body[:3000])
		late.Store(int64(time.Hour)) // the entry expired meanwhile
		if _, err := w.Write(body[3000:]); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			t.Errorf("%s: Commit of a body that expired while written: %v, want nil (nothing to store)", key, err)
		}
		if got, err := readAll(t, f); err != nil || !bytes.Equal(got, body) {
			t.Errorf("%s: follower read %d bytes, %v; want the whole body", key, len(got), err)
		}
		f.Close()
		if spent {
			c.kept.Add(-keptLimit)
		}
		if k := c.kept.Load(); k != 0 {
			t.Errorf("%s: %d bytes still counted as kept once the follower closed", key, k)
		}
		late.Store(0)
		if _, _, err := c.Get(ctx, key); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: Get of a body that expired while written: %v, want %v", key, err, store.ErrNotFound)
		}
	}

	// Nobody follows it (a response stored with max-age=0 and no
	// validator expires as it arrives): the rest is neither sent to
	// Redis nor kept, for nothing.
	late.Store(0)
	w, err := c.Put(ctx, "unfollowed", entry(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(body[:3000]); err != nil {
		t.Fatal(err)
	}
	late.Store(int64(time.Hour))
	if _, err := w.Write(body[3000:]); err != nil {
		t.Fatal(err)
	}
	if n := srv.Do("EXISTS", c.chunkKey("unfollowed", w.(*writer).gen, 2)); n != "0" {
		t.Errorf("a chunk of a body that expired unfollowed was sent to Redis (EXISTS: %s)", n)
	}
	if k := c.kept.Load(); k > 2*1024 {
		t.Errorf("%d bytes kept of a body that expired unfollowed", k)
	}
	if err := w.Commit(); err != nil {
		t.Errorf("Commit of a body that expired unfollowed: %v, want nil (nothing to store)", err)
	}
	if k := c.kept.Load(); k != 0 {
		t.Errorf("%d bytes still counted as kept", k)
	}
}

// Room's answer holds for the next Write: the fetch of a body without a
// length asks it before each write, and serves its client from the
// writer only while it says yes (else it takes the client back and the
// followers are cut). When Redis fails, and other writers take the memory
// chunks may be kept in between Room and Write, the bytes Room counted are
// kept anyway: the followers, the first client among them, are not cut.
// The Room that follows says what is left.
func TestRoomHoldsForTheNextWrite(t *testing.T) {
	srv := redistest.Start(t, "--maxmemory-policy", "noeviction")
	c := newTestClient(t, Options{ChunkSize: 1024}, srv.Addr)
	body := bytes.Repeat([]byte("0123456789abcdef"), 640) // ten chunks
	for _, failedFirst := range []bool{false, true} {
		key := "up"
		if failedFirst {
			key = "failed"
		}
		w, f := followedAfter(t, c, key, entry(time.Hour), body[:3000])
		fw := w.(store.Following)
		off := 3000
		if failedFirst {
			srv.Do("CONFIG", "SET", "maxmemory", "1")
			if _, err := w.Write(body[off : off+1000]); err != nil { // a chunk refused, kept
				t.Fatal(err)
			}
			off += 1000
		}
		room := fw.Room()
		if room < 2048 {
			t.Fatalf("%s: Room() = %d", key, room)
		}
		c.kept.Add(keptLimit) // the other writers take the memory
		srv.Do("CONFIG", "SET", "maxmemory", "1")
		if _, err := w.Write(body[off : off+2048]); err != nil {
			t.Fatal(err)
		}
		off += 2048
		if r := fw.Room(); r != 0 {
			t.Errorf("%s: Room() = %d once the memory is taken, want 0", key, r)
		}
		c.kept.Add(-keptLimit)
		if err := w.Commit(); err == nil {
			t.Fatalf("%s: Commit of a body Redis refused: no error", key)
		}
		if got, err := readAll(t, f); err != nil || !bytes.Equal(got, body[:off]) {
			t.Errorf("%s: follower read %d bytes, %v; want all %d written", key, len(got), err, off)
		}
		f.Close()
		if k := c.kept.Load(); k != 0 {
			t.Errorf("%s: %d bytes still counted as kept once the follower closed", key, k)
		}
		srv.Do("CONFIG", "SET", "maxmemory", "0")
	}
}

// keptLimit bounds the memory the writers keep, not only the bytes of body
// in it: the last chunk of a body, kept for the followers still reading
// it once it is stored, holds a whole chunk's buffer however few bytes it
// has, and counts as that.
func TestKeptCountsTheMemoryHeld(t *testing.T) {
	srv := redistest.Start(t)
	c := newTestClient(t, Options{ChunkSize: 1024}, srv.Addr)
	body := bytes.Repeat([]byte("x"), 1025) // a chunk and a byte
	w, err := c.Put(context.Background(), "k", entry(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	f, ok := w.(store.Following).Follow()
	if !ok {
		t.Fatal("Follow refused")
	}
	defer f.Close()
	for i := range body {
		if _, err := w.Write(body[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	held := int64(0)
	for _, k := range w.(*writer).kept {
		held += int64(cap(k))
	}
	if k := c.kept.Load(); k < held {
		t.Errorf("kept counts %d bytes; the chunks kept for the follower hold %d", k, held)
	}
	if got, err := readAll(t, f); err != nil || !bytes.Equal(got, body) {
		t.Errorf("follower read %d bytes, %v", len(got), err)
	}
}

// Followers read every shape of body exactly, while it is written in
// pieces of any size: empty, one byte, a chunk exactly, a multiple of
// chunks, one byte more, with chunks of one byte; its chunks kept, in
// Redis only (keptLimit spent by other writers), or some of each. Once
// they are done, nothing is counted as kept, and the body is a hit.
func TestFollowersReadEveryShapeOfBody(t *testing.T) {
	srv := redistest.Start(t)
	for _, chunk := range []int{1, 7} {
		for _, size := range []int{0, 1, chunk, 2 * chunk, 3*chunk + 1, 100} {
			for _, room := range []int64{-1, 0, 2 * int64(chunk)} { // -1: keptLimit
				name := fmt.Sprintf("chunk %d, %d bytes, room for %d", chunk, size, room)
				c := newTestClient(t, Options{ChunkSize: chunk}, srv.Addr)
				if room >= 0 {
					c.kept.Add(keptLimit - room) // the other writers' chunks
				}
				body := make([]byte, size)
				for i := range body {
					body[i] = byte(rand.IntN(256))
				}
				w, err := c.Put(context.Background(), "k", entry(time.Hour))
				if err != nil {
					t.Fatal(err)
				}
				fw := w.(store.Following)
				var wg sync.WaitGroup
				got := make([][]byte, 3)
				errs := make([]error, 3)
				follow := func(i int) {
					f, ok := fw.Follow()
					if !ok {
						t.Fatalf("%s: Follow refused", name)
					}
					wg.Go(func() {
						defer f.Close()
						p := make([]byte, 1+i*5)
						for {
							n, err := f.ReadAt(p, int64(len(got[i])))
							got[i] = append(got[i], p[:n]...)
							if err != nil {
								if err != io.EOF {
									errs[i] = err
								}
								return
							}
							if n == 0 {
								runtime.Gosched()
							}
						}
					})
				}
				follow(0)
				follow(1)
				late := false
				for off := 0; off < len(body); {
					n := min(rand.IntN(3*chunk)+1, len(body)-off)
					if _, err := w.Write(body[off : off+n]); err != nil {
						t.Fatal(err)
					}
					if off += n; off > len(body)/2 && !late {
						follow(2)
						late = true
					}
				}
				if !late {
					follow(2)
				}
				if err := w.Commit(); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				wg.Wait()
				for i := range got {
					if errs[i] != nil || !bytes.Equal(got[i], body) {
						t.Errorf("%s: follower %d read %d bytes, %v; want the body", name, i, len(got[i]), errs[i])
					}
				}
				if room >= 0 {
					c.kept.Add(-(keptLimit - room))
				}
				if k := c.kept.Load(); k != 0 {
					t.Errorf("%s: %d bytes still counted as kept", name, k)
				}
				_, b, err := c.Get(context.Background(), "k")
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				hit, err := io.ReadAll(b)
				b.Close()
				if err != nil || !bytes.Equal(hit, body) {
					t.Errorf("%s: hit of %d bytes, %v; want the body", name, len(hit), err)
				}
			}
		}
	}
}
