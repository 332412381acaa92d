package disk

import (
	"context"
	"slices"
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
