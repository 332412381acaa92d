package cache

import (
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/caddy-edge/edge/cache/store"
)

// Waiting returns how many requests joined a flight still in the air, over
// every live handler, so that a collapsing test can release its origin
// once all its clients wait.
func Waiting() int {
	live.mu.Lock()
	defer live.mu.Unlock()
	n := 0
	for h := range live.handlers {
		h.mu.Lock()
		for _, f := range h.flights {
			n += f.waiters
		}
		h.mu.Unlock()
	}
	return n
}

// Flights returns how many fetches are in the air (foreground, refresh
// and range fill), over every live handler.
func Flights() int {
	live.mu.Lock()
	defer live.mu.Unlock()
	n := 0
	for h := range live.handlers {
		h.mu.Lock()
		n += len(h.flights)
		h.mu.Unlock()
	}
	return n
}

// Requests returns caddy_http_cache_requests_total{result}.
func Requests(result string) float64 {
	return testutil.ToFloat64(metrics.requests.WithLabelValues(result))
}

// OriginRequests returns caddy_http_cache_origin_requests_total.
func OriginRequests() float64 { return testutil.ToFloat64(metrics.origin) }

// Purged returns caddy_http_cache_purged_total{kind}.
func Purged(kind string) float64 {
	return testutil.ToFloat64(metrics.purged.WithLabelValues(kind))
}

// Quiet turns h's logger off, for benchmarks.
func Quiet(h *Handler) { h.logger = zap.NewNop() }

// KeyForURL is the default primary key of u.
func KeyForURL(u *url.URL, sortQuery bool, ignore []string) string {
	k := newKeyer("", sortQuery, ignore, nil)
	return k.keyForURL(u)
}

// NormalizeQuery is the query as the default key has it.
func NormalizeQuery(q string, sortQuery bool, ignore []string) string {
	k := newKeyer("", sortQuery, ignore, nil)
	return k.normalizeQuery(q)
}

// MaxRangeFills is the bound of range fills in flight.
const MaxRangeFills = maxRangeFills

// MaxHandlerBackgroundFetches is the bound of one handler's background
// fetches in flight.
const MaxHandlerBackgroundFetches = maxHandlerBackgroundFetches

// SetOrphanGrace sets how long a detached fetch outlives its client, and
// how often the watch looks, until restore.
func SetOrphanGrace(grace, tick time.Duration) (restore func()) {
	orphans.mu.Lock()
	defer orphans.mu.Unlock()
	g, k := orphanGrace, orphanTick
	orphanGrace, orphanTick = grace, tick
	return func() {
		orphans.mu.Lock()
		defer orphans.mu.Unlock()
		orphanGrace, orphanTick = g, k
	}
}

// DerivedFor tells whether e carries derived data computed with h's
// options, as a hit of h reuses it (for a vary marker: its parsed names).
func DerivedFor(h *Handler, e *store.Entry) bool {
	if e.Status == 0 {
		_, ok := e.Derived.(varyNames)
		return ok
	}
	d, ok := e.Derived.(*derived)
	return ok && d.optsKey == h.optsKey
}

// AsideFetches returns how many fetches go on into the store after their
// client was answered with 304.
func AsideFetches() int { return len(asideFetches) }

// FillAsideFetches takes every token of the bound on such fetches, until
// the returned function gives them back.
func FillAsideFetches() (restore func()) {
	for range maxAsideFetches {
		asideFetches <- struct{}{}
	}
	return func() {
		for range maxAsideFetches {
			<-asideFetches
		}
	}
}
