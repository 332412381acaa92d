package cache

import (
	"errors"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/caddy-edge/edge/cache/store"
)

// cacheMetrics are the collectors of http_cache. They are created once per
// process; every config's Provision registers them on that config's
// registry (see registerMetrics).
type cacheMetrics struct {
	requests *prometheus.CounterVec
	origin   prometheus.Counter
	purged   *prometheus.CounterVec
	lookups  *prometheus.CounterVec
	stores   storeCollector

	// byResult holds the requests counter of each result, so that the hot
	// path does not hash label values.
	byResult map[string]prometheus.Counter
}

var metrics = newMetrics()

func newMetrics() *cacheMetrics {
	m := &cacheMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "caddy",
			Subsystem: "http_cache",
			Name:      "requests_total",
			Help:      "Requests that passed through http_cache, by result (" + strings.Join(results[:], ", ") + ").",
		}, []string{"result"}),
		origin: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "caddy",
			Subsystem: "http_cache",
			Name:      "origin_requests_total",
			Help:      "Requests http_cache sent to the next handler (the origin) for cacheable requests: misses, revalidations and background refreshes.",
		}),
		purged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "caddy",
			Subsystem: "http_cache",
			Name:      "purged_total",
			Help:      "Entries removed by purges and invalidations, by kind (url, prefix, tag, invalidation).",
		}, []string{"kind"}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "caddy",
			Subsystem: "http_cache",
			Name:      "store_lookups_total",
			Help:      "Lookups of a request's response in the store, by store and result (hit: a stored response was found, fresh or not; miss: none was).",
		}, []string{"store", "result"}),
		byResult: make(map[string]prometheus.Counter),
	}
	for _, r := range results {
		m.byResult[r] = m.requests.WithLabelValues(r)
	}
	m.stores = storeCollector{
		entries:   prometheus.NewDesc("caddy_http_cache_entries", "Entries in the store (vary markers included).", []string{"store"}, nil),
		bytes:     prometheus.NewDesc("caddy_http_cache_stored_bytes", "Bytes the store's entries take, as the store counts them.", []string{"store"}, nil),
		maxSize:   prometheus.NewDesc("caddy_http_cache_capacity_bytes", "The store's byte budget; 0 when it has none.", []string{"store"}, nil),
		evictions: prometheus.NewDesc("caddy_http_cache_evictions_total", "Entries the store removed to make room, since it was created.", []string{"store"}, nil),
		errors:    prometheus.NewDesc("caddy_http_cache_store_errors_total", "Store operations that failed (I/O errors, corrupt entries, an unreachable server), since the store was created.", []string{"store"}, nil),
	}
	return m
}

// requestCounts returns the requests counted for each result since the
// process started (the values of caddy_http_cache_requests_total).
func (m *cacheMetrics) requestCounts() map[string]uint64 {
	counts := make(map[string]uint64, len(m.byResult))
	for result, c := range m.byResult {
		var pb dto.Metric
		if err := c.Write(&pb); err == nil {
			counts[result] = uint64(pb.GetCounter().GetValue())
		}
	}
	return counts
}

// storeLookups returns the hit and miss counters of the named store.
func (m *cacheMetrics) storeLookups(name string) (hits, misses prometheus.Counter) {
	return m.lookups.WithLabelValues(name, "hit"), m.lookups.WithLabelValues(name, "miss")
}

// countLookup counts the result of a lookup in the store.
func (h *Handler) countLookup(lk *lookup) {
	if h.storeHits == nil {
		return // a handler not provisioned (tests)
	}
	if lk.entry != nil {
		h.storeHits.Inc()
	} else {
		h.storeMisses.Inc()
	}
}

// count counts one request with the given result.
func (m *cacheMetrics) count(result string) {
	if c, ok := m.byResult[result]; ok {
		c.Inc()
	}
}

// registerMetrics registers the collectors on reg. Each config load gives a
// new registry (caddy.Context.GetMetricsRegistry), so the collectors, which
// are created once and keep counting across reloads, are registered on
// every Provision; a second handler of the same config finds them already
// registered, which is fine.
func registerMetrics(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{metrics.requests, metrics.origin, metrics.purged, metrics.lookups, metrics.stores} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// storeCollector reports the occupation of every live store on scrape,
// from Store.Stats.
type storeCollector struct {
	entries, bytes, maxSize, evictions, errors *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.entries
	ch <- c.bytes
	ch <- c.maxSize
	ch <- c.evictions
	ch <- c.errors
}

// Collect implements prometheus.Collector.
func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, ls := range live.stores() {
		st := ls.store.Stats()
		c.collect(ch, &st, ls.name)
		if st.Front != nil {
			// A tiered store's memory tier, under a name of its own: its
			// occupation and evictions say whether it is large enough,
			// which the back store's figures do not.
			c.collect(ch, st.Front, "front:"+ls.name)
		}
	}
}

// collect reports st under the store label name.
func (c storeCollector) collect(ch chan<- prometheus.Metric, st *store.Stats, name string) {
	ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(st.Entries), name)
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(st.Bytes), name)
	ch <- prometheus.MustNewConstMetric(c.maxSize, prometheus.GaugeValue, float64(st.Capacity), name)
	ch <- prometheus.MustNewConstMetric(c.evictions, prometheus.CounterValue, float64(st.Evictions), name)
	ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(st.Errors), name)
}
