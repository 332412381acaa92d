package policy

import (
	"strings"
	"time"
)

// Targeted cache-control fields (RFC 9213) are Structured Field
// Dictionaries (RFC 9213 §2.1, RFC 8941 §3.2), parsed here with RFC 8941
// §4.2's algorithm. A parse error or an empty dictionary makes the whole
// field ignored (RFC 9213 §2.1), so the caller falls back to Cache-Control.

// sfKind is the type of a Structured Field bare item.
type sfKind uint8

const (
	kindBool sfKind = iota
	kindInteger
	kindDecimal
	kindString
	kindToken
	kindBytes
	kindDate
	kindDisplayString
	kindInnerList
)

// sfItem is a bare item, reduced to what the directives need.
type sfItem struct {
	kind sfKind
	b    bool   // kindBool
	i    int64  // kindInteger
	s    string // kindString (unescaped), kindToken
}

// parseTargeted parses the field lines of a targeted field into
// Directives. ok is false when the field is empty or invalid.
func parseTargeted(values []string) (Directives, bool) {
	s := values[0]
	if len(values) > 1 {
		// RFC 8941 §4.2: field lines are combined into one value.
		s = strings.Join(values, ", ")
	}
	var (
		p ccParser
		n int
	)
	i := 0
	for i < len(s) && s[i] == ' ' {
		i++
	}
	if i == len(s) {
		return Directives{}, false // empty field
	}
	for {
		key, j, ok := sfKey(s, i)
		if !ok {
			return Directives{}, false
		}
		it := sfItem{kind: kindBool, b: true}
		if j < len(s) && s[j] == '=' {
			if j+1 < len(s) && s[j+1] == '(' {
				if j, ok = sfInnerList(s, j+1); !ok {
					return Directives{}, false
				}
				it = sfItem{kind: kindInnerList}
			} else if it, j, ok = sfBareItem(s, j+1); !ok {
				return Directives{}, false
			}
		}
		if j, ok = sfParams(s, j); !ok {
			return Directives{}, false
		}
		p.applyTargeted(key, it)
		n++
		for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
			j++
		}
		if j == len(s) {
			break
		}
		if s[j] != ',' {
			return Directives{}, false
		}
		j++
		for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
			j++
		}
		if j == len(s) {
			return Directives{}, false // trailing comma
		}
		i = j
	}
	return p.d, n > 0
}

// applyTargeted records one dictionary member. Unlike Cache-Control, a
// Dictionary keeps the last of duplicated keys (RFC 8941 §4.2.2), and keys
// are lowercase by grammar. Values of the wrong type are not consumed as
// such (RFC 9213 §2.1 "SHOULD NOT consume values that violate these
// inferred constraints"): for a delta directive they read as 0 (stale, as
// for Cache-Control, §4.2.1); a Boolean false turns a flag off; any other
// value of a flag turns it on.
func (p *ccParser) applyTargeted(key string, it sfItem) {
	d := &p.d
	delta := func(dst *Delta) {
		var v time.Duration // a value of the wrong type reads as 0: stale
		if it.kind == kindInteger && it.i >= 0 {
			v = clampSeconds(it.i)
		}
		*dst = Delta{Set: true, D: v}
	}
	on := !(it.kind == kindBool && !it.b)
	switch key {
	case "max-age":
		delta(&d.MaxAge)
	case "s-maxage":
		delta(&d.SMaxAge)
	case "stale-while-revalidate":
		delta(&d.StaleWhileRevalidate)
	case "stale-if-error":
		delta(&d.StaleIfError)
	case "no-cache":
		d.NoCache, d.NoCacheFields = on, nil
		if it.kind == kindString {
			d.NoCacheFields = appendFieldList(nil, it.s)
		}
	case "private":
		d.Private, d.PrivateFields = on, nil
		if it.kind == kindString {
			d.PrivateFields = appendFieldList(nil, it.s)
		}
	case "no-store":
		d.NoStore = on
	case "must-revalidate":
		d.MustRevalidate = on
	case "proxy-revalidate":
		d.ProxyRevalidate = on
	case "no-transform":
		d.NoTransform = on
	case "public":
		d.Public = on
	case "must-understand":
		d.MustUnderstand = on
	case "immutable":
		d.Immutable = on
	}
}

// sfKey parses key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" ).
func sfKey(s string, i int) (string, int, bool) {
	if i >= len(s) || !(isLcalpha(s[i]) || s[i] == '*') {
		return "", i, false
	}
	start := i
	for i < len(s) {
		c := s[i]
		if isLcalpha(c) || isDigit(c) || c == '_' || c == '-' || c == '.' || c == '*' {
			i++
			continue
		}
		break
	}
	return s[start:i], i, true
}

// sfParams parses *( ";" *SP key [ "=" bare-item ] ), ignoring the values
// (RFC 9213 §2.1: parameters on cache directives are ignored).
func sfParams(s string, i int) (int, bool) {
	for i < len(s) && s[i] == ';' {
		i++
		for i < len(s) && s[i] == ' ' {
			i++
		}
		var ok bool
		if _, i, ok = sfKey(s, i); !ok {
			return i, false
		}
		if i < len(s) && s[i] == '=' {
			if _, i, ok = sfBareItem(s, i+1); !ok {
				return i, false
			}
		}
	}
	return i, true
}

// sfInnerList parses "(" *SP [ item *( 1*SP item ) *SP ] ")" parameters.
func sfInnerList(s string, i int) (int, bool) {
	i++ // "("
	for i < len(s) {
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if i < len(s) && s[i] == ')' {
			return sfParams(s, i+1)
		}
		var ok bool
		if _, i, ok = sfBareItem(s, i); !ok {
			return i, false
		}
		if i, ok = sfParams(s, i); !ok {
			return i, false
		}
		if i < len(s) && s[i] != ' ' && s[i] != ')' {
			return i, false
		}
	}
	return i, false
}

// sfBareItem parses one bare item (RFC 8941 §4.2.3.1, RFC 9651 for Dates
// and Display Strings).
func sfBareItem(s string, i int) (sfItem, int, bool) {
	if i >= len(s) {
		return sfItem{}, i, false
	}
	switch c := s[i]; {
	case c == '-' || isDigit(c):
		return sfNumber(s, i)
	case c == '"':
		return sfString(s, i)
	case c == '*' || isAlpha(c):
		start := i
		i++
		for i < len(s) && (isTchar(s[i]) || s[i] == ':' || s[i] == '/') {
			i++
		}
		return sfItem{kind: kindToken, s: s[start:i]}, i, true
	case c == ':':
		i++
		for i < len(s) && s[i] != ':' {
			c := s[i]
			if !(isAlpha(c) || isDigit(c) || c == '+' || c == '/' || c == '=') {
				return sfItem{}, i, false
			}
			i++
		}
		if i == len(s) {
			return sfItem{}, i, false
		}
		return sfItem{kind: kindBytes}, i + 1, true
	case c == '?':
		if i+1 < len(s) && (s[i+1] == '0' || s[i+1] == '1') {
			return sfItem{kind: kindBool, b: s[i+1] == '1'}, i + 2, true
		}
		return sfItem{}, i, false
	case c == '@':
		it, j, ok := sfNumber(s, i+1)
		if !ok || it.kind != kindInteger {
			return sfItem{}, j, false
		}
		return sfItem{kind: kindDate, i: it.i}, j, true
	case c == '%':
		return sfDisplay(s, i)
	}
	return sfItem{}, i, false
}

// sfNumber parses an Integer or Decimal (RFC 8941 §4.2.4).
func sfNumber(s string, i int) (sfItem, int, bool) {
	neg := false
	if i < len(s) && s[i] == '-' {
		neg = true
		i++
	}
	if i >= len(s) || !isDigit(s[i]) {
		return sfItem{}, i, false
	}
	var (
		n       int64
		digits  int
		decimal bool
		frac    int
	)
	for ; i < len(s); i++ {
		c := s[i]
		if isDigit(c) {
			if decimal {
				frac++
			} else {
				digits++
				n = n*10 + int64(c-'0')
			}
		} else if c == '.' && !decimal {
			if digits > 12 {
				return sfItem{}, i, false
			}
			decimal = true
		} else {
			break
		}
		if !decimal && digits > 15 || decimal && digits+frac > 15 {
			return sfItem{}, i, false
		}
	}
	if decimal {
		if frac < 1 || frac > 3 {
			return sfItem{}, i, false
		}
		return sfItem{kind: kindDecimal}, i, true
	}
	if neg {
		n = -n
	}
	return sfItem{kind: kindInteger, i: n}, i, true
}

// sfString parses a String (RFC 8941 §4.2.5).
func sfString(s string, i int) (sfItem, int, bool) {
	i++
	start := i
	escaped := false
	for i < len(s) {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 >= len(s) || (s[i+1] != '"' && s[i+1] != '\\') {
				return sfItem{}, i, false
			}
			escaped = true
			i += 2
			continue
		case c == '"':
			v := s[start:i]
			if escaped {
				v = unescapeQuoted(v)
			}
			return sfItem{kind: kindString, s: v}, i + 1, true
		case c < 0x20 || c > 0x7e:
			return sfItem{}, i, false
		}
		i++
	}
	return sfItem{}, i, false
}

// sfDisplay parses a Display String (RFC 9651 §4.2.10) without decoding it.
func sfDisplay(s string, i int) (sfItem, int, bool) {
	if i+1 >= len(s) || s[i+1] != '"' {
		return sfItem{}, i, false
	}
	i += 2
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			return sfItem{kind: kindDisplayString}, i + 1, true
		case c == '%':
			if i+2 >= len(s) || !isLowerHex(s[i+1]) || !isLowerHex(s[i+2]) {
				return sfItem{}, i, false
			}
			i += 3
			continue
		case c < 0x20 || c > 0x7e:
			return sfItem{}, i, false
		}
		i++
	}
	return sfItem{}, i, false
}

func isLcalpha(c byte) bool  { return 'a' <= c && c <= 'z' }
func isAlpha(c byte) bool    { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool    { return '0' <= c && c <= '9' }
func isLowerHex(c byte) bool { return isDigit(c) || 'a' <= c && c <= 'f' }
