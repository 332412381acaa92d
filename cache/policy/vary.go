package policy

import (
	"net/http"
	"net/textproto"
	"slices"
	"strings"
)

// VaryKey returns the secondary key of a request for a response that
// varies on the given fields (§4.1): the normalized values of those request
// fields, in a stable form. ok is false for Vary: * (never matches).
// Accept-Encoding is normalized to one of br, zstd, gzip or identity, so
// that every browser's header does not make a variant of its own.
//
// vary holds the Vary field lines of the stored response. Field names are
// case-insensitive, listed once and sorted, so their order in Vary does not
// matter. Each request field's lines are combined (RFC 9110 §5.3); then
// whitespace around list elements is removed, runs of whitespace inside
// become one space and empty elements are dropped, which §4.1 allows
// ("removing whitespace where allowed"). A field absent from the request
// only matches its absence (§4.1), which differs from an empty value.
//
// The key is "name=value" pairs joined by "&" ("name" alone when the field
// is absent), names in lowercase; "%", "&" and "=" inside names and values
// are percent-encoded, so two different inputs never give the same key
// unless they normalize alike. With no field names (an empty Vary) the key
// is "".
func VaryKey(vary []string, reqHeader http.Header) (key string, ok bool) {
	var arr [8]string
	names := arr[:0]
	size := 0
	for _, line := range vary {
		for line != "" {
			var f string
			f, line = nextListElement(line)
			switch f {
			case "":
			case "*":
				return "", false // §4.1: "*" always fails to match
			default:
				names = append(names, f)
				size += len(f) + 2
			}
		}
	}
	if len(names) == 0 {
		return "", true
	}
	// Sort, then drop adjacent duplicates: O(n log n) even for a Vary of
	// thousands of names.
	slices.SortFunc(names, compareFold)
	names = slices.CompactFunc(names, func(a, b string) bool { return compareFold(a, b) == 0 })
	for _, name := range names {
		for _, v := range reqHeader[textproto.CanonicalMIMEHeaderKey(name)] {
			size += len(v) + 1
		}
	}
	var b strings.Builder
	b.Grow(size)
	for i, name := range names {
		if i > 0 {
			b.WriteByte('&')
		}
		writeEscaped(&b, name, true)
		values, present := reqHeader[textproto.CanonicalMIMEHeaderKey(name)]
		if !present {
			continue
		}
		b.WriteByte('=')
		if compareFold(name, "Accept-Encoding") == 0 {
			b.WriteString(acceptEncoding(values))
			continue
		}
		writeNormalized(&b, values)
	}
	return b.String(), true
}

// compareFold orders field names case-insensitively, ASCII only: unlike
// strings.EqualFold it does not equate different invalid UTF-8 bytes.
func compareFold(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		ca, cb := lower(a[i]), lower(b[i])
		if ca != cb {
			return int(ca) - int(cb)
		}
	}
	return len(a) - len(b)
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// writeNormalized writes the combined list elements of the field lines,
// whitespace-normalized and comma-joined, escaped.
func writeNormalized(b *strings.Builder, lines []string) {
	first := true
	for _, line := range lines {
		for line != "" {
			var e string
			e, line = nextListElement(line)
			if e == "" {
				continue
			}
			if !first {
				b.WriteByte(',')
			}
			first = false
			space := false
			for i := 0; i < len(e); i++ {
				c := e[i]
				if c == ' ' || c == '\t' {
					space = true
					continue
				}
				if space {
					b.WriteByte(' ')
					space = false
				}
				writeEscapedByte(b, c)
			}
		}
	}
}

// writeEscaped writes s percent-encoding the key's separators; names are
// lowercased.
func writeEscaped(b *strings.Builder, s string, lowercase bool) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if lowercase {
			c = lower(c)
		}
		writeEscapedByte(b, c)
	}
}

func writeEscapedByte(b *strings.Builder, c byte) {
	switch c {
	case '%', '&', '=':
		const hex = "0123456789ABCDEF"
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	default:
		b.WriteByte(c)
	}
}

// NormalizeAcceptEncoding reduces an Accept-Encoding value to the coding
// the cache keys variants by: the client's best-ranked of br, zstd, gzip,
// or identity.
//
// Codings are case-insensitive; x-gzip is gzip (RFC 9110 §8.4.1.3). Each
// coding's weight is its own q (RFC 9110 §12.4.2; the smallest when listed
// twice), else that of "*", else 0 (RFC 9110 §12.5.3); q=0 means not
// acceptable, and an element with an invalid qvalue is ignored. The
// acceptable coding with the highest weight wins, ties going to br, then
// zstd, then gzip. When none is acceptable (an empty value included), the
// result is identity.
func NormalizeAcceptEncoding(v string) string {
	return acceptEncoding([]string{v})
}

// Indices into the weights of acceptEncoding.
const (
	aeBr = iota
	aeZstd
	aeGzip
	aeStar
	aeN
)

var aeNames = [...]string{aeBr: "br", aeZstd: "zstd", aeGzip: "gzip"}

func acceptEncoding(lines []string) string {
	var q [aeN]int // -1: not listed; else 0..1000
	for i := range q {
		q[i] = -1
	}
	for _, line := range lines {
		for line != "" {
			var e string
			e, line = nextListElement(line)
			coding, params, _ := strings.Cut(e, ";")
			idx := -1
			switch coding = trimOWS(coding); {
			case strings.EqualFold(coding, "br"):
				idx = aeBr
			case strings.EqualFold(coding, "zstd"):
				idx = aeZstd
			case strings.EqualFold(coding, "gzip"), strings.EqualFold(coding, "x-gzip"):
				idx = aeGzip
			case coding == "*":
				idx = aeStar
			}
			if idx < 0 {
				continue
			}
			w, ok := weight(params)
			if !ok {
				continue
			}
			if q[idx] < 0 || w < q[idx] {
				q[idx] = w
			}
		}
	}
	best, bestQ := -1, 0
	for i := aeBr; i <= aeGzip; i++ {
		w := q[i]
		if w < 0 {
			w = max(q[aeStar], 0)
		}
		if w > bestQ {
			best, bestQ = i, w
		}
	}
	if best < 0 {
		return "identity"
	}
	return aeNames[best]
}

// weight reads the q parameter of an Accept-Encoding element's parameters
// (RFC 9110 §12.4.2) as thousandths; 1000 when absent.
func weight(params string) (int, bool) {
	w := 1000
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		name, val, _ := strings.Cut(trimOWS(p), "=")
		if !strings.EqualFold(trimOWS(name), "q") {
			continue
		}
		var ok bool
		if w, ok = parseQValue(trimOWS(val)); !ok {
			return 0, false
		}
	}
	return w, true
}

// parseQValue parses qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ).
func parseQValue(s string) (int, bool) {
	if s == "" || (s[0] != '0' && s[0] != '1') {
		return 0, false
	}
	w := int(s[0]-'0') * 1000
	if len(s) == 1 {
		return w, true
	}
	if s[1] != '.' || len(s) > 5 {
		return 0, false
	}
	scale := 100
	for i := 2; i < len(s); i++ {
		c := s[i]
		if !isDigit(c) || (w == 1000 && c != '0') {
			return 0, false
		}
		w += int(c-'0') * scale
		scale /= 10
	}
	return w, true
}
