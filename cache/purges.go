package cache

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Purges racing fetches
//
// A fetch stores its response when the body has arrived, which may be
// long after the origin produced it. A purge or an invalidation that runs
// meanwhile finds nothing to remove under the key yet, and the fetch's
// commit would then bring back the version the purge was meant to remove,
// fresh for its whole lifetime. So every purge and invalidation is
// recorded here, before it removes anything, and a fetch that stored (or
// freshened) a response looks, once its store write is done, for the
// purges recorded since it asked the origin: if one concerns its entry, it
// removes the entry (a soft purge too: the entry it would mark is the one
// just fetched, and a removal cannot race another fetch's commit as a
// rewrite of the metadata could). Either the fetch sees a purge's record, or the record
// came after the fetch's check, and then so does the purge's removal,
// which finds the entry committed.
//
// This covers the purges of this Caddy process; a purge through another
// node of a shared Redis races a store as in any cache.

// maxPurgeRecords bounds the purges kept. A fetch that began before the
// oldest purge kept treats itself as purged; one that began before the
// oldest invalidation kept looks at those kept only: any client can send
// unsafe requests (and a busy API site sends thousands a second), which
// must not drop every large response being stored.
const maxPurgeRecords = 1024

// purgeRecord is one purge: of a primary key and its variants, of a key
// prefix, or of a tag.
type purgeRecord struct {
	seq              uint64
	key, prefix, tag string
}

// purgeLog holds the recent purges.
type purgeLog struct {
	// strict: a fetch older than the records kept counts as purged.
	strict bool

	seq atomic.Uint64 // purges recorded so far; written under mu
	mu  sync.Mutex    // protects recs
	// recs are the last maxPurgeRecords purges, a ring: recs[seq %
	// maxPurgeRecords] is the purge numbered seq.
	recs [maxPurgeRecords]purgeRecord
}

// purges are those of the admin API, invalidations those of unsafe
// requests (RFC 9111 §4.4).
var (
	purges        = &purgeLog{strict: true}
	invalidations = &purgeLog{}
)

// since returns the sequence number a fetch starting now compares with.
func (l *purgeLog) since() uint64 { return l.seq.Load() }

// record records a purge about to remove entries.
func (l *purgeLog) record(r purgeRecord) {
	l.mu.Lock()
	r.seq = l.seq.Load() + 1
	l.recs[r.seq%maxPurgeRecords] = r
	l.seq.Store(r.seq)
	l.mu.Unlock()
}

// purgedSince tells whether a purge recorded after since concerns the
// entry stored under key (primary key pkey) with tags. With none since,
// it costs one atomic load.
func (l *purgeLog) purgedSince(since uint64, pkey, key string, tags ...[]string) bool {
	if l.seq.Load() == since {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	last := l.seq.Load()
	if last-since > maxPurgeRecords {
		if l.strict {
			return true // the records it would need are gone: be safe
		}
		since = last - maxPurgeRecords
	}
	for s := since + 1; s <= last; s++ {
		r := &l.recs[s%maxPurgeRecords]
		switch {
		case r.key != "" && sameURL(pkey, r.key),
			r.prefix != "" && (strings.HasPrefix(key, r.prefix) || strings.HasPrefix(pkey, r.prefix)),
			r.tag != "" && slices.ContainsFunc(tags, func(ts []string) bool { return slices.Contains(ts, r.tag) }):
			return true
		}
	}
	return false
}

// sameURL tells whether the primary key pkey is the URL key u's own or,
// for a request rewritten before the cache, one of its rewrites (u,
// varySep, the rewritten URI: see keyer.key), which a purge of u removes
// with it.
func sameURL(pkey, u string) bool {
	return pkey == u || len(pkey) > len(u) && pkey[len(u)] == varySep[0] && strings.HasPrefix(pkey, u)
}
