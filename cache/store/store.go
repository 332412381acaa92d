// Package store defines the storage interface of http_cache. Backends live
// in subpackages (memory, ...) and all pass the acceptance suite in
// storetest.
//
// The interface is built for streaming: a miss writes the body into the
// store while it is being sent to the client, and a hit reads it back
// without the store having to hold it in one piece.
package store

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"
)

// ErrNotFound is returned by Get and Update when no entry has the key.
var ErrNotFound = errors.New("cache entry not found")

// ErrTooLarge is returned when a body is larger than the store accepts for
// one entry: by Put when the size hint already says so, otherwise by
// Commit. Writes before Commit never fail for this reason, so a body being
// streamed to a client and into the store at once keeps streaming.
var ErrTooLarge = errors.New("cache entry too large for the store")

// ErrBusy is returned, by Put or Commit, when the store holds as many
// bodies still being written as it may: the response is not stored this
// time, and says nothing about whether it could be.
var ErrBusy = errors.New("cache store busy: too many bodies being written")

// Entry is the metadata of a stored response. Entries returned by Get are
// shared and must not be modified: copy one (Clone) before changing it.
type Entry struct {
	// Status is the response's status code.
	Status int
	// Header holds the stored response header fields (hop-by-hop fields
	// already removed), in the compact form of Fields.
	Header Fields
	// RequestTime and ResponseTime are request_time and response_time of
	// RFC 9111 §4.2.3, used to compute the entry's Age.
	RequestTime  time.Time
	ResponseTime time.Time
	// Expires is when the store may drop the entry: the end of its
	// freshness plus every window in which it may still be served stale or
	// revalidated. The zero time means the entry is only evicted for space.
	Expires time.Time
	// Tags are the surrogate keys the entry can be purged by.
	Tags []string
	// Size is the body's length in bytes. Put takes it as a hint (-1 when
	// unknown); the store sets it to the real length on Commit.
	Size int64
	// SoftPurged is set by a soft purge (PurgePrefix or PurgeTag with
	// soft): the entry is stale whatever its freshness. The handler may
	// still serve it where a stale response is allowed (stale-if-error)
	// and revalidates it with its validators; a freshening Update clears
	// it. Stores that serialise entries persist it.
	SoftPurged bool
	// Derived is what the handler derived from the fields above when it
	// stored the entry (the parsed freshness, the corrected initial age;
	// for a vary marker, the parsed Vary field names),
	// so that a hit parses no header field. Stores that keep entries in
	// memory keep it; stores that serialise entries may drop it, and the
	// handler then derives it again. Clone copies the reference: it is
	// never modified. A Derived value may name the options it was
	// derived with (a DeriveKey method), so that a store that decodes
	// entries again derives each with the function of its key (see
	// Deriving).
	Derived any
}

// Deriving is implemented by stores that decode entries and keep them
// decoded for the next hits (memory, disk, tiered). The handler gives them
// its function that computes Entry.Derived, under the key its Derived
// values return from their DeriveKey method (the key of a value without
// one is ""): functions under one key derive alike, and a store may keep
// one per key.
//
// SetDerive holds the key until release is called (the handler's
// Cleanup): entries whose key no handler holds any more, after a reload
// changed the options, are derived with the function set last.
type Deriving interface {
	SetDerive(key string, fn func(*Entry) any) (release func())
}

// Clone returns a deep copy of e.
func (e *Entry) Clone() *Entry {
	c := *e
	c.Header = e.Header.Clone()
	if e.Tags != nil {
		c.Tags = append([]string(nil), e.Tags...)
	}
	return &c
}

// Body is a stored response body. It is safe to read while the entry is
// replaced or deleted: it reads the version that Get found.
type Body interface {
	io.ReadSeekCloser
	io.ReaderAt
	// Size returns the body's length in bytes.
	Size() int64
}

// BytesBody is implemented by bodies held in memory in one piece, so that a
// hit can be written with one call and no copy. The returned slice must not
// be modified, nor used once the body is closed: the memory store reuses a
// large body's buffer for another body after that.
type BytesBody interface {
	Bytes() []byte
}

// Writer receives a body being stored. Nothing is visible to Get until
// Commit returns nil.
type Writer interface {
	io.Writer
	// Commit makes the entry visible under its key, replacing any entry
	// that was there, atomically.
	Commit() error
	// Abort discards what was written. It is safe to call after Commit
	// (then it does nothing) and more than once.
	Abort()
}

// Following is implemented by Writers whose body can be read while it is
// still being written (the memory, disk and Redis stores): the requests that
// wait for a fetch of the same key are then answered as the body arrives,
// not once it is stored whole.
type Following interface {
	// Follow returns a reader of the body from its first byte, or false
	// when the body can no longer be followed: the writer committed,
	// aborted or gave up storing it. Safe to call concurrently with the
	// Writer's methods, from any goroutine.
	Follow() (Follower, bool)
	// Room returns how many more bytes of body the writer stores before
	// it gives the body up as larger than the store takes (0 once it
	// gave it up, committed or aborted): a Write beyond it does not fail,
	// but ends every follower's reading with ErrNotStored. The fetch of a
	// body of unknown length stops serving its own client from the store
	// before such a write (the followers are cut, its client is not).
	Room() int64
}

// Follower reads a body while a Writer writes it. Its methods are safe to
// call concurrently with the Writer's.
type Follower interface {
	// ReadAt reads bytes of the body at off into p. It never waits: it
	// returns n > 0 when bytes at off are written, 0 and a nil error when
	// none is written yet, io.EOF at the end of a committed body, and
	// ErrNotStored once the writer aborted or gave up storing the body
	// (the bytes read until then were the body's).
	ReadAt(p []byte, off int64) (int, error)
	// Close releases what the follower holds. A committed body stays
	// readable until then, whatever happens to the entry in the store.
	Close() error
}

// ErrNotStored is returned by a Follower once its Writer aborted or gave
// up storing the body: the rest of the body is not in the store.
var ErrNotStored = errors.New("cache entry being followed was not stored")

// Stats describes a store's occupation and its counters since it was
// created.
type Stats struct {
	// Entries is the number of stored entries (vary markers included).
	Entries int64 `json:"entries"`
	// Bytes is what the entries take, as the store counts them.
	Bytes int64 `json:"bytes"`
	// Capacity is the byte budget; 0 when the store has none.
	Capacity int64 `json:"capacity"`
	// Evictions counts the entries removed to make room (not those that
	// expired, were replaced or purged).
	Evictions int64 `json:"evictions"`
	// Errors counts the store operations that failed for a reason other
	// than a missing entry or a body too large: I/O errors, corrupt
	// entries, an unreachable server.
	Errors int64 `json:"errors"`
	// SharedValues is, for a memory store, the number of header values its
	// entries share through its table instead of each carrying the bytes
	// (at most 1024).
	SharedValues int64 `json:"shared_values,omitempty"`
	// SharedValuesFull is true once a memory store's table had no room
	// for a value its entries share: later such values are stored in each
	// entry, which takes more memory (never a wrong header). An origin
	// that sends ever-changing values in common fields (a Cache-Control
	// max-age that counts down, a Content-Security-Policy nonce) fills it.
	SharedValuesFull bool `json:"shared_values_full,omitempty"`
	// SegmentBytes is, for a memory store, the size of the blocks its
	// small entries are packed into (see the README's memory section).
	SegmentBytes int64 `json:"segment_bytes,omitempty"`
	// SegmentFree is the part of SegmentBytes that no stored entry holds:
	// what entries that left the store gave up (compactions keep that
	// under 1/12 of SegmentBytes), what the blocks' ends could not fit,
	// and the room left in the block being filled. The store counts it
	// within its budget's headroom.
	SegmentFree int64 `json:"segment_free,omitempty"`
	// Compactions counts the compactions of a memory store's blocks, and
	// CompactedBytes the bytes of entries they copied.
	Compactions    int64 `json:"compactions,omitempty"`
	CompactedBytes int64 `json:"compacted_bytes,omitempty"`
	// Front is, for a tiered store, its memory tier's own figures; the
	// others are the back store's, which holds every entry of the front.
	Front *Stats `json:"front,omitempty"`
}

// Listed is one entry of Store.Entries.
type Listed struct {
	Key string
	// Entry is the entry's metadata, with Size set.
	Entry *Entry
}

// Namer is implemented by stores that can tell their name, as the admin
// API and the metrics report them (e.g. "memory/default", "disk:/var/cache").
type Namer interface {
	StoreName() string
}

// Store keeps responses under string keys. Implementations are safe for
// concurrent use.
type Store interface {
	// Get returns the entry under key and its body, or ErrNotFound. The
	// caller closes the body.
	Get(ctx context.Context, key string) (*Entry, Body, error)
	// Put starts storing an entry under key. The body is written to the
	// returned Writer; the entry appears when the Writer commits.
	Put(ctx context.Context, key string, e *Entry) (Writer, error)
	// Update replaces the metadata of the entry under key and keeps its
	// body (RFC 9111 §4.3.4 freshening), or returns ErrNotFound.
	Update(ctx context.Context, key string, e *Entry) error
	// Delete removes the entries under the keys; missing keys are no error.
	Delete(ctx context.Context, keys ...string) error
	// PurgePrefix removes every entry whose key starts with prefix and
	// returns how many it removed. With soft, it marks them SoftPurged
	// instead (keeping their bodies and store expiry) and returns how many
	// it marked.
	PurgePrefix(ctx context.Context, prefix string, soft bool) (int, error)
	// PurgeTag removes every entry that carries tag and returns how many it
	// removed; with soft, it marks them SoftPurged as PurgePrefix does.
	PurgeTag(ctx context.Context, tag string, soft bool) (int, error)
	// Entries lists the entries whose key starts with prefix and is
	// greater than after ("" lists from the start), in ascending key
	// order, at most limit of them. It serves the admin API; its cost may
	// grow with the number of entries in the store.
	Entries(ctx context.Context, prefix, after string, limit int) ([]Listed, error)
	// Stats reports the store's occupation.
	Stats() Stats
}

// GroupOf returns the part of key before its first NUL, and whether key
// has one. http_cache keys a variant as its URL's primary key, a NUL, and
// the variant's values, so a group is a URL's variants: the memory and
// disk stores index keys by group, so that purging a URL's variants
// (PurgePrefix of the primary key and a NUL, which every unsafe request's
// invalidation asks for) needs no walk of the store.
func GroupOf(key string) (string, bool) {
	i := strings.IndexByte(key, 0)
	if i < 0 {
		return "", false
	}
	return key[:i], true
}

// PrefixGroup returns the group whose keys are exactly the keys that start
// with prefix, when there is one: when prefix's only NUL ends it.
func PrefixGroup(prefix string) (string, bool) {
	if g, ok := GroupOf(prefix); ok && len(g) == len(prefix)-1 {
		return g, true
	}
	return "", false
}
