package memory

import (
	"encoding/binary"

	"github.com/caddy-edge/edge/cache/store"
	"github.com/caddy-edge/edge/cache/store/internal/codec"
)

// An entry's metadata is kept encoded in one string (item.meta): a
// store.Entry with its header fields and the handler's derived data took
// about 500 bytes in five objects, its encoding takes the bytes of its
// fields and a few dozen more, in one object the collector does not scan.
// The entries that hits use keep their metadata decoded too (item.kept),
// as many as fit in 1/keptShare of the budget: a hit on one of them
// decodes nothing, a hit on another decodes its metadata and derives its
// data again, about a microsecond.
//
// The encoding, private to the process:
//
//	flags byte (flagSoftPurged), status, request time, response time,
//	expires, tags, header fields
//
// The body's length is the body's. Header fields are encoded as the disk
// store's are, but for their names: a common name (commonNames) is one
// byte, its number, and another name a 0 byte and the name.

const flagSoftPurged = 1

// encodeMeta returns e's metadata encoded.
func encodeMeta(e *store.Entry) string {
	var buf [512]byte
	b := append(buf[:0], 0)
	if e.SoftPurged {
		b[0] = flagSoftPurged
	}
	b = binary.AppendUvarint(b, uint64(max(e.Status, 0)))
	b = codec.AppendTime(b, e.RequestTime)
	b = codec.AppendTime(b, e.ResponseTime)
	b = codec.AppendTime(b, e.Expires)
	b = codec.AppendStrings(b, e.Tags)
	b = appendFields(b, e.Header)
	return string(b) // its exact length: the string is kept
}

// decodeMeta decodes metadata encoded by encodeMeta. Its strings are
// sub-strings of meta.
func decodeMeta(meta string) (*store.Entry, bool) {
	d := codec.NewStringDecoder(meta)
	flags := d.Byte()
	e := &store.Entry{SoftPurged: flags&flagSoftPurged != 0}
	e.Status = int(d.Uvarint())
	e.RequestTime = d.Time()
	e.ResponseTime = d.Time()
	e.Expires = d.Time()
	e.Tags = d.Strings()
	e.Header = decodeFields(d)
	if d.Failed() || len(d.Rest()) != 0 {
		return nil, false
	}
	return e, true
}

// metaTags returns the tags of encoded metadata, decoding no more than
// needed.
func metaTags(meta string) []string {
	d := codec.NewStringDecoder(meta)
	d.Byte()
	d.Uvarint()
	d.Time()
	d.Time()
	d.Time()
	return d.Strings()
}

// commonNames are the response header fields most stored responses
// carry, in canonical form: encoded as their number (1-based), and
// decoded as these strings, they take one byte of an entry's metadata.
// Numbers are private to the process; the list may change freely.
var commonNames = [...]string{
	"Accept-Ranges", "Access-Control-Allow-Credentials", "Access-Control-Allow-Headers",
	"Access-Control-Allow-Methods", "Access-Control-Allow-Origin", "Access-Control-Expose-Headers",
	"Access-Control-Max-Age", "Age", "Allow", "Alt-Svc", "Cache-Control", "Cache-Tag",
	"Cdn-Cache-Control", "Content-Disposition", "Content-Encoding", "Content-Language",
	"Content-Length", "Content-Location", "Content-Range", "Content-Security-Policy",
	"Content-Security-Policy-Report-Only", "Content-Type", "Cross-Origin-Embedder-Policy",
	"Cross-Origin-Opener-Policy", "Cross-Origin-Resource-Policy", "Date", "Etag", "Expires",
	"Last-Modified", "Link", "Location", "Nel", "Permissions-Policy", "Pragma", "Referrer-Policy",
	"Report-To", "Retry-After", "Server", "Server-Timing", "Strict-Transport-Security",
	"Surrogate-Control", "Surrogate-Key", "Timing-Allow-Origin", "Vary", "Via", "Www-Authenticate",
	"X-Cache", "X-Content-Type-Options", "X-Frame-Options", "X-Powered-By", "X-Request-Id",
	"X-Xss-Protection",
}

// nameCodes numbers commonNames.
var nameCodes = func() map[string]byte {
	m := make(map[string]byte, len(commonNames))
	for i, n := range commonNames {
		m[n] = byte(i + 1)
	}
	return m
}()

// appendFields appends f as codec.AppendFields does, a common name as
// its number.
func appendFields(b []byte, f store.Fields) []byte {
	b = binary.AppendUvarint(b, uint64(f.Names()))
	for k, pairs := range f.Groups() {
		if c, ok := nameCodes[k]; ok {
			b = append(b, c)
		} else {
			b = codec.AppendString(append(b, 0), k)
		}
		b = binary.AppendUvarint(b, uint64(pairs.Len()))
		for _, v := range pairs.All() {
			b = codec.AppendString(b, v)
		}
	}
	return b
}

// decodeFields reads fields written by appendFields; nil for none. The
// result is capped, so that an append by a reader never writes into a
// shared array.
func decodeFields(d *codec.Decoder) store.Fields {
	n := d.Count()
	if n == 0 {
		return nil
	}
	f := make(store.Fields, 0, 2*n)
	for range n {
		var k string
		switch c := d.Byte(); {
		case c == 0:
			k = d.String()
		case int(c) <= len(commonNames):
			k = commonNames[c-1]
		default:
			d.Fail()
		}
		for range d.Count() {
			f = append(f, k, d.String())
		}
		if d.Failed() {
			return nil
		}
	}
	return f[:len(f):len(f)]
}

func softPurged(meta string) bool { return meta != "" && meta[0]&flagSoftPurged != 0 }

// setSoftPurged returns meta with the entry marked soft purged.
func setSoftPurged(meta string) string {
	b := []byte(meta)
	b[0] |= flagSoftPurged
	return string(b)
}

// keptCost estimates the memory a decoded entry takes: the Entry (160
// bytes), its fields' and tags' string headers (the strings themselves
// are meta's), and the handler's derived data (96) with the strings it
// caches for hits (about 56). BenchmarkEntryHeap measures 340 bytes for
// four fields before any hit; this counts 416.
func keptCost(e *store.Entry) int64 {
	return 288 + 16*int64(len(e.Header)+len(e.Tags))
}

// decode returns the entry of it, decoded from its metadata, or nil if
// the metadata is corrupt (counted as a store error).
func (c *Cache) decode(it *item) *store.Entry {
	e, ok := decodeMeta(it.meta)
	if !ok {
		c.decodeErrors.Add(1)
		return nil
	}
	e.Size = int64(len(it.body))
	return e
}

// decodeAndKeep decodes the entry of it as decode does, with derived as
// its Derived data (nil: derived by the function of its key), and lets the
// CLOCK keep it for the next hits.
func (c *Cache) decodeAndKeep(it *item, derived any) *store.Entry {
	e := c.decode(it)
	if e == nil {
		return nil
	}
	if derived == nil {
		if fn := c.derivers.Func(it.deriver); fn != nil {
			derived = fn(e)
		}
	}
	e.Derived = derived
	c.kept.Put(&it.kept, e, keptCost(e))
	return e
}

// SetDerive sets the function that computes Entry.Derived for the
// entries whose Derived data, given to Put or Update, has the DeriveKey
// key: when an entry's decoded metadata was not kept, a hit decodes it and
// derives its data with the function of its key, so that the handler
// parses no header field. Functions of other keys (handlers of other
// sites, with other options) stay; a function set under the key of an
// earlier one replaces it. When a key is set for the first time or
// released by its last holder, the decoded entries kept are dropped, to
// be derived again at their next hit.
func (c *Cache) SetDerive(key string, fn func(*store.Entry) any) (release func()) {
	gen := c.derivers.Gen()
	rel := c.derivers.Set(key, fn)
	c.forgetIfChanged(gen)
	return func() {
		gen := c.derivers.Gen()
		rel()
		c.forgetIfChanged(gen)
	}
}

// forgetIfChanged drops the decoded entries kept when the derive
// functions changed since generation gen.
func (c *Cache) forgetIfChanged(gen uint64) {
	if c.derivers.Gen() != gen {
		c.kept.Clear()
	}
}
