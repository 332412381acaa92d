// Package iplist reads IP list files such as FireHOL netsets and the
// Spamhaus DROP lists, and answers whether an address is in them. It knows
// nothing of Caddy.
//
// The format, one entry a line: an address ("192.0.2.1", "2001:db8::1") or a
// network in CIDR notation ("198.51.100.0/24", "2001:db8::/32"); IPv4 and
// IPv6 may be mixed. Everything after '#' or ';' is a comment (FireHOL uses
// '#', Spamhaus DROP "1.10.16.0/20 ; SBL256894"); blank lines are skipped.
// Any other line is an error naming the file and line.
package iplist

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// List is a parsed IP list: sorted, merged ranges. It is immutable and safe
// for concurrent use.
type List struct {
	v4      []range4 // sorted, disjoint, not adjacent
	v6      []range6 // likewise
	entries int      // entries read from the file
}

type range4 struct{ lo, hi uint32 }

type range6 struct{ lo, hi u128 }

type u128 struct{ hi, lo uint64 }

func (a u128) less(b u128) bool { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo) }

func (a u128) cmp(b u128) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

func (a u128) next() (u128, bool) {
	if a.lo != ^uint64(0) {
		return u128{a.hi, a.lo + 1}, true
	}
	if a.hi != ^uint64(0) {
		return u128{a.hi + 1, 0}, true
	}
	return a, false
}

// Load reads the list at path. Errors name the file and, for a bad entry,
// the line.
func Load(path string) (*List, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	l, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s:%w", path, err)
	}
	return l, nil
}

// ParseError is a bad line of a list.
type ParseError struct {
	Line  int
	Entry string
	Err   error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("%d: bad entry %q: %v", e.Line, e.Entry, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// Parse reads a list from r. A bad line gives a *ParseError (its message
// starts with the line number).
func Parse(r io.Reader) (*List, error) {
	var (
		v4 []range4
		v6 []range6
		n  int
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if i := bytes.IndexAny(b, "#;"); i >= 0 {
			b = b[:i]
		}
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			continue
		}
		entry := string(b)
		if fields := strings.Fields(entry); len(fields) > 1 {
			return nil, &ParseError{Line: line, Entry: entry, Err: errors.New("more than one entry on the line")}
		}
		p, err := parseEntry(entry)
		if err != nil {
			return nil, &ParseError{Line: line, Entry: entry, Err: err}
		}
		n++
		if p.Addr().Is4() {
			lo := binary.BigEndian.Uint32(p.Addr().AsSlice())
			hi := lo | (1<<(32-p.Bits()) - 1)
			if p.Bits() == 0 {
				hi = ^uint32(0)
			}
			v4 = append(v4, range4{lo, hi})
		} else {
			a := p.Addr().As16()
			lo := u128{binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])}
			v6 = append(v6, range6{lo, lastOf(lo, p.Bits())})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%d: %w", line+1, err)
	}
	return &List{v4: merge4(v4), v6: merge6(v6), entries: n}, nil
}

// parseEntry parses an address or a CIDR network into a masked prefix; an
// IPv4-mapped IPv6 entry becomes IPv4.
func parseEntry(s string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		p, err = netip.ParsePrefix(s)
		if err != nil {
			return p, err
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return p, err
		}
		if a.Zone() != "" {
			return p, errors.New("zones are not allowed")
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Addr().Is4In6() {
		if p.Bits() < 96 {
			return p, errors.New("IPv4-mapped network shorter than /96")
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

func lastOf(lo u128, bits int) u128 {
	hostBits := 128 - bits
	switch {
	case hostBits == 0:
		return lo
	case hostBits >= 64:
		hi := lo.hi
		if hostBits == 128 {
			hi = ^uint64(0)
		} else {
			hi |= 1<<(hostBits-64) - 1
		}
		return u128{hi, ^uint64(0)}
	default:
		return u128{lo.hi, lo.lo | (1<<hostBits - 1)}
	}
}

func merge4(rs []range4) []range4 {
	slices.SortFunc(rs, func(a, b range4) int { return cmp.Compare(a.lo, b.lo) })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && (r.lo <= out[n-1].hi || (out[n-1].hi != ^uint32(0) && r.lo == out[n-1].hi+1)) {
			out[n-1].hi = max(out[n-1].hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	return slices.Clip(out)
}

func merge6(rs []range6) []range6 {
	slices.SortFunc(rs, func(a, b range6) int { return a.lo.cmp(b.lo) })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 {
			last := &out[n-1]
			// Merge when r overlaps last or starts right after it.
			if next, ok := last.hi.next(); !ok || !next.less(r.lo) {
				if last.hi.less(r.hi) {
					last.hi = r.hi
				}
				continue
			}
		}
		out = append(out, r)
	}
	return slices.Clip(out)
}

// Contains reports whether ip is in the list. An IPv4-mapped IPv6 address is
// matched as IPv4. It does not allocate.
func (l *List) Contains(ip netip.Addr) bool {
	ip = ip.Unmap()
	if ip.Is4() {
		b := ip.As4()
		x := binary.BigEndian.Uint32(b[:])
		// first range whose hi >= x
		i, j := 0, len(l.v4)
		for i < j {
			h := int(uint(i+j) >> 1)
			if l.v4[h].hi < x {
				i = h + 1
			} else {
				j = h
			}
		}
		return i < len(l.v4) && l.v4[i].lo <= x
	}
	if !ip.IsValid() {
		return false
	}
	b := ip.As16()
	x := u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
	i, j := 0, len(l.v6)
	for i < j {
		h := int(uint(i+j) >> 1)
		if l.v6[h].hi.less(x) {
			i = h + 1
		} else {
			j = h
		}
	}
	return i < len(l.v6) && !x.less(l.v6[i].lo)
}

// Len returns the number of entries read from the file (before overlapping
// and adjacent networks were merged).
func (l *List) Len() int { return l.entries }

// Ranges returns the number of disjoint address ranges the entries make.
func (l *List) Ranges() int { return len(l.v4) + len(l.v6) }
