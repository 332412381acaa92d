// Package tiered is http_cache's two-level store: a small memory tier in
// front of a larger or shared store (disk, Redis), so that hot responses
// are served at memory speed.
//
// The memory tier is filled by hits on the back store and emptied of a key
// whenever the back store changes it. For a back store shared by several
// nodes (Redis), the changes other nodes make arrive through the back
// store's Subscribe: Redis pushes them (client-side caching tracking, in
// broadcast mode) on the connection that the reads use, so a node never
// serves from memory a copy older than what Redis would give it, and a
// lost connection empties the tier.
package tiered

import (
	"context"
	"io"
	"strings"
	"sync"

	"github.com/caddy-edge/edge/cache/store"
	"github.com/caddy-edge/edge/cache/store/memory"
)

// Invalidator is implemented by back stores that other processes change
// (Redis): Subscribe calls fn with the keys that changed, or nil when
// changes may have been missed, until unsubscribed.
type Invalidator interface {
	Subscribe(fn func(keys []string)) (unsubscribe func())
}

// Tiers is a store.Store made of a memory front and a back store.
type Tiers struct {
	front *memory.Cache
	back  store.Store
	unsub func()
	*coord
	closeOnce sync.Once
}

// coord orders the promotions into one memory front after the
// invalidations of their keys. It belongs to the front, not to one Tiers:
// every Tiers in front of one back store shares the front (the sites of a
// config, and the old and the new config of a reload), and a purge
// through any of them must stop the promotions of all.
type coord struct {
	refs int // the Tiers that use it; protected by coords.mu

	mu sync.Mutex // protects pending and epoch, and orders promotions after invalidations
	// pending counts, per key, the back store reads that may fill the
	// front, with the number of invalidations of the key seen meanwhile.
	pending map[string]*pend
	// epoch counts the invalidations that concern every key (a flush, a
	// tag purge): a promotion started before one is dropped.
	epoch uint64
}

// coords holds the coord of each front in use.
var coords = struct {
	mu sync.Mutex
	m  map[*memory.Cache]*coord
}{m: make(map[*memory.Cache]*coord)}

type pend struct {
	refs int
	seq  uint64
	// filling is set while a read of the key may fill the front: one at
	// a time, so that concurrent reads of a large body do not each hold
	// a copy outside the front's budget.
	filling bool
}

// New returns Tiers with front in front of back. If back is an
// Invalidator, Tiers subscribes to it; Close unsubscribes.
// Tiers on one front share their promotions' bookkeeping (see coord).
func New(front *memory.Cache, back store.Store) *Tiers {
	coords.mu.Lock()
	c := coords.m[front]
	if c == nil {
		c = &coord{pending: make(map[string]*pend)}
		coords.m[front] = c
	}
	c.refs++
	coords.mu.Unlock()
	t := &Tiers{front: front, back: back, coord: c}
	if inv, ok := back.(Invalidator); ok {
		t.unsub = inv.Subscribe(t.invalidate)
	}
	return t
}

// Close stops listening to the back store's changes. It does not close
// the front or the back; requests still in flight may go on using t.
func (t *Tiers) Close() {
	t.closeOnce.Do(func() {
		if t.unsub != nil {
			t.unsub()
		}
		coords.mu.Lock()
		if t.coord.refs--; t.coord.refs == 0 {
			delete(coords.m, t.front)
		}
		coords.mu.Unlock()
	})
}

// SetDerive gives the handler's function that computes Entry.Derived to
// the front, which derives the entries that fill it at their first hit
// there, so that a hit from the front, like a memory store's, parses no
// header field; and to the back store, when it keeps entries decoded too.
func (t *Tiers) SetDerive(key string, fn func(*store.Entry) any) (release func()) {
	releaseFront := t.front.SetDerive(key, fn)
	releaseBack := func() {}
	if d, ok := t.back.(store.Deriving); ok {
		releaseBack = d.SetDerive(key, fn)
	}
	return func() {
		releaseFront()
		releaseBack()
	}
}

// Front returns the memory tier.
func (t *Tiers) Front() *memory.Cache { return t.front }

// invalidate drops keys from the front (nil: every key), and marks the
// promotions of those keys in flight as stale.
func (t *Tiers) invalidate(keys []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if keys == nil {
		t.epoch++
		t.front.PurgePrefix(context.Background(), "", false)
		return
	}
	t.front.Delete(context.Background(), keys...)
	for _, k := range keys {
		if p := t.pending[k]; p != nil {
			p.seq++
		}
	}
}

// promotion is a back store read that may fill the front.
type promotion struct {
	t     *Tiers
	key   string
	p     *pend
	seq   uint64
	epoch uint64
	done  bool
}

// startPromotion returns the promotion of a read of key, or nil when
// another read of key is filling the front.
func (t *Tiers) startPromotion(key string) *promotion {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.pending[key]
	if p == nil {
		p = new(pend)
		t.pending[key] = p
	}
	if p.filling {
		return nil
	}
	p.filling = true
	p.refs++
	return &promotion{t: t, key: key, p: p, seq: p.seq, epoch: t.epoch}
}

// finish ends the promotion: w is committed to the front if nothing
// invalidated the key since the read began, else aborted. w may be nil.
func (pr *promotion) finish(w store.Writer) {
	if pr.done {
		if w != nil {
			w.Abort()
		}
		return
	}
	pr.done = true
	t := pr.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if w != nil {
		if pr.p.seq == pr.seq && t.epoch == pr.epoch {
			if err := w.Commit(); err != nil {
				w.Abort()
			}
		} else {
			w.Abort()
		}
	}
	pr.p.filling = false
	if pr.p.refs--; pr.p.refs == 0 {
		delete(t.pending, pr.key)
	}
}

// Get implements store.Store: the front, else the back, whose hit then
// fills the front (a body held in memory at once, a streamed one once it
// has been read to its end).
func (t *Tiers) Get(ctx context.Context, key string) (*store.Entry, store.Body, error) {
	if e, b, err := t.front.Get(ctx, key); err == nil {
		return e, b, nil
	}
	pr := t.startPromotion(key)
	e, b, err := t.back.Get(ctx, key)
	if pr == nil {
		return e, b, err // another read fills the front
	}
	if err != nil {
		pr.finish(nil)
		return nil, nil, err
	}
	w, err := t.front.Put(ctx, key, e)
	if err != nil { // too large for the front
		pr.finish(nil)
		return e, b, nil
	}
	if bb, ok := b.(store.BytesBody); ok {
		if _, err := w.Write(bb.Bytes()); err != nil {
			w.Abort()
			w = nil
		}
		pr.finish(w)
		return e, b, nil
	}
	return e, &teeBody{Body: b, w: w, pr: pr}, nil
}

// teeBody copies a body read from the back store, from its start to its
// end, into the front. Any other use (Seek, ReadAt, Close before the end)
// gives the copy up.
type teeBody struct {
	store.Body
	w   store.Writer // nil once given up or committed
	pr  *promotion
	off int64
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.Body.Read(p)
	if b.w != nil {
		if n > 0 {
			if _, werr := b.w.Write(p[:n]); werr != nil {
				b.giveUp()
			}
			b.off += int64(n)
		}
		if err == io.EOF && b.w != nil {
			if b.off == b.Body.Size() {
				w := b.w
				b.w = nil
				b.pr.finish(w)
			} else {
				b.giveUp()
			}
		} else if err != nil {
			b.giveUp()
		}
	}
	return n, err
}

func (b *teeBody) giveUp() {
	if b.w != nil {
		w := b.w
		b.w = nil
		w.Abort()
	}
	b.pr.finish(nil)
}

func (b *teeBody) Seek(offset int64, whence int) (int64, error) {
	pos, err := b.Body.Seek(offset, whence)
	if b.w != nil && (err != nil || pos != b.off) {
		b.giveUp()
	}
	return pos, err
}

func (b *teeBody) Close() error {
	b.giveUp()
	return b.Body.Close()
}

// Put implements store.Store. The response goes to the back store only;
// the front drops its copy of the key when the back store commits, and
// fills again on the next hit.
func (t *Tiers) Put(ctx context.Context, key string, e *store.Entry) (store.Writer, error) {
	w, err := t.back.Put(ctx, key, e)
	if err != nil {
		return nil, err
	}
	tw := &writer{Writer: w, t: t, key: key}
	if fw, ok := w.(store.Following); ok {
		return &followingWriter{tw, fw}, nil
	}
	return tw, nil
}

// followingWriter is the writer of a back store whose writers can be
// followed.
type followingWriter struct {
	*writer
	store.Following
}

type writer struct {
	store.Writer
	t   *Tiers
	key string
}

func (w *writer) Commit() error {
	err := w.Writer.Commit()
	if err == nil {
		w.t.invalidate([]string{w.key})
	}
	return err
}

// Update implements store.Store.
func (t *Tiers) Update(ctx context.Context, key string, e *store.Entry) error {
	err := t.back.Update(ctx, key, e)
	t.invalidate([]string{key})
	return err
}

// Delete implements store.Store.
func (t *Tiers) Delete(ctx context.Context, keys ...string) error {
	err := t.back.Delete(ctx, keys...)
	t.invalidate(keys)
	return err
}

// PurgePrefix implements store.Store.
// A soft purge marks the back store's entries and drops the front's copies,
// so the next hit reads the marked entry from the back.
func (t *Tiers) PurgePrefix(ctx context.Context, prefix string, soft bool) (int, error) {
	n, err := t.back.PurgePrefix(ctx, prefix, soft)
	t.mu.Lock()
	t.front.PurgePrefix(ctx, prefix, false)
	for k, p := range t.pending {
		if strings.HasPrefix(k, prefix) {
			p.seq++
		}
	}
	t.mu.Unlock()
	return n, err
}

// PurgeTag implements store.Store, as PurgePrefix.
func (t *Tiers) PurgeTag(ctx context.Context, tag string, soft bool) (int, error) {
	n, err := t.back.PurgeTag(ctx, tag, soft)
	t.mu.Lock()
	t.epoch++
	t.front.PurgeTag(ctx, tag, false)
	t.mu.Unlock()
	return n, err
}

// Entries implements store.Store: the back store's, which holds every
// entry of the front.
func (t *Tiers) Entries(ctx context.Context, prefix, after string, limit int) ([]store.Listed, error) {
	return t.back.Entries(ctx, prefix, after, limit)
}

// Stats implements store.Store: the back store's, which holds every entry
// of the front, with the memory tier's own in Front.
func (t *Tiers) Stats() store.Stats {
	st := t.back.Stats()
	front := t.front.Stats()
	st.Front = &front
	return st
}

// Interface guards
var (
	_ store.Store     = (*Tiers)(nil)
	_ store.Writer    = (*writer)(nil)
	_ store.Following = (*followingWriter)(nil)
	_ store.Body      = (*teeBody)(nil)
)
