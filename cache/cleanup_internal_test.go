package cache

import (
	"sync"
	"testing"
)

// Once Cleanup has begun, no background fetch starts: Cleanup waits for
// the ones already running, and a WaitGroup must not gain a first member
// while it is being waited on.
func TestNoBackgroundFetchStartsAfterCleanup(t *testing.T) {
	h := &Handler{wg: new(sync.WaitGroup), bgMu: new(sync.Mutex)}
	if !h.goBackground() {
		t.Fatal("a background fetch could not start before Cleanup")
	}
	h.wg.Done()
	if err := h.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if h.goBackground() {
		h.wg.Done()
		t.Error("a background fetch started after Cleanup")
	}
}
