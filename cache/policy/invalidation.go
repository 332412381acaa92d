package policy

import (
	"net/http"
	"net/url"
	"strings"
)

// InvalidationTargets lists the URIs a successful unsafe request
// invalidates (§4.4): the target URI, and Location and Content-Location
// when they resolve to the same host. target is the request's absolute URI;
// h is the response header.
//
// Unsafe means any method but the safe GET, HEAD, OPTIONS and TRACE (RFC
// 9110 §9.2.1; methods are case-sensitive, so an unknown spelling is
// unsafe: §4.4 "including methods whose safety is unknown"). Success means a
// 2xx or 3xx status (§4.4 "non-error status code"). Location and
// Content-Location are resolved against target; they are listed only when
// their origin — scheme, host and port, the default port made explicit
// (RFC 9110 §4.3.1) — equals the target's (§4.4 "MUST NOT trigger an
// invalidation ... if the origin ... differs"). Fragments are dropped and a
// URI is listed once. Nil when nothing is invalidated.
func InvalidationTargets(method string, status int, target *url.URL, h http.Header) []*url.URL {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return nil
	}
	if status < 200 || status > 399 || target == nil || !target.IsAbs() {
		return nil
	}
	base := *target
	base.Fragment, base.RawFragment = "", ""
	out := []*url.URL{&base}
	for _, field := range [...]string{"Location", "Content-Location"} {
		v := h[field]
		if len(v) != 1 {
			continue // absent, or several values: not a single URI
		}
		ref, err := url.Parse(trimOWS(v[0]))
		if err != nil {
			continue
		}
		u := target.ResolveReference(ref)
		u.Fragment, u.RawFragment = "", ""
		if !sameOrigin(u, target) {
			continue
		}
		dup := false
		for _, o := range out {
			if o.String() == u.String() {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, u)
		}
	}
	return out
}

// sameOrigin compares scheme, host and port (RFC 9110 §4.3.1), case-
// insensitively and with default ports made explicit.
func sameOrigin(a, b *url.URL) bool {
	if !strings.EqualFold(a.Scheme, b.Scheme) {
		return false
	}
	return strings.EqualFold(a.Hostname(), b.Hostname()) && port(a) == port(b)
}

func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch strings.ToLower(u.Scheme) {
	case "http":
		return "80"
	case "https":
		return "443"
	}
	return ""
}
