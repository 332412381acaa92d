package policy

import (
	"time"
)

// Defaults of Options' heuristic freshness (§4.2.2).
const (
	DefaultHeuristicFraction = 0.1
	DefaultHeuristicMax      = 24 * time.Hour
)

// ResponseFreshnessStatus computes the freshness of a response with the
// given status and header h, received at responseTime (§4.2.1, §4.2.2;
// RFC 9213, RFC 5861).
//
// freshness_lifetime is the first of (§4.2.1):
//   - s-maxage;
//   - max-age;
//   - Expires minus Date (Date missing or invalid: responseTime, RFC 9110
//     §6.6.1); an invalid Expires such as "0" means already expired (§5.3),
//     and so do several Expires lines (§4.2.1) and any value that is not
//     exactly an HTTP-date (ParseHTTPDate: a double space, a one-digit
//     hour, a list of dates);
//   - opts.StatusTTLs' entry for status, else opts.DefaultTTL, when set:
//     the operator's own heuristic;
//   - heuristic freshness (§4.2.2), only when the response has a valid
//     Last-Modified and the status is cacheable by default or the response
//     is public: opts.HeuristicFraction (default 0.1) of Date minus
//     Last-Modified, capped at opts.HeuristicMax (default 24h);
//   - otherwise 0 (stale at once).
//
// opts.MaxTTL then caps it. With a valid CDN-Cache-Control, its directives
// replace Cache-Control's and Expires is ignored (RFC 9213 §2.2).
// stale-while-revalidate and stale-if-error come from the response (RFC
// 5861 §3, §4) or else opts. MustRevalidate is set by must-revalidate
// (§5.2.2.2), proxy-revalidate (§5.2.2.8) and s-maxage, which "incorporates
// the semantics of the proxy-revalidate" (§5.2.2.10).
func ResponseFreshnessStatus(status int, h FieldReader, responseTime time.Time, opts Options) Freshness {
	rd, targeted := responseDirectives(h)
	var f Freshness
	switch {
	case rd.SMaxAge.Set:
		f.Lifetime = rd.SMaxAge.D
	case rd.MaxAge.Set:
		f.Lifetime = rd.MaxAge.D
	case !targeted && len(h.Values("Expires")) > 0:
		f.Lifetime = expiresLifetime(h, responseTime)
	case opts.defaultTTL(status) > 0:
		f.Lifetime, f.Heuristic = opts.defaultTTL(status), true
	default:
		if lm, ok := singleDate(h.Values("Last-Modified")); ok && (CacheableByDefault(status) || rd.Public) {
			f.Lifetime, f.Heuristic = heuristicLifetime(dateOr(h, responseTime), lm, opts), true
		}
	}
	if opts.MaxTTL > 0 && f.Lifetime > opts.MaxTTL {
		f.Lifetime = opts.MaxTTL
	}
	f.StaleWhileRevalidate = opts.StaleWhileRevalidate
	if rd.StaleWhileRevalidate.Set {
		f.StaleWhileRevalidate = rd.StaleWhileRevalidate.D
	}
	f.StaleIfError = opts.StaleIfError
	if rd.StaleIfError.Set {
		f.StaleIfError = rd.StaleIfError.D
	}
	f.MustRevalidate = rd.MustRevalidate || rd.ProxyRevalidate || rd.SMaxAge.Set
	f.NoCache = rd.NoCache
	f.StaleIfUnreachable = staleIfUnreachable(f, opts.StaleIfUnreachable)
	return f
}

// staleIfUnreachable is the window past its freshness in which a response
// with freshness f may be served when the origin cannot be reached (the
// cache is "disconnected", §4.2.4): the configured window, but never for a
// response whose directives forbid serving it stale: must-revalidate
// (§5.2.2.2), proxy-revalidate (§5.2.2.8), s-maxage (§5.2.2.10), all in
// f.MustRevalidate, and no-cache (§5.2.2.4), which asks for validation at
// every use.
func staleIfUnreachable(f Freshness, window time.Duration) time.Duration {
	if f.MustRevalidate || f.NoCache {
		return 0
	}
	return window
}

// expiresLifetime is Expires minus Date (§4.2.1), never negative.
func expiresLifetime(h FieldReader, responseTime time.Time) time.Duration {
	v := h.Values("Expires")
	if len(v) > 1 {
		return 0 // several values: stale (§4.2.1 allows either; issue 11 item 3)
	}
	exp, ok := singleDate(v)
	if !ok {
		return 0 // §5.3: an invalid Expires, e.g. "0", is in the past
	}
	if d := exp.Sub(dateOr(h, responseTime)); d > 0 {
		return min(d, MaxDelta)
	}
	return 0
}

// heuristicLifetime is §4.2.2's "fraction of the interval since" the
// Last-Modified time, capped.
func heuristicLifetime(date, lastModified time.Time, opts Options) time.Duration {
	frac := opts.HeuristicFraction
	if frac <= 0 {
		frac = DefaultHeuristicFraction
	}
	maxH := opts.HeuristicMax
	if maxH <= 0 {
		maxH = DefaultHeuristicMax
	}
	since := date.Sub(lastModified)
	if since <= 0 {
		return 0
	}
	l := time.Duration(float64(since) * frac)
	if l < 0 || l > maxH { // l < 0: float overflow
		l = maxH
	}
	return l
}

// dateOr returns the Date of h, or fallback when it is missing or invalid
// (RFC 9110 §6.6.1: the recipient uses the time it received the message).
func dateOr(h FieldReader, fallback time.Time) time.Time {
	if d, ok := singleDate(h.Values("Date")); ok {
		return d
	}
	return fallback
}

// singleDate parses an HTTP-date field (exactly RFC 9110 §5.6.7's three
// formats, see ParseHTTPDate). Several lines must agree: differing values are invalid
// (§4.2.1).
func singleDate(values []string) (time.Time, bool) {
	if len(values) == 0 {
		return time.Time{}, false
	}
	t, ok := ParseHTTPDate(trimOWS(values[0]))
	if !ok {
		return time.Time{}, false
	}
	for _, v := range values[1:] {
		if u, ok := ParseHTTPDate(trimOWS(v)); !ok || !u.Equal(t) {
			return time.Time{}, false
		}
	}
	return t, true
}
