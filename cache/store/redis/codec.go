package redis

import (
	"encoding/binary"
	"errors"

	"github.com/caddy-edge/edge/cache/store"
	"github.com/caddy-edge/edge/cache/store/internal/codec"
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
	b = codec.AppendString(b, key)
	b = binary.AppendUvarint(b, uint64(e.Status))
	var flags byte
	if e.SoftPurged {
		flags |= flagSoft
	}
	b = append(b, flags)
	b = codec.AppendTime(b, e.RequestTime)
	b = codec.AppendTime(b, e.ResponseTime)
	b = codec.AppendTime(b, e.Expires)
	b = binary.AppendVarint(b, e.Size)
	b = codec.AppendStrings(b, e.Tags)
	b = codec.AppendFields(b, e.Header)
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
	m, rest, err := decodeHead(b)
	if err != nil {
		return nil, err
	}
	if m.chunks == 0 {
		if int64(len(rest)) != m.entry.Size {
			return nil, errCorrupt
		}
		m.inline = rest
	} else if len(rest) != 0 {
		return nil, errCorrupt
	}
	return m, nil
}

// decodeHead decodes a meta value but its inline body, and returns the
// bytes after the metadata: it also decodes the beginning of a value
// (GETRANGE), as long as the metadata is whole.
func decodeHead(b []byte) (*meta, []byte, error) {
	gen, chunks, ok := decodeFixed(b)
	if !ok {
		return nil, nil, errCorrupt
	}
	d := codec.NewDecoder(b[fixedLen:])
	m := &meta{gen: gen, chunks: chunks, entry: new(store.Entry)}
	e := m.entry
	m.key = d.String()
	e.Status = int(d.Uvarint())
	flags := d.Byte()
	e.RequestTime = d.Time()
	e.ResponseTime = d.Time()
	e.Expires = d.Time()
	e.Size = d.Varint()
	e.Tags = d.Strings()
	e.Header = d.Fields()
	if d.Failed() || e.Status < 0 || e.Status > 999 || e.Size < 0 {
		return nil, nil, errCorrupt
	}
	e.SoftPurged = flags&flagSoft != 0
	return m, d.Rest(), nil
}
