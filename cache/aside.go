package cache

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// A conditional request (If-None-Match, If-Modified-Since) that misses
// leads a fetch of the whole response, to store it; when the response
// matches the condition, the client gets 304 as soon as the header has
// arrived (§4.3.2), and the body goes into the store only. But net/http
// ends a response only when its handler returns: over HTTP/2 the stream
// ends then, and a browser counts the 304 done only then; over HTTP/1 the
// connection's next request is read only then. Either way the client would
// wait for a body it does not get.
//
// So such a fetch runs aside: in a goroutine of its own, with a request of
// its own (asideRequest, as a background fetch's), while the client's
// goroutine carries out the fetch's calls to the client's writer (relay).
// When the fetch answers 304, the client's handler returns, and the body
// goes on into the store without it, for at most orphanGrace more and
// within maxAsideFetches such fetches over the process. Beyond that bound,
// the client waits for the body to be stored, as it would otherwise.

// maxAsideFetches bounds the fetches that go on into the store after their
// client was answered with 304. Each may hold up to max_object_size in its
// store's writer until it commits, and nobody waits for it: without a
// bound, a client could start any number of downloads of large objects
// with conditional requests and leave.
const maxAsideFetches = 8

// asideFetches holds a token for each such fetch.
var asideFetches = make(chan struct{}, maxAsideFetches)

// leadAside runs f, the fetch of a conditional request c that leads its
// flight (detached already), aside, and tells whether it did: not outside
// Caddy's server, nor once the handler's Cleanup has begun.
func (h *Handler) leadAside(c *cacheable, f *fetch) (bool, error) {
	if _, ok := c.r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); !ok || !h.goBackground() {
		return false, nil
	}
	rl := newRelay(c.w)
	client := f.r
	f.client = client
	f.r = asideRequest(client.Context(), c.r, rl, h.copied)
	rl.from, rl.to = replacerOf(f.r.Context()), replacerOf(client.Context())
	rl.fromVars, _ = f.r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any)
	rl.toVars, _ = client.Context().Value(caddyhttp.VarsCtxKey).(map[string]any)
	rl.toLog, _ = client.Context().Value(caddyhttp.ExtraLogFieldsCtxKey).(*caddyhttp.ExtraLogFields)
	stop := func() bool { return false }
	finished := make(chan struct{})
	var counted sync.Once // h.wg.Done, once
	if h.ctx != nil {
		// The config is being cleaned up (a reload), and its Cleanup
		// waits for the fetches that go on without a client. While its
		// client waits for the response, this fetch is that client's
		// request in flight, which Caddy lets finish and Cleanup does not
		// wait for, as any other: cancelled, it answered the client with
		// reverse_proxy's 499. Once the client has its 304 (or is gone),
		// nobody waits for it: it ends, unstored.
		stop = context.AfterFunc(h.ctx, func() {
			if !rl.isAlone() && !rl.isGone() {
				counted.Do(h.wg.Done)
			}
			select {
			case <-rl.released:
			case <-rl.gone:
			case <-finished:
				return
			}
			f.det.cancel() // a no-op on a fetch that finished meanwhile
		})
	}
	end := make(chan exchange, 1)
	go func() {
		defer counted.Do(h.wg.Done)
		defer close(finished)
		defer stop()
		var x exchange
		func() {
			defer func() {
				if p := recover(); p != nil {
					x.panicked = p
				}
			}()
			x = f.exchangeAndLand(rl)
		}()
		// No call reaches the client's goroutine any more: whether it
		// is gone, or the fetch released it, is settled.
		alone, gone := rl.isAlone(), rl.isGone()
		if !alone && !gone {
			// The client's goroutine answers, in the fetch's context
			// still (a stale entry in place of an origin error, the
			// request of its own after a 304 that made the entry
			// unstorable), and then undetaches it.
			end <- x
			return
		}
		// The client has its 304, or its goroutine is gone with a
		// panic: the rest was the store's.
		f.undetach()
		f.lk.close()
		if alone {
			<-asideFetches
		}
		if p := x.panicked; p != nil && p != http.ErrAbortHandler {
			h.logger.Error("fetch aside panicked", zap.Any("panic", p), zap.String("key", f.lk.key))
		}
	}()
	x, ended := rl.serve(end)
	if !ended {
		return true, nil // answered with 304; the fetch goes on
	}
	f.r = client
	defer f.undetach()
	defer f.lk.close()
	if x.panicked != nil {
		panic(x.panicked)
	}
	return true, f.answer(c.w, x)
}

// relay is the client's writer for a fetch that runs aside: each call that
// reaches the client's writer is carried out by the client's goroutine
// (serve), which owns that writer and its header, while the fetch waits.
// The fetch's goroutine, and its delivery's (handOff), call it; one call
// runs at a time.
type relay struct {
	rw http.ResponseWriter // the client's writer: only serve's goroutine uses it
	// conn is innermost(rw), which takes a write deadline from any
	// goroutine, without waiting for a write in progress (takeBack).
	conn http.ResponseWriter
	// header is the fetch's view of rw's header, which becomes rw's before
	// each status written, and at the end (trailers).
	header http.Header
	// from and to are the fetch's replacer and the client's: the
	// placeholders reverse_proxy sets are copied from one to the other.
	from, to *caddy.Replacer
	// fromVars and toVars are the fetch's vars and the client's, toLog
	// the client's access log fields: the request id is copied too.
	fromVars, toVars map[string]any
	toLog            *caddyhttp.ExtraLogFields

	mu    sync.Mutex
	calls chan func()
	done  chan struct{}
	// released is closed when the fetch goes on without its client
	// (isAlone): nothing reaches rw any more.
	released chan struct{}
	// gone is closed when the client's goroutine stopped serving calls
	// because one panicked (a writer of the chain did): the panic goes
	// on there, and the fetch's calls fail from then on instead of
	// waiting for it for ever, so that the fetch still ends and lands.
	gone chan struct{}
}

func newRelay(rw http.ResponseWriter) *relay {
	return &relay{
		rw: rw, conn: innermost(rw), header: rw.Header().Clone(),
		calls: make(chan func()), done: make(chan struct{}), released: make(chan struct{}),
		gone: make(chan struct{}),
	}
}

// do has call carried out by the client's goroutine, and waits for it. It
// returns false, with call not carried out or not to its end, once that
// goroutine is gone.
func (rl *relay) do(call func()) bool {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	select {
	case rl.calls <- call:
	case <-rl.gone:
		return false
	}
	select {
	case <-rl.done:
		return true
	case <-rl.gone:
		return false
	}
}

// serve carries out the fetch's calls until the fetch ends, with its
// exchange from end (ended true), or goes on without its client.
func (rl *relay) serve(end <-chan exchange) (x exchange, ended bool) {
	for {
		select {
		case call := <-rl.calls:
			rl.carryOut(call)
			rl.done <- struct{}{}
		case <-rl.released:
			return exchange{}, false
		case x = <-end:
			rl.setHeader()
			rl.copyPlaceholders()
			return x, true
		}
	}
}

// isGone tells whether the client's goroutine is gone (see gone).
func (rl *relay) isGone() bool { return closed(rl.gone) }

// isAlone tells whether the fetch goes on without its client (released).
func (rl *relay) isAlone() bool { return closed(rl.released) }

// closed tells whether ch is closed (it is never sent on).
func closed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// carryOut runs call; if it panics, the relay is gone, and the panic goes
// on.
func (rl *relay) carryOut(call func()) {
	defer func() {
		if p := recover(); p != nil {
			close(rl.gone)
			panic(p)
		}
	}()
	call()
}

// release lets the fetch go on without its client, answered with 304, if
// the bound on such fetches allows; otherwise the client waits for it.
// From the fetch's goroutine, after the 304's last call.
func (rl *relay) release(f *fetch) {
	if rl.isGone() {
		return
	}
	select {
	case asideFetches <- struct{}{}:
	default:
		return
	}
	orphans.keep(&f.det)
	close(rl.released)
}

// setHeader makes the fetch's view of the client's header the header.
// On the client's goroutine.
func (rl *relay) setHeader() {
	dst := rl.rw.Header()
	clear(dst)
	maps.Copy(dst, rl.header)
}

// proxyPlaceholders are the placeholders reverse_proxy sets for the
// client's request (besides http.reverse_proxy.header.*), which an access
// log or a header directive may use.
var proxyPlaceholders = []string{
	"http.reverse_proxy.upstream.address", "http.reverse_proxy.upstream.hostport",
	"http.reverse_proxy.upstream.host", "http.reverse_proxy.upstream.port",
	"http.reverse_proxy.upstream.requests", "http.reverse_proxy.upstream.max_requests",
	"http.reverse_proxy.upstream.fails", "http.reverse_proxy.upstream.latency",
	"http.reverse_proxy.upstream.latency_ms", "http.reverse_proxy.upstream.duration",
	"http.reverse_proxy.upstream.duration_ms", "http.reverse_proxy.status_code",
	"http.reverse_proxy.status_text", "http.reverse_proxy.duration",
	"http.reverse_proxy.duration_ms", "http.reverse_proxy.retries",
}

// copyPlaceholders gives the client's replacer the values the next
// handlers set in the fetch's (a replacer's values are safe to read and
// set from any goroutine).
func (rl *relay) copyPlaceholders() {
	if rl.from == nil || rl.to == nil {
		return
	}
	for _, k := range proxyPlaceholders {
		if v, ok := rl.from.Get(k); ok {
			rl.to.Set(k, v)
		}
	}
	for name := range rl.header {
		k := "http.reverse_proxy.header." + name
		if v, ok := rl.from.Get(k); ok {
			rl.to.Set(k, v)
		}
	}
	rl.copyRequestID()
}

// uuidVar is the var in which Caddy keeps the request's id, made when
// {http.request.uuid} is first evaluated.
const uuidVar = "uuid"

// copyRequestID gives the client's request the id the next handlers made
// for the fetch's ({http.request.uuid} in header_up X-Request-ID), as they
// would have for the client's own: the id the origin got is the one the
// client's response and access log show. On the client's goroutine, while
// the fetch's waits or is over.
func (rl *relay) copyRequestID() {
	id, ok := rl.fromVars[uuidVar]
	if !ok || rl.toVars == nil {
		return
	}
	if _, set := rl.toVars[uuidVar]; set {
		return // the client's (which the fetch's started as), or its own already
	}
	rl.toVars[uuidVar] = id
	if s, ok := id.(fmt.Stringer); ok && rl.toLog != nil {
		rl.toLog.Set(zap.String("uuid", s.String()))
	}
}

// errClientAnswered refuses a write to a client answered already.
var errClientAnswered = errors.New("client answered already")

// errClientGoroutineGone refuses a write once the client's goroutine
// stopped serving the relay (a writer of its chain panicked).
var errClientGoroutineGone = errors.New("client's handler ended with a panic")

// Header returns the fetch's view of the client's header.
func (rl *relay) Header() http.Header { return rl.header }

// WriteHeader writes status and the header to the client.
func (rl *relay) WriteHeader(status int) {
	if rl.isAlone() {
		return
	}
	rl.do(func() {
		rl.setHeader()
		rl.copyPlaceholders()
		rl.rw.WriteHeader(status)
	})
}

// Write writes p to the client.
func (rl *relay) Write(p []byte) (n int, err error) {
	if rl.isAlone() {
		return 0, errClientAnswered
	}
	if !rl.do(func() { n, err = rl.rw.Write(p) }) {
		return 0, errClientGoroutineGone
	}
	return n, err
}

// FlushError flushes the client's writer.
func (rl *relay) FlushError() (err error) {
	if rl.isAlone() {
		return nil
	}
	if !rl.do(func() { err = http.NewResponseController(rl.rw).Flush() }) {
		return errClientGoroutineGone
	}
	return err
}

// SetWriteDeadline sets the client writer's write deadline.
func (rl *relay) SetWriteDeadline(t time.Time) (err error) {
	if rl.isAlone() {
		return nil
	}
	if !rl.do(func() { err = http.NewResponseController(rl.rw).SetWriteDeadline(t) }) {
		return errClientGoroutineGone
	}
	return err
}
