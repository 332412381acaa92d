package policy

import (
	"net/http"
	"net/textproto"
	"strings"
	"time"
)

// FieldReader reads a response's header fields by canonical name:
// http.Header, and the compact form the cache stores them in
// (store.Fields).
type FieldReader interface {
	// Values returns the field's values, nil when it is absent.
	Values(name string) []string
}

// headerMap reads an http.Header by canonical names as they are, without
// http.Header.Values' canonicalisation of the name.
type headerMap http.Header

func (h headerMap) Values(name string) []string { return h[name] }

// HasValidator tells whether h has an ETag or Last-Modified (RFC 9110
// §8.8), the validators a cache revalidates with (§4.3.1).
func HasValidator(h FieldReader) bool {
	return nonEmpty(h.Values("Etag")) || nonEmpty(h.Values("Last-Modified"))
}

func nonEmpty(v []string) bool {
	return len(v) > 0 && v[0] != ""
}

// ConditionalHeaders returns the validators to send when revalidating a
// stored response with header h (§4.3.1): If-None-Match from ETag (the
// cache "MUST send the relevant entity tags") and If-Modified-Since from
// Last-Modified (it "SHOULD send the Last-Modified value"; both are sent,
// as §4.3.1 notes is usual). Nil when h has neither.
func ConditionalHeaders(h FieldReader) http.Header {
	etag, lm := h.Values("Etag"), h.Values("Last-Modified")
	if !nonEmpty(etag) && !nonEmpty(lm) {
		return nil
	}
	c := make(http.Header, 2)
	if nonEmpty(etag) {
		c["If-None-Match"] = []string{etag[0]}
	}
	if nonEmpty(lm) {
		c["If-Modified-Since"] = []string{lm[0]}
	}
	return c
}

// Freshen returns the stored header updated with the fields of a 304
// response (§4.3.4): every field of the 304 replaces the stored one, except
// the ones §3.2 excludes (Content-Length etc.).
//
// Excluded, so the stored value is kept: the fields §3.1 excepts from
// storage (hop-by-hop fields, those the 304's Connection lists,
// Proxy-Authenticate, Proxy-Authentication-Info, Proxy-Authorization);
// Content-Length (§3.2); the fields the stored body depends on,
// Content-Encoding and Transfer-Encoding (§3.2: "Header fields that the
// cache's stored response depends upon"); and Content-Range, which is
// processed per response (§3.2). The stored header is not modified: a new
// map is returned, so readers of the old entry are unaffected.
func Freshen(stored, notModified http.Header) http.Header {
	out := stored.Clone()
	if out == nil {
		out = make(http.Header, len(notModified))
	}
	var listed map[string]bool // fields the 304's Connection lists
	if conn := notModified["Connection"]; len(conn) > 0 {
		listed = make(map[string]bool)
		for _, line := range conn {
			for line != "" {
				var f string
				if f, line = nextListElement(line); f != "" {
					listed[textproto.CanonicalMIMEHeaderKey(f)] = true
				}
			}
		}
	}
	for k, v := range notModified {
		if freshenKeeps(k) || listed[k] {
			continue
		}
		out[k] = append([]string(nil), v...)
	}
	return out
}

// freshenKeeps tells whether the canonical field k is never taken from a
// 304 (§3.1, §3.2).
func freshenKeeps(k string) bool {
	switch k {
	case "Content-Length", "Content-Encoding", "Content-Range":
		return true
	}
	return isHopByHop(k)
}

// NotModified tells whether a client's conditional request (If-None-Match,
// or If-Modified-Since when there is no If-None-Match) is satisfied by a
// stored response with header h, so that it can be answered with 304
// (§4.3.2, RFC 9110 §13.1.2, §13.1.3, weak comparison).
//
// Precedence is RFC 9110 §13.2.2: when the request has If-Match or
// If-Unmodified-Since, the answer could be 412 rather than 304, which
// is the origin's to decide, so NotModified is false and the handler
// serves or forwards as usual. If-None-Match matches with the weak
// comparison (RFC 9110 §8.8.3.2): "*" matches any stored response, and any
// listed tag equal to the stored ETag, W/ prefixes ignored. If-Modified-
// Since is evaluated only without If-None-Match, when it is one valid
// HTTP-date and the stored response has a valid Last-Modified no later
// than it (RFC 9110 §13.1.3). The caller applies it to GET and HEAD only.
func NotModified(reqHeader, h http.Header) bool {
	return NotModifiedAt(reqHeader, h, time.Time{})
}

// NotModifiedAt is NotModified for a stored response received at
// received: when the stored response has no Last-Modified, If-Modified-
// Since is evaluated against its Date, or, without a valid Date, against
// received (RFC 9111 §4.3.2: "the Date of the stored response, if the
// stored response lacks Last-Modified, or ... the time it was received").
// A zero received disables that last fallback.
func NotModifiedAt(reqHeader http.Header, h FieldReader, received time.Time) bool {
	if _, ok := reqHeader["If-Match"]; ok {
		return false
	}
	if _, ok := reqHeader["If-Unmodified-Since"]; ok {
		return false
	}
	if inm, ok := reqHeader["If-None-Match"]; ok {
		etag, ok := storedETag(h)
		for _, line := range inm {
			if ifNoneMatchHit(line, etag, ok) {
				return true
			}
		}
		return false
	}
	ims, ok := reqHeader["If-Modified-Since"]
	if !ok || len(ims) != 1 {
		return false // RFC 9110 §13.1.3: ignore if more than one member
	}
	since, ok := singleDate(ims)
	if !ok {
		return false // not a valid HTTP-date: ignored
	}
	if lmv := h.Values("Last-Modified"); lmv != nil {
		lm, ok := singleDate(lmv)
		return ok && !lm.After(since)
	}
	if d, ok := singleDate(h.Values("Date")); ok {
		return !d.After(since)
	}
	return !received.IsZero() && !received.Truncate(time.Second).After(since)
}

// storedETag returns the opaque-tag of the stored ETag (with its quotes,
// without W/).
func storedETag(h FieldReader) (string, bool) {
	v := h.Values("Etag")
	if len(v) == 0 {
		return "", false
	}
	tag, rest, ok := nextETag(trimOWS(v[0]))
	if !ok || trimOWS(rest) != "" {
		return "", false
	}
	return tag, true
}

// ifNoneMatchHit evaluates one If-None-Match field line: "*" or a list of
// entity-tags (RFC 9110 §13.1.2). Malformed elements are skipped.
func ifNoneMatchHit(line, etag string, hasETag bool) bool {
	s := trimOWS(line)
	if s == "*" {
		return true // a stored response exists
	}
	for s != "" {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			break
		}
		tag, rest, ok := nextETag(s)
		if !ok {
			// Skip to the next element.
			if i := strings.IndexByte(s, ','); i >= 0 {
				s = s[i+1:]
				continue
			}
			break
		}
		if hasETag && tag == etag {
			return true // weak comparison: opaque-tags equal
		}
		s = rest
	}
	return false
}

// nextETag reads entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE at the start of
// s, returning the opaque-tag (quotes included) and what follows.
func nextETag(s string) (tag, rest string, ok bool) {
	s = strings.TrimPrefix(s, "W/")
	if len(s) < 2 || s[0] != '"' {
		return "", s, false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if c == '"' {
			return s[:i+1], s[i+1:], true
		}
		// etagc = %x21 / %x23-7E / obs-text
		if c < 0x21 || c == 0x7f {
			return "", s, false
		}
	}
	return "", s, false
}

// FreshenMatches tells whether a 304 received when revalidating the stored
// response with header stored identifies it, so that Freshen may apply
// (§4.3.4's selection):
//   - the 304 has a strong ETag: the stored ETag must be the same strong
//     one (strong comparison, RFC 9110 §8.8.3.2);
//   - the 304 has a weak ETag: the stored ETag must match it weakly;
//   - the 304 has no ETag but a Last-Modified: the stored Last-Modified
//     must be the same date;
//   - the 304 has no validator: true. §4.3.4 asks, in this case, that the
//     stored response lack a validator too; but the cache validated exactly
//     one stored response with that response's own validators (§4.3.1), so
//     the 304 can only be about it, and many servers (Go's
//     http.ServeContent among them) drop Last-Modified from a 304.
//
// When it is false the cache "MUST NOT use the new response to update any
// stored responses"; the handler should then fetch without conditionals.
func FreshenMatches(stored, notModified http.Header) bool {
	if v := notModified["Etag"]; nonEmpty(v) {
		tag, rest, ok := nextETag(trimOWS(v[0]))
		if !ok || trimOWS(rest) != "" {
			return false
		}
		sv := stored["Etag"]
		if !nonEmpty(sv) {
			return false
		}
		stag, srest, ok := nextETag(trimOWS(sv[0]))
		if !ok || trimOWS(srest) != "" || stag != tag {
			return false
		}
		weak := strings.HasPrefix(trimOWS(v[0]), "W/")
		storedWeak := strings.HasPrefix(trimOWS(sv[0]), "W/")
		return weak || !storedWeak // a strong 304 validator needs a strong stored one
	}
	if v := notModified["Last-Modified"]; nonEmpty(v) {
		lm, ok := singleDate(v)
		slm, sok := singleDate(stored["Last-Modified"])
		return ok && sok && lm.Equal(slm)
	}
	return true
}

// StrongLastModified returns the Last-Modified of a stored response with
// header h when it is a strong validator (RFC 9110 §8.8.2.2): the stored
// Date is at least one second after it, so that the representation did not
// change twice within Last-Modified's one-second resolution. Only then may
// an If-Range date match it (RFC 9110 §13.1.5).
func StrongLastModified(h FieldReader) (time.Time, bool) {
	lm, ok := singleDate(h.Values("Last-Modified"))
	if !ok {
		return time.Time{}, false
	}
	date, ok := singleDate(h.Values("Date"))
	if !ok || date.Sub(lm) < time.Second {
		return time.Time{}, false
	}
	return lm, true
}
