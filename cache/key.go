package cache

import (
	"context"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Key layout
//
// The primary key of a request is, by default, scheme "://" host path
// ["?" query], with the host lower-cased, the query optionally sorted and
// stripped of ignored parameters (e.g. "https://example.com/a?b=1"). With
// the key option it is the expanded placeholder template instead.
//
// A response without Vary is stored under its primary key. A response with
// Vary (RFC 9111 §4.1) is stored under primary + varySep + policy.VaryKey,
// and a vary marker (an Entry with Status 0 whose Vary header lists the
// fields) is stored under the primary key, so that a lookup knows which
// request fields select the variant. Purging a URL deletes the primary key
// and every key that starts with primary + varySep: all its variants.
//
// HEAD requests are answered from the stored GET response, so the method is
// not part of the key.

// varySep separates the primary key from a variant's secondary key. It
// cannot appear in a host, path or query.
const varySep = "\x00"

// keyer builds primary cache keys.
type keyer struct {
	template  string   // placeholder template; "" for the default key
	sortQuery bool     // sort query parameters by name (stable for equal names)
	ignore    []string // query parameter name globs to drop (path.Match syntax)
}

// key returns the primary cache key of r. The default key is built from
// r.Host and r.URL directly, without the replacer: it is on every hit.
func (k *keyer) key(r *http.Request) string {
	if k.template != "" {
		repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
		if !ok {
			repl = caddy.NewReplacer()
		}
		return repl.ReplaceAll(k.template, "")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return k.defaultKey(scheme, r.Host, r.URL.EscapedPath(), r.URL.RawQuery)
}

// keyForURL returns the primary key of a GET of u, for purges and
// invalidations, built as key builds it for a request to u.
func (k *keyer) keyForURL(u *url.URL) string {
	if k.template != "" {
		req := (&http.Request{
			Method: http.MethodGet, URL: u, Host: u.Host, Header: http.Header{},
			RequestURI: u.RequestURI(), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		}).WithContext(context.Background())
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
	return b.String()
}

// normalizeQuery drops ignored parameters and sorts the rest by name when
// asked to. Parameters are kept as sent (not re-encoded), so that two
// spellings of one value stay two keys, as the origin may treat them
// differently.
func (k *keyer) normalizeQuery(q string) string {
	parts := strings.Split(q, "&")
	kept := parts[:0]
	for _, p := range parts {
		if p == "" {
			continue
		}
		name, _, _ := strings.Cut(p, "=")
		if k.ignored(name) {
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

func (k *keyer) ignored(name string) bool {
	if len(k.ignore) == 0 {
		return false
	}
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
