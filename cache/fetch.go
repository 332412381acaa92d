package cache

import (
	"context"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-edge/edge/cache/policy"
	"github.com/caddy-edge/edge/cache/store"
)

// fetch is one request to the next handler for a GET or HEAD: a miss, a
// revalidation, a pass-through, or a background refresh.
type fetch struct {
	h    *Handler
	r    *http.Request     // the client's request (the background request for a refresh)
	rq   policy.Directives // r's Cache-Control (or Pragma), parsed once
	next caddyhttp.Handler
	lk   *lookup         // what the lookup found; lk.entry is nil on a miss
	dec  policy.Decision // the decision on lk.entry, if any

	mayStore     bool                              // the response may be stored (GET, no Range, no request no-store)
	post         bool                              // a POST: stored only as StorablePOST allows, for later GETs
	invalidate   func(status int, hdr http.Header) // of a POST: §4.4 invalidation, before storing
	revalidate   bool                              // send lk.entry's validators; a 304 freshens it (§4.3)
	staleIfError bool                              // on an origin error, serve lk.entry stale (RFC 5861 §4)
	// staleIfUnreachable: when the origin cannot be reached, serve
	// lk.entry stale (§4.2.4, stale_if_unreachable).
	staleIfUnreachable bool
	background         bool       // a background refresh or range fill: nobody to answer
	det                detachment // r's context, detached from the client's (see detach); zero if not
	cancel             func()     // of a background fetch: stops it once nothing will be stored
	// client, when not nil, is the request that the result is reported to
	// (placeholder, access log field) instead of r: the client's, for a
	// fetch that runs aside (aside.go), whose r is a request of its own.
	client *http.Request
	flight *flight
	cs     cacheStatus // Cache-Status so far (fwd, collapsed, detail)
	// purgeSeq and invalSeq are purges.since() and invalidations.since()
	// when the origin was asked: the purges and invalidations after them
	// may concern the response (see purges.go).
	purgeSeq, invalSeq uint64

	// lkv and fw hold what lk and the exchange's writer point to, in the
	// fetch's allocation: two allocations fewer a miss. A fetch runs
	// once.
	lkv lookup
	fw  fetchWriter
}

// detach makes the fetch outlive its client, for the requests that wait
// for it: when the client goes away, the response goes on into the store
// only (bounded by max_object_size), for at most orphanGrace more (see
// orphans). Call undetach once the fetch is over.
func (f *fetch) detach() {
	f.det.client = f.r.Context()
	var ctx context.Context
	ctx, f.det.cancel = context.WithCancel(context.WithoutCancel(f.det.client))
	f.r = f.r.WithContext(ctx)
	orphans.add(&f.det)
}

// undetach releases the context detach made.
func (f *fetch) undetach() {
	orphans.remove(&f.det)
	f.det.cancel()
}

// exchange is what came back from the next handler.
type exchange struct {
	fw        *fetchWriter
	err       error        // the next handler's error
	panicked  any          // the next handler's panic, to go on once the flight landed
	outcome   outcome      // the flight's outcome
	freshened *store.Entry // the stored entry freshened by a 304
	updateErr error        // the store's error freshening it
}

// run sends the request to the next handler and handles the response:
// streams it to w while storing it, or freshens the stored entry with a
// 304, or replaces an origin error by the stale entry. The flight it leads,
// if any, lands once the response is stored (or not), before the client
// is answered from a freshened or stale entry.
func (f *fetch) run(w http.ResponseWriter) error {
	defer f.lk.close()
	x := f.exchangeAndLand(w)
	if x.panicked != nil {
		panic(x.panicked)
	}
	return f.answer(w, x)
}

// exchangeAndLand is run up to the answer: the exchange with the next
// handler, the landing of the flight, and the end of the client's serving
// from the store, if it was. A body served short makes x.panicked
// http.ErrAbortHandler, for the caller to panic with.
func (f *fetch) exchangeAndLand(w http.ResponseWriter) exchange {
	if !f.mayStore {
		f.revalidate = false
	}
	x := f.exchange(w)
	if f.flight != nil {
		f.h.land(f.lk.key, f.flight, x.outcome)
	} else if x.outcome == outcomeStored && f.mayStore && !f.post {
		// A fetch that skipped collapsing (hit-for-miss) stored the
		// response: the key is cacheable again.
		f.h.storedWithoutFlight(f.lk.key)
	}
	if d := x.fw.handoff; d != nil {
		// The client is being served from the store (handOff): its
		// writer is that goroutine's until it is done.
		<-d.done
		x.fw.addLate()
		if d.cut && x.panicked == nil {
			// The body ends short of its Content-Length: close the
			// connection rather than let it look complete.
			x.panicked = http.ErrAbortHandler
		}
	}
	return x
}

// exchange calls the next handler with the outgoing request, streaming
// its response to w and into the store, and ends the store write; a 304
// to a revalidation freshens the stored entry. A panic of the next handler
// or the store is recovered into x, so that the flight always lands.
func (f *fetch) exchange(w http.ResponseWriter) (x exchange) {
	x.outcome = outcomeFailed
	defer func() {
		if p := recover(); p != nil {
			x.panicked, x.outcome = p, outcomeFailed
		}
	}()
	f.fw = fetchWriter{f: f, rw: w, header: make(http.Header), reqTime: f.h.now(), bound: writeBound{rw: w, ctx: f.r.Context(), http2: f.r.ProtoMajor == 2}}
	x.fw = &f.fw
	metrics.origin.Inc()
	f.purgeSeq, f.invalSeq = purges.since(), invalidations.since()
	if f.mayStore {
		// Only a response that may be stored is asked whether a route
		// made it up (decideStore).
		x.fw.watch = watchComposition(replacerOf(f.r.Context()))
	}
	x.panicked, x.err = callNext(f.next, x.fw, f.outgoing())
	x.fw.watch.done()
	if x.fw.unneeded {
		// The client's 304 is complete: the next handler only stopped
		// because its body was refused.
		if x.panicked == http.ErrAbortHandler {
			x.panicked = nil
		}
		x.err = nil
	}
	x.outcome = x.fw.finish(x.err, x.panicked != nil)
	f.wakeFollowers()
	x.fw.bound.clear(true)
	if x.panicked == nil && x.fw.state == stateCaptured && x.fw.status == http.StatusNotModified {
		x.freshened, x.updateErr = f.freshen(x.fw)
		if reason, gone := x.updateErr.(notStorable); gone {
			// A 304 that made the response private or no-store says
			// something of the URL; one about another response (a
			// validator mismatch) does not: the next request fetches and
			// stores as usual.
			x.outcome = outcomeUncacheable
			if reason == detailValidatorMismatch {
				x.outcome = outcomeFailed
			} else if policy.HasCredentials(f.r.Header) {
				x.outcome = outcomeCredentialed // see freshen
			}
		} else if x.updateErr == nil {
			x.outcome = outcomeStored
			if f.purgedMeanwhile(f.lk.key, x.freshened.Tags, f.lk.entry.Tags) {
				x.outcome = outcomeFailed
			}
		}
	}
	return x
}

// outgoing returns the request to send to the next handler: without the
// client's own conditionals when the response may be stored (they must
// not decide what is stored; the cache answers them from the whole
// response), with the stored validators for a revalidation (§4.3.1).
func (f *fetch) outgoing() *http.Request {
	out := f.r
	// The request is copied only when a field must change: most misses
	// carry no conditional, and a copy of the request and its header is a
	// large part of what the cache adds to a miss.
	if f.mayStore && !f.background && !f.post && (f.revalidate || hasAnyField(f.r.Header, clientConditionals)) {
		out = f.r.Clone(f.r.Context())
		for _, name := range clientConditionals {
			delete(out.Header, name)
		}
	}
	if f.revalidate {
		for k, v := range policy.ConditionalHeaders(&f.lk.entry.Header) {
			out.Header[k] = v
		}
	}
	return out
}

// hasAnyField reports whether h has any of the fields names.
func hasAnyField(h http.Header, names []string) bool {
	for _, name := range names {
		if _, ok := h[name]; ok {
			return true
		}
	}
	return false
}

// answer finishes the client's response once the flight landed: the
// freshened entry after a 304, the stale entry in place of an origin error
// (a 5xx captured by the writer, or an error before any response), or the
// error. A response already streamed needs nothing more.
func (f *fetch) answer(w http.ResponseWriter, x exchange) error {
	h, fw := f.h, x.fw
	switch {
	case fw.state == stateCaptured && fw.status == http.StatusNotModified:
		if reason, gone := x.updateErr.(notStorable); gone {
			// The 304 made the stored response private or no-store: it
			// is gone, and this request gets a response of its own.
			if f.background {
				return nil
			}
			f.lk.close()
			pass := fetch{h: h, r: f.r, rq: f.rq, next: f.next, lk: &lookup{pkey: f.lk.pkey, key: f.lk.key, fwd: f.lk.fwd}}
			pass.cs = f.cs
			pass.cs.detail = string(reason)
			return pass.run(w)
		}
		if f.background {
			return x.updateErr
		}
		if sc := fw.header["Set-Cookie"]; sc != nil {
			// The 304 answers this client's request: its cookies are
			// this client's, as a miss's are, and never stored
			// (storedFields).
			// After any a handler in front of the cache set (see
			// frontFields).
			prev := w.Header()["Set-Cookie"]
			w.Header()["Set-Cookie"] = append(prev[:len(prev):len(prev)], sc...)
		}
		dec := h.evaluate(&f.rq, x.freshened)
		f.lk.entry = x.freshened
		cs := f.cs
		cs.fwdStatus, cs.stored, cs.ttl, cs.hasTTL = http.StatusNotModified, x.updateErr == nil, dec.TTL, true
		return h.serveStored(w, f.r, f.lk, dec, &cs, resultRevalidated)

	case fw.state == stateCaptured:
		return f.serveStale(w, fw.status, "stale-if-error")

	case x.err != nil && fw.state == stateHeader:
		if detail := f.staleOnError(x.err); detail != "" {
			status := http.StatusBadGateway
			var he caddyhttp.HandlerError
			if errors.As(x.err, &he) && he.StatusCode != 0 {
				status = he.StatusCode
			}
			if c := h.logger.Check(zapcore.DebugLevel, "origin failed, serving stale"); c != nil {
				c.Write(zap.String("key", f.lk.key), zap.Error(x.err))
			}
			return f.serveStale(w, status, detail)
		}
		if !f.background {
			cs := f.cs
			w.Header()["Cache-Status"] = []string{cs.String()}
			h.report(f.r, resultUncacheable)
		}
	}
	return x.err
}

// staleOnError tells whether the stored entry answers in place of err, an
// error of the next handler before any response header, and under which
// Cache-Status detail: stale-if-error for any origin failure within that
// window (RFC 5861 §4), stale-if-unreachable when the origin could not be
// reached at all (§4.2.4); "" when neither applies (or the client left).
func (f *fetch) staleOnError(err error) string {
	if f.r.Context().Err() != nil || !isOriginFailure(err) {
		return ""
	}
	switch {
	case f.staleIfError:
		return "stale-if-error"
	case f.staleIfUnreachable && unreachable(err):
		return "stale-if-unreachable"
	}
	return ""
}

// unreachable tells whether err, returned by the next handler before any
// response header, means the origin could not be reached: a network error
// (connection refused or reset, a timeout, a connection closed before the
// response), not a response.
func unreachable(err error) bool {
	var ne net.Error
	var de reverseproxy.DialError // wraps the dial error without Unwrap
	return errors.As(err, &de) || errors.As(err, &ne) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded)
}

// serveStale answers with the stale stored entry after the origin failed
// with status; detail says which rule allowed it. Its Age and ttl are the
// entry's now, the wait for the origin included, not at the lookup (RFC
// 9111 §4: Age is current_age when the response is sent).
func (f *fetch) serveStale(w http.ResponseWriter, status int, detail string) error {
	dec := f.h.evaluate(&f.rq, f.lk.entry)
	cs := cacheStatus{fwd: fwdStale, fwdStatus: status, ttl: dec.TTL, hasTTL: true, detail: detail, collapsed: f.cs.collapsed}
	return f.h.serveStored(w, f.r, f.lk, dec, &cs, resultStale)
}

// freshen updates the stored entry with a 304 response (§4.3.4) and
// returns the updated entry, or removes it and returns a notStorable error
// when the 304's fields make it unstorable.
func (f *fetch) freshen(fw *fetchWriter) (*store.Entry, error) {
	h := f.h
	addDate(fw.header, fw.respTime)
	nm := storedFields(fw.header).Header()
	encodedETag(&f.lk.entry.Header, nm)
	if !policy.FreshenMatches(f.lk.entry.Header.Header(), nm) {
		// §4.3.4: a 304 whose validator selects no stored response must not
		// update one. It was not about this one, so this one is unverified:
		// removed, and the request gets a response of its own.
		if err := h.Store.Delete(f.r.Context(), f.lk.key); err != nil && !errors.Is(err, store.ErrNotFound) {
			h.storeFailed("removing a response a 304 did not validate", err, zap.String("key", f.lk.key))
		}
		return f.lk.entry, notStorable(detailValidatorMismatch)
	}
	e := f.lk.entry.Clone()
	e.SoftPurged = false // validated: no longer purged
	hdr := policy.Freshen(e.Header.Header(), nm)
	e.Header = store.FieldsOf(hdr)
	e.RequestTime, e.ResponseTime = fw.reqTime, fw.respTime
	d := h.derive(e.Status, hdr, e.RequestTime, e.ResponseTime)
	e.Derived = d
	e.Expires = h.expires(d, hdr, e.ResponseTime)
	e.Tags = tags(hdr)
	// §4.3.4 updates the stored response with the 304's fields; if they
	// make it unstorable for a shared cache (private, no-store), it must
	// not be served again: remove it. Judged on the response alone, not on
	// this request's credentials, which the stored body does not reflect.
	// But a 304 to a revalidation that carried the client's Cookie or
	// Authorization may say private or no-store of those (many origins
	// answer any session cookie so): it then answers that client only,
	// and the stored response stays, or any client could remove any
	// stored response with a junk cookie.
	if ok, reason := policy.Storable(http.MethodGet, nil, e.Status, hdr, h.opts); !ok {
		if policy.HasCredentials(f.r.Header) {
			return e, notStorable(reason)
		}
		if err := h.Store.Delete(f.r.Context(), f.lk.key); err != nil && !errors.Is(err, store.ErrNotFound) {
			h.storeFailed("removing a response a 304 made unstorable", err, zap.String("key", f.lk.key))
		}
		return e, notStorable(reason)
	}
	err := h.Store.Update(f.r.Context(), f.lk.key, e)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		h.storeFailed("freshening a stored response", err, zap.String("key", f.lk.key))
	}
	return e, err
}

// encodedETag gives a 304 (header nm) the ETag that Caddy's encode gave
// the stored response (header stored), which it encoded: encode, which
// runs after http_cache, appends "-<coding>" to a strong ETag of a body it
// encodes (RFC 9110 §8.8.3.3: each coding is another representation) and
// strips it from the If-None-Match it passes on, but it sends a 304 with
// the origin's ETag unchanged. Without this, that 304 would select no
// stored response (§4.3.4): every revalidation of an encoded response
// would remove it and fetch it whole, and the stored ETag would lose its
// suffix. Only an exact match is taken: the stored response's one
// Content-Encoding, and its strong ETag equal to the 304's plus the suffix.
func encodedETag(stored *store.Fields, nm http.Header) {
	ce := stored.Values("Content-Encoding")
	tag := nm["Etag"]
	if len(ce) != 1 || len(tag) != 1 || strings.HasPrefix(tag[0], "W/") || !strings.HasSuffix(tag[0], `"`) {
		return
	}
	if st := stored.Get("Etag"); st == strings.TrimSuffix(tag[0], `"`)+"-"+ce[0]+`"` {
		nm["Etag"] = []string{st}
	}
}

// notStorable is freshen's error when the freshened response may no
// longer be stored, with the policy's reason.
type notStorable policy.Reason

func (r notStorable) Error() string { return "freshened response not storable: " + string(r) }

// expires is when the store may drop a response (derived data dv, header hdr) received
// at responseTime: after its freshness and stale windows, and, for one that
// can be revalidated, revalidationKeep more.
func (h *Handler) expires(dv *derived, hdr policy.FieldReader, responseTime time.Time) time.Time {
	fr := dv.fresh
	d := fr.Lifetime + max(fr.StaleWhileRevalidate, fr.StaleIfError, fr.StaleIfUnreachable)
	if policy.HasValidator(hdr) {
		d += revalidationKeep
	}
	return responseTime.Add(max(d, 0))
}

// tags returns the surrogate keys of a response: the space- or
// comma-separated values of Cache-Tag and Surrogate-Key.
func tags(hdr policy.FieldReader) []string {
	var out []string
	for _, name := range []string{"Cache-Tag", "Surrogate-Key"} {
		for _, v := range hdr.Values(name) {
			out = append(out, strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' })...)
		}
	}
	return out
}

// isOriginFailure tells whether err from the next handler means the origin
// failed (5xx, refused, reset, timeout), as stale-if-error covers.
func isOriginFailure(err error) bool {
	var he caddyhttp.HandlerError
	if errors.As(err, &he) {
		return he.StatusCode == 0 || he.StatusCode >= 500
	}
	return true
}

// callNext calls next and recovers a panic (reverse_proxy panics with
// http.ErrAbortHandler when the origin fails mid-body), so that the store
// write is aborted before the panic goes on.
func callNext(next caddyhttp.Handler, w http.ResponseWriter, r *http.Request) (p any, err error) {
	defer func() { p = recover() }()
	err = next.ServeHTTP(w, r)
	return nil, err
}

// fetchWriter is the response writer of a fetch. It keeps the next
// handler's header to itself until WriteHeader, where it decides whether
// the response is stored (policy.Storable) or kept from the client (a 304
// of a revalidation, an error to replace with stale); then it streams the
// body to the client and into the store together. The store write is
// aborted when the body outgrows max_object_size (the client still gets it
// all), when writing to the client fails, when the body is shorter than
// Content-Length or the next handler fails; an incomplete body is never
// committed.
type fetchWriter struct {
	f        *fetch
	rw       http.ResponseWriter
	header   http.Header // the next handler's header, until passed on
	state    writerState
	status   int // the final status the next handler wrote
	reqTime  time.Time
	respTime time.Time
	watch    composeWatch // tells a response a route made up (composed.go)

	sw       store.Writer // nil when not storing
	entry    *store.Entry
	storeKey string
	vary     []string // when storing a variant: the Vary fields
	written  int64
	reason   string  // why the response is not stored
	aborted  outcome // when the store write was aborted: the flight's outcome
	// bound bounds the writes to the client (clientDeadline); cleared when
	// the fetch is over.
	bound writeBound
	// unneeded: Write refused the body with errBodyUnneeded, so the next
	// handler's error (or reverse_proxy's panic with
	// http.ErrAbortHandler) says nothing of the client's response.
	unneeded bool
	// handoff is set once other requests follow the body (follow.go):
	// the client is then served as they are, by a goroutine reading the
	// store's writer, and Write only stores, so that a client that reads
	// slowly does not set their pace.
	handoff *delivery
	// late holds the fields the next handler sets in the client's header
	// while the client is served from the store (trailers reverse_proxy
	// adds after the body): net/http may be reading that header for the
	// goroutine serving it. They are added once it is done.
	late http.Header
}

// clientDeadline bounds the next write to the client of a detached fetch
// that stores: a client that stops reading must not hold the flight that
// other requests wait for (they would wait collapse_timeout and get a
// 504). Past half of collapse_timeout without progress, the write fails,
// the client counts as gone, and the body goes on into the store alone.
// The write is followed by bound.after.
func (fw *fetchWriter) clientDeadline() {
	if fw.sw == nil || fw.f.det.cancel == nil {
		return
	}
	fw.bound.before(fw.f.h.writeTimeout())
}

// writeTimeout is how long a write to the client of a detached fetch that
// stores may take: half of collapse_timeout.
func (h *Handler) writeTimeout() time.Duration { return time.Duration(h.CollapseTimeout) / 2 }

// writeBound bounds each write to a client with a write deadline, as long
// as the client's writer takes one. Over HTTP/2 the deadline is removed
// after its write: there it is a timer that resets the stream when it
// fires, even with no write in flight (net/http's HTTP/2 server), so one
// left set would cut the client when the body pauses for longer. Over
// HTTP/1 it is only checked by the next write, which sets its own first,
// and is removed once at the end (clear), without a call per write.
//
// Removed, it leaves the deadline that Caddy's idle timeout writer (the
// server's write_idle and write timeouts) would have left, if the request
// has one, or else net/http's write timeout (see left).
type writeBound struct {
	rw          http.ResponseWriter
	ctx         context.Context          // the request's: its idle timeout writer, if any
	rc          *http.ResponseController // of rw, made when first needed
	http2       bool
	set         bool // a deadline is set: clear removes it
	unsupported bool // rw takes no deadline: not tried again
	// found: idle and serverDeadline, what left leaves, were looked up
	// in ctx (once: over HTTP/2, left runs after each write).
	found          bool
	idle           *caddyhttp.IdleTimeoutWriter
	serverDeadline time.Time
}

// controller returns the ResponseController of the client's writer,
// made once.
func (b *writeBound) controller() *http.ResponseController {
	if b.rc == nil {
		b.rc = http.NewResponseController(b.rw)
	}
	return b.rc
}

// before bounds the next write to d from now.
func (b *writeBound) before(d time.Duration) {
	if b.unsupported {
		return
	}
	if err := b.controller().SetWriteDeadline(time.Now().Add(d)); err == nil {
		b.set = true
	} else {
		b.unsupported = true
	}
}

// after ends the bound of a write, over HTTP/2.
func (b *writeBound) after() {
	if b.set && b.http2 {
		b.clear(false)
	}
}

// clear removes the deadline, so that the connection's next response is
// not bound by it; final at the end of the response (see left).
func (b *writeBound) clear(final bool) {
	if b.set {
		b.set = false
		_ = b.rc.SetWriteDeadline(b.left(final))
	}
}

// left returns the deadline to leave in place of the bound: none, or what
// Caddy's idle timeout writer, if the request has one, leaves between
// writes. That is the write timeout's ceiling, which over HTTP/2 must stay
// armed for the stream to be reset on time; and, at the end of an HTTP/1
// response (final), its idle bound too, which bounds the flush net/http
// does once the handler has returned (a client that stops reading then
// would otherwise hold its connection for as long as it likes; over HTTP/2
// the writer arms its own when the handler is done). Through the writers,
// the deadline also replaces the bound as the ceiling that writer keeps
// for a deadline set by a handler.
//
// Without that writer (write_idle disabled), it is the server's write
// timeout that net/http itself set when the request arrived, on the
// connection (HTTP/1) or as the stream's timer (HTTP/2), if any: removed,
// a client that stops reading would hold its connection or stream for as
// long as it likes.
func (b *writeBound) left(final bool) time.Time {
	if !b.found {
		b.found = true
		if b.ctx != nil {
			_, b.idle = caddyhttp.IdleTimeoutsFromContext(b.ctx)
		}
		if b.idle == nil {
			b.serverDeadline = serverWriteDeadline(b.ctx)
		}
	}
	idle := b.idle
	if idle == nil {
		return b.serverDeadline
	}
	hard := idle.Deadline.HardDeadline
	if final && !b.http2 {
		if d := time.Now().Add(idle.Deadline.Timeout); hard.IsZero() || d.Before(hard) {
			return d
		}
	}
	return hard
}

// serverWriteDeadline returns the write deadline that net/http sets for
// the request of ctx from the server's write timeout, as Caddy anchors
// that timeout's ceiling: at the request's start (the start_time var of
// {http.request.duration}). Zero without a write timeout.
func serverWriteDeadline(ctx context.Context) time.Time {
	if ctx == nil {
		return time.Time{}
	}
	srv, _ := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if srv == nil || srv.WriteTimeout <= 0 {
		return time.Time{}
	}
	start, ok := caddyhttp.GetVar(ctx, "start_time").(time.Time)
	if !ok {
		return time.Time{}
	}
	return start.Add(time.Duration(srv.WriteTimeout))
}

// addLate adds to the client's header the fields the next handler set
// while the client was served from the store (fetchWriter.late), once that
// is over.
func (fw *fetchWriter) addLate() {
	hdr := fw.rw.Header()
	for k, vv := range fw.late {
		hdr[k] = append(hdr[k], vv...)
	}
	fw.late = nil
}

// writerState is where a fetchWriter is in the response.
type writerState int8

const (
	// stateHeader: no final status yet; the next handler's header is kept
	// apart from the client's.
	stateHeader writerState = iota
	// statePassed: the header went to the client and the body streams to
	// it (and into the store).
	statePassed
	// stateNotModified: the client got 304 for its conditional request
	// (§4.3.2); the body only goes into the store.
	stateNotModified
	// stateClientGone: writing to the client failed during a detached
	// fetch; the body only goes into the store, and the fetch stops when
	// it is not stored.
	stateClientGone
	// stateCaptured: the response is kept from the client: a 304 to a
	// revalidation, or an error that the stale entry replaces.
	stateCaptured
)

// Header returns the header map the next handler fills.
func (fw *fetchWriter) Header() http.Header {
	if fw.state != stateHeader && fw.state != stateCaptured {
		if fw.handoff != nil {
			if fw.late == nil {
				fw.late = make(http.Header)
			}
			return fw.late
		}
		return fw.rw.Header()
	}
	return fw.header
}

// WriteHeader decides what happens to the response and passes its header
// on to the client.
func (fw *fetchWriter) WriteHeader(status int) {
	if fw.state != stateHeader {
		return
	}
	f := fw.f
	if status >= 100 && status < 200 {
		fw.writeInformational(status)
		return
	}
	fw.status, fw.respTime = status, f.h.now()
	if fw.captures(status) {
		fw.state = stateCaptured
		return
	}
	if f.invalidate != nil {
		f.invalidate(status, fw.header) // before a new response is stored under the URI
		// The response that may be stored is the one after the POST:
		// its own invalidation does not concern it.
		f.invalSeq = invalidations.since()
	}
	if f.mayStore {
		fw.decideStore(status)
	}

	dst := fw.rw.Header()
	for k, v := range fw.header {
		if prev, ok := dst[k]; ok && k != "Server" && k != "Cache-Status" {
			// After the values a handler in front of the cache set, as
			// reverse_proxy adds them (see frontFields).
			dst[k] = append(prev[:len(prev):len(prev)], v...)
			continue
		}
		dst[k] = v
	}
	fw.state = statePassed
	if fw.sw == nil && f.flight != nil {
		// Not stored: the requests waiting for this fetch have nothing to
		// wait for, and its body may take long (a stream, server-sent
		// events, a large download) or never end. They go on now, not
		// after collapse_timeout with a 504, and so does every later
		// request of the key, instead of joining a flight that lands only
		// when the body ends.
		f.h.land(f.lk.key, f.flight, fw.unstoredOutcome())
		f.flight = nil
	}
	if f.background {
		if fw.sw == nil {
			// Nobody gets this body: do not download it.
			fw.stop()
		}
		return
	}
	fw.report(dst, status)
	if f.mayStore && !f.post && status == http.StatusOK && policy.NotModifiedAt(f.r.Header, dst, fw.respTime) {
		// The client's conditional matches the fresh response (§4.3.2):
		// 304 to the client, the body into the store only.
		fw.state = stateNotModified
		delete(dst, "Content-Length")
		fw.rw.WriteHeader(http.StatusNotModified)
		// The 304 is the client's whole answer: sent now, not once the
		// body has arrived from the origin (net/http holds a header
		// until the first write or flush, and none comes to this client).
		_ = fw.bound.controller().Flush()
		if rl, ok := fw.rw.(*relay); ok && fw.sw != nil {
			// A fetch that runs aside: the client's request ends now,
			// and the body goes on into the store without it.
			rl.release(f)
		}
		return
	}
	fw.rw.WriteHeader(status)
}

// writeInformational passes a 1xx response (e.g. 103 Early Hints) on to
// the client with the fields the next handler set for it. It is not final:
// those fields are then taken back out of the client's header map, so that
// they are neither sent with the final response nor stored (the next
// handler clears its own map the same way: reverse_proxy does).
func (fw *fetchWriter) writeInformational(status int) {
	dst := fw.rw.Header()
	own := dst.Clone()
	for k, v := range fw.header {
		dst[k] = v
	}
	fw.rw.WriteHeader(status)
	clear(dst)
	maps.Copy(dst, own)
}

// captures tells whether a response with status is kept from the client:
// a 304 to a revalidation, which freshens the stored entry, or an error
// (RFC 5861 §4: 500, 502, 503 or 504) that the stale entry replaces.
func (fw *fetchWriter) captures(status int) bool {
	f := fw.f
	if f.revalidate && status == http.StatusNotModified {
		return true
	}
	return f.staleIfError && (status == 500 || status == 502 || status == 503 || status == 504)
}

// report adds the fetch's Cache-Status to the client's header dst and
// reports the result: miss when the response is being stored, uncacheable
// (with the reason) when not.
func (fw *fetchWriter) report(dst http.Header, status int) {
	f := fw.f
	cs := f.cs
	cs.fwdStatus = status
	result := resultUncacheable
	if fw.sw != nil {
		cs.stored = true
		result = resultMiss
		d := fw.entry.Derived.(*derived)
		cs.ttl, cs.hasTTL = d.fresh.Lifetime-d.initialAge, true
	} else if f.post {
		result = resultBypass // a POST as before: passed on, not stored
	} else if fw.reason != "" && (cs.detail == "" || cs.detail == detailHitForMiss) {
		// Why this response is not stored says more than that the last
		// one was not.
		cs.detail = fw.reason
	}
	prev := dst["Cache-Status"]
	dst["Cache-Status"] = append(prev[:len(prev):len(prev)], cs.String())
	if f.client != nil {
		f.h.report(f.client, result)
	} else {
		f.h.report(f.r, result)
	}
}

// decideStore decides whether the response is stored and, if so, starts
// the store write.
func (fw *fetchWriter) decideStore(status int) {
	f, h := fw.f, fw.f.h
	if status == http.StatusPartialContent {
		fw.reason = string(policy.ReasonPartial)
		return
	}
	if status == http.StatusNotModified {
		fw.reason = string(policy.ReasonStatus)
		return
	}
	if status == http.StatusPreconditionFailed {
		// The answer to the request's If-Match or If-Unmodified-Since
		// (left for the origin to evaluate), not to the URL: stored, it
		// would answer every client of the key.
		fw.reason = detailPreconditionFailed
		return
	}
	if status == http.StatusRequestURITooLong {
		// The answer to the length of the request target, whose
		// ignored parameters (or a key template without the query) the
		// key does not hold: stored, one client's long query would be
		// the 414 of every client of the key.
		fw.reason = detailURITooLong
		return
	}
	var ok bool
	var reason policy.Reason
	if f.post {
		ok, reason = policy.StorablePOST(f.r.Header, status, fw.header, effectiveURI(f.r), h.opts)
	} else {
		ok, reason = policy.Storable(http.MethodGet, f.r.Header, status, fw.header, h.opts)
	}
	if !ok {
		fw.reason = string(reason)
		return
	}
	if fw.watch.composed(fw.header) && !policy.ExplicitFreshness(fw.header) {
		fw.reason = detailComposed
		return
	}
	if fw.redirectsToItsKey(status) {
		fw.reason = detailSelfRedirect
		return
	}
	size, tooBig := fw.declaredSize()
	if tooBig != "" {
		fw.reason = tooBig
		return
	}
	addDate(fw.header, fw.respTime)
	key := f.lk.pkey
	var vary []string
	if _, ok := fw.header["Vary"]; ok {
		vary = varyFields(fw.header)
	}
	if len(vary) > 0 || len(h.keys.vary) > 0 {
		if vary == nil {
			vary = []string{} // a variant of the vary option only: the marker lists no field
		}
		sec, ok := h.keys.variantKey(vary, f.r.Header, replacerOf(f.r.Context()))
		if !ok {
			fw.reason = string(policy.ReasonVaryStar)
			return
		}
		key = f.lk.pkey + varySep + sec
	}
	e := &store.Entry{
		Status:       status,
		Header:       storedFields(fw.header),
		RequestTime:  fw.reqTime,
		ResponseTime: fw.respTime,
		Size:         size,
	}
	dv := h.derive(status, &e.Header, fw.reqTime, fw.respTime)
	e.Expires, e.Tags, e.Derived = h.expires(dv, &e.Header, fw.respTime), tags(&e.Header), dv
	sw, err := h.Store.Put(f.r.Context(), key, e)
	if err != nil {
		if errors.Is(err, store.ErrTooLarge) {
			fw.reason = string(policy.ReasonTooLarge)
			return
		}
		if errors.Is(err, store.ErrBusy) {
			fw.reason = detailStoreBusy
			return
		}
		h.storeFailed("starting to store a response", err, zap.String("key", key))
		fw.reason = "store-error"
		return
	}
	fw.sw, fw.entry, fw.storeKey, fw.vary = sw, e, key, vary
	if fl := f.flight; fl != nil {
		fl.streaming.Store(true)
		if fsw, ok := sw.(store.Following); ok && !f.post {
			// The waiters need not wait for the whole body (follow.go).
			fw.startFollowing(fsw)
		}
	}
}

// redirectsToItsKey tells whether a response with status is a redirect
// whose Location has the request's own key: one to the URL without the
// parameters that ignore_query_params drops (many origins send a URL with
// tracking parameters to the URL without them). Stored, it would send
// every client of that URL to the URL, and so to itself, for as long as
// it is fresh.
func (fw *fetchWriter) redirectsToItsKey(status int) bool {
	loc := fw.header["Location"]
	if status < 300 || status > 399 || len(loc) != 1 {
		return false
	}
	base := effectiveURI(fw.f.r)
	u, err := base.Parse(loc[0])
	if err != nil || u.Host == "" {
		return false
	}
	u.Fragment, u.RawFragment = "", ""
	return sameURL(fw.f.lk.pkey, fw.f.h.keys.keyForURL(u))
}

// addDate gives a response header without a Date the time the response
// was received: RFC 9110 §6.6.1, a recipient "MUST record the time it was
// received and append a corresponding Date header field" to a response it
// caches or forwards. Otherwise a hit would get the Date of the hit, and a
// 304 that freshens a stored response would leave it the old Date.
func addDate(hdr http.Header, received time.Time) {
	if _, ok := hdr["Date"]; !ok {
		hdr["Date"] = []string{received.UTC().Format(http.TimeFormat)}
	}
}

// storedFields returns the fields of a response header that are stored:
// neither hop-by-hop nor those a cache must not store (RFC 9110 §7.6.1,
// RFC 9111 §3.1), and no Set-Cookie, which goes to the client that caused
// the fetch, never to others.
func storedFields(hdr http.Header) store.Fields {
	hop := policy.HopByHop(hdr["Connection"])
	return store.FieldsOfFunc(hdr, func(name string) bool {
		return name != "Set-Cookie" && !hop(name)
	})
}

// declaredSize returns the body size that the response's Content-Length
// declares (-1 without one), or why the response cannot be stored: a bad
// Content-Length, or one above max_object_size.
func (fw *fetchWriter) declaredSize() (size int64, reason string) {
	cl := fw.header.Get("Content-Length")
	if cl == "" {
		return -1, ""
	}
	n, err := strconv.ParseInt(cl, 10, 64)
	if err != nil || n < 0 || cl[0] == '+' { // 1*DIGIT (RFC 9110 §8.6): ParseInt also takes a sign
		return -1, "bad-content-length"
	}
	if n > fw.f.h.MaxObjectSize {
		return -1, string(policy.ReasonTooLarge)
	}
	return n, ""
}

// stop ends a background fetch whose body nobody needs any more: its
// origin request is cancelled.
func (fw *fetchWriter) stop() {
	if fw.f.background && fw.f.cancel != nil {
		fw.f.cancel()
	}
}

// abort gives up the store write.
func (fw *fetchWriter) abort(reason string, o outcome) {
	fw.sw.Abort()
	fw.sw = nil
	fw.reason, fw.aborted = reason, o
	fw.stop()
	if c := fw.f.h.logger.Check(zapcore.DebugLevel, "not storing response"); c != nil {
		c.Write(zap.String("key", fw.storeKey), zap.String("reason", reason))
	}
}

// Write sends p to the client and into the store.
func (fw *fetchWriter) Write(p []byte) (int, error) {
	if fw.state == stateHeader {
		fw.WriteHeader(http.StatusOK)
	}
	n, err := len(p), error(nil)
	switch fw.state {
	case stateCaptured:
		return n, nil
	case statePassed:
		if fw.handoff == nil && fw.sw != nil && fw.followed() {
			fw.handOff()
		}
		if fw.handoff != nil {
			if fw.sw == nil {
				// The store gave the body up: nobody gets the rest.
				return 0, errNotFollowable
			}
			if fw.fits(len(p)) {
				break
			}
			// A body without a length that grew past what is stored: its
			// client gets the rest from here, the followers are cut.
			if !fw.takeBack() {
				return 0, errNotFollowable
			}
			fw.abort(string(policy.ReasonTooLarge), outcomeUncacheable)
			fw.f.wakeFollowers()
			// Nothing of it is stored now: the flight lands, as that of a
			// response known not to be stored at its header does, so that
			// the requests of the key go to the origin instead of waiting
			// for the rest of this body.
			fw.f.h.land(fw.f.lk.key, fw.f.flight, fw.unstoredOutcome())
			fw.f.flight = nil
		}
		fw.clientDeadline()
		n, err = fw.rw.Write(p)
		fw.bound.after()
		if err != nil && fw.sw != nil && fw.f.det.cancel != nil && fw.f.det.needed() {
			// The client is gone; the requests waiting for this fetch
			// still get the response from the store.
			fw.state, n, err = stateClientGone, len(p), nil
		}
	case stateClientGone:
		if fw.sw == nil {
			return 0, errClientGone
		}
	case stateNotModified:
		if fw.sw == nil {
			// The client has its 304 and the response is not stored
			// (uncacheable, too large): nobody needs the body. Ending the
			// exchange here keeps the cache from downloading it whole for
			// nothing, which a client's If-None-Match would otherwise
			// trigger for any large object.
			fw.unneeded = true
			return 0, errBodyUnneeded
		}
	}
	if fw.sw != nil {
		switch {
		case err != nil:
			fw.abort("client-gone", outcomeFailed)
		case fw.written+int64(n) > fw.f.h.MaxObjectSize:
			fw.abort(string(policy.ReasonTooLarge), outcomeUncacheable)
		default:
			if _, werr := fw.sw.Write(p[:n]); werr != nil {
				fw.abort("store-error", outcomeFailed)
			}
		}
		fw.f.wakeFollowers()
	}
	fw.written += int64(n)
	return n, err
}

// fits tells whether n more bytes of the body being stored are stored:
// whether they keep it within max_object_size and within what the store
// takes. Only a body without a length can outgrow either (a larger
// Content-Length is not stored).
func (fw *fetchWriter) fits(n int) bool {
	if fw.entry.Size >= 0 {
		return true
	}
	return fw.written+int64(n) <= fw.f.h.MaxObjectSize && int64(n) <= fw.f.flight.src.w.Room()
}

// ReadFrom lets a response that is not stored use the client writer's
// ReadFrom (sendfile); a stored one is copied through Write.
func (fw *fetchWriter) ReadFrom(src io.Reader) (int64, error) {
	if fw.state == stateHeader {
		fw.WriteHeader(http.StatusOK)
	}
	if fw.sw == nil && fw.state == statePassed && fw.handoff == nil {
		if rf, ok := fw.rw.(io.ReaderFrom); ok {
			n, err := rf.ReadFrom(src)
			fw.written += n
			return n, err
		}
	}
	return io.Copy(writerOnly{fw}, src)
}

// errBodyUnneeded ends the exchange of a response that neither the
// client (answered with 304) nor the store takes.
var errBodyUnneeded = errors.New("body needed neither by the client (304) nor by the store")

// errClientGone ends a detached fetch whose client is gone once nothing of
// it is stored any more.
var errClientGone = errors.New("client gone and response not stored")

// writerOnly hides ReadFrom, so io.Copy uses Write.
type writerOnly struct{ io.Writer }

// FlushError flushes the client writer (reverse_proxy streams with it).
func (fw *fetchWriter) FlushError() error {
	if fw.state == stateHeader {
		fw.WriteHeader(http.StatusOK)
	}
	if fw.state != statePassed || fw.handoff != nil {
		return nil
	}
	fw.clientDeadline()
	err := fw.bound.controller().Flush()
	fw.bound.after()
	if err != nil && fw.sw != nil && fw.f.det.cancel != nil && fw.f.det.needed() {
		fw.state, err = stateClientGone, nil // as in Write
	}
	return err
}

// Flush implements http.Flusher.
func (fw *fetchWriter) Flush() { _ = fw.FlushError() }

// Unwrap returns the client writer, for http.ResponseController.
func (fw *fetchWriter) Unwrap() http.ResponseWriter { return fw.rw }

// finish ends the store write after the next handler returned (err) or
// panicked: commits a complete body, aborts anything else. It returns the
// flight's outcome.
func (fw *fetchWriter) finish(err error, panicked bool) outcome {
	f, h := fw.f, fw.f.h
	if fw.state == stateCaptured {
		return outcomeFailed
	}
	if fw.sw == nil {
		return fw.unstoredOutcome()
	}
	reason := ""
	switch {
	case panicked:
		reason = "aborted"
	case err != nil:
		reason = "origin-error"
	case f.r.Context().Err() != nil:
		reason = "client-gone"
	case fw.entry.Size >= 0 && fw.written != fw.entry.Size:
		reason = "incomplete"
	}
	if reason != "" {
		fw.abort(reason, outcomeFailed)
		return outcomeFailed
	}
	if err := fw.sw.Commit(); err != nil {
		fw.sw = nil
		if errors.Is(err, store.ErrTooLarge) {
			return outcomeUncacheable
		}
		if errors.Is(err, store.ErrBusy) {
			return outcomeFailed // says nothing of the response
		}
		h.storeFailed("committing a stored response", err, zap.String("key", fw.storeKey))
		return outcomeFailed
	}
	fw.sw = nil
	if fw.vary != nil {
		fw.putMarker()
	}
	if f.purgedMeanwhile(fw.storeKey, fw.entry.Tags) {
		return outcomeFailed
	}
	return outcomeStored
}

// purgedMeanwhile removes the entry the fetch just stored or freshened
// under key (with tags) when a purge or invalidation that concerns it ran
// since the origin was asked (see purges.go), and tells whether it did.
func (f *fetch) purgedMeanwhile(key string, tags ...[]string) bool {
	if !purges.purgedSince(f.purgeSeq, f.lk.pkey, key, tags...) && !invalidations.purgedSince(f.invalSeq, f.lk.pkey, key) {
		return false
	}
	if err := f.h.Store.Delete(context.WithoutCancel(f.r.Context()), key); err != nil {
		f.h.storeFailed("removing a response purged while it was fetched", err, zap.String("key", key))
	}
	return true
}

// unstoredOutcome is the flight's outcome when no store write is left to
// finish: the outcome of an aborted write, uncacheable for a response that
// may not be stored, failed otherwise.
func (fw *fetchWriter) unstoredOutcome() outcome {
	if fw.aborted != outcomeNone {
		return fw.aborted
	}
	// A server error is a failure, not a property of the resource:
	// remembering it as hit-for-miss would send every request of the key
	// to an origin that is struggling.
	if fw.state == stateHeader || !fw.f.mayStore || fw.reason == "" || fw.reason == "store-error" || fw.reason == detailStoreBusy || fw.status >= 500 {
		return outcomeFailed
	}
	// Nor a 4xx that is not cacheable by default (400, 403, 406, 412,
	// 429, 431, ...), a 414, a 206 or a redirect to its own key: it
	// answers this request (its fields, its client, its precondition,
	// its target's length, a Range the origin read from a field the
	// cache does not know, such as Apache's Request-Range, its ignored
	// parameters), not the URL, and any client could otherwise make a
	// key hit-for-miss at will.
	if (fw.status >= 400 && !policy.CacheableByDefault(fw.status)) || answersTheRequest(fw.status) || fw.status == http.StatusPartialContent ||
		fw.reason == detailSelfRedirect {
		return outcomeFailed
	}
	// Not stored only because of the request's Cookie or Authorization,
	// or for what the origin may say of a request with them only (it
	// answers any session cookie with private or no-store, clears a
	// cookie it does not know with Set-Cookie): hit-for-miss for
	// credentialed requests only, as any client can send them.
	switch policy.Reason(fw.reason) {
	case policy.ReasonCredentials, policy.ReasonAuthorization:
		return outcomeCredentialed
	case policy.ReasonPrivate, policy.ReasonNoStore, policy.ReasonSetCookie:
		if policy.HasCredentials(fw.f.r.Header) {
			return outcomeCredentialed
		}
	}
	return outcomeUncacheable
}

// putMarker stores the vary marker under the primary key: an entry with
// status 0 and the Vary fields of the variant just stored (§4.1).
func (fw *fetchWriter) putMarker() {
	f, h := fw.f, fw.f.h
	m := &store.Entry{
		Header:       store.Fields{"Vary", strings.Join(fw.vary, ", ")},
		RequestTime:  fw.reqTime,
		ResponseTime: fw.respTime,
		Expires:      fw.entry.Expires,
		Size:         0,
		Derived:      varyNames(fw.vary), // the parsed field names, for lookups
	}
	mw, err := h.Store.Put(f.r.Context(), f.lk.pkey, m)
	if err == nil {
		err = mw.Commit()
	}
	if err != nil {
		h.storeFailed("storing a vary marker", err, zap.String("key", f.lk.pkey))
	}
}

// Interface guards
var (
	_ http.ResponseWriter = (*fetchWriter)(nil)
	_ http.Flusher        = (*fetchWriter)(nil)
	_ io.ReaderFrom       = (*fetchWriter)(nil)
)
