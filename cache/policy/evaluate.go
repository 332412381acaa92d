package policy

import (
	"net/http"
	"strings"
	"time"
)

// EvaluateRequest decides how a stored response (freshness f, current_age
// age: see CorrectedInitialAge and AgeAt, so the hit path parses no stored
// header field) may answer a request with directives rq (parsed with
// RequestDirectives) (§4, §4.2.4, §5.2.1). The rules, in order:
//
//   - The request's no-cache (§5.2.1.4) — or, without Cache-Control, its
//     Pragma: no-cache (RFC 7234 §5.4; RFC 9111 §5.4 deprecates Pragma
//     but old clients still send it) — and the response's no-cache
//     (§5.2.2.4) mean Revalidate. immutable (RFC 8246) changes nothing:
//     a client's no-cache (a forced reload) is still honoured.
//   - A request max-age lower than the age (§5.2.1.1) means Revalidate.
//   - A fresh response (freshness_lifetime > current_age, §4.2) is Served,
//     unless the request's min-fresh asks for more remaining freshness
//     than it has (§5.2.1.3): Revalidate.
//   - A stale response with must-revalidate, proxy-revalidate or s-maxage
//     (Freshness.MustRevalidate) is never served stale (§4.2.4, §5.2.2.2):
//     Revalidate, and the request's max-stale is ignored.
//   - A stale response within the request's max-stale (§5.2.1.2; with no
//     value, any staleness) may be served: ServeStaleRevalidate, so that
//     the client gets it at once and the cache refreshes it.
//   - A stale response within stale-while-revalidate (RFC 5861 §3) is
//     ServeStaleRevalidate, unless the request forbids stale responses:
//     min-fresh, max-age without max-stale (§5.2.1.1 "Unless the max-stale
//     request directive is also present, the client does not wish to
//     receive a stale response"), or a max-stale it exceeds.
//   - Otherwise Revalidate.
//
// StaleIfErrorOK: the response may be served stale when revalidation fails
// if it is within the response's stale-if-error window (RFC 5861 §4, or the
// configured default), within the request's stale-if-error, or within the
// request's max-stale; never with must-revalidate or the response's
// no-cache (§4.2.4 "MUST NOT generate a stale response if it is prohibited
// by an explicit in-protocol directive"). A window of 0 allows nothing.
//
// TTL is freshness_lifetime - current_age, negative when stale.
func EvaluateRequest(rq *Directives, f *Freshness, age time.Duration) Decision {
	d := Decision{Action: Revalidate, Age: age, TTL: f.Lifetime - age}
	staleness := age - f.Lifetime // > 0 when stale
	fresh := staleness < 0        // §4.2: freshness_lifetime > current_age

	maxStaleOK := rq.MaxStaleAny || (rq.MaxStale.Set && staleness <= rq.MaxStale.D)
	if !f.MustRevalidate && !f.NoCache {
		d.StaleIfErrorOK = within(staleness, f.StaleIfError) ||
			(rq.StaleIfError.Set && within(staleness, rq.StaleIfError.D)) ||
			maxStaleOK
	}

	d.StaleIfUnreachableOK = within(staleness, f.StaleIfUnreachable)

	switch {
	case rq.NoCache || f.NoCache:
		// §5.2.1.4, §5.2.2.4: validate first.
	case rq.MaxAge.Set && age > rq.MaxAge.D:
		// §5.2.1.1: the client wants a response no older than max-age.
	case fresh:
		if !rq.MinFresh.Set || -staleness >= rq.MinFresh.D {
			d.Action = Serve
		}
	case f.MustRevalidate:
		// §4.2.4: never stale.
	case rq.MinFresh.Set:
		// §5.2.1.3: a stale response is not fresh for min-fresh.
	case maxStaleOK:
		d.Action = ServeStaleRevalidate // §5.2.1.2
	case within(staleness, f.StaleWhileRevalidate) && !rq.MaxAge.Set && !rq.MaxStale.Set:
		d.Action = ServeStaleRevalidate // RFC 5861 §3
	}
	return d
}

// within tells whether a staleness is inside a positive window.
func within(staleness, window time.Duration) bool {
	return window > 0 && staleness <= window
}

// RequestDirectives parses a request's Cache-Control, honouring Pragma:
// no-cache when there is no Cache-Control (RFC 7234 §5.4).
func RequestDirectives(reqHeader http.Header) Directives {
	if v := reqHeader[fieldCacheControl]; len(v) > 0 {
		return ParseCacheControl(v)
	}
	var d Directives
	for _, line := range reqHeader[fieldPragma] {
		for line != "" {
			var e string
			e, line = nextListElement(line)
			if strings.EqualFold(e, "no-cache") {
				d.NoCache = true
			}
		}
	}
	return d
}
