package cache

import (
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// cacheName is the cache's name in Cache-Status (RFC 9211 §2).
const cacheName = "caddy-edge"

// Results: the value of the {http_cache.status} placeholder, the
// http_cache_status access-log field and the result label of
// caddy_http_cache_requests_total.
const (
	resultHit         = "hit"         // served from a fresh stored response
	resultStale       = "stale"       // served a stale stored response (stale-while-revalidate or stale-if-error)
	resultRevalidated = "revalidated" // a stored response was validated with the origin (304) and served
	resultCollapsed   = "collapsed"   // waited for another request's fetch of the same key and was served from it
	resultMiss        = "miss"        // fetched from the origin and stored
	resultUncacheable = "uncacheable" // fetched from the origin and not stored (see detail)
	resultBypass      = "bypass"      // a bypass matcher matched, or the request cannot be cached (method, Upgrade)
	resultUnavailable = "unavailable" // 504: only-if-cached and nothing usable stored, or a collapsed wait timed out
)

// results lists every result, once: the placeholder's values and the
// metric's labels are made from it.
var results = [...]string{resultHit, resultStale, resultRevalidated, resultCollapsed, resultMiss, resultUncacheable, resultBypass, resultUnavailable}

// resultValues holds each result as an interface value, so that setting
// the placeholder does not allocate.
var resultValues = func() map[string]any {
	m := make(map[string]any)
	for _, r := range results {
		m[r] = r
	}
	return m
}()

// statusPlaceholder is the placeholder that holds a request's result.
const statusPlaceholder = "http_cache.status"

// hitProvider answers {http_cache.status} with resultHit.
func hitProvider(key string) (any, bool) {
	if key == statusPlaceholder {
		return resultValues[resultHit], true
	}
	return nil, false
}

// setStatus sets repl's {http_cache.status} to result.
func setStatus(repl *caddy.Replacer, result string) {
	v, ok := resultValues[result]
	if !ok {
		v = result
	}
	repl.Set(statusPlaceholder, v)
}

// setHitStatus is setStatus for a plain hit. It is added as a provider
// (Replacer.Map) instead of with Replacer.Set: a replacer's first Set
// allocates its map's table, about 300 bytes, that nothing else on a
// hit's path needs unless the server writes an access log, while Map
// appends to a slice that Caddy's own provider already grew. Only a plain
// hit may: Map, unlike Set, is not safe while another goroutine reads the
// replacer, and a background fetch's replacer reads the client's
// (backgroundRequest); a plain hit starts none, and no handler after it
// runs. The replacer reads values Set before its providers, so an earlier
// result that was Set (another http_cache handler further in, or further
// out in the chain) is deleted first, and the last result wins, as with Set
// alone. Delete only takes the replacer's lock; asking Get whether a value
// was Set would call every provider, Caddy's HTTP one included, when it
// was not (about 100 ns a hit).
func setHitStatus(repl *caddy.Replacer) {
	repl.Delete(statusPlaceholder)
	repl.Map(hitProvider)
}

// fwd values of Cache-Status (RFC 9211 §2.2).
const (
	fwdBypass   = "bypass"
	fwdMethod   = "method"
	fwdURIMiss  = "uri-miss"
	fwdVaryMiss = "vary-miss"
	fwdRequest  = "request"
	fwdStale    = "stale"
)

// detailHitForMiss is the detail of a request sent to the origin without
// collapsing because the key's last response was not storable.
const detailHitForMiss = "hit-for-miss"

// detailCollapseTimeout is the detail of a request that waited for another
// request's fetch of its key longer than collapse_timeout and was answered
// without going to the origin: stale, or 504.
const detailCollapseTimeout = "collapse-timeout"

// detailRangeFill is the detail of a Range miss sent to the origin
// untouched that also started a background fill of the whole response.
const detailRangeFill = "range-fill"

// detailMinUses is the detail of a response not stored because its URL
// has not yet been requested min_uses times.
const detailMinUses = "min-uses"

// detailStoreBusy is the detail of a response that was not stored because
// the store held as many bodies being written as it may (store.ErrBusy).
const detailStoreBusy = "store-busy"

// collapse is how a request took part in request collapsing: the
// collapsed parameter of Cache-Status (RFC 9211 §2.6).
type collapse int8

const (
	// notCollapsed: the request waited for no other request's fetch (no
	// parameter).
	notCollapsed collapse = 0
	// collapsedServed: it waited for another request's fetch and was
	// served from it ("collapsed").
	collapsedServed collapse = 1
	// collapsedUnused: it waited for another request's fetch and could not
	// use it (another variant, an uncacheable response, the wait timed
	// out), so it went on alone ("collapsed=?0").
	collapsedUnused collapse = -1
)

// cacheStatus builds a Cache-Status field value. The zero value is a hit.
type cacheStatus struct {
	fwd       string // "" on a hit
	fwdStatus int    // 0: not sent
	stored    bool
	collapsed collapse
	ttl       time.Duration
	hasTTL    bool
	detail    string // token; "" for none
}

// String returns the field value, e.g. `caddy-edge; hit; ttl=42` or
// `caddy-edge; fwd=uri-miss; fwd-status=200; stored; ttl=60`.
func (s *cacheStatus) String() string {
	b := make([]byte, 0, 96)
	b = append(b, cacheName...)
	if s.fwd == "" {
		b = append(b, "; hit"...)
	} else {
		b = append(b, "; fwd="...)
		b = append(b, s.fwd...)
		if s.fwdStatus != 0 {
			b = append(b, "; fwd-status="...)
			b = strconv.AppendInt(b, int64(s.fwdStatus), 10)
		}
		if s.stored {
			b = append(b, "; stored"...)
		}
		switch s.collapsed {
		case collapsedServed:
			b = append(b, "; collapsed"...)
		case collapsedUnused:
			b = append(b, "; collapsed=?0"...)
		}
	}
	if s.hasTTL {
		b = append(b, "; ttl="...)
		b = strconv.AppendInt(b, ttlSeconds(s.ttl), 10)
	}
	if s.detail != "" {
		b = append(b, "; detail="...)
		b = append(b, s.detail...)
	}
	return string(b)
}

// ttlSeconds is ttl in whole seconds, rounded up, so that it agrees with
// the Age field (current_age rounded down): Age 0 and ttl=60 for a response
// with max-age=60 that has just arrived.
func ttlSeconds(ttl time.Duration) int64 {
	s := int64(ttl / time.Second)
	if ttl%time.Second > 0 {
		s++
	}
	return s
}

// report sets the {http_cache.status} placeholder and the access-log field
// for r, and counts the result.
func (h *Handler) report(r *http.Request, result string) {
	h.reportAs(r, result, false)
}

// reportAs is report; plainHit reports a hit with plain set, whose
// placeholder setHitStatus sets.
func (h *Handler) reportAs(r *http.Request, result string, plain bool) {
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		if plain {
			setHitStatus(repl)
		} else {
			setStatus(repl, result)
		}
	}
	// ExtraLogFields.Set costs a fresh map per call: skip it when the
	// server writes no access log.
	if !h.noAccessLog {
		setLogField(r, result)
	}
	metrics.count(result)
	if h.logger.Core().Enabled(zapcore.DebugLevel) {
		h.logResult(r, result)
	}
}

// logResult writes the debug log line of a request's result. A function
// of its own, so that zap's Check and the fields, more than a kilobyte of
// stack, are not on the stack of every hit (see ServeHTTP).
func (h *Handler) logResult(r *http.Request, result string) {
	if c := h.logger.Check(zapcore.DebugLevel, "http_cache"); c != nil {
		c.Write(zap.String("result", result), zap.String("method", r.Method), zap.String("uri", r.RequestURI))
	}
}

// setLogField adds the result to r's access log entry; out of report's
// frame, as logResult is.
func setLogField(r *http.Request, result string) {
	if extra, ok := r.Context().Value(caddyhttp.ExtraLogFieldsCtxKey).(*caddyhttp.ExtraLogFields); ok {
		extra.Set(zap.String("http_cache_status", result))
	}
}

// detailRequestBody is the detail of a GET or HEAD with a request body,
// which is passed to the origin and never stored.
const detailRequestBody = "request-body"

// detailPreconditionFailed is the detail of a 412 from the origin, never
// stored: it answers the request's precondition, not its URL.
const detailPreconditionFailed = "precondition-failed"

// detailSelfRedirect is the detail of a redirect to its own key, never
// stored (see fetchWriter.redirectsToItsKey).
const detailSelfRedirect = "self-redirect"

// detailURITooLong is the detail of a 414 from the origin, never stored:
// it answers the length of the request target, which the key may not
// hold whole (ignore_query_params, a key template).
const detailURITooLong = "uri-too-long"

// detailValidatorMismatch is the detail of a revalidation answered with a
// 304 whose validator is not the stored response's (RFC 9111 §4.3.4).
const detailValidatorMismatch = "validator-mismatch"
