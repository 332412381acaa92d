package memory

import (
	"context"
	"slices"
	"strconv"
	"testing"

	"github.com/caddy-edge/edge/cache/store"
)

// checkGroups checks the group index against the store: every key with a
// NUL is indexed under its part before the NUL, with the item the store
// holds, and the index holds nothing else.
func checkGroups(t *testing.T, c *Cache) {
	t.Helper()
	c.CleanUp()
	want := map[string]map[string]*item{}
	for k, it := range c.c.All() {
		if g, ok := store.GroupOf(k); ok {
			if want[g] == nil {
				want[g] = map[string]*item{}
			}
			want[g][k] = it
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.groups) != len(want) {
		t.Errorf("the index holds %d groups, the store %d", len(c.groups), len(want))
	}
	for g, m := range want {
		for k, it := range m {
			if c.groups[g].get(k) != it {
				t.Errorf("group %q: key %q not indexed with its item", g, k)
			}
		}
		if c.groups[g].len() != len(m) {
			t.Errorf("group %q: %d keys indexed, %d stored", g, c.groups[g].len(), len(m))
		}
	}
}

// TestPurgeGroup: PurgePrefix of a primary key and a NUL, which every
// unsafe request's invalidation asks for, removes (or soft-purges) the
// variants of that key and nothing else, from the group index rather
// than a walk of the store; the index follows replacements, purges and
// evictions.
func TestPurgeGroup(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, Config{MaxSize: 8 << 20})
	keys := []string{"https://a/p", "https://a/p\x00gzip", "https://a/p\x00br", "https://a/p\x00x\x00y",
		"https://a/p2\x00gzip", "https://a/pp", "https://a/\x00gzip"}
	for i, k := range keys {
		putBody(t, c, k, func() *store.Entry { return entryNow(1024, benchHeader()) }, bodyOf(i, 0, 1024))
	}
	// Replaced entries stay indexed with their new items.
	putBody(t, c, "https://a/p\x00br", func() *store.Entry { return entryNow(1024, benchHeader()) }, bodyOf(2, 1, 1024))
	checkGroups(t, c)

	n, err := c.PurgePrefix(ctx, "https://a/p\x00", true)
	if err != nil || n != 3 {
		t.Fatalf("soft purge of the group: %d, %v; want 3", n, err)
	}
	for _, k := range keys {
		e, b, err := c.Get(ctx, k)
		if err != nil {
			t.Fatalf("%q: %v after a soft purge", k, err)
		}
		b.Close()
		inGroup := k == keys[1] || k == keys[2] || k == keys[3]
		if e.SoftPurged != inGroup {
			t.Errorf("%q: soft purged %v, want %v", k, e.SoftPurged, inGroup)
		}
	}
	checkGroups(t, c)

	n, err = c.PurgePrefix(ctx, "https://a/p\x00", false)
	if err != nil || n != 3 {
		t.Fatalf("purge of the group: %d, %v; want 3", n, err)
	}
	var left []string
	for k := range c.c.Keys() {
		left = append(left, k)
	}
	slices.Sort(left)
	want := []string{"https://a/\x00gzip", "https://a/p", "https://a/p2\x00gzip", "https://a/pp"}
	if !slices.Equal(left, want) {
		t.Errorf("left %q, want %q", left, want)
	}
	checkGroups(t, c)

	// A prefix that is not a group's is still found by a walk.
	if n, _ := c.PurgePrefix(ctx, "https://a/p", false); n != 3 {
		t.Errorf("purge of prefix https://a/p: %d, want 3", n)
	}
	// Eviction: a store churned past its budget keeps the index exact.
	for i := range 20_000 {
		putBody(t, c, "https://b/"+strconv.Itoa(i%500)+"\x00v"+strconv.Itoa(i), func() *store.Entry { return entryNow(1024, benchHeader()) }, bodyOf(i, 0, 1024))
	}
	checkGroups(t, c)
}
