package policy

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxDelta is the greatest delta-seconds value the cache represents: a
// larger value, or a calculation that overflows, reads as 2^31 seconds
// (RFC 9111 §1.2.2, §5.1).
const MaxDelta = (1 << 31) * time.Second

// Field names in canonical form, so that lookups index the header map
// directly without canonicalising on the hot path.
const (
	fieldCacheControl    = "Cache-Control"
	fieldCDNCacheControl = "Cdn-Cache-Control" // http.CanonicalHeaderKey("CDN-Cache-Control")
	fieldPragma          = "Pragma"
)

// ParseCacheControl parses the values of one Cache-Control field (all of
// its field lines). It never fails: what it cannot read it ignores.
//
// The grammar is RFC 9111 §5.2: a comma-separated list of
// token [ "=" ( token / quoted-string ) ]. Directive names are
// case-insensitive; both the token and the quoted-string form of an argument
// are accepted (§5.2: "max-age=5" and `max-age="5"` are equivalent); commas
// inside a quoted-string do not split directives; several field lines are
// one list (RFC 9110 §5.3). Unknown directives are ignored (§5.2.3).
//
// Values that cannot be read and directives given more than once are
// handled as the most restrictive reading (§4.2.1: "either the first
// occurrence should be used or the response should be considered stale";
// we choose stale):
//   - max-age, s-maxage: an invalid value (non-integer, negative, missing) or
//     two different values read as 0 (stale; §4.2.1 "Caches are encouraged to
//     consider responses that have invalid freshness information ... to be
//     stale").
//   - stale-while-revalidate, stale-if-error, max-stale: an invalid value
//     reads as 0 and different values as the smallest (no more staleness
//     than every occurrence allows); max-stale without a value together
//     with max-stale=N reads as max-stale=N.
//   - min-fresh: an invalid value is ignored, different values read as the
//     largest.
//   - A directive followed by garbage ("no-store junk") still applies when
//     it restricts caching (no-store, no-cache, private, must-revalidate,
//     proxy-revalidate, no-transform) and is ignored when it would permit
//     more (public, immutable, must-understand, only-if-cached).
//
// Every delta-seconds value is clamped to MaxDelta (§1.2.2), so no value
// overflows into a negative duration.
//
// The qualified forms no-cache="field" and private="field" set NoCache and
// Private as well as listing the fields: a shared cache may treat them as
// unqualified (§5.2.2.4, §5.2.2.7 notes), which is what this cache does.
func ParseCacheControl(values []string) Directives {
	var p ccParser
	for _, v := range values {
		p.parse(v)
	}
	return p.d
}

// ResponseDirectives returns the directives this shared cache obeys for a
// response: CDN-Cache-Control when present and valid (RFC 9213 §2.1),
// Cache-Control otherwise.
func ResponseDirectives(h http.Header) Directives {
	d, _ := responseDirectives(headerMap(h))
	return d
}

// responseDirectives is ResponseDirectives, also telling whether the
// directives came from CDN-Cache-Control, in which case Expires must be
// ignored too (RFC 9213 §2.2).
func responseDirectives(h FieldReader) (Directives, bool) {
	if v := h.Values(fieldCDNCacheControl); len(v) > 0 {
		// RFC 9213 §2.2: use the first targeted field "with a valid,
		// non-empty value", and then ignore Cache-Control and Expires.
		if d, ok := parseTargeted(v); ok {
			return d, true
		}
	}
	return ParseCacheControl(h.Values(fieldCacheControl)), false
}

// Directive identities, used as bit positions to remember which delta
// directives were already seen.
const (
	seenMaxAge = 1 << iota
	seenSMaxAge
	seenMaxStale
	seenMinFresh
	seenSWR
	seenSIE
)

// ccParser accumulates the directives of all field lines of one
// Cache-Control field.
type ccParser struct {
	d    Directives
	seen uint8
}

// parse scans one field line in place, without allocating unless a
// qualified no-cache / private lists field names or a quoted-string holds a
// quoted-pair.
func (p *ccParser) parse(s string) {
	i := 0
	for i < len(s) {
		c := s[i]
		if c == ' ' || c == '\t' || c == ',' {
			i++
			continue
		}
		start := i
		for i < len(s) && isTchar(s[i]) {
			i++
		}
		name := s[start:i]
		if name == "" {
			// Not a directive: skip this list element.
			i = skipElement(s, i)
			continue
		}
		var (
			val       string
			hasVal    bool
			malformed bool
		)
		j := skipOWS(s, i)
		if j < len(s) && s[j] == '=' {
			hasVal = true
			j = skipOWS(s, j+1)
			if j < len(s) && s[j] == '"' {
				var ok bool
				val, j, ok = quotedString(s, j)
				malformed = !ok
			} else {
				st := j
				for j < len(s) && isTchar(s[j]) {
					j++
				}
				val = s[st:j]
			}
		}
		j = skipOWS(s, j)
		if j < len(s) && s[j] != ',' {
			malformed = true
			j = skipElement(s, j)
		}
		i = j
		p.apply(name, val, hasVal, malformed)
	}
}

// apply records one directive. It must be given the name as received.
func (p *ccParser) apply(name, val string, hasVal, malformed bool) {
	var buf [24]byte
	if len(name) > len(buf) {
		return // longer than any directive we know
	}
	n := copy(buf[:], name)
	for k := 0; k < n; k++ {
		if c := buf[k]; 'A' <= c && c <= 'Z' {
			buf[k] = c + 'a' - 'A'
		}
	}
	d := &p.d
	switch string(buf[:n]) { // does not allocate
	case "max-age": // §5.2.1.1, §5.2.2.1
		v, ok := deltaArg(val, hasVal, malformed)
		p.setStale(&d.MaxAge, seenMaxAge, v, ok)
	case "s-maxage": // §5.2.2.10
		v, ok := deltaArg(val, hasVal, malformed)
		p.setStale(&d.SMaxAge, seenSMaxAge, v, ok)
	case "stale-while-revalidate": // RFC 5861 §3
		v, ok := deltaArg(val, hasVal, malformed)
		p.setMin(&d.StaleWhileRevalidate, seenSWR, v, ok)
	case "stale-if-error": // RFC 5861 §4
		v, ok := deltaArg(val, hasVal, malformed)
		p.setMin(&d.StaleIfError, seenSIE, v, ok)
	case "max-stale": // §5.2.1.2: the argument is optional
		if !hasVal && !malformed {
			if p.seen&seenMaxStale == 0 {
				d.MaxStaleAny = true
			}
			return
		}
		v, ok := deltaArg(val, hasVal, malformed)
		d.MaxStaleAny = false
		p.setMin(&d.MaxStale, seenMaxStale, v, ok)
	case "min-fresh": // §5.2.1.3
		v, ok := deltaArg(val, hasVal, malformed)
		if !ok {
			return // ignored: see ParseCacheControl
		}
		if p.seen&seenMinFresh == 0 || v > d.MinFresh.D {
			d.MinFresh = Delta{Set: true, D: v}
		}
		p.seen |= seenMinFresh
	case "no-cache": // §5.2.1.4, §5.2.2.4
		d.NoCache = true
		if hasVal && !malformed {
			d.NoCacheFields = appendFieldList(d.NoCacheFields, val)
		}
	case "no-store": // §5.2.1.5, §5.2.2.5
		d.NoStore = true
	case "private": // §5.2.2.7
		d.Private = true
		if hasVal && !malformed {
			d.PrivateFields = appendFieldList(d.PrivateFields, val)
		}
	case "must-revalidate": // §5.2.2.2
		d.MustRevalidate = true
	case "proxy-revalidate": // §5.2.2.8
		d.ProxyRevalidate = true
	case "no-transform": // §5.2.1.6, §5.2.2.6
		d.NoTransform = true
	case "public": // §5.2.2.9
		d.Public = d.Public || !malformed
	case "must-understand": // §5.2.2.3
		d.MustUnderstand = d.MustUnderstand || !malformed
	case "only-if-cached": // §5.2.1.7
		d.OnlyIfCached = d.OnlyIfCached || !malformed
	case "immutable": // RFC 8246 §2
		d.Immutable = d.Immutable || !malformed
	}
}

// setStale records max-age or s-maxage: invalid or conflicting values read
// as 0, i.e. stale (§4.2.1).
func (p *ccParser) setStale(dst *Delta, bit uint8, v time.Duration, ok bool) {
	if !ok || (p.seen&bit != 0 && dst.D != v) {
		v = 0
	}
	*dst = Delta{Set: true, D: v}
	p.seen |= bit
}

// setMin records a directive whose smallest value is the most restrictive:
// invalid values read as 0, conflicting ones as the smallest.
func (p *ccParser) setMin(dst *Delta, bit uint8, v time.Duration, ok bool) {
	if !ok {
		v = 0
	}
	if p.seen&bit != 0 && dst.D < v {
		v = dst.D
	}
	*dst = Delta{Set: true, D: v}
	p.seen |= bit
}

// deltaArg reads the argument of a delta-seconds directive.
func deltaArg(val string, hasVal, malformed bool) (time.Duration, bool) {
	if !hasVal || malformed {
		return 0, false
	}
	return parseDelta(val)
}

// parseDelta parses delta-seconds = 1*DIGIT (§1.2.2), clamping it to
// MaxDelta. Signs, fractions and whitespace make it invalid.
func parseDelta(s string) (time.Duration, bool) {
	if s == "" {
		return 0, false
	}
	const limit = int64(MaxDelta / time.Second)
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n <= limit { // stop accumulating once past the limit: no overflow
			n = n*10 + int64(c-'0')
		}
	}
	return clampSeconds(n), true
}

// clampSeconds converts a non-negative number of seconds to a duration no
// greater than MaxDelta (§1.2.2).
func clampSeconds(n int64) time.Duration {
	if n >= int64(MaxDelta/time.Second) {
		return MaxDelta
	}
	return time.Duration(n) * time.Second
}

// appendFieldList appends the comma-separated field names of a qualified
// no-cache / private argument (§5.2.2.4, §5.2.2.7) to dst.
func appendFieldList(dst []string, v string) []string {
	for v != "" {
		var f string
		if i := strings.IndexByte(v, ','); i >= 0 {
			f, v = v[:i], v[i+1:]
		} else {
			f, v = v, ""
		}
		if f = trimOWS(f); f != "" {
			dst = append(dst, f)
		}
	}
	return dst
}

// quotedString reads the quoted-string (RFC 9110 §5.6.4) starting at s[i]
// == '"'. It returns its unescaped content, the index after the closing
// quote, and false when the string is not terminated (then end is len(s)).
func quotedString(s string, i int) (content string, end int, ok bool) {
	i++ // opening quote
	start := i
	escaped := false
	for i < len(s) {
		switch s[i] {
		case '"':
			content = s[start:i]
			if escaped {
				content = unescapeQuoted(content)
			}
			return content, i + 1, true
		case '\\':
			escaped = true
			i += 2
			continue
		}
		i++
	}
	return "", len(s), false
}

// unescapeQuoted removes the backslashes of quoted-pairs.
func unescapeQuoted(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// skipElement returns the index of the next comma at or after i that is not
// inside a quoted-string, or len(s).
func skipElement(s string, i int) int {
	for i < len(s) {
		switch s[i] {
		case ',':
			return i
		case '"':
			_, i, _ = quotedString(s, i)
			continue
		}
		i++
	}
	return i
}

func skipOWS(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

func trimOWS(s string) string {
	return strings.Trim(s, " \t")
}

// isTchar reports whether c may appear in a token (RFC 9110 §5.6.2).
func isTchar(c byte) bool {
	if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// String serializes d as a Cache-Control field value in a fixed order,
// such that ParseCacheControl(d.String()) == d for every d that
// ParseCacheControl returns. Useful in logs and tests.
func (d Directives) String() string {
	var b strings.Builder
	sep := func() {
		if b.Len() > 0 {
			b.WriteString(", ")
		}
	}
	flag := func(on bool, name string) {
		if on {
			sep()
			b.WriteString(name)
		}
	}
	delta := func(v Delta, name string) {
		if v.Set {
			sep()
			b.WriteString(name)
			b.WriteByte('=')
			b.WriteString(strconv.FormatInt(int64(v.D/time.Second), 10))
		}
	}
	fields := func(on bool, list []string, name string) {
		if !on {
			return
		}
		sep()
		b.WriteString(name)
		if len(list) == 0 {
			return
		}
		b.WriteString(`="`)
		for i, f := range list {
			if i > 0 {
				b.WriteString(", ")
			}
			for j := 0; j < len(f); j++ {
				if f[j] == '"' || f[j] == '\\' {
					b.WriteByte('\\')
				}
				b.WriteByte(f[j])
			}
		}
		b.WriteByte('"')
	}
	delta(d.MaxAge, "max-age")
	delta(d.SMaxAge, "s-maxage")
	if d.MaxStaleAny && !d.MaxStale.Set {
		flag(true, "max-stale")
	}
	delta(d.MaxStale, "max-stale")
	delta(d.MinFresh, "min-fresh")
	delta(d.StaleWhileRevalidate, "stale-while-revalidate")
	delta(d.StaleIfError, "stale-if-error")
	fields(d.NoCache, d.NoCacheFields, "no-cache")
	flag(d.NoStore, "no-store")
	fields(d.Private, d.PrivateFields, "private")
	flag(d.Public, "public")
	flag(d.MustRevalidate, "must-revalidate")
	flag(d.ProxyRevalidate, "proxy-revalidate")
	flag(d.MustUnderstand, "must-understand")
	flag(d.NoTransform, "no-transform")
	flag(d.OnlyIfCached, "only-if-cached")
	flag(d.Immutable, "immutable")
	return b.String()
}
