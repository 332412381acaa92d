package memory

import (
	"testing"
	"time"
)

// The coarse clock gives the time to within its resolution while it is
// read, and stops its ticker once nobody reads it, so that an idle server
// does not wake 100 times a second; the next read starts it again.
func TestCoarseClockStopsWhenIdle(t *testing.T) {
	var c coarseClock
	// Within half of coarseIdle, not coarseResolution: the ticker's
	// goroutine may wait that long for a loaded machine's CPU (under
	// -race it missed 30 ms), and a clock that stopped moving while read
	// still shows in the 1.5 s of reads below.
	const slack = coarseIdle / 2
	within := func(what string) {
		t.Helper()
		before := time.Now().UnixNano()
		n := c.NowNano()
		after := time.Now().UnixNano()
		if n < before-int64(slack) || n > after {
			t.Fatalf("%s: NowNano %d not within %v of the time (%d..%d)", what, n, slack, before, after)
		}
	}
	within("first read")
	if !c.running.Load() {
		t.Fatal("no ticker after the first read")
	}
	// Read for longer than coarseIdle: the ticker keeps running.
	for end := time.Now().Add(coarseIdle + coarseIdle/2); time.Now().Before(end); time.Sleep(coarseIdle / 10) {
		within("while read")
	}
	if !c.running.Load() {
		t.Fatal("the ticker stopped while the clock was read")
	}
	deadline := time.Now().Add(10 * coarseIdle)
	for c.running.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the ticker still runs long after the last read")
		}
		time.Sleep(coarseResolution)
	}
	if n := c.now.Load(); n != 0 {
		t.Fatalf("a stopped clock keeps the time %d", n)
	}
	within("read after it stopped")
	if !c.running.Load() {
		t.Fatal("a read after the ticker stopped did not start it again")
	}
}
