package cache

import (
	"time"

	"go.uber.org/zap"
)

// storeErrorLogInterval is how often at most one kind of store failure is
// logged by a handler, as the disk store does its own.
const storeErrorLogInterval = 10 * time.Second

// storeFailed logs a store operation of a request that failed. A failing
// store (a Redis refusing writes with OOM, a disk full or read only)
// fails every request's store operation: logging each would write an
// error line per request, with the client's URL in it, a flood any client
// could feed by sending misses. So each message is logged at most once
// every storeErrorLogInterval, with the number of failures not logged
// since; they are all counted in the store's metrics. A handler not
// provisioned (in tests) logs every time.
func (h *Handler) storeFailed(msg string, err error, fields ...zap.Field) {
	if h.storeErrs == nil {
		h.logger.Error(msg, append(fields, zap.Error(err))...)
		return
	}
	h.storeErrs.Error(h.logger, storeErrorLogInterval, msg, err, fields...)
}
