package disk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache/store"
)

// TestPurgeGroup: PurgePrefix of a primary key and a NUL, which every
// unsafe request's invalidation asks for, removes the variants of that
// key and nothing else, from the group index rather than a walk of the
// index, also after a restart rebuilt the index from the files.
func TestPurgeGroup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := open(t, Config{Dir: dir, MaxSize: 64 << 20, NoSync: true})
	keys := []string{"https://a/p", "https://a/p\x00gzip", "https://a/p\x00br", "https://a/p\x00x\x00y",
		"https://a/p2\x00gzip", "https://a/pp", "https://a/\x00gzip"}
	for _, k := range keys {
		put(t, c, k, entry(time.Now()), []byte("body of "+k))
	}
	c.Close()
	c = open(t, Config{Dir: dir, MaxSize: 64 << 20, NoSync: true})
	checkGroups := func() {
		t.Helper()
		c.mu.RLock()
		defer c.mu.RUnlock()
		n := 0
		for k := range c.index {
			if g, ok := store.GroupOf(k); ok {
				n++
				if _, ok := c.groups[g][k]; !ok {
					t.Errorf("%q is not in its group", k)
				}
			}
		}
		m := 0
		for _, g := range c.groups {
			m += len(g)
		}
		if m != n {
			t.Errorf("the groups hold %d keys, the index %d with a NUL", m, n)
		}
	}
	checkGroups()
	n, err := c.PurgePrefix(ctx, "https://a/p\x00", false)
	if err != nil || n != 3 {
		t.Fatalf("purge of the group: %d, %v; want 3", n, err)
	}
	var left []string
	c.mu.RLock()
	for k := range c.index {
		left = append(left, k)
	}
	c.mu.RUnlock()
	slices.Sort(left)
	want := []string{"https://a/\x00gzip", "https://a/p", "https://a/p2\x00gzip", "https://a/pp"}
	if !slices.Equal(left, want) {
		t.Errorf("left %q, want %q", left, want)
	}
	checkGroups()
}

// reloading puts c back in the state of a Cache whose index is being
// rebuilt, with keys not indexed yet (their files are there), as after a
// restart; the returned function completes the load.
func reloading(t *testing.T, c *Cache, notYet ...string) (finish func()) {
	t.Helper()
	c.cancel() // the background work ends: nothing else reads c.ready
	c.wg.Wait()
	c.mu.Lock()
	c.loading, c.tomb, c.ready = true, make(map[string]struct{}), make(chan struct{})
	for _, k := range notYet {
		c.dropLocked(k)
	}
	c.mu.Unlock()
	return func() {
		t.Helper()
		for _, k := range notYet {
			sub, file := name(k)
			c.loadFile(byte(sub), c.path(k), file)
		}
		c.mu.Lock()
		c.loading, c.tomb = false, nil
		c.mu.Unlock()
		close(c.ready)
	}
}

// An unsafe request's invalidation (PurgePrefix of its URL's group, with
// a context nothing cancels) while the index is still being rebuilt after
// a restart does not wait for the index, which may take minutes: the
// response to the POST would wait as long. The group's entries, indexed
// or not yet, are gone at once and stay gone; other groups are kept.
func TestPurgeGroupWhileLoading(t *testing.T) {
	c := open(t, Config{MaxSize: 64 << 20, NoSync: true})
	for _, k := range []string{"u\x00a", "u\x00b", "v\x00a"} {
		put(t, c, k, entry(time.Now()), []byte("body of "+k))
	}
	finish := reloading(t, c, "u\x00b", "v\x00a")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, err := c.PurgePrefix(ctx, "u\x00", false)
	if err != nil || n != 1 {
		t.Fatalf("purge of a group while loading: %d, %v; want 1 (the indexed entry) at once", n, err)
	}
	for _, k := range []string{"u\x00a", "u\x00b"} {
		if _, _, err := get(t, c, k); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%q after its group's purge: %v, want ErrNotFound", k, err)
		}
		if err := c.Update(ctx, k, entry(time.Now())); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Update of %q after its group's purge: %v, want ErrNotFound", k, err)
		}
	}
	if _, got, err := get(t, c, "v\x00a"); err != nil || string(got) != "body of v\x00a" {
		t.Errorf("another group's entry: %q, %v", got, err)
	}
	put(t, c, "u\x00c", entry(time.Now()), []byte("stored after the purge"))
	finish()
	if _, err := os.Stat(c.path("u\x00b")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the file of a purged entry is left: %v", err)
	}
	if st := c.Stats(); st.Entries != 2 {
		t.Errorf("Stats().Entries = %d after the load, want 2 (v\\0a, u\\0c)", st.Entries)
	}
	if _, got, err := get(t, c, "u\x00c"); err != nil || string(got) != "stored after the purge" {
		t.Errorf("entry stored after the purge: %q, %v", got, err)
	}
}

// Every unsafe request invalidates its URL (Delete of its key, purge of
// its group), whether or not anything is stored under it. While the index
// is being rebuilt, what the store remembers of those must not grow with
// the URLs' length (up to Caddy's 1 MB of request header): clients would
// fill the memory with long URLs until the index is ready.
func TestInvalidationsWhileLoadingKeepLittle(t *testing.T) {
	ctx := context.Background()
	c := open(t, Config{NoSync: true})
	finish := reloading(t, c)
	defer finish()
	long := strings.Repeat("x", 64<<10)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range 200 {
		k := fmt.Sprint("https://a/", long, i)
		c.Delete(ctx, k)
		if _, err := c.PurgePrefix(ctx, k+"\x00", false); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 2<<20 {
		t.Errorf("200 invalidations of 64 KiB URLs while loading kept %d KiB", grew>>10)
	}
}
