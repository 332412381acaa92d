package cache

import (
	"sync"
	"time"

	"go.uber.org/zap"
)

// storeErrorLogInterval is how often at most one kind of store failure is
// logged by a handler, as the disk store does its own.
const storeErrorLogInterval = 10 * time.Second

// errorLog logs the store failures a handler meets on its requests. A
// failing store (a Redis refusing writes with OOM, a disk full or read
// only) fails every request's store operation: logging each would write
// an error line per request, with the client's URL in it, a flood any
// client could feed by sending misses. So each message is logged at most
// once every storeErrorLogInterval, with the number of failures not
// logged since the last line; they are all counted in the store's
// metrics.
type errorLog struct {
	mu sync.Mutex // protects last
	// last holds, by message, when it was last logged and how many were
	// not logged since. The messages are constants of this package.
	last map[string]*logState
}

type logState struct {
	at         time.Time
	suppressed int
}

// log writes msg at error level with the fields and the error, unless the
// same msg was logged less than storeErrorLogInterval ago; a nil l logs
// every time (a handler not provisioned, in tests).
func (l *errorLog) log(logger *zap.Logger, msg string, err error, fields ...zap.Field) {
	if l != nil {
		now := time.Now()
		l.mu.Lock()
		st := l.last[msg]
		if st == nil {
			if l.last == nil {
				l.last = make(map[string]*logState)
			}
			st = new(logState)
			l.last[msg] = st
		}
		if !st.at.IsZero() && now.Sub(st.at) < storeErrorLogInterval {
			st.suppressed++
			l.mu.Unlock()
			return
		}
		n := st.suppressed
		st.at, st.suppressed = now, 0
		l.mu.Unlock()
		fields = append(fields, zap.Int("not_logged_since_last", n))
	}
	logger.Error(msg, append(fields, zap.Error(err))...)
}

// storeFailed logs a store operation of a request that failed, at most
// once every storeErrorLogInterval for each msg.
func (h *Handler) storeFailed(msg string, err error, fields ...zap.Field) {
	h.storeErrs.log(h.logger, msg, err, fields...)
}
