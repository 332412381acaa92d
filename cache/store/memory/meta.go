package memory

import (
	"encoding/binary"
	"math"
	"net/http"
	"strconv"
	"time"

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
//	flags byte, status (unless flagStatusOK), request time, response
//	time, expires, tags, header fields
//
// Times are what a stored response carries in the most bytes after its
// fields, so two of them are kept as differences: the response time from
// the request time (flagResponseDelta; a few milliseconds, 3 bytes instead
// of 11), expires from the response time (flagExpiresDelta; in seconds
// with flagExpiresSeconds, as a freshness lifetime usually is: 2 or 3
// bytes instead of 6 or 7). The body's length is the body's. Header fields
// are encoded as the disk store's are, but for their names and values:
//
//   - a common name (commonNames) is one byte, its number, and another
//     name a 0 byte and the name; a count of values follows, unless the
//     field has one value, marked by codeSingle on that byte;
//   - a value is a varint, followed by the value's bytes when it is even
//     (twice their length), or odd: twice the number the store's value
//     table gave it, plus one (see valueTable; only the values of
//     sharedNames are numbered).
//
// Two fields that most responses carry take one or two bytes instead of
// their values:
//
//   - a Date whose value is an IMF-fixdate that formats back to itself
//     (codeDate), as its seconds from the response time's;
//   - a Content-Length equal to the entry's size (codeBodyLength, with
//     flagBodyLength set), as nothing: it is decoded from the body's
//     length. A writer refuses a body of another length (errBodyLength).

const (
	flagSoftPurged    = 1 << iota
	flagStatusOK      // status 200, not encoded
	flagResponseDelta // response time: nanoseconds after the request time
	flagExpiresDelta  // expires: nanoseconds after the response time (signed)
	flagBodyLength    // a Content-Length field is the body's length
	// flagExpiresSeconds, with flagExpiresDelta: expires is whole seconds
	// after the response time, encoded as seconds.
	flagExpiresSeconds
)

// Field name codes past the common names' numbers.
const (
	codeDate       = 0xfe // Date, one IMF-fixdate value, as seconds from the response time's
	codeBodyLength = 0xff // Content-Length, one value: the body's length
	// codeSingle, on a name's number (or on the 0 of a name in full):
	// the field has one value, and no count of values follows.
	codeSingle = 0x80
)

// encodeMeta returns e's metadata encoded, with the values of table
// (which may be nil: no value numbered). A Content-Length that equals
// e.Size (a length known when the entry is put) is encoded as the body's
// length.
func encodeMeta(e *store.Entry, table *valueTable) string {
	var buf [512]byte
	b := append(buf[:0], 0)
	var flags byte
	if e.SoftPurged {
		flags |= flagSoftPurged
	}
	if e.Status == 200 {
		flags |= flagStatusOK
	} else {
		b = binary.AppendUvarint(b, uint64(max(e.Status, 0)))
	}
	b = codec.AppendTime(b, e.RequestTime)
	if d, ok := nanosAfter(e.RequestTime, e.ResponseTime); ok && d >= 0 {
		flags |= flagResponseDelta
		b = binary.AppendUvarint(b, uint64(d))
	} else {
		b = codec.AppendTime(b, e.ResponseTime)
	}
	if d, ok := nanosAfter(e.ResponseTime, e.Expires); ok {
		flags |= flagExpiresDelta
		if d%1e9 == 0 {
			flags |= flagExpiresSeconds
			d /= 1e9
		}
		b = binary.AppendVarint(b, d)
	} else {
		b = codec.AppendTime(b, e.Expires)
	}
	b = codec.AppendStrings(b, e.Tags)
	b = appendFields(b, e.Header, e.Size, e.ResponseTime, &flags, table)
	b[0] = flags
	return string(b) // its exact length: the string is kept
}

// nanosAfter returns the nanoseconds from t0 to t, when both are set and
// Unix nanoseconds can hold them.
func nanosAfter(t0, t time.Time) (int64, bool) {
	if t0.IsZero() || t.IsZero() || !inNanoRange(t0) || !inNanoRange(t) {
		return 0, false
	}
	return t.UnixNano() - t0.UnixNano(), true
}

// inNanoRange tells whether t's Unix nanoseconds fit in an int64 with
// room for a difference of two of them: years 1824 to 2116.
func inNanoRange(t time.Time) bool {
	const limit = (1 << 62) / 1_000_000_000 // seconds
	s := t.Unix()
	return s > -limit && s < limit
}

// decodeMeta decodes metadata encoded by encodeMeta with table, of an
// entry whose body is size bytes long. Its strings are sub-strings of
// meta, but for the values of table and a Date or Content-Length encoded
// as a number.
func decodeMeta(meta string, size int64, table *valueTable) (*store.Entry, bool) {
	d := codec.NewStringDecoder(meta)
	e := &store.Entry{}
	var flags byte
	flags, e.Status, e.RequestTime, e.ResponseTime, e.Expires = decodeTimes(d)
	e.SoftPurged = flags&flagSoftPurged != 0
	e.Tags = d.Strings()
	e.Header = decodeFields(d, flags, size, e.ResponseTime, table)
	if d.Failed() || len(d.Rest()) != 0 {
		return nil, false
	}
	return e, true
}

// decodeTimes reads the flags, the status and the times.
func decodeTimes(d *codec.Decoder) (flags byte, status int, req, resp, exp time.Time) {
	flags = d.Byte()
	status = 200
	if flags&flagStatusOK == 0 {
		st := d.Uvarint()
		if st > 999 { // three digits (RFC 9110 §15), or 0 for a vary marker
			d.Fail()
		}
		status = int(st)
	}
	req = d.Time()
	if flags&flagResponseDelta != 0 {
		resp = addNanos(d, req, int64(d.Uvarint()))
	} else {
		resp = d.Time()
	}
	switch flags & (flagExpiresDelta | flagExpiresSeconds) {
	case flagExpiresDelta | flagExpiresSeconds:
		const limit = math.MaxInt64 / 1_000_000_000
		secs := d.Varint()
		if secs > limit || secs < -limit {
			d.Fail()
		}
		exp = addNanos(d, resp, secs*1e9)
	case flagExpiresDelta:
		exp = addNanos(d, resp, d.Varint())
	case flagExpiresSeconds:
		d.Fail()
	default:
		exp = d.Time()
	}
	return flags, status, req, resp, exp
}

// addNanos returns t plus n nanoseconds, as UTC, or fails d when t is
// not set or the sum leaves the range the encoder writes.
func addNanos(d *codec.Decoder, t time.Time, n int64) time.Time {
	if d.Failed() || t.IsZero() || !inNanoRange(t) {
		d.Fail()
		return time.Time{}
	}
	sum := t.UnixNano() + n
	if (n > 0 && sum < t.UnixNano()) || (n < 0 && sum > t.UnixNano()) {
		d.Fail()
		return time.Time{}
	}
	r := time.Unix(0, sum).UTC()
	if !inNanoRange(r) {
		d.Fail()
		return time.Time{}
	}
	return r
}

// metaTags returns the tags of encoded metadata, decoding no more than
// needed.
func metaTags(meta string) []string {
	d := codec.NewStringDecoder(meta)
	decodeTimes(d)
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

// sharedNames are the common names whose values the value table numbers:
// the fields whose values many responses of a site repeat. Fields whose
// values are each response's own (Etag, Last-Modified, Location, ...) are
// not among them, nor Access-Control-Allow-Origin, which origins often
// set to the request's Origin: clients would choose what fills the table.
var sharedNames = func() (shared [len(commonNames) + 1]bool) {
	for _, n := range sharedNameList {
		shared[nameCodes[n]] = true
	}
	shared[0] = false // a name not in commonNames
	return shared
}()

// sharedNameList lists sharedNames.
var sharedNameList = [...]string{
	"Accept-Ranges", "Access-Control-Allow-Credentials", "Access-Control-Allow-Headers",
	"Access-Control-Allow-Methods", "Access-Control-Expose-Headers",
	"Access-Control-Max-Age", "Allow", "Alt-Svc", "Cache-Control", "Cdn-Cache-Control",
	"Content-Encoding", "Content-Language", "Content-Security-Policy",
	"Content-Security-Policy-Report-Only", "Content-Type", "Cross-Origin-Embedder-Policy",
	"Cross-Origin-Opener-Policy", "Cross-Origin-Resource-Policy", "Nel", "Permissions-Policy",
	"Pragma", "Referrer-Policy", "Report-To", "Server", "Strict-Transport-Security",
	"Surrogate-Control", "Timing-Allow-Origin", "Vary", "Via", "X-Cache",
	"X-Content-Type-Options", "X-Frame-Options", "X-Powered-By", "X-Xss-Protection",
}

// nameCodes numbers commonNames.
var nameCodes = func() map[string]byte {
	m := make(map[string]byte, len(commonNames))
	for i, n := range commonNames {
		m[n] = byte(i + 1)
	}
	return m
}()

// appendFields appends f as codec.AppendFields does, but for a common
// name, written as its number, a value of a shared name that table
// numbers, written as that number, and a Date or a Content-Length that
// encode as a number (see the encoding above), written as their code and
// the number. flags gets flagBodyLength when the Content-Length is size.
func appendFields(b []byte, f store.Fields, size int64, responseTime time.Time, flags *byte, table *valueTable) []byte {
	b = binary.AppendUvarint(b, uint64(f.Names()))
	for k, pairs := range f.Groups() {
		if pairs.Len() == 1 {
			switch v := pairs[1]; k {
			case "Date":
				if t, ok := fixdate(v); ok {
					b = binary.AppendVarint(append(b, codeDate), t.Unix()-unixSeconds(responseTime))
					continue
				}
			case "Content-Length":
				var digits [20]byte
				if size >= 0 && v == string(strconv.AppendInt(digits[:0], size, 10)) {
					*flags |= flagBodyLength
					b = append(b, codeBodyLength)
					continue
				}
			}
		}
		c, ok := nameCodes[k]
		code := c
		if pairs.Len() == 1 {
			code |= codeSingle
		}
		b = append(b, code)
		if !ok {
			b = codec.AppendString(b, k)
		}
		if pairs.Len() != 1 {
			b = binary.AppendUvarint(b, uint64(pairs.Len()))
		}
		for _, v := range pairs.All() {
			if sharedNames[c] {
				if id, ok := table.id(v); ok {
					b = binary.AppendUvarint(b, uint64(id)<<1|1)
					continue
				}
			}
			b = append(binary.AppendUvarint(b, uint64(len(v))<<1), v...)
		}
	}
	return b
}

// value reads a value written by appendFields.
func value(d *codec.Decoder, table *valueTable) string {
	n := d.Uvarint()
	if n&1 == 0 {
		return d.StringOf(n >> 1)
	}
	v, ok := table.value(n >> 1)
	if !ok {
		d.Fail()
	}
	return v
}

// fixdate parses v as an IMF-fixdate (RFC 9110 §5.6.7) that formats back
// to v exactly, so that it can be kept as a time. It reads the numbers at
// their places and lets the formatting back check the rest (names,
// separators, ranges): a tenth of time.Parse's cost, for every stored
// response.
func fixdate(v string) (time.Time, bool) {
	if len(v) != len(http.TimeFormat) {
		return time.Time{}, false
	}
	day, ok1 := digits(v[5:7])
	year, ok2 := digits(v[12:16])
	hour, ok3 := digits(v[17:19])
	minute, ok4 := digits(v[20:22])
	sec, ok5 := digits(v[23:25])
	month := 0
	for m := time.January; m <= time.December; m++ {
		if m.String()[:3] == v[8:11] {
			month = int(m)
		}
	}
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || month == 0 {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC)
	var buf [len(http.TimeFormat)]byte
	return t, inNanoRange(t) && string(appendFixdate(buf[:0], t)) == v
}

// digits reads s as a decimal number of ASCII digits only.
func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i] - '0'
		if c > 9 {
			return 0, false
		}
		n = n*10 + int(c)
	}
	return n, true
}

// unixSeconds is t's Unix seconds, 0 for the zero time.
func unixSeconds(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// decodeFields reads fields written by appendFields with table, for an
// entry whose body is size bytes long; nil for none. The result is capped,
// so that an append by a reader never writes into a shared array.
func decodeFields(d *codec.Decoder, flags byte, size int64, responseTime time.Time, table *valueTable) store.Fields {
	n := d.Count()
	if n == 0 {
		return nil
	}
	f := make(store.Fields, 0, 2*n)
	// The values made from numbers, made one string at the end, and
	// their places in f and in made.
	var madeBuf [64]byte
	var atBuf [4]int
	made, at := madeBuf[:0], atBuf[:0]
	for range n {
		var k string
		c := d.Byte()
		switch {
		case c == codeDate:
			secs := d.Varint()
			t := time.Unix(unixSeconds(responseTime)+secs, 0).UTC()
			if secs != t.Unix()-unixSeconds(responseTime) || !inNanoRange(t) {
				d.Fail() // overflowed: not what the encoder writes
				return nil
			}
			at = append(at, len(f)+1, len(made))
			made = appendFixdate(made, t)
			f = append(f, "Date", "")
			continue
		case c == codeBodyLength:
			if flags&flagBodyLength == 0 || size < 0 {
				d.Fail()
				return nil
			}
			at = append(at, len(f)+1, len(made))
			made = strconv.AppendInt(made, size, 10)
			f = append(f, "Content-Length", "")
			continue
		case c&^codeSingle == 0:
			k = d.String()
		case int(c&^codeSingle) <= len(commonNames):
			k = commonNames[c&^codeSingle-1]
		default:
			d.Fail()
			return nil
		}
		n := 1
		if c&codeSingle == 0 {
			n = d.Count()
		}
		for range n {
			f = append(f, k, value(d, table))
		}
		if d.Failed() {
			return nil
		}
	}
	if len(at) > 0 {
		vals := string(made)
		for i := 0; i < len(at); i += 2 {
			end := len(vals)
			if i+3 < len(at) {
				end = at[i+3]
			}
			f[at[i]] = vals[at[i+1]:end]
		}
	}
	return f[:len(f):len(f)]
}

// appendFixdate appends t, in UTC and with a four-digit year, as an
// IMF-fixdate: what t.Format(http.TimeFormat) returns, in a fraction of
// its time.
func appendFixdate(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	b = append(b, t.Weekday().String()[:3]...)
	b = append(b, ',', ' ', byte('0'+day/10), byte('0'+day%10), ' ')
	b = append(b, month.String()[:3]...)
	b = append(b, ' ', byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), ' ')
	b = append(b, byte('0'+hour/10), byte('0'+hour%10), ':', byte('0'+minute/10), byte('0'+minute%10), ':')
	return append(b, byte('0'+sec/10), byte('0'+sec%10), ' ', 'G', 'M', 'T')
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
// are meta's, but for a Date or Content-Length decoded from numbers: one
// string of up to 49 bytes), and the handler's derived data (96) with the
// strings it caches for hits (about 56). BenchmarkEntryHeap measures 352
// bytes for four fields before any hit, Date and Content-Length among
// them; this counts 416.
func keptCost(e *store.Entry) int64 {
	return 288 + 16*int64(len(e.Header)+len(e.Tags))
}

// decode returns the entry of it, decoded from its metadata, or nil if
// the metadata is corrupt (counted as a store error).
func (c *Cache) decode(it *item) *store.Entry {
	size := int64(it.size())
	e, ok := decodeMeta(it.meta, size, &c.values)
	if !ok {
		c.decodeErrors.Add(1)
		return nil
	}
	e.Size = size
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
		if fn := c.derivers.Func(it.deriver()); fn != nil {
			derived = fn(e)
		}
	}
	e.Derived = derived
	if s := it.slot(); s != nil {
		c.kept.Put(s, e, keptCost(e))
	}
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
