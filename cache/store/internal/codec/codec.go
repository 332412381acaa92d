// Package codec holds the binary encoding that the stores which serialise
// entries share: the memory store's compact entries, the disk store's
// entry files and the Redis store's meta values. Each store frames the
// pieces its own way (and keeps its format stable); the pieces are encoded
// alike: lengths and numbers as varints, strings length-prefixed, times as
// Unix seconds and nanoseconds, header fields grouped by name.
//
// Decoding takes bytes that may come from a damaged file or a server that
// others write to: every length is checked against what is left, and the
// first error sticks.
package codec

import (
	"encoding/binary"
	"time"
	"unsafe"

	"github.com/caddy-edge/edge/cache/store"
)

// AppendString appends s, prefixed by its length.
func AppendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// AppendTime appends t as Unix seconds and nanoseconds, after a flag byte
// that is 0 for the zero time (whose Unix seconds are far below any real
// time) and 1 otherwise.
func AppendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// AppendStrings appends the number of strings in ss, then each.
func AppendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = AppendString(b, s)
	}
	return b
}

// AppendFields appends f as the number of distinct names, then for each
// name the name, the number of its values and the values.
func AppendFields(b []byte, f store.Fields) []byte {
	b = binary.AppendUvarint(b, uint64(f.Names()))
	for k, pairs := range f.Groups() {
		b = AppendString(b, k)
		b = binary.AppendUvarint(b, uint64(pairs.Len()))
		for _, v := range pairs.All() {
			b = AppendString(b, v)
		}
	}
	return b
}

// FieldsLen returns at most how many bytes AppendFields adds for f, for
// sizing a buffer.
func FieldsLen(f store.Fields) int {
	n := binary.MaxVarintLen64
	for k, v := range f.All() {
		n += len(k) + len(v) + 2*binary.MaxVarintLen32
	}
	return n
}

// Decoder reads what the append functions wrote. After the first error
// (Failed) every read returns a zero value.
type Decoder struct {
	b      []byte
	failed bool
	// s, when set, holds the same bytes as b did at first, and String
	// returns sub-strings of it: one allocation for all the strings
	// decoded instead of one each.
	s   string
	off int // the length of s when it was set
}

// NewDecoder returns a Decoder of b; its strings are copied out of b.
func NewDecoder(b []byte) *Decoder { return &Decoder{b: b} }

// NewStringDecoder returns a Decoder of s whose strings are sub-strings of
// s: they keep all of s alive.
func NewStringDecoder(s string) *Decoder {
	// A read-only view of s's bytes: the decoder never writes to b.
	b := unsafe.Slice(unsafe.StringData(s), len(s))
	return &Decoder{b: b, s: s, off: len(s)}
}

// Failed tells whether a read found the bytes malformed or short.
func (d *Decoder) Failed() bool { return d.failed }

// Rest returns the bytes not read yet.
func (d *Decoder) Rest() []byte { return d.b }

// Fail marks the decoding failed, for a check of the caller's own.
func (d *Decoder) Fail() { d.failed, d.b = true, nil }

// Uvarint reads an unsigned varint.
func (d *Decoder) Uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.Fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// Varint reads a signed varint: an unsigned one, zig-zag encoded, as
// binary.AppendVarint writes it.
func (d *Decoder) Varint() int64 {
	u := d.Uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

// Byte reads one byte.
func (d *Decoder) Byte() byte {
	if len(d.b) == 0 {
		d.Fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// Count reads a number of items that follow, each at least one byte
// long: a count larger than the bytes left is an error.
func (d *Decoder) Count() int {
	n := d.Uvarint()
	if n > uint64(len(d.b)) {
		d.Fail()
		return 0
	}
	return int(n)
}

// String reads a length-prefixed string.
func (d *Decoder) String() string {
	return d.StringOf(d.Uvarint())
}

// StringOf reads the next n bytes as a string, for a framing that gives
// the length its own way.
func (d *Decoder) StringOf(size uint64) string {
	if size > uint64(len(d.b)) {
		d.Fail()
	}
	if d.failed {
		return ""
	}
	n := int(size)
	var s string
	if d.s != "" {
		off := d.off - len(d.b)
		s = d.s[off : off+n]
	} else {
		s = string(d.b[:n])
	}
	d.b = d.b[n:]
	return s
}

// Time reads a time written by AppendTime, in UTC.
func (d *Decoder) Time() time.Time {
	if d.Byte() == 0 {
		return time.Time{}
	}
	sec := d.Varint()
	nsec := d.Uvarint()
	if nsec >= 1e9 {
		d.Fail()
	}
	if d.failed {
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// Strings reads strings written by AppendStrings; nil for none.
func (d *Decoder) Strings() []string {
	n := d.Count()
	if n == 0 {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = d.String()
	}
	if d.failed {
		return nil
	}
	return ss
}

// Fields reads fields written by AppendFields; nil for none. The result is
// capped, so that an append by a reader never writes into a shared array.
func (d *Decoder) Fields() store.Fields {
	n := d.Count()
	if n == 0 {
		return nil
	}
	f := make(store.Fields, 0, 2*n)
	for range n {
		k := d.String()
		nv := d.Count()
		for range nv {
			f = append(f, k, d.String())
		}
		if d.failed {
			return nil
		}
	}
	return f[:len(f):len(f)]
}
