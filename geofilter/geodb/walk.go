package geodb

import (
	"errors"
	"fmt"
	"sync"

	"github.com/oschwald/maxminddb-golang/v2/mmdbdata"
)

// A record is decoded in one pass: the field paths of a database are
// compiled into a trie that is walked along the record with mmdbdata
// cursors. In each map (or array) the walk reads keys and skips values only
// until it has seen every key the trie needs there: leaves are read on the
// way, inner values are noted and descended into afterwards (one that is not
// the last needed value is skipped once to reach what follows it, which
// costs a few bytes when it is a pointer, as shared maps in MaxMind's
// databases are). Unlike one DecodePath per field, the record's first keys
// are not read again for every field, and unlike a full decode, nothing
// after the last needed key is read (a map of names in eight languages is
// left as soon as "en" is found).
//
// The walk never computes where the record ends, which Result.Decode wants
// from a CursorUnmarshaler: it returns errWalkDone instead, which Decode
// passes through unchanged and decode treats as success.
var errWalkDone = errors.New("geodb: record walked")

// trie is one node of the compiled field paths.
type trie struct {
	field int // >= 0: a leaf, the value is this field; -1: an inner node

	// Inner node of a map: the children by key.
	keys []string
	kids []*trie

	// Inner node of an array: the children by index (negative: from the end).
	indexes []int
	ikids   []*trie
}

// compile builds the trie of a set of paths. A path that is a prefix of
// another (a field that is also a container of fields) cannot be walked.
func compile(paths []fieldPath) (*trie, error) {
	root := &trie{field: -1}
	for _, p := range paths {
		if len(p.path) == 0 {
			return nil, fmt.Errorf("field %s: empty path", fieldNames[p.field])
		}
	}
	for _, p := range paths {
		n := root
		for i, e := range p.path {
			if n.field >= 0 {
				return nil, fmt.Errorf("field %s: path runs through field %s", fieldNames[p.field], fieldNames[n.field])
			}
			var next *trie
			switch k := e.(type) {
			case string:
				if len(n.indexes) > 0 {
					return nil, fmt.Errorf("field %s: %q used as a map and an array", fieldNames[p.field], k)
				}
				for j, key := range n.keys {
					if key == k {
						next = n.kids[j]
					}
				}
				if next == nil {
					next = &trie{field: -1}
					n.keys, n.kids = append(n.keys, k), append(n.kids, next)
				}
			case int:
				if len(n.keys) > 0 {
					return nil, fmt.Errorf("field %s: index %d used on a map", fieldNames[p.field], k)
				}
				for j, idx := range n.indexes {
					if idx == k {
						next = n.ikids[j]
					}
				}
				if next == nil {
					next = &trie{field: -1}
					n.indexes, n.ikids = append(n.indexes, k), append(n.ikids, next)
				}
			}
			if i == len(p.path)-1 {
				if next.field >= 0 || len(next.keys) > 0 || len(next.indexes) > 0 {
					return nil, fmt.Errorf("field %s: path is used by another field", fieldNames[p.field])
				}
				next.field = p.field
			}
			n = next
		}
	}
	return root, nil
}

// found is a value the walk will descend into.
type found struct {
	kid *trie
	at  mmdbdata.Cursor
}

// walk decodes the value at c along n into w.r. A value of another shape
// than the trie expects (a map where a string was expected, ...) is an
// error, as with DecodePath; a missing key or index leaves the field alone.
func (w *recordWalker) walk(c mmdbdata.Cursor, n *trie) error {
	if n.field >= 0 {
		_, err := w.readField(c, n.field)
		return err
	}
	var (
		later [4]found // inner nodes to descend into once this container is left
		nl    int
		next  mmdbdata.Cursor
	)
	// visit handles the value v of a needed key or index and returns the
	// cursor after it: a leaf is read at once; an inner node is noted for
	// later, or walked now if too many are pending.
	visit := func(kid *trie, v mmdbdata.Cursor, last bool) (mmdbdata.Cursor, error) {
		if kid.field >= 0 {
			return w.readField(v, kid.field)
		}
		if nl < len(later) {
			later[nl] = found{kid, v}
			nl++
		} else if err := w.walk(v, kid); err != nil {
			return v, err
		}
		if last {
			return v, nil // no need to know where it ends
		}
		return v.Skip()
	}
	if len(n.indexes) > 0 {
		s, err := c.Slice()
		if err != nil {
			return err
		}
		size, err := s.Size()
		if err != nil {
			return err
		}
		need := len(n.indexes)
		for need > 0 {
			i, v, ok := s.Next(next)
			if !ok {
				break
			}
			var kid *trie
			for j, idx := range n.indexes {
				if idx < 0 {
					idx += int(size)
				}
				if idx == int(i) {
					kid = n.ikids[j]
					need-- // each index matches one element at most
				}
			}
			if kid != nil {
				next, err = visit(kid, v, need == 0)
			} else {
				next, err = v.Skip()
			}
			if err != nil {
				return err
			}
		}
		if err := s.Err(); err != nil {
			return err
		}
	} else {
		m, err := c.Map()
		if err != nil {
			return err
		}
		var seen uint32 // kids found, by index: a repeated key counts once
		need := len(n.keys)
		for need > 0 {
			key, v, ok := m.Next(next)
			if !ok {
				break
			}
			var kid *trie
			for j, k := range n.keys {
				if string(key) == k {
					if seen&(1<<j) == 0 {
						seen |= 1 << j
						kid = n.kids[j]
						need--
					}
					break
				}
			}
			if kid != nil {
				next, err = visit(kid, v, need == 0)
			} else {
				next, err = v.Skip()
			}
			if err != nil {
				return err
			}
		}
		if err := m.Err(); err != nil {
			return err
		}
	}
	for _, f := range later[:nl] {
		if err := w.walk(f.at, f.kid); err != nil {
			return err
		}
	}
	return nil
}

// readField reads the value at c into field f of w.r and returns the
// cursor after it.
func (w *recordWalker) readField(c mmdbdata.Cursor, f int) (mmdbdata.Cursor, error) {
	var (
		next mmdbdata.Cursor
		err  error
		r    = w.r
	)
	switch f {
	case fCountryCode:
		r.CountryCode, next, err = readString(c, r.CountryCode)
	case fContinentCode:
		r.ContinentCode, next, err = readString(c, r.ContinentCode)
	case fSubdivisionCode:
		r.SubdivisionCode, next, err = readString(c, r.SubdivisionCode)
	case fCity:
		r.City, next, err = readString(c, r.City)
	case fASNOrg:
		r.ASNOrg, next, err = readString(c, r.ASNOrg)
	case fASN:
		next, err = (*asnValue)(&r.ASN).UnmarshalMaxMindDBCursor(c)
	default:
		var b *bool
		switch f {
		case fInEU:
			b = &r.InEU
		case fIsAnonymous:
			b = &r.IsAnonymous
		case fIsAnonymousVPN:
			b = &r.IsAnonymousVPN
		case fIsHostingProvider:
			b = &r.IsHostingProvider
		case fIsPublicProxy:
			b = &r.IsPublicProxy
		case fIsTorExitNode:
			b = &r.IsTorExitNode
		case fIsResidentialProxy:
			b = &r.IsResidentialProxy
		}
		var v bool
		v, next, err = c.ReadBool()
		if err == nil {
			*b = v
		}
	}
	if err != nil {
		return next, fmt.Errorf("decoding %s: %w", fieldNames[f], mmdbdata.NormalizeUnmarshalError[string](err))
	}
	w.mask |= 1 << f
	return next, nil
}

// readString reads a string, keeping old on error. The reader's string
// cache makes repeated strings (country codes, city names) free of
// allocations.
func readString(c mmdbdata.Cursor, old string) (string, mmdbdata.Cursor, error) {
	s, next, err := c.ReadStringMaxSize(1024)
	if err != nil {
		return old, next, err
	}
	return noControls(s), next, nil
}

// noControls returns s with each control character (C0 and DEL) replaced
// by a space. The strings reach the {geo.*} placeholders, and from them
// request and response header fields (header_up X-City {geo.city}) and
// logs: a database whose names hold a CR, LF or NUL (a custom or corrupt
// file, or an AS name as its registrant wrote it) would otherwise make Go
// refuse every proxied request of the network ("invalid header field
// value", a 502) or corrupt the response header sent to the client. No
// country, subdivision, city or organisation name has one.
func noControls(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] < 0x20 || b[j] == 0x7f {
					b[j] = ' '
				}
			}
			return string(b)
		}
	}
	return s
}

// recordWalker is passed to Result.Decode, which hands it the record's
// cursor. Walkers are pooled so that a lookup does not allocate one.
type recordWalker struct {
	t    *trie
	r    *Result
	mask uint16 // fields read (bit i: field i)
}

var walkers = sync.Pool{New: func() any { return new(recordWalker) }}

// UnmarshalMaxMindDBCursor implements mmdbdata.CursorUnmarshaler.
func (w *recordWalker) UnmarshalMaxMindDBCursor(c mmdbdata.Cursor) (mmdbdata.Cursor, error) {
	if err := w.walk(c, w.t); err != nil {
		return c, err
	}
	return c, errWalkDone
}

// Interface guards
var (
	_ mmdbdata.CursorUnmarshaler = (*recordWalker)(nil)
)
