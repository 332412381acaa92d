package disk

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"time"

	"github.com/caddy-edge/edge/cache/store"
)

// An entry file is a fixed prefix, the encoded metadata (the "header") and
// the body, in that order:
//
//	offset size
//	0      4    magic "CEd1"
//	4      1    flags: flagSoftPurged
//	5      3    reserved, zero
//	8      4    header length
//	12     4    CRC-32C of the header
//	16     8    body length
//	24     4    CRC-32C of the body
//	28     4    CRC-32C of bytes 0-27
//	32          header, then body
//
// The prefix is written last (at Commit), so a file whose prefix does not
// check out was never completed. A soft purge rewrites the prefix in
// place (one 32-byte write, inside one disk sector) to set flagSoftPurged.
const (
	prefixLen      = 32
	magic          = "CEd1"
	flagSoftPurged = 1

	// maxHeaderLen bounds the metadata of one entry: a file that claims
	// more is corrupt.
	maxHeaderLen = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt reports an entry file that fails its checks.
var errCorrupt = errors.New("corrupt cache entry file")

// prefix is the decoded fixed prefix of an entry file.
type prefix struct {
	flags     byte
	headerLen uint32
	headerCRC uint32
	bodyLen   int64
	bodyCRC   uint32
}

func (p *prefix) fileSize() int64 { return prefixLen + int64(p.headerLen) + p.bodyLen }

func (p *prefix) encode(b []byte) {
	copy(b[0:4], magic)
	b[4] = p.flags
	b[5], b[6], b[7] = 0, 0, 0
	binary.LittleEndian.PutUint32(b[8:], p.headerLen)
	binary.LittleEndian.PutUint32(b[12:], p.headerCRC)
	binary.LittleEndian.PutUint64(b[16:], uint64(p.bodyLen))
	binary.LittleEndian.PutUint32(b[24:], p.bodyCRC)
	binary.LittleEndian.PutUint32(b[28:], crc32.Checksum(b[:28], castagnoli))
}

func decodePrefix(b []byte) (prefix, error) {
	var p prefix
	if len(b) < prefixLen || string(b[0:4]) != magic ||
		binary.LittleEndian.Uint32(b[28:]) != crc32.Checksum(b[:28], castagnoli) {
		return p, errCorrupt
	}
	p.flags = b[4]
	p.headerLen = binary.LittleEndian.Uint32(b[8:])
	p.headerCRC = binary.LittleEndian.Uint32(b[12:])
	bl := binary.LittleEndian.Uint64(b[16:])
	p.bodyCRC = binary.LittleEndian.Uint32(b[24:])
	if p.headerLen > maxHeaderLen || bl > math.MaxInt64/2 {
		return p, errCorrupt
	}
	p.bodyLen = int64(bl)
	return p, nil
}

// encodeHeader appends the metadata of the entry under key to b.
func encodeHeader(b []byte, key string, e *store.Entry) []byte {
	b = appendString(b, key)
	b = binary.AppendUvarint(b, uint64(max(e.Status, 0)))
	b = appendTime(b, e.RequestTime)
	b = appendTime(b, e.ResponseTime)
	b = appendTime(b, e.Expires)
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
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendTime encodes t as Unix seconds and nanoseconds; the zero time as
// a single 0 byte.
func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// decoder reads an encoded header; the first error sticks.
type decoder struct {
	b   []byte
	err error
	// s, when set, holds the whole header as one string, and string()
	// returns sub-strings of it: one allocation for all of a header's
	// strings instead of one each.
	s string
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a number of items, each taking at least one byte.
func (d *decoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = errCorrupt
		return 0
	}
	return int(n)
}

func (d *decoder) string() string {
	n := d.count()
	if d.err != nil {
		return ""
	}
	var s string
	if d.s != "" {
		off := len(d.s) - len(d.b)
		s = d.s[off : off+n]
	} else {
		s = string(d.b[:n])
	}
	d.b = d.b[n:]
	return s
}

func (d *decoder) time() time.Time {
	if d.err != nil || len(d.b) == 0 {
		d.err = errCorrupt
		return time.Time{}
	}
	set := d.b[0]
	d.b = d.b[1:]
	if set == 0 {
		return time.Time{}
	}
	sec := d.varint()
	nsec := d.uvarint()
	if nsec >= 1e9 {
		d.err = errCorrupt
	}
	return time.Unix(sec, int64(nsec))
}

// decodeHeader decodes an encoded header: the entry's key and metadata.
// When full is false only the key, status, times and tags are decoded.
func decodeHeader(b []byte, full bool) (string, *store.Entry, error) {
	d := decoder{b: b}
	if full {
		// The entry is the caller's whole: its strings may share one
		// allocation. (Not so for the index's tags, which must not keep a
		// whole header alive.)
		d.s = string(b)
	}
	key := d.string()
	e := &store.Entry{}
	st := d.uvarint()
	if st > 999 {
		d.err = errCorrupt
	}
	e.Status = int(st)
	e.RequestTime = d.time()
	e.ResponseTime = d.time()
	e.Expires = d.time()
	if n := d.count(); n > 0 {
		e.Tags = make([]string, n)
		for i := range e.Tags {
			e.Tags[i] = d.string()
		}
	}
	if full {
		n := d.count()
		if n > 0 {
			e.Header = make(store.Fields, 0, 2*n)
		}
		for range n {
			k := d.string()
			nv := d.count()
			for range nv {
				e.Header = append(e.Header, k, d.string())
			}
			if d.err != nil {
				break
			}
		}
		// Capped: an append by a reader never writes into a shared array.
		e.Header = e.Header[:len(e.Header):len(e.Header)]
		if len(d.b) != 0 && d.err == nil {
			d.err = errCorrupt
		}
	}
	if d.err != nil {
		return "", nil, d.err
	}
	return key, e, nil
}
