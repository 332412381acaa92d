package geofilter

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// The collectors are created once per process and registered on the
// metrics registry of every config that provisions a geofilter handler.
// Caddy makes a new registry for each config (caddy.NewContext), so
// registering on Provision is needed after each reload; within one config,
// the second registration fails with AlreadyRegisteredError, which is fine.
var (
	decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy",
		Subsystem: "geofilter",
		Name:      "decisions_total",
		Help:      "Requests decided by geofilter, by action (allow, deny, log, would_deny) and client country (ISO code, unknown or other).",
	}, []string{"action", "country"})

	lookupsNotFound = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "caddy",
		Subsystem: "geofilter",
		Name:      "lookups_not_found_total",
		Help:      "Client addresses that no geofilter database had a record for.",
	})

	databaseReloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy",
		Subsystem: "geofilter",
		Name:      "database_reloads_total",
		Help:      "Reloads of changed geofilter database and IP list files, by result (ok, error).",
	}, []string{"result"})
)

// decisionCounters caches the counters of decisions, so that counting one
// costs an atomic load rather than hashing labels: by action (allow, deny,
// log, would_deny) and country index (26*26 ISO codes, unknown, other).
var decisionCounters [4][26*26 + 2]atomic.Pointer[prometheus.Counter]

// countDecision counts one decision; country is a normalised country
// (rules.NormalizeCountry).
func countDecision(action, country string) {
	a := -1
	switch action {
	case decisionAllow:
		a = 0
	case decisionDeny:
		a = 1
	case decisionLog:
		a = 2
	case decisionWouldDeny:
		a = 3
	}
	c := 26 * 26 // unknown
	switch {
	case len(country) == 2:
		c = int(country[0]-'A')*26 + int(country[1]-'A')
	case country == "other":
		c = 26*26 + 1
	}
	if a < 0 || c < 0 || c > 26*26+1 {
		decisions.WithLabelValues(action, country).Inc()
		return
	}
	slot := &decisionCounters[a][c]
	if p := slot.Load(); p != nil {
		(*p).Inc()
		return
	}
	counter := decisions.WithLabelValues(action, country)
	slot.Store(&counter)
	counter.Inc()
}

// countReload counts a reload of a database or IP list file; result is
// "ok" or "error". Handlers and matchers hand it to the files they open.
func countReload(_, _, result string) {
	databaseReloads.WithLabelValues(result).Inc()
}

// registerMetrics registers the collectors on reg, tolerating collectors
// that are already registered.
func registerMetrics(reg *prometheus.Registry) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{decisions, lookupsNotFound, databaseReloads, databaseUpdates} {
		if err := reg.Register(c); err != nil {
			if _, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); !ok {
				return fmt.Errorf("registering metrics: %w", err)
			}
		}
	}
	return nil
}
