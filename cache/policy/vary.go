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
// Accept-Encoding is normalized to the set of codings it accepts (see
// NormalizeAcceptEncoding), so that spellings of one set share a variant.
//
// vary holds the Vary field lines of the stored response. Field names are
// case-insensitive, listed once and sorted, so their order in Vary does not
// matter. The lines of a list field (isListField) are combined (RFC 9110
// §5.3); then whitespace around list elements is removed, runs of
// whitespace inside become one space and empty elements are dropped, which
// §4.1 allows ("removing whitespace where allowed"). Any other field is
// keyed by its lines exactly as received. A field absent from the request
// only matches its absence (§4.1), which differs from an empty value.
//
// The key is "name=value" pairs joined by "&" ("name" alone when the field
// is absent), names in lowercase; "%", "&", "=" and ">" inside names and
// values are percent-encoded, so two different inputs never give the same key
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
			b.WriteString(acceptEncoding(values)) // escaped, no "&" or "="
			continue
		}
		if !isListField(name) {
			writeLines(&b, values)
			continue
		}
		writeNormalized(&b, values)
	}
	return b.String(), true
}

// isListField tells whether the request field name is defined as a
// comma-separated list, whose field lines may be combined and whose
// whitespace around elements may be removed (RFC 9110 §5.3, §5.6.1). Any
// other field's value is kept exactly, line by line: for User-Agent or
// Cookie, "a,  b" and the two lines "a" and "b" are other values, and
// reverse_proxy's transport forwards only the first User-Agent line.
func isListField(name string) bool {
	var buf [24]byte
	if len(name) > len(buf) {
		return false
	}
	n := copy(buf[:], name)
	for i := range n {
		buf[i] = lower(buf[i])
	}
	switch string(buf[:n]) {
	case "accept", "accept-charset", "accept-language", "cache-control", "pragma",
		"te", "expect", "if-match", "if-none-match", "via", "forwarded", "prefer",
		"x-forwarded-for":
		return true
	}
	return false
}

// writeLines writes the field lines of a field that is not a list, each
// as received, escaped, separated by "%0A", which no escaped value holds.
func writeLines(b *strings.Builder, lines []string) {
	for i, line := range lines {
		if i > 0 {
			b.WriteString("%0A")
		}
		for j := 0; j < len(line); j++ {
			writeEscapedByte(b, line[j])
		}
	}
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

// writeEscapedByte writes c, percent-encoded when it is "%", "&" or "="
// (the key's own delimiters) or ">", with which http_cache starts the
// part of a rewritten request's key after its URL's (no secondary key
// may start with it, even for a Vary name that is no token).
func writeEscapedByte(b *strings.Builder, c byte) {
	switch c {
	case '%', '&', '=', '>':
		const hex = "0123456789ABCDEF"
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	default:
		b.WriteByte(c)
	}
}

// NormalizeAcceptEncoding reduces an Accept-Encoding value to what the
// cache keys variants by: the set of content codings the client accepts
// (RFC 9110 §12.5.3), so that two requests share a variant only when every
// coding the origin may choose for one is acceptable to the other. The
// weights beyond "acceptable or not" are dropped: they express a
// preference, and whatever the origin picks for one request of the set is
// acceptable to every other.
//
// Codings are case-insensitive; x-gzip is gzip and x-compress is compress
// (RFC 9110 §8.4.1). Each coding's weight is its own q (RFC 9110 §12.4.2;
// the smallest when listed twice), else that of "*", else 0; q=0 means not
// acceptable, and an element with an invalid qvalue or coding is ignored.
// The result lists the acceptable codings other than identity, sorted and
// comma-separated; then "*" when "*" is acceptable, followed by "-coding"
// for every coding it does not cover (listed with q=0); then "!identity"
// when identity is refused ("identity;q=0", or "*;q=0" without identity).
// When that leaves nothing, the result is "identity": only unencoded
// content is acceptable (an empty value included). Examples: "gzip,
// deflate, br" -> "br,deflate,gzip"; "gzip;q=0, deflate" -> "deflate";
// "gzip;q=0" -> "identity".
func NormalizeAcceptEncoding(v string) string {
	return acceptEncoding([]string{v})
}

// codingWeight is one coding of an Accept-Encoding field and its weight.
type codingWeight struct {
	coding string // lower case
	q      int    // 0..1000
}

// parseAcceptEncoding reads the elements of Accept-Encoding field lines
// (RFC 9110 §12.5.3), lower-casing codings and mapping the x- aliases;
// invalid elements are skipped.
func parseAcceptEncoding(lines []string) []codingWeight {
	var out []codingWeight
	for _, line := range lines {
		for line != "" {
			var e string
			e, line = nextListElement(line)
			coding, params, _ := strings.Cut(e, ";")
			coding = strings.ToLower(trimOWS(coding))
			if coding == "" || !isToken(coding) {
				continue
			}
			switch coding {
			case "x-gzip":
				coding = "gzip"
			case "x-compress":
				coding = "compress"
			}
			w, ok := weight(params)
			if !ok {
				continue
			}
			out = append(out, codingWeight{coding, w})
		}
	}
	// Sort by coding, the smallest weight first, and keep that one.
	slices.SortFunc(out, func(a, b codingWeight) int {
		if c := strings.Compare(a.coding, b.coding); c != 0 {
			return c
		}
		return a.q - b.q
	})
	return slices.CompactFunc(out, func(a, b codingWeight) bool { return a.coding == b.coding })
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isTchar(s[i]) {
			return false
		}
	}
	return true
}

// acceptWeights returns the weight of "*" (-1 when not listed), of
// identity (-1 when not listed) and the other codings.
func acceptWeights(cw []codingWeight) (star, identity int, others []codingWeight) {
	star, identity = -1, -1
	others = cw[:0:0]
	for _, c := range cw {
		switch c.coding {
		case "*":
			star = c.q
		case "identity":
			identity = c.q
		default:
			others = append(others, c)
		}
	}
	return star, identity, others
}

func acceptEncoding(lines []string) string {
	star, identity, others := acceptWeights(parseAcceptEncoding(lines))
	var b strings.Builder
	sep := func() {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
	}
	for _, c := range others {
		if c.q > 0 {
			sep()
			writeCoding(&b, c.coding)
		}
	}
	if star > 0 {
		sep()
		b.WriteByte('*')
		for _, c := range others {
			if c.q == 0 {
				b.WriteString(",-")
				writeCoding(&b, c.coding)
			}
		}
	}
	if identity == 0 || (identity < 0 && star == 0) {
		sep()
		b.WriteString("!identity")
	}
	if b.Len() == 0 {
		return "identity"
	}
	return b.String()
}

// mayRefuseIdentity tells whether Accept-Encoding lines could refuse
// unencoded content: only "identity" (any case) or "*" can.
func mayRefuseIdentity(lines []string) bool {
	for _, l := range lines {
		for i := 0; i < len(l); i++ {
			if l[i] == '*' || (l[i]|0x20 == 'i' && len(l)-i >= 8 && strings.EqualFold(l[i:i+8], "identity")) {
				return true
			}
		}
	}
	return false
}

// writeCoding writes a coding into the normalized Accept-Encoding, with
// the bytes that mark "*", exclusions and refusals there ("*", "!", a
// leading "-") and the key's separators percent-encoded: a coding named
// "!identity" or "-gzip" (both tokens) cannot pass for a refusal.
func writeCoding(b *strings.Builder, c string) {
	for i := 0; i < len(c); i++ {
		switch ch := c[i]; {
		case ch == '*' || ch == '!' || (ch == '-' && i == 0):
			const hex = "0123456789ABCDEF"
			b.WriteByte('%')
			b.WriteByte(hex[ch>>4])
			b.WriteByte(hex[ch&15])
		default:
			writeEscapedByte(b, ch)
		}
	}
}

// EncodingAcceptable tells whether a stored response with the given
// Content-Encoding field lines may answer a request with header reqHeader
// (RFC 9110 §12.5.3): without Accept-Encoding any coding is acceptable;
// otherwise every coding applied must have a non-zero weight, its own or
// that of "*", and content without a coding (or only "identity") is
// acceptable unless identity is refused ("identity;q=0", or "*;q=0"
// without identity). The cache checks it before serving a stored variant,
// so that even an origin that does not send Vary: Accept-Encoding never
// gets a client an encoding it refused.
func EncodingAcceptable(contentEncoding []string, reqHeader http.Header) bool {
	ae, ok := reqHeader["Accept-Encoding"]
	if !ok {
		return true
	}
	if len(contentEncoding) == 0 && !mayRefuseIdentity(ae) {
		return true // the common hit: unencoded content, nothing refuses it; no parsing
	}
	star, identity, others := acceptWeights(parseAcceptEncoding(ae))
	coded := false
	for _, line := range contentEncoding {
		for line != "" {
			var c string
			c, line = nextListElement(line)
			c = strings.ToLower(c)
			switch c {
			case "", "identity":
				continue
			case "x-gzip":
				c = "gzip"
			case "x-compress":
				c = "compress"
			}
			coded = true
			q := star
			if i, found := slices.BinarySearchFunc(others, c, func(cw codingWeight, t string) int { return strings.Compare(cw.coding, t) }); found {
				q = others[i].q
			}
			if q <= 0 {
				return false
			}
		}
	}
	if !coded {
		return !(identity == 0 || (identity < 0 && star == 0))
	}
	return true
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
