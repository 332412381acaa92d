package disk

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache/store"
)

// A hit on a body served from its file reuses the metadata the first hit
// decoded (and derived), and never serves it after the file changed: a
// soft purge, a replacement, a freshening Update, a new derive function.
func TestHitsReuseDecodedMetadata(t *testing.T) {
	ctx := context.Background()
	c := open(t, Config{NoSync: true})
	var derived atomic.Int32
	c.SetDerive("", func(e *store.Entry) any { derived.Add(1); return e.Header.Get("Etag") })
	body := bytes.Repeat([]byte("b"), 64<<10) // over inlineMax: served from the file
	put(t, c, "k", entry(time.Now()), body)

	e1, b1, err := get(t, c, "k")
	if err != nil || !bytes.Equal(b1, body) {
		t.Fatalf("first hit: %v, %d bytes", err, len(b1))
	}
	e2, b2, err := get(t, c, "k")
	if err != nil || !bytes.Equal(b2, body) {
		t.Fatalf("second hit: %v, %d bytes", err, len(b2))
	}
	if e1 != e2 || e2.Derived != `"1"` || derived.Load() != 1 || c.metas.Len() != 1 {
		t.Fatalf("the second hit decoded again: same entry %v, Derived %v, derived %d times, %d kept", e1 == e2, e2.Derived, derived.Load(), c.metas.Len())
	}

	if _, err := c.PurgePrefix(ctx, "k", true); err != nil {
		t.Fatal(err)
	}
	if e, _, err := get(t, c, "k"); err != nil || !e.SoftPurged {
		t.Fatalf("hit after a soft purge: %v, soft-purged %v", err, e != nil && e.SoftPurged)
	}

	replaced := entry(time.Now())
	replaced.Header = store.FieldsOf(http.Header{"Etag": {`"2"`}})
	put(t, c, "k", replaced, body) // same size, another header
	if e, _, err := get(t, c, "k"); err != nil || e.Header.Get("Etag") != `"2"` || e.SoftPurged {
		t.Fatalf("hit after a replacement: %v, %v", err, e)
	}
	get(t, c, "k") // kept again

	freshened := entry(time.Now())
	freshened.Header = store.FieldsOf(http.Header{"Etag": {`"3"`}})
	if err := c.Update(ctx, "k", freshened); err != nil {
		t.Fatal(err)
	}
	e, b, err := get(t, c, "k")
	if err != nil || e.Header.Get("Etag") != `"3"` || !bytes.Equal(b, body) {
		t.Fatalf("hit after an Update: %v, %v, %d bytes", err, e, len(b))
	}

	// A function under a new key (a reload with other options): the
	// entry, stored without a key of its own, is derived with it.
	c.SetDerive("new options", func(e *store.Entry) any { return "new" })
	if e, _, _ := get(t, c, "k"); e == nil || e.Derived != "new" {
		t.Fatalf("metadata derived by an earlier function served: %v", e)
	}

	if err := c.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if n := c.metas.Len(); n != 0 {
		t.Errorf("%d entries counted as kept decoded after the last was deleted", n)
	}
}

// Hits racing with replacements and soft purges of their key always get
// a body and metadata of the same version.
func TestDecodedMetadataUnderConcurrentWrites(t *testing.T) {
	ctx := context.Background()
	c := open(t, Config{NoSync: true})
	version := func(v int) (*store.Entry, []byte) {
		e := entry(time.Now())
		e.Header = store.FieldsOf(http.Header{"X-Version": {fmt.Sprint(v)}})
		return e, bytes.Repeat([]byte{byte('a' + v%26)}, 16<<10)
	}
	e, b := version(0)
	put(t, c, "k", e, b)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for v := 1; ; v++ {
			select {
			case <-stop:
				return
			default:
			}
			e, b := version(v)
			put(t, c, "k", e, b)
			if v%3 == 0 {
				c.PurgePrefix(ctx, "k", true)
			}
		}
	})
	var reads atomic.Int64
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				e, body, err := get(t, c, "k")
				if err != nil {
					continue // between a replacement's steps
				}
				var v int
				fmt.Sscan(e.Header.Get("X-Version"), &v)
				if want := byte('a' + v%26); len(body) != 16<<10 || bytes.Count(body, []byte{want}) != len(body) {
					t.Errorf("version %d served with another version's body (%q...)", v, body[:min(8, len(body))])
					return
				}
				reads.Add(1)
			}
		})
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	if reads.Load() == 0 {
		t.Fatal("no hit read the entry")
	}
}

// A hit that read the file before a soft purge does not keep what it
// read: the next hits see the purge.
func TestMetadataReadBeforeASoftPurgeIsNotKept(t *testing.T) {
	c := open(t, Config{NoSync: true})
	put(t, c, "k", entry(time.Now()), bytes.Repeat([]byte("b"), 64<<10))
	c.mu.RLock()
	ie := c.index["k"]
	c.mu.RUnlock()
	rewrites := ie.rewrites.Load()
	read := entry(time.Now()) // what the hit decoded: not soft-purged yet
	if !c.softPurge("k", "") {
		t.Fatal("soft purge failed")
	}
	c.cacheMeta("k", ie, read, prefixLen, rewrites)
	if ie.meta.Kept(c.metas) {
		t.Fatal("metadata read before a soft purge was kept")
	}
	if e, _, err := get(t, c, "k"); err != nil || !e.SoftPurged {
		t.Fatalf("hit after the soft purge: %v, soft-purged %v", err, e != nil && e.SoftPurged)
	}
}

// At the bound, the metadata of an entry no hit used since the clock's
// hand last passed gives its place to the new one; used entries keep
// theirs.
func TestKeptMetadataGoesToEntriesInUse(t *testing.T) {
	c := open(t, Config{NoSync: true})
	body := bytes.Repeat([]byte("b"), 64<<10)
	keys := []string{"e1", "e2", "e3", "e4", "e5"}
	for _, k := range keys {
		put(t, c, k, entry(time.Now()), body)
	}
	hit := func(k string) {
		t.Helper()
		if _, b, err := get(t, c, k); err != nil || !bytes.Equal(b, body) {
			t.Fatalf("hit on %s: %v", k, err)
		}
	}
	kept := func(k string) bool {
		c.mu.RLock()
		defer c.mu.RUnlock()
		return c.index[k].meta.Kept(c.metas)
	}
	hit("e1")
	// Room for the metadata of four entries, not five: they differ by a
	// few bytes (their times' encodings).
	c.metas.SetMax(4*c.metas.Used()+64, metaMaxCost)
	for _, k := range keys[1:4] {
		hit(k) // decoded and kept: the four places are taken
	}
	hit("e1") // used again: a second chance
	hit("e2")
	hit("e5") // the first place from the hand not used since: e3's
	for k, want := range map[string]bool{"e1": true, "e2": true, "e3": false, "e4": true, "e5": true} {
		if kept(k) != want {
			t.Errorf("%s keeps metadata: %v, want %v", k, kept(k), want)
		}
	}
	if n := c.metas.Len(); n != 4 {
		t.Errorf("%d entries keep metadata, want the bound, 4", n)
	}
	hit("e3") // decoded again, and kept in the place of one not used since
	if !kept("e3") || c.metas.Len() != 4 {
		t.Errorf("e3 kept %v, %d kept", kept("e3"), c.metas.Len())
	}
}

// Metadata larger than metaMaxCost is not kept: a hostile origin's huge
// headers cannot make the kept metadata take more than its bound.
func TestLargeMetadataIsNotKept(t *testing.T) {
	c := open(t, Config{NoSync: true})
	e := entry(time.Now())
	e.Header = store.FieldsOf(http.Header{"X-Big": {string(bytes.Repeat([]byte("h"), metaMaxCost))}})
	put(t, c, "k", e, bytes.Repeat([]byte("b"), 64<<10))
	for range 2 {
		if got, _, err := get(t, c, "k"); err != nil || got.Header.Get("X-Big") == "" {
			t.Fatalf("hit: %v", err)
		}
	}
	if n := c.metas.Len(); n != 0 {
		t.Errorf("%d entries keep metadata over the bound", n)
	}
}

// A hit that reads an entry file while a soft purge rewrites its prefix
// (the purge decided, its bytes not written yet) must not keep what it
// read: the entry would be served as not soft-purged, fresh, as long as
// its decoded metadata stays in memory.
func TestMetadataReadDuringASoftPurgeIsNotKept(t *testing.T) {
	c := open(t, Config{NoSync: true})
	put(t, c, "k", entry(time.Now()), bytes.Repeat([]byte("b"), 64<<10))
	c.mu.RLock()
	ie := c.index["k"]
	c.mu.RUnlock()
	var rewrites uint32
	var read *store.Entry
	var base int64
	c.writePrefix = func(f *os.File, b []byte) error {
		// The hit's steps before cacheMeta: the rewrite count, then the
		// file, read before the purge's bytes land.
		rewrites = ie.rewrites.Load()
		rf, err := openRead(c.path("k"))
		if err != nil {
			t.Fatal(err)
		}
		e, body, err := c.read(rf, "k", prefixBufSize, true, true)
		if err != nil {
			t.Fatal(err)
		}
		read, base = e, body.(*fileBody).base
		body.Close()
		return writePrefix(f, b)
	}
	if !c.softPurge("k", "") {
		t.Fatal("soft purge failed")
	}
	c.cacheMeta("k", ie, read, base, rewrites)
	if e, _, err := get(t, c, "k"); err != nil || !e.SoftPurged {
		t.Fatalf("hit after the soft purge: %v, soft-purged %v", err, e != nil && e.SoftPurged)
	}
}
