package memory

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestIndexesWithinBudget fills a store until it has evicted twice what
// it holds, with entries whose tags and variant keys take the tag and
// group indexes' room, and checks that the heap it takes stays within
// its budget: the weights count what the indexes hold for each entry (a
// tag or a group of its own, a copy of its name), whatever the shape.
func TestIndexesWithinBudget(t *testing.T) {
	const maxSize = 16 << 20
	uniqueTags := func(n, size int) func(int) []string {
		return func(i int) []string {
			var ts []string
			for j := range n {
				ts = append(ts, "t"+strconv.Itoa(i)+"-"+strconv.Itoa(j)+strings.Repeat("x", size))
			}
			return ts
		}
	}
	for _, tt := range []struct {
		name string
		key  func(i int) string
		tags func(i int) []string
		body int
	}{
		{"1 KiB bodies", func(i int) string { return "example.com/entry/" + strconv.Itoa(i) }, nil, 1024},
		{"a tag of its own", func(i int) string { return "e/" + strconv.Itoa(i) }, uniqueTags(1, 0), 0},
		{"64 tags of their own", func(i int) string { return "e/" + strconv.Itoa(i) }, uniqueTags(64, 20), 0},
		{"shared and own tags", func(i int) string { return "example.com/entry/" + strconv.Itoa(i) }, func(i int) []string {
			return []string{"all", "section" + strconv.Itoa(i%10), "product" + strconv.Itoa(i)}
		}, 512},
		{"one variant", func(i int) string { return "example.com/entry/" + strconv.Itoa(i) + "\x00gzip" }, nil, 0},
		{"two variants", func(i int) string { return "example.com/entry/" + strconv.Itoa(i/2) + "\x00v" + strconv.Itoa(i%2) }, nil, 0},
		{"three variants", func(i int) string { return "example.com/entry/" + strconv.Itoa(i/3) + "\x00v" + strconv.Itoa(i%3) }, nil, 0},
		{"a long URL's variant", func(i int) string { return "example.com/" + strings.Repeat("p", 2000) + strconv.Itoa(i) + "\x00gzip" }, nil, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			c, err := New(Config{MaxSize: maxSize, Now: time.Now}) // no sweeping goroutine to hold it after Close
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			body := make([]byte, tt.body)
			for i := 0; c.evictions.Load() < 2*c.entries.Load()+1000; i++ {
				e := entryNow(int64(tt.body), benchHeader())
				if tt.tags != nil {
					e.Tags = tt.tags(i)
				}
				w, err := c.Put(context.Background(), tt.key(i), e)
				if err != nil {
					t.Fatal(err)
				}
				w.Write(body)
				if err := w.Commit(); err != nil {
					t.Fatal(err)
				}
			}
			c.CleanUp()
			runtime.GC()
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(c)
			heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
			t.Logf("%d entries weighing %d KiB take %d KiB of heap (%.2f x max_size)",
				c.entries.Load(), c.bytes.Load()>>10, heap>>10, float64(heap)/maxSize)
			if heap > maxSize {
				t.Errorf("a full store of %d MiB takes %d KiB of heap", maxSize>>20, heap>>10)
			}
		})
	}
}

// TestKeySet: a key is in a set once, wherever it is kept (in the set or
// in its map), through any order of sets and deletes.
func TestKeySet(t *testing.T) {
	var s keySet
	its := make([]*item, 6)
	for i := range its {
		its[i] = new(item)
	}
	want := map[string]*item{}
	check := func(step string) {
		t.Helper()
		if s.len() != len(want) {
			t.Errorf("%s: %d keys, want %d", step, s.len(), len(want))
		}
		seen := map[string]bool{}
		for k, it := range s.all() {
			if seen[k] || want[k] != it {
				t.Errorf("%s: key %s (again %v) with the wrong item", step, k, seen[k])
			}
			seen[k] = true
		}
		for k, it := range want {
			if s.get(k) != it {
				t.Errorf("%s: get(%s) is not its item", step, k)
			}
		}
	}
	set := func(k string, i int) {
		s.set(k, its[i])
		want[k] = its[i]
		check("set " + k)
	}
	del := func(k string) {
		empty := s.delete(k)
		delete(want, k)
		check("delete " + k)
		if empty != (len(want) == 0) {
			t.Errorf("delete %s: empty %v with %d keys left", k, empty, len(want))
		}
	}
	set("a", 0)
	set("b", 1)
	set("c", 2) // into the map
	del("a")    // a free place in the set
	set("c", 3) // still in the map, not also in the set
	set("d", 4) // into the free place
	set("e", 5)
	del("c")
	del("e")
	if s.more != nil {
		t.Errorf("an empty map is kept")
	}
	set("b", 0)
	del("b")
	del("d")
	del("x")
}
