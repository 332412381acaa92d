package cache

import (
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

// Responses that a route after the cache makes up.
//
// The cache judges a response by its own fields. Two of Caddy's handlers
// answer with a response that a route made up in place of the origin's:
//
//   - a reverse_proxy handle_response route, such as the one that serves
//     a file the origin named (X-Accel-Redirect, X-Sendfile): the client
//     gets file_server's fields only, and the origin's Cache-Control
//     (private, no-store), Vary and Set-Cookie are lost;
//   - an intercept route, which answers an error with a page of its own,
//     often a 200 from file_server.
//
// file_server's Last-Modified makes such a response storable by heuristic
// freshness (RFC 9111 §4.2.2), so a file the origin handed to one client
// after checking its credentials, or an error page, would be served to
// every client of the URL. A made-up response is therefore stored only
// with explicit freshness of its own (max-age, s-maxage, Expires or
// CDN-Cache-Control, set by the route or copied from the origin with
// copy_response_headers): never by heuristics or default_ttl (for any
// status), nor as a validator-only entry.

// detailComposed is the detail of a response that a route after the cache
// made up in place of the origin's and that has no explicit freshness.
const detailComposed = "composed"

// proxyMarker is a placeholder the cache sets before it calls the next
// handler. reverse_proxy removes every {http.reverse_proxy.header.*}
// placeholder before it sets those of the response it got, so the marker
// is gone exactly when a reverse_proxy after the cache answered, and the
// placeholders then are that response's, not an earlier proxy's (the
// forward_auth in front of the cache). The colon keeps it apart from any
// field name.
const proxyMarker = "http.reverse_proxy.header.:http_cache"

// interceptStatus is the placeholder intercept sets to the status of the
// response it intercepted, before it runs the route that replaces it.
const interceptStatus = "http.intercept.status_code"

// The placeholders of the origin's response that tell it from one a
// route made up.
const (
	proxyDate        = "http.reverse_proxy.header.Date"
	proxyContentType = "http.reverse_proxy.header.Content-Type"
	proxyVia         = "http.reverse_proxy.header.Via"
)

// ownProbe tells whether key is a placeholder the cache looks up itself to
// tell a made-up response. A copy of the client's request (a background
// refresh, a fetch aside) answers it from its own replacer only: the
// client's value is an earlier proxy's (forward_auth's), and a lookup there
// would count as one its next handlers made (copiedKeys).
func ownProbe(key string) bool {
	switch key {
	case proxyMarker, interceptStatus, proxyDate, proxyContentType, proxyVia:
		return true
	}
	return false
}

// composeWatch is what the cache noted before calling the next handler.
type composeWatch struct {
	repl        *caddy.Replacer
	intercepted any // {http.intercept.status_code} before; nil if unset
}

// watchComposition notes, before the next handler runs, what tells
// afterwards whether a route made up the response.
func watchComposition(repl *caddy.Replacer) composeWatch {
	if repl == nil {
		return composeWatch{}
	}
	repl.Set(proxyMarker, true)
	v, _ := repl.Get(interceptStatus)
	return composeWatch{repl: repl, intercepted: v}
}

// done removes the marker once the next handler returned.
func (cw composeWatch) done() {
	if cw.repl != nil {
		cw.repl.Delete(proxyMarker)
	}
}

// composed tells whether the response with header h, written by the next
// handler, is one a route made up in place of the origin's:
//
//   - intercept ran a route (or replaced the status): it set its status
//     placeholder, or changed it, during the next handler;
//   - a reverse_proxy answered after the cache (the marker is gone) and h
//     is not the header it copies from the origin: its own Via is missing
//     (proxied), or the origin's Date (origin servers send one, RFC 9110
//     §6.6.1), or when the origin sent none its Content-Type, is missing
//     or differs. reverse_proxy copies every field of the origin's
//     response but the hop-by-hop ones, and a handle_response route only
//     those it is told to: all of them with copy_response_headers, Date
//     too, and the origin's Content-Type is often the file's own (PHP-FPM
//     sends no Date).
//
// A header_down that removes or rewrites Date or Via (or, without a Date,
// Content-Type), or a header -Via that runs after the cache (in a route
// block, after http_cache), makes the origin's own response count as made
// up: it is then stored only with explicit freshness, the safe side.
func (cw composeWatch) composed(h http.Header) bool {
	repl := cw.repl
	if repl == nil {
		return false
	}
	if v, ok := repl.Get(interceptStatus); ok && (cw.intercepted == nil || caddy.ToString(v) != caddy.ToString(cw.intercepted)) {
		return true
	}
	if _, ok := repl.Get(proxyMarker); ok {
		return false // no reverse_proxy answered after the cache
	}
	if !proxied(h, repl) {
		return true
	}
	if v, ok := repl.GetString(proxyDate); ok {
		return joined(h["Date"]) != v
	}
	if v, ok := repl.GetString(proxyContentType); ok {
		return joined(h["Content-Type"]) != v
	}
	return false
}

// proxied tells whether h is the header reverse_proxy wrote for the
// origin's response (finalizeResponse, also behind copy_response): it
// appends a Via of its own ("1.1 Caddy", RFC 9110 §7.6.3) to the header
// before it adds the origin's fields, so Via ends with that value and then
// the origin's Via values, if any. A route that copies the origin's fields
// (copy_response_headers) and has another handler answer has the origin's
// Via values at most, never reverse_proxy's own before them.
func proxied(h http.Header, repl *caddy.Replacer) bool {
	own := " Caddy"
	if v, ok := repl.GetString(proxyVia); ok {
		own += "," + v
	}
	return strings.HasSuffix(joined(h["Via"]), own)
}

// joined is a field's values as reverse_proxy puts them in a placeholder.
func joined(values []string) string {
	if len(values) == 1 {
		return values[0]
	}
	return strings.Join(values, ",")
}
