package tiered

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache/store"
	"github.com/caddy-edge/edge/cache/store/disk"
	"github.com/caddy-edge/edge/cache/store/memory"
	"github.com/caddy-edge/edge/cache/store/redis"
	"github.com/caddy-edge/edge/cache/store/storetest"
	"github.com/caddy-edge/edge/internal/redistest"
)

var prefixN atomic.Int64

func newPrefix() string { return "tier" + strconv.FormatInt(prefixN.Add(1), 10) + ":" }

// newRedis returns a connected redis Client, closed when the test ends.
func newRedis(t testing.TB, addr, prefix string) *redis.Client {
	t.Helper()
	o := redis.Options{Prefix: prefix, Timeout: 2 * time.Second, MaxObjectSize: 16 << 20}
	o.Client.InitAddress = []string{addr}
	c := redis.NewClient(o)
	t.Cleanup(c.Close)
	deadline := time.Now().Add(10 * time.Second)
	for !c.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("redis store did not connect within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c
}

func newTiers(t testing.TB, back store.Store) *Tiers {
	t.Helper()
	f, err := memory.New(memory.Config{MaxSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	tr := New(f, back)
	t.Cleanup(tr.Close)
	return tr
}

func TestAcceptanceOverRedis(t *testing.T) {
	srv := redistest.Start(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		return newTiers(t, newRedis(t, srv.Addr, newPrefix()))
	})
}

func TestAcceptanceOverDisk(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		back, err := disk.Open(disk.Config{Dir: t.TempDir(), MaxSize: 128 << 20, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(back.Close)
		<-back.Ready()
		return newTiers(t, back)
	})
}

func TestAcceptanceOverMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		back, err := memory.New(memory.Config{MaxSize: 256 << 20})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(back.Close)
		return newTiers(t, back)
	})
}

func put(t testing.TB, s store.Store, key string, body []byte) {
	t.Helper()
	now := time.Now()
	e := &store.Entry{Status: 200, RequestTime: now, ResponseTime: now, Expires: now.Add(time.Hour), Size: -1, Tags: []string{"tag"}}
	w, err := s.Put(context.Background(), key, e)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(body)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func get(t testing.TB, s store.Store, key string) ([]byte, error) {
	t.Helper()
	_, b, err := s.Get(context.Background(), key)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	return io.ReadAll(b)
}

// fill reads key through tr until its memory tier holds it: the
// invalidation of the store that just happened may arrive after a first
// read and empty it again.
func fill(t testing.TB, tr *Tiers, key string, want []byte) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		if got, err := get(t, tr, key); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Get = %d bytes, %v; want the %d bytes stored", len(got), err, len(want))
		}
		if inFront(tr, key) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("hits did not fill the memory tier within 1s")
		}
		time.Sleep(time.Millisecond)
	}
}

func inFront(tr *Tiers, key string) bool {
	_, _, err := tr.front.Get(context.Background(), key)
	return err == nil
}

// TestStatsShowBothTiers: the stats are the back store's, with the memory
// tier's own beside them, so that an operator sees how full each is.
func TestStatsShowBothTiers(t *testing.T) {
	back, err := memory.New(memory.Config{MaxSize: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(back.Close)
	tr := newTiers(t, back)
	body := bytes.Repeat([]byte("b"), 4096)
	for i := range 3 {
		put(t, tr, "k"+strconv.Itoa(i), body)
	}
	fill(t, tr, "k0", body)
	st := tr.Stats()
	if st.Capacity != 256<<20 || st.Entries != 3 {
		t.Errorf("tiered stats: capacity %d, %d entries; want the back store's, 256 MiB and 3", st.Capacity, st.Entries)
	}
	if st.Front == nil {
		t.Fatal("no stats of the memory tier")
	}
	if st.Front.Capacity != 64<<20 || st.Front.Entries != 1 || st.Front.Bytes < int64(len(body)) {
		t.Errorf("memory tier: capacity %d, %d entries of %d bytes; want 64 MiB, the one entry read", st.Front.Capacity, st.Front.Entries, st.Front.Bytes)
	}
}

// TestTwoNodes: a hit through node B fills B's memory tier; a purge, a
// replacement or a lost connection through node A empties it.
func TestTwoNodes(t *testing.T) {
	srv := redistest.Start(t)
	p := newPrefix()
	a := newTiers(t, newRedis(t, srv.Addr, p))
	b := newTiers(t, newRedis(t, srv.Addr, p))
	small := []byte("v1")
	large := bytes.Repeat([]byte("L"), redis.ChunkSize*3+5) // chunked: the tee fills the front

	for _, tc := range []struct {
		name  string
		body  []byte
		purge func() error
	}{
		{"delete", small, func() error { return a.Delete(context.Background(), "k") }},
		{"prefix", small, func() error { _, err := a.PurgePrefix(context.Background(), "k", false); return err }},
		{"tag", large, func() error { _, err := a.PurgeTag(context.Background(), "tag", false); return err }},
		{"replace", large, func() error { put(t, a, "k", []byte("v2")); return nil }},
		{"soft", small, func() error { _, err := a.PurgeTag(context.Background(), "tag", true); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			put(t, a, "k", tc.body)
			fill(t, b, "k", tc.body)
			start := time.Now()
			if err := tc.purge(); err != nil {
				t.Fatal(err)
			}
			for inFront(b, "k") {
				if time.Since(start) > time.Second {
					t.Fatal("B's memory tier still holds the entry 1s after A changed it")
				}
				time.Sleep(time.Millisecond)
			}
			t.Logf("B's memory tier dropped the key %v after A's change returned", time.Since(start))
			got, err := get(t, b, "k")
			switch {
			case tc.name == "replace":
				if string(got) != "v2" {
					t.Errorf("B: Get after the replacement = %q, %v; want v2", got, err)
				}
			case tc.name == "soft":
				e, _, err := b.Get(context.Background(), "k")
				if err != nil || !e.SoftPurged {
					t.Errorf("B: Get after A's soft purge = %+v, %v; want the entry, soft-purged", e, err)
				}
			case !errors.Is(err, store.ErrNotFound):
				t.Errorf("B: Get after the purge = %d bytes, %v; want ErrNotFound", len(got), err)
			}
			a.Delete(context.Background(), "k")
		})
	}

	t.Run("connection lost", func(t *testing.T) {
		put(t, a, "k", small)
		fill(t, b, "k", small)
		srv.Stop()
		deadline := time.Now().Add(10 * time.Second)
		for inFront(b, "k") {
			if time.Now().After(deadline) {
				t.Fatal("B's memory tier still holds the entry 10s after redis went away")
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// TestDeriveOnPromotion: an entry read from the back store (which keeps no
// Derived) enters the front with what SetDerive's function computes, so
// that the handler's hits from the front parse no header.
func TestDeriveOnPromotion(t *testing.T) {
	back, err := memory.New(memory.Config{MaxSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(back.Close)
	tr := newTiers(t, back)
	tr.SetDerive("", func(e *store.Entry) any { return "derived:" + strconv.Itoa(e.Status) })
	put(t, tr, "k", []byte("v"))
	fill(t, tr, "k", []byte("v"))
	e, _, err := tr.front.Get(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	if e.Derived != "derived:200" {
		t.Errorf("front entry's Derived = %v, want derived:200", e.Derived)
	}
}

// TestOneFillPerKey: reads of a key from the back store fill the front
// one at a time. Each read copying the body would hold a buffer of up to
// the front's entry limit per reader, outside the front's budget and for
// as long as a slow client takes to read to the end.
func TestOneFillPerKey(t *testing.T) {
	srv := redistest.Start(t)
	tr := newTiers(t, newRedis(t, srv.Addr, newPrefix()))
	body := bytes.Repeat([]byte("L"), 4*redis.ChunkSize) // chunked: the tee fills the front
	put(t, tr, "k", body)
	fill(t, tr, "k", body) // the put's invalidation has arrived
	tr.front.Delete(context.Background(), "k")
	var bodies []store.Body
	for range 20 {
		_, b, err := tr.Get(context.Background(), "k")
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if _, err := b.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, b)
	}
	filling := 0
	for _, b := range bodies {
		if tb, ok := b.(*teeBody); ok && tb.w != nil {
			filling++
		}
	}
	if filling != 1 {
		t.Errorf("%d of 20 concurrent reads copy the body into the front, want 1", filling)
	}
	// The one that fills commits at its end; the others read alone.
	for _, b := range bodies {
		got, err := io.ReadAll(b)
		if err != nil || len(got) != len(body)-1 {
			t.Fatalf("read %d bytes, %v; want the rest of the body", len(got), err)
		}
	}
	if !inFront(tr, "k") {
		t.Error("the front is not filled after the reads")
	}
}
