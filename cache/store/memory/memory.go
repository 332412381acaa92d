// Package memory is the in-memory store of http_cache, its default store.
//
// A Cache holds each entry's metadata encoded in one string and its body
// in one []byte: for a small entry, both in one record of a large block
// shared with other entries (see arena.go). It bounds the total by a
// byte budget. The
// entries that hits use keep their metadata decoded as well, within a
// share of the budget (see keptShare). Eviction is W-TinyLFU
// (github.com/maypok86/otter/v2): an entry that is requested often
// survives a burst of entries requested once, as a scan of many URLs
// would bring. Entries also leave when their store.Entry.Expires passes:
// Get never returns them, and a sweep removes them (see sweepInterval).
//
// The Caddy module http.cache.stores.memory (type Store) shares one Cache
// per name between sites and across config reloads; see Store.
package memory

import (
	"context"
	"errors"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/maypok86/otter/v2"

	"github.com/caddy-edge/edge/cache/store"
	"github.com/caddy-edge/edge/cache/store/internal/derive"
	"github.com/caddy-edge/edge/cache/store/internal/keep"
	"github.com/caddy-edge/edge/cache/store/internal/unixtime"
)

// DefaultMaxSize is the byte budget of a store that sets none: 256 MiB.
const DefaultMaxSize int64 = 256 << 20

// MaxEntryFraction is the share of the byte budget that one entry may take
// at most: an entry heavier than MaxSize/MaxEntryFraction is refused with
// store.ErrTooLarge. A single entry that fills a large part of the budget
// would push out many popular ones at once.
const MaxEntryFraction = 8

// entryOverhead is what an entry costs beyond its key, its body and its
// encoded metadata: the item (48 bytes), the eviction policy's node (64)
// and hash table slots (about 30), the metadata string's rounding to its
// size class, and a margin; the heap's fragmentation under churn is
// counted apart (fragmentationShare). BenchmarkEntryHeap measures 165
// bytes beyond key and body for a stored 1 KiB response whose metadata
// takes 23 once the store numbered its shared values (68 before; see
// valueTable), 24 more once a hit made its itemExt: see the README's
// "Memory" section for the figures. Checked with bench/memory.sh: a full
// store of 1 KiB entries stays within its RSS budget (1.25 x max_size +
// 64 MiB).
const entryOverhead = 168

// indexOverhead is what the tag index takes for each tag of an entry,
// and the group index for a key with a NUL (a variant's), beyond the
// tag's or group's name (and, for a tag, the key again): at most its slot in the
// index's map (up to 55 bytes, the map half full), a keySet (64), the
// copy of the name rounded to its size class (8 bytes, and 1/8 of the
// name: counted apart), with a map of the set's own for a third key
// (256, split between three): 128 for a tag or group of one key, about as
// much for one of three, less for any other. Measured by
// TestIndexesWithinBudget.
const indexOverhead = 128

// keptShare: the decoded metadata that hits use (the entry, its header
// fields' slice, the handler's derived data) is kept for as many entries
// as fit in 1/keptShare of the budget, chosen by a CLOCK; a hit on
// another entry decodes its metadata. The rest of the budget holds the
// entries.
const keptShare = 16

// fragmentationShare: an entry is counted 1/fragmentationShare heavier than
// the heap it takes when it is stored, for the holes that evictions leave
// in the heap's spans. Measured with bench/memory.sh (1 KiB entries, a
// store evicting for a while): the heap in use exceeded the live heap by
// about 1/10 of the store; without this share a full 256 MiB store took
// 386-387 MiB of RSS against its 384 MiB target.
const fragmentationShare = 16

// coarseResolution is how often the default clock reads the time: an entry
// may be returned up to this long after its Expires (never before).
const coarseResolution = 10 * time.Millisecond

// sweepInterval is how often a Cache on the real clock removes the
// entries whose Expires has passed. Get never returns them before; until
// then they are counted in Stats and take their part of the budget, as
// entries no request uses do until they are evicted. The sweep reads
// every entry, each in memory of its own: about 185 ms of one core a
// million entries (BenchmarkSweep), so 0.3 % of a core for a store of a
// million. (Otter could expire entries itself, at 16 bytes more per entry
// for its timer wheel's links and deadline.)
var sweepInterval = time.Minute

// preallocMax is the most a Put preallocates for a body of announced
// size: 1 MiB.
const preallocMax = 1 << 20

// Config configures a Cache.
type Config struct {
	// MaxSize is the byte budget. Zero means DefaultMaxSize.
	MaxSize int64
	// Now returns the current time. It decides when an entry has expired.
	// Nil means the real time, read every 10ms (coarseResolution). Tests
	// inject a clock here so that expiry needs no sleep; a Cache with a
	// Now of its own runs no sweep (expired entries are never returned,
	// and CleanUp removes them).
	Now func() time.Time
}

// item is what the otter cache holds under a key. Items are immutable
// once in the cache (but for what they keep decoded): Update and Commit
// put new items, so readers of an old item keep a consistent entry and
// body.
//
// An item takes 48 bytes, one size class of the allocator, for every
// entry of the store: what only some entries need (a recycled buffer, the
// decoded entry a hit keeps) is in an itemExt of its own, and the body's
// length, the derive function's number and whether the entry has tags
// share one word. Its weight is computed from them when needed (weight).
type item struct {
	// meta is the entry's metadata, encoded by encodeMeta: one string
	// without pointers, which the collector does not scan. In the arena
	// (arenaBit), the body follows it in the same record.
	meta string
	// body points to the body's first byte (nil for an empty body); its
	// length is in bits. The body is never written while the item holds
	// it: see bytes.
	body *byte
	// bits holds the body's length (bodyBits), whether the entry's record
	// is in the arena (arenaBit), whether the entry has tags (taggedBit),
	// and the number of the handler's function that derives the entry's
	// Derived data when it is decoded (see derivers), above deriverShift.
	bits uint64
	// expires caches the entry's Expires as Unix nanoseconds; 0 means
	// never.
	expires int64
	// ext is nil for an entry with a small body that no hit has kept yet,
	// and gone once such an entry has left the store.
	ext atomic.Pointer[itemExt]
}

// itemExt is what an item needs beside its encoded entry and its body
// for a large body or once a hit keeps its entry decoded.
type itemExt struct {
	// buf is the body's buffer when it is recycled (see buffers.go), nil
	// for a small body. The item holds one of its references while it is
	// in the cache.
	buf *sharedBuf
	// kept holds the decoded entry while the CLOCK keeps it.
	kept keep.Slot[store.Entry]
}

// gone is the itemExt of an item that had none when it left the store:
// none is made for it after that, so nothing is kept for it.
var gone = new(itemExt)

// The layout of item.bits: a body of up to 2^46-1 bytes (64 TiB, beyond
// any budget), the arena flag, the tagged flag, and 16 bits of deriver
// number.
const (
	bodyBits     = 46
	bodyMask     = 1<<bodyBits - 1
	arenaBit     = 1 << bodyBits
	taggedBit    = 1 << (bodyBits + 1)
	deriverShift = 48
)

// size returns the body's length.
func (it *item) size() int { return int(it.bits & bodyMask) }

// tagged reports whether the entry has tags.
func (it *item) tagged() bool { return it.bits&taggedBit != 0 }

// inArena reports whether the item's metadata and body are one record of
// the arena (see arena.go): the metadata's bytes, then the body's.
func (it *item) inArena() bool { return it.bits&arenaBit != 0 }

// record returns the first byte of an item's record in the arena and its
// length.
func (it *item) record() (*byte, int) {
	return unsafe.StringData(it.meta), len(it.meta) + it.size()
}

// deriver returns the number of the entry's derive function.
func (it *item) deriver() uint16 { return uint16(it.bits >> deriverShift) }

// bytes returns the body (nil for an empty one: unsafe.Slice of a nil
// pointer and no length). Readers must not write to it.
func (it *item) bytes() []byte { return unsafe.Slice(it.body, it.size()) }

// buf returns the body's recycled buffer, or nil for a small body.
func (it *item) buf() *sharedBuf {
	if x := it.ext.Load(); x != nil {
		return x.buf
	}
	return nil
}

// slot returns the slot where it keeps its decoded entry, making its ext
// if it has none; nil once it left the store without one.
func (it *item) slot() *keep.Slot[store.Entry] {
	x := it.ext.Load()
	if x == nil {
		x = new(itemExt)
		if !it.ext.CompareAndSwap(nil, x) {
			x = it.ext.Load()
		}
	}
	if x == gone {
		return nil
	}
	return &x.kept
}

// dropKept releases what it keeps, for good: it left the store.
func (c *Cache) dropKept(it *item) {
	x := it.ext.Load()
	if x == nil {
		if it.ext.CompareAndSwap(nil, gone) {
			return
		}
		x = it.ext.Load() // a hit made one meanwhile
	}
	if x != gone {
		c.kept.Drop(&x.kept)
	}
}

// setBody sets the item's body, and its buffer when it is recycled: buf
// holds body's bytes, and the item takes a reference the caller gave it.
// Called before the item is in the store.
func (it *item) setBody(body []byte, buf *sharedBuf) {
	it.body = unsafe.SliceData(body)
	if len(body) == 0 {
		it.body = nil
	}
	it.bits = it.bits&^bodyMask | uint64(len(body))&bodyMask
	if buf != nil {
		it.ext.Store(&itemExt{buf: buf})
	}
}

// setRecord copies meta and body into one record of the arena and makes
// them it's metadata and body. It returns false, and leaves it as it was,
// when the arena takes no record of that size.
func (c *Cache) setRecord(it *item, meta string, body []byte) bool {
	rec := c.arena.alloc(len(meta) + len(body))
	if rec == nil {
		return false
	}
	copy(rec, meta)
	copy(rec[len(meta):], body)
	it.setRecord(rec, len(meta))
	return true
}

// setRecord makes rec, a record of the arena whose first m bytes are an
// encoded metadata and the rest a body, it's metadata and body.
func (it *item) setRecord(rec []byte, m int) {
	it.meta = unsafe.String(unsafe.SliceData(rec), m)
	it.setBody(rec[m:], nil)
	it.bits |= arenaBit
}

// sameBody sets it's body to old's, for an item that replaces old with
// the metadata meta (an Update, a soft purge). A body in the arena is
// copied with meta into a record of the item's own, so that each record
// is held by one item; any other body is shared, with its buffer.
func (c *Cache) sameBody(it, old *item, meta string) {
	it.meta = meta
	if old.inArena() {
		if c.setRecord(it, meta, old.bytes()) {
			return
		}
		// Its new metadata made the record too large for the arena.
		it.setBody(slices.Clone(old.bytes()), nil)
		return
	}
	it.setBody(old.bytes(), old.buf().share())
}

// weight returns what the entry under key counts against the budget: its
// metadata's estimate (metaWeight), plus its body's capacity, plus the
// fragmentation share. It depends only on what the item holds from its
// commit on, so that it is counted out as it was counted in.
func weight(key string, it *item) int64 {
	var tags []string
	if it.tagged() {
		tags = metaTags(it.meta)
	}
	capacity := it.size()
	if b := it.buf(); b != nil {
		capacity = cap(b.b)
	}
	w := metaWeight(key, it.meta, tags) + int64(capacity)
	return w + w/fragmentationShare
}

// Cache is an in-memory store.Store bounded by a byte budget. The zero
// value is not usable; create one with New and Close it when done.
type Cache struct {
	c        *otter.Cache[string, *item]
	clock    otter.Clock   // the time for expiry, shared with otter
	stop     chan struct{} // closed by Close: ends the sweeps
	closing  sync.Once
	maxSize  atomic.Int64
	maxEntry atomic.Int64 // the largest weight one entry may have

	// filling is the capacity of the buffers that open writers hold (the
	// bodies being written; a segment for each one written in place into
	// the arena), at most fillMax: see holdFill.
	filling atomic.Int64
	fillMax atomic.Int64

	entries atomic.Int64 // entries in c, kept by indexAdd and onDeletion
	bytes   atomic.Int64 // sum of the weights of the entries in c
	// evictions counts the entries otter removed for space.
	evictions atomic.Int64

	mu   sync.Mutex         // protects tags and groups
	tags map[string]*keySet // tag -> key -> item that carries tag
	// groups indexes the keys that hold a NUL by their part before it
	// (a variant's primary key), so that PurgePrefix of that part and a
	// NUL, which every unsafe request's invalidation makes, looks up
	// those keys instead of walking the store.
	groups map[string]*keySet

	kept     *keep.Clock[store.Entry] // the decoded entries kept
	derivers derive.Registry
	// decodeErrors counts metadata that failed to decode: never, unless
	// memory was corrupted.
	decodeErrors atomic.Int64
	values       valueTable // numbers the field values entries share
	// arena holds the records of small entries (see arena.go); nil for a
	// store below MinMaxSize.
	arena *arena
}

// New returns a Cache configured by cfg.
func New(cfg Config) (*Cache, error) {
	if cfg.MaxSize < 0 {
		return nil, errors.New("max_size must not be negative")
	}
	if cfg.MaxSize == 0 {
		cfg.MaxSize = DefaultMaxSize
	}
	c := &Cache{tags: make(map[string]*keySet), groups: make(map[string]*keySet), kept: keep.NewClock[store.Entry](0, 0)}
	c.values.init()
	c.arena = newArena(cfg.MaxSize, c.compact)
	c.clock = &coarse
	if cfg.Now != nil {
		c.clock = clock{cfg.Now}
	}
	c.setLimits(cfg.MaxSize)
	opts := &otter.Options[string, *item]{
		MaximumWeight:    uint64(entriesShare(cfg.MaxSize)),
		Weigher:          func(key string, it *item) uint32 { return uint32(min(weight(key, it), math.MaxUint32)) },
		OnAtomicDeletion: c.onDeletion,
		Clock:            c.clock,
	}
	oc, err := otter.New(opts)
	if err != nil {
		return nil, err
	}
	c.c = oc
	c.stop = make(chan struct{})
	if cfg.Now == nil {
		go c.sweepEvery(sweepInterval)
	}
	return c, nil
}

// sweepEvery sweeps every interval until Close.
func (c *Cache) sweepEvery(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.sweep()
		}
	}
}

// sweep removes the entries whose Expires has passed. An entry replaced
// since it was read stays: its successor is checked at the next sweep.
// A large body's buffer goes back to the pool, as on eviction. It then
// reclaims the arena's holes if they are over the threshold: those of
// the entries that left with no record written since to start a
// compaction (expired, purged, evicted for a smaller max_size).
func (c *Cache) sweep() {
	defer c.arena.reclaim()
	for k, it := range c.c.All() {
		if !c.expired(it) {
			continue
		}
		c.c.ComputeIfPresent(k, func(old *item) (*item, otter.ComputeOp) {
			if old != it {
				return old, otter.CancelOp
			}
			if buf := it.buf(); buf != nil {
				// onDeletion leaves the buffers of invalidated entries to
				// the collector: it takes purges for invalidations.
				buf.release()
			}
			return nil, otter.InvalidateOp
		})
	}
}

// compact copies the records still held in the arena's emptiest
// segments to its current one (see arena.go). It runs in a goroutine of
// its own, started by the arena; one at a time.
func (c *Cache) compact() {
	defer c.arena.compacting.Store(false)
	victims := c.arena.pickVictims()
	if len(victims) == 0 {
		return
	}
	c.arena.compactions.Add(1)
	for k, it := range c.c.All() {
		if !it.inArena() {
			continue
		}
		p, _ := it.record()
		if s := c.arena.segmentOf(p); s != nil && s.victim {
			c.relocate(k, it)
		}
	}
	c.arena.mu.Lock()
	for _, s := range victims {
		s.victim = false
	}
	c.arena.mu.Unlock()
}

// relocate replaces the item it under key, when it is still there, with
// one whose record is a copy in the arena's current segment. The new
// item keeps nothing decoded: the next hit decodes it again. An expired
// item is removed instead.
func (c *Cache) relocate(key string, it *item) {
	c.c.ComputeIfPresent(key, func(old *item) (*item, otter.ComputeOp) {
		if old != it {
			return old, otter.CancelOp
		}
		if c.expired(old) {
			return nil, otter.InvalidateOp
		}
		moved := &item{bits: old.bits, expires: old.expires}
		if !c.setRecord(moved, old.meta, old.bytes()) {
			return old, otter.CancelOp
		}
		_, n := old.record()
		c.arena.moved.Add(int64(n))
		c.indexAdd(key, moved)
		return moved, otter.WriteOp
	})
}

// Close stops the Cache's background work: the periodic clean-up. The
// Cache keeps answering without it, so that requests still in flight when
// a config is unloaded finish normally.
func (c *Cache) Close() {
	c.closing.Do(func() { close(c.stop) })
	c.c.StopAllGoroutines()
}

// MaxSize returns the byte budget.
func (c *Cache) MaxSize() int64 { return c.maxSize.Load() }

// Resize sets a new byte budget. Shrinking evicts entries until the store
// fits; writers started before keep the entry limit they started with.
func (c *Cache) Resize(maxSize int64) error {
	if maxSize <= 0 {
		return errors.New("max_size must be positive")
	}
	c.setLimits(maxSize)
	c.c.SetMaximum(uint64(entriesShare(maxSize)))
	return nil
}

func (c *Cache) setLimits(maxSize int64) {
	c.maxSize.Store(maxSize)
	c.values.setMax(maxSize)
	c.maxEntry.Store(min(maxSize/MaxEntryFraction, math.MaxUint32))
	c.fillMax.Store(max(maxSize/fillShare, fillFloor))
	// One decoded entry may take 1/8 of the share, as one entry may of
	// the budget.
	c.kept.SetMax(maxSize/keptShare, maxSize/keptShare/MaxEntryFraction)
}

// fillShare and fillFloor: the buffers of the bodies being written
// (misses that stream into the store) hold at most 1/fillShare of
// max_size together (two entries of the largest size), and at least
// fillFloor, a part of the 64 MiB that the memory promise leaves to
// Caddy and its bodies in flight. They are not entries yet, so the budget
// does not count them; without a bound, many concurrent misses of large
// objects from a slow origin would each hold up to max_object_size.
// Beyond it, a new body is not stored (store.ErrBusy). A small body of
// announced length written in place into the arena counts its segment,
// which its record keeps alive until it commits, however stalled (256
// stalled writers held 34 MiB of segments beyond their records in a
// 64 MiB store; see TestArenaStalledWritersWithinFillBound); beyond the
// bound it is buffered apart instead, in a buffer of its length that
// holds no more than a request's own buffers do, and always may be.
const (
	fillShare = 4
	fillFloor = 16 << 20
)

// holdFill counts n more bytes of buffers held by open writers, and tells
// whether that stays within fillMax; when it does not, it counts nothing.
func (c *Cache) holdFill(n int64) bool {
	if n <= 0 {
		c.filling.Add(n)
		return true
	}
	if c.filling.Add(n) > c.fillMax.Load() {
		c.filling.Add(-n)
		return false
	}
	return true
}

// entriesShare is the part of the budget that holds the entries
// themselves, the rest keeping decoded metadata and the value table (its
// values and those seen once: see valueTable).
func entriesShare(maxSize int64) int64 {
	return maxSize - maxSize/keptShare - 2*valueTableMax(maxSize)
}

// MaxEntrySize returns the largest weight (body plus metadata estimate)
// that one entry may have.
func (c *Cache) MaxEntrySize() int64 { return c.maxEntry.Load() }

// Get returns the entry under key and its body. The body implements
// store.BytesBody. A hit allocates only the body reader. A large body's
// buffer is held until the reader is closed, and recycled after that if
// the entry has left the store.
func (c *Cache) Get(_ context.Context, key string) (*store.Entry, store.Body, error) {
	it, ok := c.c.GetIfPresent(key)
	if !ok || c.expired(it) {
		return nil, nil, store.ErrNotFound
	}
	// One load of ext: an item with a recycled buffer had its ext before
	// it was stored, so an item without one has a small body.
	var e *store.Entry
	var buf *sharedBuf
	if x := it.ext.Load(); x != nil {
		e, buf = x.kept.Load(c.kept), x.buf
	}
	if e == nil {
		if e = c.decodeAndKeep(it, nil); e == nil {
			return nil, nil, store.ErrNotFound
		}
	}
	if buf == nil {
		return e, store.NewBytesReader(it.bytes()), nil
	}
	if !buf.hold() {
		// The entry left the store after GetIfPresent found it, and its
		// buffer may already hold another body.
		return nil, nil, store.ErrNotFound
	}
	return e, &heldBody{BytesReader: *store.NewBytesReader(it.bytes()), buf: buf}, nil
}

// heldBody reads a recycled buffer, holding it until Close. Once closed
// it reads as empty: the buffer may be holding another body by then.
type heldBody struct {
	store.BytesReader
	buf *sharedBuf
}

// Close releases the buffer. A second Close does nothing.
func (b *heldBody) Close() error {
	if buf := b.buf; buf != nil {
		b.buf, b.BytesReader = nil, store.BytesReader{}
		buf.release()
	}
	return nil
}

// expired reports whether it's Expires has passed.
func (c *Cache) expired(it *item) bool {
	return it.expires != 0 && c.clock.NowNano() >= it.expires
}

// Put starts storing an entry under key. When e.Size is a known length the
// body buffer is allocated at once; a hint above MaxEntrySize returns
// store.ErrTooLarge.
func (c *Cache) Put(_ context.Context, key string, e *store.Entry) (store.Writer, error) {
	meta := encodeMeta(e, &c.values)
	weight, limit := metaWeight(key, meta, e.Tags), c.maxEntry.Load()
	if max(e.Size, 0) > limit-weight { // not e.Size+weight, which a huge Content-Length wraps around
		return nil, store.ErrTooLarge
	}
	w := &writer{
		c: c, key: key, limit: limit, hint: e.Size,
		it:   c.newItem(meta, e),
		meta: weight,
	}
	if e.Size > 0 && e.Size <= recordMax {
		// A body of announced length that fits a record is written in
		// place, after its metadata. Until it commits, its record keeps
		// its whole segment alive, whatever else leaves it: the fill
		// bound counts the segment, as it counts a buffer.
		seg := c.arena.segmentSize()
		if !c.holdFill(seg) {
			// Beyond the bound, a buffer of its own, which holds no more
			// than the small body: always allowed.
			w.buf = make([]byte, 0, e.Size)
			return w, nil
		}
		if rec, s := c.arena.reserve(len(meta) + int(e.Size)); rec != nil {
			copy(rec, meta)
			w.rec, w.seg, w.buf, w.held = rec, s, rec[len(meta):len(meta)], seg
			return w, nil
		}
		c.holdFill(-seg)
	}
	if e.Size > 0 {
		// Up to preallocMax at once, the rest when the body gets there:
		// a stalled origin that announced a large Content-Length does not
		// hold the whole length from the first byte.
		if !w.grow(int(min(e.Size, preallocMax))) {
			return nil, store.ErrBusy
		}
	}
	return w, nil
}

// Update replaces the metadata of the entry under key and keeps its body.
func (c *Cache) Update(_ context.Context, key string, e *store.Entry) error {
	meta := encodeMeta(e, &c.values)
	var it *item
	c.c.ComputeIfPresent(key, func(old *item) (*item, otter.ComputeOp) {
		if c.expired(old) {
			return old, otter.CancelOp
		}
		if meta[0]&flagBodyLength != 0 && int64(old.size()) != e.Size {
			// Its Content-Length is not the stored body's: kept as sent.
			e := *e
			e.Size = -1
			meta = encodeMeta(&e, &c.values)
		}
		it = c.newItem(meta, e)
		c.sameBody(it, old, meta)
		c.indexAdd(key, it)
		return it, otter.WriteOp
	})
	if it == nil {
		return store.ErrNotFound
	}
	// Kept decoded at once: an entry is freshened after a hit found it
	// stale, and is likely to be hit again.
	c.decodeAndKeep(it, e.Derived)
	return nil
}

// Delete removes the entries under the keys.
func (c *Cache) Delete(_ context.Context, keys ...string) error {
	for _, k := range keys {
		c.c.Invalidate(k)
	}
	return nil
}

// PurgePrefix removes every entry whose key starts with prefix, or with
// soft marks it store.Entry.SoftPurged. A prefix whose only NUL ends it (a
// primary key's variants) is looked up in the group index; any other
// scans every key: its cost grows with the number of entries (O(n)).
func (c *Cache) PurgePrefix(_ context.Context, prefix string, soft bool) (int, error) {
	var keys []string
	if g, ok := store.PrefixGroup(prefix); ok {
		// A group's prefix: the keys that start with it are the group's.
		c.mu.Lock()
		if s := c.groups[g]; s != nil {
			for k := range s.all() {
				keys = append(keys, k)
			}
		}
		c.mu.Unlock()
	} else {
		for k := range c.c.Keys() {
			if strings.HasPrefix(k, prefix) {
				keys = append(keys, k)
			}
		}
	}
	n := 0
	for _, k := range keys {
		if soft {
			if c.softPurge(k, "") {
				n++
			}
		} else if _, ok := c.c.Invalidate(k); ok {
			n++
		}
	}
	return n, nil
}

// PurgeTag removes every entry that carries tag, or with soft marks it
// store.Entry.SoftPurged. It looks the keys up in an index, so its cost
// grows with the number of entries that carry tag.
func (c *Cache) PurgeTag(_ context.Context, tag string, soft bool) (int, error) {
	c.mu.Lock()
	var keys []string
	if s := c.tags[tag]; s != nil {
		keys = make([]string, 0, s.len())
		for k := range s.all() {
			keys = append(keys, k)
		}
	}
	c.mu.Unlock()

	n := 0
	for _, k := range keys {
		if soft {
			if c.softPurge(k, tag) {
				n++
			}
			continue
		}
		// The entry may have been replaced since the index was read:
		// remove it only if the entry there now carries tag.
		c.c.ComputeIfPresent(k, func(old *item) (*item, otter.ComputeOp) {
			if !hasTag(old, tag) {
				return old, otter.CancelOp
			}
			if !c.expired(old) {
				n++
			}
			return nil, otter.InvalidateOp
		})
	}
	return n, nil
}

// softPurge marks the entry under key SoftPurged, when it has not expired
// and (tag != "") still carries tag. The body and the expiry stay.
func (c *Cache) softPurge(key, tag string) bool {
	done := false
	c.c.ComputeIfPresent(key, func(old *item) (*item, otter.ComputeOp) {
		if c.expired(old) || (tag != "" && !hasTag(old, tag)) {
			return old, otter.CancelOp
		}
		done = true
		if softPurged(old.meta) {
			return old, otter.CancelOp
		}
		it := &item{bits: old.bits &^ arenaBit, expires: old.expires}
		c.sameBody(it, old, setSoftPurged(old.meta))
		c.indexAdd(key, it)
		return it, otter.WriteOp
	})
	return done
}

// Entries lists the entries whose key starts with prefix and is greater
// than after, in key order, at most limit. It scans and sorts the matching
// keys: O(n log n).
func (c *Cache) Entries(_ context.Context, prefix, after string, limit int) ([]store.Listed, error) {
	if limit <= 0 {
		return nil, nil
	}
	var keys []string
	for k := range c.c.Keys() {
		if strings.HasPrefix(k, prefix) && k > after {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	out := make([]store.Listed, 0, min(limit, len(keys)))
	for _, k := range keys {
		if len(out) == limit {
			break
		}
		if it, ok := c.c.GetIfPresent(k); ok && !c.expired(it) {
			if e := c.decode(it); e != nil {
				out = append(out, store.Listed{Key: k, Entry: e})
			}
		}
	}
	return out, nil
}

// Stats reports the number of entries, their total weight (bodies plus
// the metadata estimate, and the decoded metadata kept) and the byte
// budget. Expired entries count until they are dropped.
func (c *Cache) Stats() store.Stats {
	shared, full := c.values.stats()
	st := store.Stats{
		Entries:          c.entries.Load(),
		Bytes:            c.bytes.Load() + c.kept.Used(),
		Capacity:         c.maxSize.Load(),
		Evictions:        c.evictions.Load(),
		Errors:           c.decodeErrors.Load(),
		SharedValues:     shared,
		SharedValuesFull: full,
	}
	if a := c.arena; a != nil {
		st.SegmentBytes = a.bytes.Load()
		st.SegmentFree = a.overhead()
		st.Compactions = a.compactions.Load()
		st.CompactedBytes = a.moved.Load()
	}
	return st
}

// CleanUp runs pending maintenance now: evictions for space and removal
// of expired entries (a sweep), and it waits for a running compaction of
// the arena, whose replacements count an entry twice for a moment. It is
// never necessary; tests use it to observe the effect of eviction and
// expiry.
func (c *Cache) CleanUp() {
	c.c.CleanUp()
	c.sweep()
	c.c.CleanUp()
	for c.arena != nil && c.arena.compacting.Load() {
		time.Sleep(time.Millisecond)
	}
}

// commit stores it under key, replacing any entry there.
func (c *Cache) commit(key string, it *item) {
	c.c.Compute(key, func(*item, bool) (*item, otter.ComputeOp) {
		c.indexAdd(key, it)
		return it, otter.WriteOp
	})
}

// newItem returns an item of the encoded metadata meta of e, without
// its body yet.
func (c *Cache) newItem(meta string, e *store.Entry) *item {
	it := &item{meta: meta, bits: uint64(c.derivers.Of(e.Derived)) << deriverShift}
	if len(e.Tags) > 0 {
		it.bits |= taggedBit
	}
	if !e.Expires.IsZero() {
		it.expires = unixtime.Nano(e.Expires)
	}
	return it
}

// indexAdd counts it in and adds it to the tag index. Called under the
// bucket lock of key, from a Compute function, so that the index changes
// of one key happen in the order of its writes.
func (c *Cache) indexAdd(key string, it *item) {
	c.entries.Add(1)
	c.bytes.Add(weight(key, it))
	group, grouped := store.GroupOf(key)
	if !it.tagged() && !grouped {
		return
	}
	c.mu.Lock()
	if grouped {
		s := c.groups[group]
		if s == nil {
			s = new(keySet)
			// A copy: group is part of a key, which the index must not
			// keep alive once that entry is gone.
			c.groups[strings.Clone(group)] = s
		}
		s.set(key, it)
	}
	for _, t := range metaTags(it.meta) {
		s := c.tags[t]
		if s == nil {
			s = new(keySet)
			// A copy: t is a part of the item's metadata, which the index
			// must not keep alive.
			c.tags[strings.Clone(t)] = s
		}
		s.set(key, it)
	}
	c.mu.Unlock()
}

// onDeletion counts an item out and removes it from the tag index, where
// the index still points to it (a replacement may already have put its
// successor there). Otter calls it under the bucket lock of the key, for
// every cause: replacement, invalidation, eviction and expiration.
func (c *Cache) onDeletion(e otter.DeletionEvent[string, *item]) {
	it := e.Value
	if e.Cause == otter.CauseOverflow {
		c.evictions.Add(1)
	}
	if buf := it.buf(); buf != nil && e.Cause != otter.CauseInvalidation {
		// Evicted, expired or replaced: the next large body may reuse the
		// buffer once its readers are done. A purge or delete, which can
		// free much at once, leaves its buffers to the collector instead
		// of filling the pools.
		buf.release()
	}
	if it.inArena() {
		c.arena.release(it.record())
	}
	c.dropKept(it)
	c.entries.Add(-1)
	c.bytes.Add(-weight(e.Key, it))
	group, grouped := store.GroupOf(e.Key)
	if !it.tagged() && !grouped {
		return
	}
	c.mu.Lock()
	if s := c.groups[group]; grouped && s != nil && s.get(e.Key) == it {
		if s.delete(e.Key) {
			delete(c.groups, group)
		}
	}
	for _, t := range metaTags(it.meta) {
		if s := c.tags[t]; s != nil && s.get(e.Key) == it {
			if s.delete(e.Key) {
				delete(c.tags, t)
			}
		}
	}
	c.mu.Unlock()
}

func hasTag(it *item, tag string) bool {
	return it.tagged() && slices.Contains(metaTags(it.meta), tag)
}

// metaWeight estimates the bytes an entry under key, whose metadata
// encodes to meta and carries tags, costs besides its body.
func metaWeight(key, meta string, tags []string) int64 {
	n := int64(entryOverhead + len(key) + len(meta))
	if group, grouped := store.GroupOf(key); grouped {
		// The group index holds the key's place, the item, and a copy of
		// the group's name.
		n += indexOverhead + int64(len(group)+len(group)/8)
	}
	for _, t := range tags {
		// The tag index holds the key again, the item and a copy of the
		// tag (the tag itself is in meta too).
		n += indexOverhead + int64(len(key)+len(t)+len(t)/8)
	}
	return n
}

// writer buffers a body until Commit.
type writer struct {
	c     *Cache
	key   string
	it    *item // the item to commit, without its body
	meta  int64 // metaWeight of key and entry
	limit int64 // the entry weight limit when Put was called
	hint  int64 // the size hint given to Put; -1 or 0 when unknown
	buf   []byte
	// rec is the record reserved in the arena for a body of announced
	// length: the metadata, then buf, written in place; nil when the body
	// is buffered apart.
	rec []byte
	seg *segment // rec's segment, pinned while rec is the writer's
	// tooLarge is set once the body outgrew the entry limit; buf is then
	// released and n keeps counting.
	tooLarge bool
	// busy is set when the body's buffer could not grow within the
	// store's fill bound (holdFill); buf is then released, n keeps
	// counting, and Commit reports store.ErrBusy.
	busy bool
	// held is what holdFill counts for buf: its capacity, the size of
	// its segment when buf is in the arena's record, 0 when none.
	held int64
	n    int64
	done bool // Commit or Abort happened

	// mu guards the fields above against the followers (Follow), which
	// read buf from other goroutines, and the three below.
	mu        sync.Mutex
	followers int // open followers
	// committed is set when Commit stored the body while followers were
	// open: they read final from then on, which the store never reuses
	// (finalBuf holds a recycled buffer for them until the last closes).
	committed bool
	final     []byte
	finalBuf  *sharedBuf
}

// Write appends p to the body. It never fails: a body that outgrows the
// entry limit is dropped and Commit reports store.ErrTooLarge.
func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return 0, errors.New("write to a committed or aborted cache entry")
	}
	w.n += int64(len(p))
	if w.tooLarge || w.busy {
		return len(p), nil
	}
	if w.n+w.meta > w.limit {
		w.tooLarge = true
		w.dropBuffer()
		return len(p), nil
	}
	if need := len(w.buf) + len(p); need > cap(w.buf) {
		// Double, as append does for small slices only: a body of unknown
		// length then costs about 2x its size in allocations, not 5x.
		// Never beyond what the entry limit allows.
		c := max(2*cap(w.buf), need, 4096)
		if int64(need) <= w.hint {
			c = int(w.hint) // the announced length, in one step
		}
		c = min(c, int(w.limit-w.meta))
		// A body in the arena's record that is longer than announced
		// leaves it: Commit refuses it, unless its metadata does not hold
		// the length.
		if !w.grow(c) {
			w.busy = true
			w.dropBuffer()
			return len(p), nil
		}
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// Commit makes the entry visible. A body that grew past its buffer is
// copied into one of its exact length when the slack is over 1/8, so that
// the budget is not spent on spare capacity.
func (w *writer) Commit() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return errors.New("cache entry already committed or aborted")
	}
	w.done = true
	if w.tooLarge || w.n+w.meta > w.limit {
		w.dropBuffer()
		return store.ErrTooLarge
	}
	if w.busy {
		return store.ErrBusy
	}
	// From here on the buffer is the entry's body, which the budget counts,
	// or is dropped.
	w.c.holdFill(-w.held)
	w.held = 0
	if w.it.meta[0]&flagBodyLength != 0 && w.n != w.hint {
		w.dropBuffer()
		return errBodyLength
	}
	it := w.it
	if w.c.expired(it) {
		// Already past its Expires: it replaces the entry there, and is
		// gone at once.
		w.c.c.Invalidate(w.key)
		w.keepForFollowers()
		w.dropBuffer()
		return nil
	}
	if rec := w.rec; rec != nil {
		// Written in place; a body shorter than announced gives back the
		// rest of its record.
		w.keepForFollowers()
		w.seg.unpin()
		m, n := len(it.meta), len(w.buf)
		if m+n < len(rec) {
			w.c.arena.release(&rec[m+n], len(rec)-m-n)
		}
		it.setRecord(rec[:m+n:m+n], m)
		w.rec, w.seg, w.buf = nil, nil, nil
		w.c.commit(w.key, it)
		return nil
	}
	if w.c.setRecord(it, it.meta, w.buf) {
		w.keepForFollowers()
		recycle(w.buf)
		w.buf = nil
		w.c.commit(w.key, it)
		return nil
	}
	body, recycled := fitBody(w.buf)
	w.buf = nil
	var buf *sharedBuf
	if recycled {
		buf = &sharedBuf{b: body}
		buf.refs.Store(1) // the item's, released when it leaves the store
	}
	if w.followers > 0 {
		w.committed, w.final, w.finalBuf = true, body, buf.share()
	}
	it.setBody(body, buf)
	// Its metadata is kept decoded from its first hit on: most entries
	// of a large store are never hit, and would only push others out.
	w.c.commit(w.key, it)
	return nil
}

// fitBody returns the body to store of those in buf, and whether its
// buffer is recycled. A recycled buffer keeps its class's capacity, at
// most 1/8 more than the body; any other body is copied to one of its
// exact length when its buffer has spare capacity, which the budget would
// not count (weight counts the length), and buf is recycled.
func fitBody(buf []byte) ([]byte, bool) {
	_, recycled := recyclable(buf)
	if cap(buf)-len(buf) <= len(buf)/8 && (recycled || cap(buf) == len(buf)) {
		return buf, recycled
	}
	body := append(newBuffer(len(buf)), buf...)
	recycle(buf)
	_, recycled = recyclable(body)
	return body, recycled
}

// errBodyLength: a body of another length than the Content-Length its
// entry was put with, which its metadata encodes as the body's length.
var errBodyLength = errors.New("the body's length differs from the Content-Length it was stored with")

// Abort discards the body.
func (w *writer) Abort() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.dropBuffer()
	}
	w.done = true
}

// dropBuffer discards the body written so far: its record in the arena,
// or its buffer.
func (w *writer) dropBuffer() {
	if w.rec != nil {
		w.releaseRecord()
	} else {
		recycle(w.buf) // never shared: the writer's own
	}
	w.buf = nil
	w.c.holdFill(-w.held)
	w.held = 0
}

// grow moves the body written so far into a buffer of at least n bytes
// apart from the arena, and tells whether the store's fill bound
// (holdFill) allowed it; when it did not, nothing changed.
func (w *writer) grow(n int) bool {
	capacity := bufferCap(n)
	if !w.c.holdFill(int64(capacity) - w.held) {
		return false
	}
	b := append(newBuffer(n), w.buf...)
	if w.rec != nil {
		w.releaseRecord()
	} else {
		recycle(w.buf)
	}
	w.buf, w.held = b, int64(capacity)
	return true
}

// keepForFollowers gives the open followers, if any, the body written, to
// read once the writer has let go of its buffer: the buffer itself, which
// then is not recycled, or a copy of a record in the arena, which moves
// when its segment is compacted.
func (w *writer) keepForFollowers() {
	if w.followers == 0 {
		return
	}
	w.committed = true
	if w.rec != nil {
		w.final = slices.Clone(w.buf)
		return
	}
	w.final, w.buf = w.buf, nil
}

// Follow implements store.Following.
func (w *writer) Follow() (store.Follower, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done || w.tooLarge || w.busy {
		return nil, false
	}
	w.followers++
	return &follower{w: w}, true
}

// Room implements store.Following.
func (w *writer) Room() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done || w.tooLarge || w.busy {
		return 0
	}
	return max(w.limit-w.meta-w.n, 0)
}

// follower reads a writer's body (store.Follower).
type follower struct {
	w      *writer
	closed bool // under w.mu
}

func (f *follower) ReadAt(p []byte, off int64) (int, error) {
	w := f.w
	w.mu.Lock()
	defer w.mu.Unlock()
	var b []byte
	switch {
	case f.closed:
		return 0, errors.New("read from a closed follower")
	case w.committed:
		b = w.final
	case w.done || w.tooLarge || w.busy:
		return 0, store.ErrNotStored
	default:
		b = w.buf
	}
	if off >= int64(len(b)) {
		if w.committed {
			return 0, io.EOF
		}
		return 0, nil
	}
	return copy(p, b[off:]), nil
}

// Close lets go of the body; the last follower of a committed body
// releases its recycled buffer.
func (f *follower) Close() error {
	w := f.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	if w.followers--; w.followers == 0 && w.committed {
		if w.finalBuf != nil {
			w.finalBuf.release()
		}
		w.final, w.finalBuf = nil, nil
	}
	return nil
}

// releaseRecord gives the record reserved for the body back to the arena.
func (w *writer) releaseRecord() {
	w.seg.unpin()
	w.c.arena.release(unsafe.SliceData(w.rec), len(w.rec))
	w.rec, w.seg = nil, nil
}

// clock adapts a Now function to otter's Clock. It gives no ticks, so the
// cache runs no periodic clean-up goroutine.
type clock struct{ now func() time.Time }

func (c clock) NowNano() int64                      { return c.now().UnixNano() }
func (c clock) Tick(time.Duration) <-chan time.Time { return nil }

// Interface guards
var (
	_ store.Store     = (*Cache)(nil)
	_ store.Deriving  = (*Cache)(nil)
	_ store.Writer    = (*writer)(nil)
	_ store.Following = (*writer)(nil)
	_ store.Follower  = (*follower)(nil)
	_ store.Body      = (*heldBody)(nil)
	_ store.BytesBody = (*heldBody)(nil)
)
