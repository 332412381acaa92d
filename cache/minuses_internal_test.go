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

// makeRoom on a full map drops what expired, and others until an eighth
// of the room is free, so that the keys after it do not each walk the
// map again; marks that did not expire stay when enough had.
func TestMakeRoomFreesAnEighth(t *testing.T) {
	const limit = 800
	for _, tc := range []struct {
		expired, wantLen int
	}{
		{1, limit - limit/8}, // one expired: others go too
		{0, limit - limit/8}, // none expired
		{200, limit - 200},   // enough expired: only they go
		{limit, 0},           // all expired
	} {
		m := make(map[uint64]bool, limit)
		for i := range limit {
			m[uint64(i)] = i < tc.expired
		}
		makeRoom(m, limit, func(expired bool) bool { return expired })
		if len(m) != tc.wantLen {
			t.Errorf("%d expired of %d: %d marks left, want %d", tc.expired, limit, len(m), tc.wantLen)
		}
		for k, expired := range m {
			if expired {
				t.Errorf("%d expired of %d: expired mark %d left", tc.expired, limit, k)
			}
		}
	}
}

// BenchmarkUsedEnoughFull counts new keys into a full min_uses map while
// the clock moves so that about one count expires between two new keys:
// the rate at which dropping only the expired counts walked the whole map
// for every new key.
//
//	go test -run '^$' -bench UsedEnoughFull ./cache/
func BenchmarkUsedEnoughFull(b *testing.B) {
	now := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	h := &Handler{MinUses: 2, mu: new(sync.Mutex), uses: make(map[uint64]useMark), keySeed: maphash.MakeSeed(), now: func() time.Time { return now }}
	step := minUsesWindow / maxUsesKeys
	for i := range maxUsesKeys {
		h.usedEnough(fmt.Sprint("fill", i))
		now = now.Add(step)
	}
	now = now.Add(2 * step) // the first counts expire from here on
	b.ResetTimer()
	for i := range b.N {
		h.usedEnough(fmt.Sprint("new", i))
		now = now.Add(step)
	}
}
