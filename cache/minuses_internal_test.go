package cache

import (
	"fmt"
	"hash/maphash"
	"sync"
	"testing"
	"time"
)

// min_uses counts a key's requests within minUsesWindow; the count of a
// key that got there stays (the requests during its first stored fetch
// collapse behind it); a count older than the window starts again; and a
// flood of keys requested once keeps the map at maxUsesKeys.
func TestUsedEnough(t *testing.T) {
	now := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	h := &Handler{MinUses: 3, mu: new(sync.Mutex), uses: make(map[uint64]useMark), keySeed: maphash.MakeSeed(), now: func() time.Time { return now }}
	for i, want := range []bool{false, false, true, true} {
		if got := h.usedEnough("k"); got != want {
			t.Errorf("request %d of k: %v, want %v", i+1, got, want)
		}
	}
	h.usedEnough("old")
	now = now.Add(minUsesWindow + time.Second)
	for i, want := range []bool{false, false, true} {
		if got := h.usedEnough("old"); got != want {
			t.Errorf("request %d of old in a new window: %v, want %v (a count older than the window goes on?)", i+1, got, want)
		}
	}
	for i := range maxUsesKeys + 10 {
		h.usedEnough(fmt.Sprint("flood", i))
		if len(h.uses) > maxUsesKeys {
			t.Fatalf("%d keys counted, over %d", len(h.uses), maxUsesKeys)
		}
	}
}
