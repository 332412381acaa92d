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
	"net/http"
	"time"
)

// ErrNotFound is returned by Get and Update when no entry has the key.
var ErrNotFound = errors.New("cache entry not found")

// ErrTooLarge is returned when a body is larger than the store accepts for
// one entry: by Put when the size hint already says so, otherwise by
// Commit. Writes before Commit never fail for this reason, so a body being
// streamed to a client and into the store at once keeps streaming.
var ErrTooLarge = errors.New("cache entry too large for the store")

// Namer is implemented by a store that names itself in metrics labels and
// the admin API's answers, e.g. "memory/default" for a memory store shared
// by name. A store that does not implement it goes by its Caddy module
// name.
type Namer interface {
	StoreName() string
}

// Entry is the metadata of a stored response. Entries returned by Get are
// shared and must not be modified: copy one (Clone) before changing it.
type Entry struct {
	// Status is the response's status code.
	Status int
	// Header holds the stored response header fields (hop-by-hop fields
	// already removed).
	Header http.Header
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
	// Derived is what the handler derived from the fields above when it
	// stored the entry (the parsed freshness, the corrected initial age;
	// for a vary marker, the parsed Vary field names),
	// so that a hit parses no header field. Stores that keep entries in
	// memory keep it; stores that serialise entries may drop it, and the
	// handler then derives it again. Clone copies the reference: it is
	// never modified.
	Derived any
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
// be modified.
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

// Stats describes a store's occupation.
type Stats struct {
	Entries  int64 `json:"entries"`
	Bytes    int64 `json:"bytes"`
	Capacity int64 `json:"capacity"`
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
	// returns how many it removed.
	PurgePrefix(ctx context.Context, prefix string) (int, error)
	// PurgeTag removes every entry that carries tag and returns how many it
	// removed.
	PurgeTag(ctx context.Context, tag string) (int, error)
	// Stats reports the store's occupation.
	Stats() Stats
}
