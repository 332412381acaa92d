package memory

import (
	"strings"
	"sync"
	"sync/atomic"
)

// A valueTable numbers the header field values that many stored
// responses share (a Content-Type, a Cache-Control, a Vary, a security
// header), so that an entry's metadata carries such a value as its number,
// one or two bytes, instead of its bytes. HPACK does the same for the
// fields of one connection (RFC 7541 §2.3.2); here the numbers live as
// long as the store. A usual response's fields are a few hundred bytes,
// most of them values every other response of its site repeats: in a full
// store of 1 KiB responses those bytes are a large part of what is stored
// beyond the bodies.
//
// Only the values of fields that tend to repeat are numbered (sharedNames),
// and only once seen in two entries, so that values unique to a response
// (an Etag, a Cache-Control with an Age-dependent max-age) rarely take a
// number. The table is bounded (maxValues, maxValueBytes), as is the set
// of values seen once (maxSeen): an origin that sends many values fills it
// once and makes later values be stored as bytes, which costs space, never
// correctness. Each costs at most 1/valueShare of the store's budget and
// maxValueBytes (valueTableMax), kept out of the entries' share. Numbers
// are never reused, so that the metadata of any entry decodes with any
// later state of the table.
//
// Reads take no lock: the numbered values are an immutable snapshot
// replaced as a whole (cur). Encoding looks a value up in the snapshot; a
// value not in it takes mu, to be remembered as seen or numbered.
type valueTable struct {
	cur      atomic.Pointer[valueSnapshot] // never nil after init
	maxBytes atomic.Int64                  // the bound of the numbered values' cost, and of the seen ones'
	full     atomic.Bool                   // a value found the table out of room (count or bytes)

	mu        sync.Mutex          // protects seen, seenCost, tableCost and the snapshot's replacement
	seen      map[string]struct{} // values seen once, not numbered yet
	seenCost  int64               // valueCost of the values in seen
	tableCost int64               // valueCost of the numbered values
}

// valueSnapshot is the table at one time. vals may share its array with
// later snapshots, which only append to it: a reader reads no index past
// its snapshot's length.
type valueSnapshot struct {
	ids  map[string]uint32
	vals []string
}

const (
	// maxValues is the most values numbered: numbers below 8192 take
	// two bytes at most in the metadata (see appendFields).
	maxValues = 1024
	// maxValueLen is the longest value numbered; a Content-Security-Policy
	// of a few hundred bytes is among the values worth it.
	maxValueLen = 512
	// maxValueBytes bounds the cost (valueCost) of the numbered values,
	// and that of the values seen once: 192 KiB each at most.
	maxValueBytes = 192 << 10
	// valueShare: the table, and the set of values seen once, may each
	// cost 1/valueShare of the store's budget at most.
	valueShare = 64
	// maxSeen is the most values remembered as seen once; the set is
	// emptied when full.
	maxSeen = 256
)

// valueCost is the memory a value takes in the table: its bytes, and
// about 64 bytes of map entry and string headers.
func valueCost(v string) int64 { return int64(len(v)) + 64 }

// valueTableMax is what the numbered values may cost in a store of
// budget maxSize, and the values seen once as much.
func valueTableMax(maxSize int64) int64 { return min(maxSize/valueShare, maxValueBytes) }

// setMax bounds the table for a store of budget maxSize.
func (t *valueTable) setMax(maxSize int64) { t.maxBytes.Store(valueTableMax(maxSize)) }

// init makes t ready for use.
func (t *valueTable) init() {
	t.seen = make(map[string]struct{})
	t.cur.Store(&valueSnapshot{ids: map[string]uint32{}})
}

// id returns v's number, numbering it if v was seen before; false when v
// is kept as bytes. A nil table numbers nothing.
func (t *valueTable) id(v string) (uint32, bool) {
	if t == nil {
		return 0, false
	}
	s := t.cur.Load()
	if id, ok := s.ids[v]; ok {
		return id, true
	}
	if len(v) > maxValueLen {
		return 0, false
	}
	if len(s.vals) >= maxValues {
		t.setFull()
		return 0, false
	}
	return t.admit(v)
}

// admit numbers v if it was seen before and the table has room, and
// remembers it as seen otherwise.
func (t *valueTable) admit(v string) (uint32, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.cur.Load()
	if id, ok := s.ids[v]; ok { // numbered meanwhile
		return id, true
	}
	cost, limit := valueCost(v), t.maxBytes.Load()
	if _, ok := t.seen[v]; !ok {
		if len(t.seen) >= maxSeen || t.seenCost+cost > limit {
			clear(t.seen)
			t.seenCost = 0
		}
		if cost <= limit {
			// A copy: v may be part of a larger string the set must not keep.
			t.seen[strings.Clone(v)] = struct{}{}
			t.seenCost += cost
		}
		return 0, false
	}
	delete(t.seen, v)
	t.seenCost -= cost
	if len(s.vals) >= maxValues || t.tableCost+cost > limit {
		t.setFull()
		return 0, false
	}
	v = strings.Clone(v)
	ids := make(map[string]uint32, len(s.ids)+1)
	for k, id := range s.ids {
		ids[k] = id
	}
	id := uint32(len(s.vals))
	ids[v] = id
	t.tableCost += cost
	t.cur.Store(&valueSnapshot{ids: ids, vals: append(s.vals, v)})
	return id, true
}

// setFull records that the table had no room for a value; a load first,
// so that encodings after it do not all write the flag's cache line.
func (t *valueTable) setFull() {
	if !t.full.Load() {
		t.full.Store(true)
	}
}

// stats returns the number of values numbered and whether the table
// refused one for lack of room.
func (t *valueTable) stats() (n int64, full bool) {
	return int64(len(t.cur.Load().vals)), t.full.Load()
}

// value returns the value numbered id; false for a number the table
// never gave, which only corrupt metadata holds.
func (t *valueTable) value(id uint64) (string, bool) {
	if t == nil {
		return "", false
	}
	s := t.cur.Load()
	if id >= uint64(len(s.vals)) {
		return "", false
	}
	return s.vals[id], true
}
