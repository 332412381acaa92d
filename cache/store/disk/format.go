package disk

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"

	"github.com/caddy-edge/edge/cache/store"
	"github.com/caddy-edge/edge/cache/store/internal/codec"
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
	b = codec.AppendString(b, key)
	b = binary.AppendUvarint(b, uint64(max(e.Status, 0)))
	b = codec.AppendTime(b, e.RequestTime)
	b = codec.AppendTime(b, e.ResponseTime)
	b = codec.AppendTime(b, e.Expires)
	b = codec.AppendStrings(b, e.Tags)
	return codec.AppendFields(b, e.Header)
}

// decodeHeader decodes an encoded header: the entry's key and metadata.
// When full is false only the key, status, times and tags are decoded.
func decodeHeader(b []byte, full bool) (string, *store.Entry, error) {
	d := codec.NewDecoder(b)
	if full {
		// The entry is the caller's whole: its strings may share one
		// allocation. (Not so for the index's tags, which must not keep a
		// whole header alive.)
		d = codec.NewStringDecoder(string(b))
	}
	key := d.String()
	e := &store.Entry{}
	st := d.Uvarint()
	if st > 999 {
		d.Fail()
	}
	e.Status = int(st)
	e.RequestTime = d.Time()
	e.ResponseTime = d.Time()
	e.Expires = d.Time()
	e.Tags = d.Strings()
	if full {
		e.Header = d.Fields()
		if len(d.Rest()) != 0 {
			d.Fail()
		}
	}
	if d.Failed() {
		return "", nil, errCorrupt
	}
	return key, e, nil
}
