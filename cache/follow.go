package cache

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-edge/edge/cache/policy"
	"github.com/caddy-edge/edge/cache/store"
)

// Following a fetch
//
// The requests that wait for a fetch of their key (collapsed) are answered
// as its body arrives, not once it is stored whole: as soon as the origin's
// header says the response is being stored, each waiter that the response
// answers (the same variant, fresh for its request) gets the stored
// header and then the body from the store's writer as it is written
// (store.Following: every store, a tiered store through its back store).
// A waiter's first byte then comes when the leader's does, whatever the
// body's size, and however many wait, the origin sends it once: a large
// object no longer makes its waiters choose between waiting for the whole
// download and going to the origin each (collapse_timeout), which is what
// nginx's proxy_cache_lock does.
//
// A response with a Content-Length is followed with that length; one
// without (chunked) is sent chunked to its followers too, ended when the
// store commits the body (Range requests do not wait for a fetch: they
// pass through). If the store gives the body up midway (the
// origin cut it short, the store ran out of room, a body without a length
// grew past max_object_size or what the store takes), the followers'
// responses are cut there too, as the leader's client's is when the
// origin fails: their connections are closed (HTTP/1.1 without the last
// chunk), which clients see as an incomplete response, never as a
// complete wrong one.

// The client of the fetch itself is served the same way once a request
// follows: its writes would otherwise pace the body into the store, and
// every follower with it, at the speed of the slowest reader. The fetch
// then only stores (fetchWriter.handOff), and a goroutine writes the body
// to its client from the store's writer, as Varnish delivers every client
// from its storage. A fetch that nobody follows writes to its client
// directly, as before: no goroutine, no copy.

// followSource is what the waiters of a flight follow: the leader's store
// writer and the entry it is storing.
type followSource struct {
	w     store.Following
	entry *store.Entry // the entry being stored; never modified
	key   string       // its store key (a variant's when it varies)
	vary  []string     // the Vary fields when key is a variant's
	// purgeSeq and invalSeq are the fetch's (see purges.go): a request
	// after a purge of the response must not follow it.
	purgeSeq, invalSeq uint64

	// followers counts the open followers, so that a fetch without any
	// wakes nobody.
	followers atomic.Int32
	// closing is set when the body is about to be given up (takeBack):
	// no request starts following it then.
	closing atomic.Bool
	mu      sync.Mutex
	// progress is closed, and replaced by the next waiter, when the
	// writer has written more or ended.
	progress chan struct{}
}

// closedChan is a closed channel: the started of a flight whose following
// started before any request waited.
var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// startFollowing lets the waiters of the fetch's flight follow the body w
// is storing (fw.entry under fw.storeKey).
func (fw *fetchWriter) startFollowing(w store.Following) {
	f, fl := fw.f, fw.f.flight
	fl.src.w, fl.src.entry, fl.src.key, fl.src.vary = w, fw.entry, fw.storeKey, fw.vary
	fl.src.purgeSeq, fl.src.invalSeq = f.purgeSeq, f.invalSeq
	f.h.mu.Lock()
	fl.following = true
	if fl.started == nil {
		fl.started = closedChan
	} else {
		close(fl.started)
	}
	f.h.mu.Unlock()
}

// wakeFollowers tells the requests following the fetch's flight that its
// writer wrote more or ended.
func (f *fetch) wakeFollowers() {
	fl := f.flight
	if fl == nil || fl.src.followers.Load() == 0 {
		return
	}
	fl.src.mu.Lock()
	if ch := fl.src.progress; ch != nil {
		close(ch)
		fl.src.progress = nil
	}
	fl.src.mu.Unlock()
}

// changed returns a channel closed when the writer writes more or ends.
// Take it before reading, so that no write between the read and the wait
// goes unnoticed.
func (src *followSource) changed() <-chan struct{} {
	src.mu.Lock()
	defer src.mu.Unlock()
	if src.progress == nil {
		src.progress = make(chan struct{})
	}
	return src.progress
}

// follow answers the waiting request c from the fetch of fl as its body
// arrives, and tells whether it did; it does not when the response does
// not answer c (another variant, a coding it refused, not fresh enough for
// its Cache-Control)
// or can no longer be followed (then it is stored, or not, in a moment).
// The request keeps counting as a waiter of fl while it follows, so that
// the fetch goes on for it when the leader's client leaves.
func (h *Handler) follow(c *cacheable, fl *flight) (bool, error) {
	src := &fl.src
	if src.key != c.pkey {
		sec, ok := h.keys.variantKey(src.vary, c.r.Header, replacerOf(c.r.Context()))
		if !ok || c.pkey+varySep+sec != src.key {
			return false, nil
		}
	}
	if purges.purgedSince(src.purgeSeq, c.pkey, src.key, src.entry.Tags) || invalidations.purgedSince(src.invalSeq, c.pkey, src.key) {
		// A purge or an invalidation ran since the fetch asked the
		// origin: its response is the version that was removed, which
		// the fetch will not store (purgedMeanwhile). Only its own client
		// gets it; this request waits for the fetch to land, and fetches
		// again, as a request after the purge must.
		return false, nil
	}
	if h.codingRefused(src.entry, c.r.Header) {
		// As lookupInto: the stored response will not answer it either.
		return false, nil
	}
	dec := h.evaluate(&c.rq, src.entry)
	if dec.Action != policy.Serve {
		return false, nil
	}
	if src.closing.Load() {
		return false, nil
	}
	if c.r.Method != http.MethodHead && !cutShows(c.r, src.entry.Size) {
		// It waits for the whole body.
		return false, nil
	}
	src.followers.Add(1)
	rd, ok := src.w.Follow()
	if !ok {
		src.followers.Add(-1)
		return false, nil
	}
	body := &followBody{fl: fl, rd: rd, done: c.r.Context().Done(), size: src.entry.Size, w: c.w}
	lk := lookup{pkey: c.pkey, key: src.key, entry: src.entry, body: body}
	c.collapse = collapsedServed
	err := h.serveFromStore(c, &lk, dec)
	h.stopWaiting(fl)
	if body.err != nil && !errors.Is(body.err, errClientLeft) {
		// The body ends short of its Content-Length: close the
		// connection rather than let it look complete or carry the
		// next response's bytes.
		panic(http.ErrAbortHandler)
	}
	return true, err
}

// followed tells whether requests follow the body fw is storing, and its
// client may be served from the store's writer: not when the response
// announced trailers, which the next handler sets in the client's header
// once the body is written, while the goroutine serving it may still be
// writing (the store keeps no trailers; the followers get none either);
// nor for a background fetch, whose "client" takes every write at once;
// nor for a client that would not see the body cut if the store gave it
// up (cutShows).
func (fw *fetchWriter) followed() bool {
	fl := fw.f.flight
	return fl != nil && fl.following && fl.src.followers.Load() > 0 && fw.header["Trailer"] == nil && !fw.f.background &&
		cutShows(fw.f.r, fw.entry.Size)
}

// cutShows tells whether r's client sees a response whose body has size
// (-1: unknown) as incomplete when it is cut: always with a length;
// without one only when it is sent chunked, which HTTP/1.0 cannot be (its
// body ends when the connection closes, so a cut one looks complete).
// Such a client is neither given a followed body nor served from the
// store's writer.
func cutShows(r *http.Request, size int64) bool {
	return size >= 0 || r.ProtoAtLeast(1, 1)
}

// delivery is the goroutine that writes a fetch's body to its client
// from the store's writer once requests follow it (fetchWriter.handOff).
type delivery struct {
	done chan struct{}
	body *followBody
	// cut is set when the body ended short: the store gave it up. Read
	// after done is closed.
	cut bool
}

// handOff starts serving the fetch's client from the store's writer, from
// the bytes it already has on, and leaves it out of Write.
func (fw *fetchWriter) handOff() {
	fl := fw.f.flight
	rd, ok := fl.src.w.Follow()
	if !ok {
		return
	}
	fl.src.followers.Add(1)
	// The client no longer holds the fetch: no deadline for its writes
	// beyond the server's own.
	fw.bound.clear(false)
	client := fw.f.r.Context()
	if fw.f.det.client != nil {
		client = fw.f.det.client
	}
	body := &followBody{fl: fl, rd: rd, done: client.Done(), size: fw.entry.Size, w: fw.rw, off: fw.written}
	d := &delivery{done: make(chan struct{}), body: body}
	fw.handoff = d
	rw := fw.rw
	stop := fw.f.det.cancel
	if stop == nil {
		stop = fw.f.cancel // a background fetch's, if any
	}
	dw := &deliveryWriter{rw: rw, body: body, bound: writeBound{rw: rw, ctx: fw.bound.ctx, http2: fw.bound.http2, unsupported: fw.bound.unsupported}}
	if fw.f.det.cancel != nil {
		dw.timeout = fw.f.h.writeTimeout()
	}
	go func() {
		defer close(d.done)
		// Write errors are the client's (gone): nothing to do.
		_, _ = io.Copy(dw, body)
		dw.bound.clear(false) // the fetch may write the rest (takeBack)
		body.Close()
		d.cut = body.err != nil && !errors.Is(body.err, errClientLeft)
		if errors.Is(body.err, store.ErrNotStored) && stop != nil {
			// The store gave the body up: its Write does not fail when
			// it does (the memory store's bound on bodies being written,
			// the disk store's on temporary files), so the fetch would
			// go on downloading the rest for nobody, every follower cut,
			// and hold its client, cut too, until the origin sent it
			// all. It ends now.
			stop()
		}
	}()
}

// deliveryWriter is the client's writer for the delivery goroutine. Once
// the fetch waits for it to end (takeBack), each write is bounded as the
// fetch's own writes to its client are (clientDeadline), so that a client
// that stops reading does not hold the fetch.
type deliveryWriter struct {
	rw      http.ResponseWriter
	body    *followBody
	timeout time.Duration // 0: no bound (the fetch is not detached)
	bound   writeBound
}

func (w *deliveryWriter) Write(p []byte) (int, error) {
	if w.timeout > 0 && w.body.ended.Load() {
		w.bound.before(w.timeout)
	}
	n, err := w.rw.Write(p)
	w.bound.after()
	return n, err
}

// takeBack ends the serving of the fetch's client from the store's writer
// once it has been sent every byte stored so far, so that the fetch
// writes the rest to it directly: before a write of a body without a
// length that the store would give up (larger than max_object_size or
// than the store takes), which would otherwise cut the client with the
// followers. It returns false when the client was cut already (the store
// gave the body up for another reason).
func (fw *fetchWriter) takeBack() bool {
	d := fw.handoff
	fw.f.flight.src.closing.Store(true)
	d.body.endAt = fw.written
	d.body.ended.Store(true)
	// A write to the client that is blocked now is bounded too; the
	// delivery's next writes are bounded by deliveryWriter. The bound is
	// set on the connection (net/http's writer, which takes it from any
	// goroutine), not through the writers that wrap it: those are the
	// delivery's while it runs, and some keep the deadline they are
	// given, which their writes read (Caddy's idle timeout writer).
	bounded := false
	if fw.f.det.cancel != nil && !fw.bound.unsupported {
		bounded = http.NewResponseController(innermost(fw.rw)).SetWriteDeadline(time.Now().Add(fw.f.h.writeTimeout())) == nil
	}
	fw.f.wakeFollowers()
	<-d.done
	if bounded {
		// That bound is the take-back's only: once the store write is
		// given up, nobody waits for this client, and a deadline left
		// set would cut it when the rest of the body takes longer to
		// arrive.
		_ = fw.bound.controller().SetWriteDeadline(fw.bound.left(false))
	}
	if d.cut {
		return false
	}
	fw.handoff = nil
	fw.addLate()
	return true
}

// innermost returns the writer that rw wraps, through every Unwrap; for
// a relay, the client's, which the relay does not unwrap to (the methods
// it lacks must not reach the client's writer from the fetch's
// goroutine).
func innermost(rw http.ResponseWriter) http.ResponseWriter {
	for {
		if rl, ok := rw.(*relay); ok {
			return rl.conn
		}
		u, ok := rw.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return rw
		}
		rw = u.Unwrap()
	}
}

// errNotFollowable ends a fetch whose client is served from the store's
// writer (handOff) once the store gave the body up.
var errNotFollowable = errors.New("store gave up a body its client was served from")

// stopWaiting counts a request out of fl's waiters.
func (h *Handler) stopWaiting(fl *flight) {
	h.mu.Lock()
	if fl.waiters > 0 { // none once it landed (see land)
		fl.waiters--
	}
	h.mu.Unlock()
}

// errFollowAbandoned: the flight landed with the followed body neither
// stored nor given up (it cannot happen with a writer that ends as the
// store interface says; it keeps a follower from waiting for ever).
var errFollowAbandoned = errors.New("followed fetch ended without its body")

// errClientLeft: the following request's client went away.
var errClientLeft = errors.New("client of a following request gone")

// followBody is the store.Body of a followed response: its reads wait for
// the bytes the writer has not written yet.
type followBody struct {
	fl   *flight
	rd   store.Follower
	done <-chan struct{} // the client's context's
	size int64           // the announced length, or -1
	off  int64
	// ended is set, after endAt, when the body read ends at endAt: the
	// fetch takes its client back there (takeBack).
	ended atomic.Bool
	endAt int64
	err   error // the first error that ended a read before the body's end
	// w is the client's writer, flushed before a read waits when bytes
	// were read since the last flush: what arrived goes to the client
	// now, not with the next bytes.
	w         http.ResponseWriter
	unflushed bool
}

// readAt reads at off what is written, waiting until something is.
func (b *followBody) readAt(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if b.size >= 0 {
		if off >= b.size {
			// The whole announced length is read: complete, whatever
			// becomes of the store write after (the fetch ending without
			// its client aborts it).
			return 0, io.EOF
		}
		p = p[:min(int64(len(p)), b.size-off)]
	}
	src := &b.fl.src
	for landed := false; ; {
		changed := src.changed()
		if b.ended.Load() && off >= b.endAt {
			return 0, io.EOF
		}
		n, err := b.rd.ReadAt(p, off)
		if n > 0 || err != nil {
			if err != nil && err != io.EOF && b.err == nil {
				b.err = err
			}
			b.unflushed = b.unflushed || n > 0
			return n, err
		}
		if landed {
			b.err = errFollowAbandoned
			return 0, b.err
		}
		if b.unflushed {
			b.unflushed = false
			// Errors are the client's (gone): the next write fails too.
			_ = http.NewResponseController(b.w).Flush()
		}
		select {
		case <-changed:
		case <-b.fl.done:
			landed = true // read once more: the writer has ended
		case <-b.done:
			b.err = errClientLeft
			return 0, b.err
		}
	}
}

func (b *followBody) Read(p []byte) (int, error) {
	n, err := b.readAt(p, b.off)
	b.off += int64(n)
	return n, err
}

func (b *followBody) ReadAt(p []byte, off int64) (int, error) {
	read := 0
	for read < len(p) {
		n, err := b.readAt(p[read:], off+int64(read))
		read += n
		if err != nil {
			return read, err
		}
	}
	return read, nil
}

func (b *followBody) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += b.off
	case io.SeekEnd:
		if b.size < 0 {
			return 0, errors.New("seek from the end of a followed body of unknown length")
		}
		offset += b.size
	}
	if offset < 0 {
		return 0, errors.New("seek before the start of a followed body")
	}
	b.off = offset
	return offset, nil
}

func (b *followBody) Size() int64 { return b.size }

func (b *followBody) Close() error {
	if b.rd == nil {
		return nil
	}
	err := b.rd.Close()
	b.rd = nil
	b.fl.src.followers.Add(-1)
	return err
}

// Interface guards
var _ store.Body = (*followBody)(nil)
