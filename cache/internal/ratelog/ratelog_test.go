package ratelog

import (
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// A burst of failures writes one line per message and interval; the next
// line after the interval counts the ones not written.
func TestLimiter(t *testing.T) {
	core, logs := observer.New(zap.ErrorLevel)
	logger := zap.New(core)
	var b ByMessage
	for range 50 {
		b.Error(logger, time.Hour, "a", errors.New("x"))
		b.Error(logger, time.Hour, "b", errors.New("y"))
	}
	if n := logs.Len(); n != 2 {
		t.Fatalf("%d lines for 100 failures of two messages within the interval, want 2", n)
	}
	var l Limiter
	l.Error(logger, time.Millisecond, "c", errors.New("z"))
	for range 9 {
		l.Error(logger, time.Hour, "c", errors.New("z"))
	}
	time.Sleep(2 * time.Millisecond)
	l.Error(logger, time.Millisecond, "c", errors.New("z"))
	got := logs.FilterMessage("c").All()
	if len(got) != 2 || got[1].ContextMap()["not_logged_since_last"] != int64(9) {
		t.Errorf("lines of c: %v, want 2, the second with not_logged_since_last 9", got)
	}
}
