package redis

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/caddy-edge/edge/cache/store"
)

// The value of an entry's meta key:
//
//	offset 0   2 bytes  magic 'E' and format version
//	offset 2   8 bytes  generation: random, names the body's chunk keys
//	offset 10  4 bytes  number of chunks (big endian); 0: the body is inline
//	offset 14  ...      key, status, flags, times, size, tags, header
//	                    (uvarint-prefixed), then the inline body, if any
//
// The fixed prefix lets the Lua scripts read the generation and chunk count
// with GETRANGE, without decoding the rest.
const (
	magic         = 'E'
	formatVersion = 1
	fixedLen      = 14
	flagSoft      = 1 << 0
)

// meta is a decoded meta value.
type meta struct {
	gen    uint64
	chunks uint32
	key    string
	entry  *store.Entry
	inline []byte // the body when chunks == 0; aliases the value
}

var errCorrupt = errors.New("corrupt cache entry in redis")

// encodeMeta returns the meta value of e with the given body layout.
func encodeMeta(key string, gen uint64, chunks uint32, e *store.Entry, inline []byte) []byte {
	n := fixedLen + len(key) + 64 + len(inline)
	for _, t := range e.Tags {
		n += len(t) + 2
	}
	for k, v := range e.Header.All() {
		n += len(k) + len(v) + 6
	}
	b := make([]byte, fixedLen, n)
	b[0], b[1] = magic, formatVersion
	binary.BigEndian.PutUint64(b[2:], gen)
	binary.BigEndian.PutUint32(b[10:], chunks)
	b = appendString(b, key)
	b = binary.AppendUvarint(b, uint64(e.Status))
	var flags byte
	if e.SoftPurged {
		flags |= flagSoft
	}
	b = append(b, flags)
	b = appendTime(b, e.RequestTime)
	b = appendTime(b, e.ResponseTime)
	b = appendTime(b, e.Expires)
	b = binary.AppendVarint(b, e.Size)
	b = binary.AppendUvarint(b, uint64(len(e.Tags)))
	for _, t := range e.Tags {
		b = appendString(b, t)
	}
	b = binary.AppendUvarint(b, uint64(e.Header.Names()))
	for k, pairs := range e.Header.Groups() {
		b = appendString(b, k)
		b = binary.AppendUvarint(b, uint64(pairs.Len()))
		for _, v := range pairs.All() {
			b = appendString(b, v)
		}
	}
	return append(b, inline...)
}

// decodeFixed reads the generation and chunk count of a meta value's
// prefix.
func decodeFixed(b []byte) (gen uint64, chunks uint32, ok bool) {
	if len(b) < fixedLen || b[0] != magic || b[1] != formatVersion {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(b[2:]), binary.BigEndian.Uint32(b[10:]), true
}

// decodeMeta decodes a meta value. Values come from a server that others
// may write to: every length is checked against what is left.
func decodeMeta(b []byte) (*meta, error) {
	gen, chunks, ok := decodeFixed(b)
	if !ok {
		return nil, errCorrupt
	}
	d := decoder{b: b[fixedLen:]}
	m := &meta{gen: gen, chunks: chunks, entry: new(store.Entry)}
	e := m.entry
	m.key = d.string()
	e.Status = int(d.uvarint())
	flags := d.byte()
	e.RequestTime = d.time()
	e.ResponseTime = d.time()
	e.Expires = d.time()
	e.Size = d.varint()
	if nt := d.count(); nt > 0 {
		e.Tags = make([]string, nt)
		for i := range e.Tags {
			e.Tags[i] = d.string()
		}
	}
	nh := d.count()
	for range nh {
		k := d.string()
		nv := d.count()
		for range nv {
			e.Header = append(e.Header, k, d.string())
		}
	}
	if d.err || e.Status < 0 || e.Status > 999 || e.Size < 0 {
		return nil, errCorrupt
	}
	if chunks == 0 {
		if int64(len(d.b)) != e.Size {
			return nil, errCorrupt
		}
		m.inline = d.b
	} else if len(d.b) != 0 {
		return nil, errCorrupt
	}
	e.SoftPurged = flags&flagSoft != 0
	return m, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendTime encodes t as Unix seconds and nanoseconds, with a flag for the
// zero time (whose Unix seconds are far below any real time).
func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// decoder reads what the append functions wrote; after the first error
// every read returns a zero value and err stays set.
type decoder struct {
	b   []byte
	err bool
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err, d.b = true, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err, d.b = true, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.err = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// count reads a number of items that follow, each at least one byte long.
func (d *decoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err, d.b = true, nil
		return 0
	}
	return int(n)
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err, d.b = true, nil
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) time() time.Time {
	if d.byte() == 0 {
		return time.Time{}
	}
	sec := d.varint()
	nsec := d.uvarint()
	if nsec >= 1e9 {
		d.err = true
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}
