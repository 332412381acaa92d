// Package ratelog writes a kind of failure to the log at most once per
// interval, with the number of failures it did not write since. A store
// that fails (a full disk, a Redis refusing writes) fails every request's
// operation, and a line per request would be a flood that any client
// feeds by sending misses; the failures are all counted in the metrics.
package ratelog

import (
	"sync"
	"time"

	"go.uber.org/zap"
)

// Limiter logs one kind of failure. The zero value is ready to use.
type Limiter struct {
	mu         sync.Mutex // protects last and suppressed
	last       time.Time
	suppressed int
}

// Error writes msg at error level with fields and err, unless the
// Limiter wrote a line less than every ago; the line counts the failures
// not written since the last one (not_logged_since_last).
func (l *Limiter) Error(logger *zap.Logger, every time.Duration, msg string, err error, fields ...zap.Field) {
	l.mu.Lock()
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < every {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	l.mu.Unlock()
	logger.Error(msg, append(fields, zap.Error(err), zap.Int("not_logged_since_last", n))...)
}

// ByMessage is a Limiter for each message. The zero value is ready to
// use; the messages should be constants, as each keeps a Limiter.
type ByMessage struct {
	mu sync.Mutex // protects m
	m  map[string]*Limiter
}

// Error is Limiter.Error with msg's own Limiter.
func (b *ByMessage) Error(logger *zap.Logger, every time.Duration, msg string, err error, fields ...zap.Field) {
	b.mu.Lock()
	l := b.m[msg]
	if l == nil {
		if b.m == nil {
			b.m = make(map[string]*Limiter)
		}
		l = new(Limiter)
		b.m[msg] = l
	}
	b.mu.Unlock()
	l.Error(logger, every, msg, err, fields...)
}
