package policy

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// CacheableByDefault tells whether status is heuristically cacheable
// (RFC 9110 §15.1: 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414,
// 501). These are also the statuses this cache "understands" for
// must-understand (RFC 9111 §5.2.2.3).
func CacheableByDefault(status int) bool {
	switch status {
	case http.StatusOK, http.StatusNonAuthoritativeInfo, http.StatusNoContent,
		http.StatusPartialContent, http.StatusMultipleChoices,
		http.StatusMovedPermanently, http.StatusPermanentRedirect,
		http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusGone,
		http.StatusRequestURITooLong, http.StatusNotImplemented:
		return true
	}
	return false
}

// Storable tells whether a shared cache may store the response to req
// (RFC 9111 §3, §3.5), and if not, why. status is the response's status,
// h its header.
//
// The checks, in order (the first failing one gives the Reason):
//   - the method is GET (§3 "the request method is understood"; HEAD is
//     answered from a stored GET by the handler): ReasonMethod;
//   - the status is final (§3), not 304 (§4.3.4 handles it) and a valid
//     code: ReasonStatus; 206 is never stored here: ReasonPartial;
//   - must-understand (§5.2.2.3): the status must be one this cache
//     understands (CacheableByDefault), else ReasonMustUnderstand; then
//     no-store is ignored;
//   - request no-store (§5.2.1.5): ReasonReqNoStore; response no-store
//     (§5.2.2.5): ReasonNoStore;
//   - private, qualified or not (§5.2.2.7; a shared cache): ReasonPrivate;
//   - a request with Authorization, unless the response has public,
//     s-maxage or must-revalidate (§3.5): ReasonAuthorization;
//   - Set-Cookie, unless opts.AllowSetCookie: ReasonSetCookie;
//   - Vary: * (§4.1: it never matches): ReasonVaryStar;
//   - opts.Statuses, when set: the status must be listed
//     (ReasonStatusNotAllowed); a listed status, and one with an entry in
//     opts.StatusTTLs, counts as cacheable by default for the next rule;
//   - §3's last rule: the status is cacheable by default, or the response
//     has public, max-age, s-maxage or Expires: ReasonStatus;
//   - no-cache (§5.2.2.4) without a validator: ReasonNoCache. Such a
//     response must be revalidated on every use, and without ETag or
//     Last-Modified every revalidation is a full fetch that replaces it, so
//     storing it only costs memory;
//   - a request with Cookie or Authorization and no explicit freshness
//     (max-age, s-maxage, Expires), unless opts.CredentialedHeuristics:
//     ReasonCredentials. The response may be personal, and neither
//     opts.DefaultTTL nor heuristic freshness (§4.2.2, a MAY) is a reason
//     to share it; only the origin's explicit freshness is. This comes on
//     top of §3.5's rule for Authorization;
//   - no explicit freshness (max-age, s-maxage, Expires), no validator and
//     no opts.DefaultTTL or opts.StatusTTLs entry for the status:
//     ReasonNoFreshness (§3 allows storing it, but it could never be
//     reused: "such responses are not usually useful to store"). A
//     response with only a validator is stored: it is stale at once and
//     revalidated with a cheap 304.
//
// With a valid CDN-Cache-Control, its directives replace Cache-Control's
// and Expires is ignored (RFC 9213 §2.2).
func Storable(method string, reqHeader http.Header, status int, h http.Header, opts Options) (bool, Reason) {
	if method != http.MethodGet {
		return false, ReasonMethod
	}
	// §3: "the response status code is final"; 304 only freshens (§4.3.4).
	if status < 200 || status > 999 || status == http.StatusNotModified {
		return false, ReasonStatus
	}
	if status == http.StatusPartialContent {
		return false, ReasonPartial
	}
	rd, targeted := responseDirectives(headerMap(h))
	understood := CacheableByDefault(status)
	noStore := rd.NoStore
	if rd.MustUnderstand {
		// §5.2.2.3: limited to caches that understand the status; those
		// "SHOULD ignore the no-store directive".
		if !understood {
			return false, ReasonMustUnderstand
		}
		noStore = false
	}
	if reqHasNoStore(reqHeader) {
		return false, ReasonReqNoStore
	}
	if noStore {
		return false, ReasonNoStore
	}
	if rd.Private {
		return false, ReasonPrivate
	}
	// §3.5: a shared cache stores a response to a request with
	// Authorization only when public, s-maxage or must-revalidate allow it.
	if _, ok := reqHeader["Authorization"]; ok && !rd.Public && !rd.SMaxAge.Set && !rd.MustRevalidate {
		return false, ReasonAuthorization
	}
	if _, ok := h["Set-Cookie"]; ok && !opts.AllowSetCookie {
		return false, ReasonSetCookie
	}
	if varyHasStar(h["Vary"]) {
		return false, ReasonVaryStar
	}
	if opts.Statuses != nil {
		if !slices.Contains(opts.Statuses, status) {
			return false, ReasonStatusNotAllowed
		}
		understood = true
	}
	if _, ok := opts.StatusTTLs[status]; ok {
		understood = true // the operator gave the status a lifetime
	}
	explicit := explicitFreshness(rd, targeted, h)
	if !understood && !explicit && !rd.Public {
		return false, ReasonStatus
	}
	validator := HasValidator(h)
	if rd.NoCache && !validator {
		return false, ReasonNoCache
	}
	if !explicit && !opts.CredentialedHeuristics && HasCredentials(reqHeader) {
		return false, ReasonCredentials
	}
	if !explicit && !validator && opts.defaultTTL(status) <= 0 {
		return false, ReasonNoFreshness
	}
	return true, ReasonNone
}

// HasCredentials tells whether a request carries Cookie or Authorization.
func HasCredentials(reqHeader http.Header) bool {
	_, cookie := reqHeader["Cookie"]
	_, auth := reqHeader["Authorization"]
	return cookie || auth
}

// StorablePOST tells whether a shared cache may store the response to a
// POST to target, for later GET requests of target (RFC 9110 §9.3.3:
// "Responses to POST requests are only cacheable when they include
// explicit freshness information and a Content-Location header field that
// has the same value as the POST's target URI"; RFC 9111 §4: such a
// response may then satisfy a GET of that URI). Content-Location must be
// one value that resolves, against target, to target itself (scheme, host
// case-insensitively, path and query as sent); the freshness must be
// explicit (max-age, s-maxage, or Expires outside CDN-Cache-Control).
// Both failing give ReasonMethod; then every rule of Storable for a GET
// applies.
func StorablePOST(reqHeader http.Header, status int, h http.Header, target *url.URL, opts Options) (bool, Reason) {
	cl := h["Content-Location"]
	if len(cl) != 1 || target == nil {
		return false, ReasonMethod
	}
	u, err := target.Parse(trimOWS(cl[0]))
	if err != nil || u.Scheme != target.Scheme || !strings.EqualFold(u.Host, target.Host) ||
		u.EscapedPath() != target.EscapedPath() || u.RawQuery != target.RawQuery || u.Fragment != "" {
		return false, ReasonMethod
	}
	rd, targeted := responseDirectives(headerMap(h))
	_, hasExpires := h["Expires"]
	if !rd.MaxAge.Set && !rd.SMaxAge.Set && (!hasExpires || targeted) {
		return false, ReasonMethod
	}
	return Storable(http.MethodGet, reqHeader, status, h, opts)
}

// reqHasNoStore tells whether the request's Cache-Control has no-store.
func reqHasNoStore(reqHeader http.Header) bool {
	v := reqHeader[fieldCacheControl]
	return len(v) > 0 && ParseCacheControl(v).NoStore
}

// varyHasStar tells whether a Vary field lists "*".
func varyHasStar(vary []string) bool {
	for _, line := range vary {
		for line != "" {
			var f string
			f, line = nextListElement(line)
			if f == "*" {
				return true
			}
		}
	}
	return false
}

// nextListElement splits the first element off a comma-separated list
// (RFC 9110 §5.6.1), trimming OWS; empty elements come back as "".
func nextListElement(s string) (elem, rest string) {
	for i := 0; i < len(s); i++ {
		if s[i] == ',' {
			return trimOWS(s[:i]), s[i+1:]
		}
	}
	return trimOWS(s), ""
}

// ExplicitFreshness tells whether a response header gives the response a
// lifetime of its own (§4.2.1): max-age, s-maxage or Expires, or with a
// valid CDN-Cache-Control its max-age or s-maxage (RFC 9213 §2.2), rather
// than one a cache assigns (heuristics, default_ttl).
func ExplicitFreshness(h http.Header) bool {
	rd, targeted := responseDirectives(headerMap(h))
	return explicitFreshness(rd, targeted, h)
}

func explicitFreshness(rd Directives, targeted bool, h http.Header) bool {
	_, hasExpires := h["Expires"]
	return rd.MaxAge.Set || rd.SMaxAge.Set || (hasExpires && !targeted)
}
