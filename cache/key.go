package cache

import (
	"cmp"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-edge/edge/cache/policy"
)

// Key layout
//
// The primary key of a request is, by default, scheme "://" host path
// ["?" query], with the host lower-cased, the query optionally sorted and
// stripped of ignored parameters (e.g. "https://example.com/a?b=1"). With
// the key option it is the expanded placeholder template instead, each
// placeholder's value escaped (see templateKey) so that no request can
// produce another request's key.
//
// A response without Vary is stored under its primary key. A response with
// Vary (RFC 9111 §4.1), or any response when the vary option names
// placeholders, is stored under primary + varySep + secondary key (see
// variantKey), and a vary marker (an Entry with Status 0 whose Vary header
// lists the fields) is stored under the primary key, so that a lookup knows
// which request fields select the variant. Purging a URL deletes the
// primary key and every key that starts with primary + varySep: all its
// variants.
//
// A request whose Host has upper case has it as sent after the URL
// (varySep, hostMark, the Host), one that arrived on another port than
// its Host names the name of the server it arrived at (varySep, serverMark,
// the name; see otherServer), one whose trusted proxy gives it another
// scheme than its connection's that scheme (varySep, protoMark, the
// scheme; see forwardedProto), and a request rewritten before the cache
// the rewritten path and query (varySep, rewriteMark, the URI), in that
// order: all are then in the group of the URL, which a purge of it
// removes.
//
// HEAD requests are answered from the stored GET response, so the method is
// not part of the key.

// varySep separates the primary key from a variant's secondary key. A
// primary key never holds it, but for the default key of a rewritten
// request (see rewriteMark), which is then one of the variants of the
// URL as clients request it: the default key is built from a parsed URL
// and host (no control bytes), and a template's placeholder values have
// their control bytes escaped.
const varySep = "\x00"

// newKeyer returns the keyer of a handler's key options.
func newKeyer(template string, sortQuery bool, ignore, vary []string) keyer {
	k := keyer{template: template, sortQuery: sortQuery, ignore: ignore, vary: vary}
	if template != "" {
		k.segments = parseTemplate(template)
	}
	return k
}

// keyer builds primary cache keys.
type keyer struct {
	template  string    // placeholder template; "" for the default key
	segments  []segment // template, parsed
	sortQuery bool      // sort query parameters by name (stable for equal names)
	ignore    []string  // query parameter name globs to drop (path.Match syntax)
	vary      []string  // placeholders, braces included, that select variants
}

// segment is a piece of a key template: literal text, or a placeholder
// (its name without braces) with the byte that ends its value in the key.
type segment struct {
	lit  string
	ph   string
	term byte // escaped in the value: the next literal's first byte, or '/' before another placeholder
	adj  bool // directly follows another placeholder
}

// parseTemplate splits a key template into literals and placeholders, as
// caddy.Replacer reads it: "\{" and "\}" are literal braces, "{name}" a
// placeholder, an unclosed "{" literal text.
func parseTemplate(t string) []segment {
	var segs []segment
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			segs = append(segs, segment{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if c == '\\' && i+1 < len(t) && (t[i+1] == '{' || t[i+1] == '}') {
			lit.WriteByte(t[i+1])
			i++
			continue
		}
		if c != '{' {
			lit.WriteByte(c)
			continue
		}
		end := strings.IndexByte(t[i:], '}')
		if end < 0 {
			lit.WriteString(t[i:])
			break
		}
		end += i
		for end < len(t)-1 && t[end-1] == '\\' { // an escaped "}" inside: the first unescaped one ends it
			next := strings.IndexByte(t[end+1:], '}')
			if next < 0 {
				break
			}
			end += next + 1
		}
		flush()
		segs = append(segs, segment{ph: t[i+1 : end]})
		i = end
	}
	flush()
	for i := range segs {
		if segs[i].ph == "" || i+1 == len(segs) {
			continue
		}
		if next := segs[i+1]; next.ph == "" {
			segs[i].term = next.lit[0]
		} else {
			segs[i].term = '/'
			segs[i+1].adj = true
		}
	}
	return segs
}

// templateKey expands the parsed template for r. Each placeholder value is
// escaped: "%", control bytes (a decoded %00 or %0A in a placeholder
// included), DEL and the byte that ends the value
// in the key (the first byte of the literal text that follows it) become
// %XX. So a value never reaches into the next part of the key, and two
// requests share a key only when every placeholder has the same value.
// Two placeholders with nothing between them are told apart by "/": the
// first has its "/" escaped, and the second, when its value does not start
// with "/" (a path always does), is preceded by "%/", which escaping never
// produces. An unknown placeholder is empty, as in caddy.Replacer.ReplaceAll.
// {http.request.uri.path} is the path as sent (escapedPath), not decoded.
func (k *keyer) templateKey(repl *caddy.Replacer) string {
	var b strings.Builder
	b.Grow(len(k.template) + 64)
	for _, s := range k.segments {
		if s.ph == "" {
			b.WriteString(s.lit)
			continue
		}
		var v string
		if s.ph == "http.request.uri.path" {
			// The path as sent, not Caddy's decoded one: /x%2Fy and /x/y
			// are two resources to many origins, so two keys.
			v = escapedPath(repl)
		} else if val, ok := repl.Get(s.ph); ok {
			v = caddy.ToString(val)
		}
		if s.adj && !strings.HasPrefix(v, "/") {
			b.WriteString("%/")
		}
		writeKeyEscaped(&b, v, s.term, true)
	}
	return b.String()
}

// escapedPath returns the path of {http.request.uri}: the request's path
// as sent (percent-encoded), without the query.
func escapedPath(repl *caddy.Replacer) string {
	val, ok := repl.Get("http.request.uri")
	if !ok {
		return ""
	}
	v := caddy.ToString(val)
	if i := strings.IndexByte(v, '?'); i >= 0 {
		v = v[:i]
	}
	return v
}

// writeKeyEscaped writes v with control bytes, DEL, term (unless 0) and,
// when pct, "%" percent-encoded.
func writeKeyEscaped(b *strings.Builder, v string, term byte, pct bool) {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(v); i++ {
		c := v[i]
		if (c == '%' && pct) || c < 0x20 || c == 0x7f || (c == term && term != 0) {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
}

// variantKey returns the secondary key of a request with header reqHeader
// and replacer repl for a response that varies on the fields vary (§4.1,
// policy.VaryKey), followed by the values of the handler's vary
// placeholders: "&{name}=value" for each, in the configured order, the
// value with "%", "&", "=" and control bytes percent-encoded. A placeholder
// keeps its braces, which no field name has (RFC 9110 §5.1: a token), so
// it never passes for a request field. ok is false for Vary: *.
func (k *keyer) variantKey(vary []string, reqHeader http.Header, repl *caddy.Replacer) (string, bool) {
	sec, ok := policy.VaryKey(vary, reqHeader)
	if !ok || len(k.vary) == 0 {
		return sec, ok
	}
	var b strings.Builder
	b.WriteString(sec)
	for _, ph := range k.vary {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(ph)
		b.WriteByte('=')
		var v string
		if repl != nil {
			if val, found := repl.Get(ph[1 : len(ph)-1]); found {
				v = caddy.ToString(val)
			}
		}
		for i := 0; i < len(v); i++ {
			c := v[i]
			if c == '&' || c == '=' {
				writeKeyEscaped(&b, v[i:i+1], c, true)
				continue
			}
			writeKeyEscaped(&b, v[i:i+1], 0, true)
		}
	}
	return b.String(), true
}

// replacerOf returns the request's replacer, if any.
func replacerOf(ctx context.Context) *caddy.Replacer {
	repl, _ := ctx.Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	return repl
}

// key returns the primary cache key of r. The default key is built from
// r.Host and r.URL directly, without the replacer: it is on every hit.
func (k *keyer) key(r *http.Request) string {
	if k.template != "" {
		repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
		if !ok {
			repl = caddy.NewReplacer()
		}
		return k.templateKey(repl)
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	orig, ok := originalRequest(r)
	rewritten := ok && (orig.URL.Path != r.URL.Path || orig.URL.RawPath != r.URL.RawPath || orig.URL.RawQuery != r.URL.RawQuery)
	srv, proto, upper := otherServer(r, scheme), forwardedProto(r, scheme), hasUpper(r.Host)
	if !rewritten && srv == "" && proto == "" && !upper {
		return k.defaultKey(scheme, r.Host, r.URL.EscapedPath(), r.URL.RawQuery)
	}
	u := r.URL
	if rewritten {
		u = orig.URL
	}
	var b strings.Builder
	b.WriteString(k.defaultKey(scheme, r.Host, u.EscapedPath(), u.RawQuery))
	if upper {
		// The origin gets the Host as sent, and may answer another case
		// otherwise (Go's ServeMux matches host patterns as written).
		// Browsers send it in lower case.
		keyPart(&b, hostMark, r.Host)
	}
	if srv != "" {
		// Caddy picks the server by the port a request arrived on, and
		// the site by the Host's name, not its port: a Host that names
		// another port than the one it came to (a client's choice, or a
		// proxy's port mapping) is answered by this server's routes,
		// which may have another origin than those of the server of the
		// port the Host names. Kept after varySep, so that a purge of
		// the URL takes it too.
		keyPart(&b, serverMark, srv)
	}
	if proto != "" {
		// The client's scheme, as a proxy that Caddy trusts says and
		// reverse_proxy tells the origin, is not that of the proxy's
		// connection (a balancer that forwards its HTTP and its HTTPS
		// listener to one port): an origin that redirects HTTP to HTTPS
		// answers the two apart.
		keyPart(&b, protoMark, proto)
	}
	if !rewritten {
		return b.String()
	}
	// Rewritten before the cache (handle_path, uri, rewrite): the URL the
	// client requested says which route, and so which origin, answers;
	// the rewritten one what that origin is asked. Either alone is
	// ambiguous: two handle_path blocks in front of two origins rewrite
	// /a/x and /b/x to one /x, and a rewrite by country sends one URL to
	// two. The rewritten URI goes after varySep, so that a purge or an
	// invalidation of the URL as clients request it takes it too.
	b.WriteString(varySep)
	b.WriteString(rewriteMark)
	b.WriteString(k.pathQuery(r.URL.EscapedPath(), r.URL.RawQuery))
	return b.String()
}

// keyPart adds to a primary key a part after the URL: varySep, mark, and
// v escaped.
func keyPart(b *strings.Builder, mark, v string) {
	b.WriteString(varySep)
	b.WriteString(mark)
	writeKeyEscaped(b, v, 0, false)
}

// originalRequest returns r as the client sent it, before any rewrite,
// which Caddy's server keeps in the context; ok is false outside Caddy.
func originalRequest(r *http.Request) (orig http.Request, ok bool) {
	orig, ok = r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request)
	return orig, ok && orig.URL != nil
}

// otherServer returns the name of the server r arrived at when it came to
// another port than its Host names (the scheme's default when it names
// none), "" when they agree or the port is not known. The server, not
// the port: a fleet whose nodes listen on different ports behind one name
// keeps sharing a store, and the ports of one server answer alike.
func otherServer(r *http.Request, scheme string) string {
	var local int
	switch a := r.Context().Value(http.LocalAddrContextKey).(type) {
	case *net.TCPAddr:
		local = a.Port
	case *net.UDPAddr: // HTTP/3
		local = a.Port
	default:
		return ""
	}
	hostPort := "80"
	if scheme == "https" {
		hostPort = "443"
	}
	if i := strings.LastIndexByte(r.Host, ':'); i >= 0 && !strings.Contains(r.Host[i:], "]") {
		hostPort = r.Host[i+1:]
	}
	if p, err := strconv.Atoi(hostPort); err == nil && p == local {
		return ""
	}
	srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if !ok || srv == nil {
		return ""
	}
	return srv.Name()
}

// forwardedProto returns the scheme that the X-Forwarded-Proto of a proxy
// Caddy trusts (its server's trusted_proxies) gives r, as sent, when it
// is not scheme, that of r's connection; "" otherwise. It is the last
// value, which reverse_proxy passes on to the origin as it is; a client
// that is not trusted has its X-Forwarded-Proto replaced there.
func forwardedProto(r *http.Request, scheme string) string {
	vals := r.Header["X-Forwarded-Proto"]
	if len(vals) == 0 {
		return ""
	}
	if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); !trusted {
		return ""
	}
	v := vals[len(vals)-1]
	if v == "" || v == scheme {
		return ""
	}
	return v
}

// hasUpper tells whether s has an upper-case ASCII letter.
func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// hostMark starts the part of a primary key that holds the Host as sent,
// after varySep, when it has upper case (the URL has it in lower case).
// No secondary key starts with it: "[" is not in a field name.
const hostMark = "["

// protoMark starts the part of a primary key that holds the scheme a
// trusted proxy gives a request (see forwardedProto), after varySep and
// any serverMark part. No secondary key starts with it: ":" is not in a
// field name.
const protoMark = ":"

// serverMark starts the part of a primary key that names the server a
// request arrived at, after varySep, when its Host names another port
// (see otherServer). No secondary key starts with it: "@" is not in a
// field name (a token), and it is neither "{" (a placeholder) nor
// rewriteMark.
const serverMark = "@"

// rewriteMark starts the part of a rewritten request's primary key that
// holds the rewritten path and query, after varySep. No secondary key
// starts with it: those start with a field name (a token) or a
// placeholder ("{"), and ">" is neither.
const rewriteMark = ">"

// pathQuery returns path p and query q as the default key holds them,
// with the key's query options applied.
func (k *keyer) pathQuery(p, q string) string {
	if q != "" && (k.sortQuery || len(k.ignore) > 0) {
		q = k.normalizeQuery(q)
	}
	if p == "" {
		p = "/"
	}
	if q != "" {
		p += "?" + q
	}
	return escapeControls(p)
}

// keyForURL returns the primary key of a GET of u, for purges and
// invalidations, built as key builds it for a request to u.
func (k *keyer) keyForURL(u *url.URL) string {
	if k.template != "" {
		req := &http.Request{
			Method: http.MethodGet, URL: u, Host: u.Host, Header: http.Header{},
			RequestURI: u.RequestURI(), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		}
		port := u.Port()
		if strings.EqualFold(u.Scheme, "https") {
			// {http.request.scheme} is "https" only for a request with TLS.
			req.TLS = &tls.ConnectionState{HandshakeComplete: true, ServerName: u.Hostname()}
			port = cmp.Or(port, "443")
		}
		// What Caddy's server puts in a request's context, which some
		// placeholders read without checking: {http.request.orig_uri.*}
		// (the request before rewrites; here the URL itself) and
		// {http.request.local.*} (the port the URL names; the address is
		// not known).
		lport, _ := strconv.Atoi(cmp.Or(port, "80"))
		ctx := context.WithValue(context.Background(), caddyhttp.OriginalRequestCtxKey, *req)
		ctx = context.WithValue(ctx, http.LocalAddrContextKey, net.Addr(&net.TCPAddr{Port: lport}))
		req = req.WithContext(ctx)
		caddyhttp.NewTestReplacer(req) // sets up the {http.request.*} placeholders in req's context
		return k.key(req)
	}
	return k.defaultKey(u.Scheme, u.Host, u.EscapedPath(), u.RawQuery)
}

func (k *keyer) defaultKey(scheme, host, p, query string) string {
	host = strings.ToLower(host) // returns host itself when it has no upper case
	if query != "" && (k.sortQuery || len(k.ignore) > 0) {
		query = k.normalizeQuery(query)
	}
	if p == "" {
		p = "/"
	}
	n := len(scheme) + 3 + len(host) + len(p)
	if query != "" {
		n += 1 + len(query)
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(scheme)
	b.WriteString("://")
	b.WriteString(host)
	b.WriteString(p)
	if query != "" {
		b.WriteByte('?')
		b.WriteString(query)
	}
	return escapeControls(b.String())
}

// escapeControls percent-encodes control bytes and DEL in a default key.
// A request parsed by net/http has none (it refuses them in the URL and
// the Host), so this is a guard for URLs built otherwise: varySep must
// never appear in a primary key.
func escapeControls(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			var b strings.Builder
			b.Grow(len(s) + 8)
			b.WriteString(s[:i])
			writeKeyEscaped(&b, s[i:], 0, false)
			return b.String()
		}
	}
	return s
}

// normalizeQuery drops ignored parameters and sorts the rest by name when
// asked to. Parameters are kept as sent (not re-encoded), so that two
// spellings of one value stay two keys, as the origin may treat them
// differently.
//
// Parameters are split on "&". Many origins (Rails, Rack, Python's older
// parse_qs, some PHP setups) also split on ";", so a "&"-separated part is
// dropped only when every ";"-separated piece of it is ignored: with
// utm_* ignored, "utm_x=1;callback=evil" stays in the key whole, and the
// cache cannot serve the answer to callback=evil for a URL without it
// (parameter cloaking).
func (k *keyer) normalizeQuery(q string) string {
	parts := strings.Split(q, "&")
	kept := parts[:0]
	for _, p := range parts {
		if p == "" {
			continue
		}
		if k.ignoredPart(p) {
			continue
		}
		kept = append(kept, p)
	}
	if k.sortQuery {
		sort.SliceStable(kept, func(i, j int) bool {
			ni, _, _ := strings.Cut(kept[i], "=")
			nj, _, _ := strings.Cut(kept[j], "=")
			return ni < nj
		})
	}
	return strings.Join(kept, "&")
}

// ignoredPart tells whether a "&"-separated query part is left out of the
// key: every ";"-separated piece of it names an ignored parameter (empty
// pieces aside).
func (k *keyer) ignoredPart(p string) bool {
	if len(k.ignore) == 0 {
		return false
	}
	found := false
	for p != "" {
		var piece string
		piece, p, _ = strings.Cut(p, ";")
		if piece == "" {
			continue
		}
		name, _, _ := strings.Cut(piece, "=")
		if !k.ignored(name) {
			return false
		}
		found = true
	}
	return found
}

func (k *keyer) ignored(name string) bool {
	if un, err := url.QueryUnescape(name); err == nil {
		name = un
	}
	for _, g := range k.ignore {
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}
