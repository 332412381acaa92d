package cache

import (
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-edge/edge/cache/policy"
	"github.com/caddy-edge/edge/cache/store"
)

// ServeHTTP serves the request from the cache or passes it on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if r.Header["Connection"] != nil && r.Header["Upgrade"] == nil {
		dropConnectionListed(r.Header)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return h.serveUnsafe(w, r, next)
	}
	if _, up := r.Header["Upgrade"]; up || len(h.bypass) > 0 {
		if done, err := h.serveBypass(w, r, next); done {
			return err
		}
	}
	// A fresh hit is written from here, with little of the goroutine's
	// stack in use: the collector shrinks the stacks of idle connections
	// to 8 KiB, Caddy's handler chain takes about 6 KiB of it, and a hit
	// that goes deeper copies its stack to a larger one at its first
	// request after each collection (see BENCHMARKS.md). So the work of
	// a hit before its response is written is done in functions that
	// return first.
	var lk lookup
	dec := h.firstLookup(r, &lk)
	if lk.entry == nil || dec.Action != policy.Serve {
		return h.serveCacheable(w, r, next, &lk, dec)
	}
	defer lk.close()
	body, ok := h.plainHit(w, r, &lk, dec)
	if !ok {
		return h.serveStored(w, r, &lk, dec, nil, resultHit)
	}
	// Errors writing to the client are the client's (gone); nothing to do.
	w.WriteHeader(lk.entry.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	return nil
}

// dropConnectionListed removes from a request header h the fields its
// Connection field lists: they are hop-by-hop (RFC 9110 §7.6.1), and
// reverse_proxy removes them before the origin. Removed here, they can
// neither select a variant (Vary, the vary option) nor count as
// credentials that the origin never got. Connection itself stays; an
// Upgrade request, which needs its fields, is not given here.
func dropConnectionListed(h http.Header) {
	for _, line := range h["Connection"] {
		for line != "" {
			var f string
			f, line, _ = strings.Cut(line, ",")
			switch f = strings.Trim(f, " \t"); {
			case f == "", strings.EqualFold(f, "close"):
			case strings.EqualFold(f, "keep-alive"):
				delete(h, "Keep-Alive") // the common case, without allocating
			default:
				delete(h, textproto.CanonicalMIMEHeaderKey(f))
			}
		}
	}
}

// plainHit sets the header of a hit that is written whole from memory (a
// body the store holds as bytes, no Range, no conditional it answers with
// 304) and returns the body; ok is false, and nothing done, for any other
// hit, which serveStored writes.
func (h *Handler) plainHit(w http.ResponseWriter, r *http.Request, lk *lookup, dec policy.Decision) (body []byte, ok bool) {
	bb, ok := lk.body.(store.BytesBody)
	if !ok || answerFor(r, lk.entry) != answerWhole {
		return nil, false
	}
	h.storedHeader(w.Header(), lk, dec, nil)
	h.reportAs(r, resultHit, true)
	return bb.Bytes(), true
}

// serveBypass passes on an Upgrade request, or one that a bypass matcher
// matches, and tells whether it did.
func (h *Handler) serveBypass(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) (done bool, err error) {
	if _, up := r.Header["Upgrade"]; !up && len(h.bypass) > 0 {
		match, err := h.bypass.AnyMatchWithError(r)
		if err != nil {
			return true, caddyhttp.Error(http.StatusInternalServerError, err)
		}
		if !match {
			return false, nil
		}
	}
	return true, h.bypassed(w, r, next, fwdBypass)
}

// firstLookup looks the request up into lk and decides on the entry it
// found, in a frame of its own that is gone before a hit is written.
func (h *Handler) firstLookup(r *http.Request, lk *lookup) policy.Decision {
	h.lookupInto(r.Context(), h.keys.key(r), r.Header, lk)
	if lk.entry == nil {
		return policy.Decision{}
	}
	return h.evaluateRequest(r.Header, lk.entry)
}

// evaluateRequest is evaluate for a request with header reqHeader. Not
// inlined: the parsed directives take 176 bytes of the frame they are in,
// which is then not on the stack while the store is read. A request
// without Cache-Control and Pragma, most of them, has no directives to
// parse.
//
//go:noinline
func (h *Handler) evaluateRequest(reqHeader http.Header, e *store.Entry) policy.Decision {
	if reqHeader["Cache-Control"] == nil && reqHeader["Pragma"] == nil {
		return h.evaluate(&noDirectives, e)
	}
	return h.evaluateParsed(reqHeader, e)
}

// noDirectives are those of a request without Cache-Control and Pragma;
// never written.
var noDirectives policy.Directives

// evaluateParsed is evaluateRequest for a request with Cache-Control or
// Pragma, whose parsing takes about 600 bytes of stack.
func (h *Handler) evaluateParsed(reqHeader http.Header, e *store.Entry) policy.Decision {
	rq := policy.RequestDirectives(reqHeader)
	return h.evaluate(&rq, e)
}

// hasBody tells whether a request has content: a Content-Length above 0,
// or a chunked (length unknown) body (RFC 9112 §6.3).
func hasBody(r *http.Request) bool {
	return r.ContentLength != 0 || len(r.TransferEncoding) > 0
}

// bypassed passes a request that the cache does not look at to next.
func (h *Handler) bypassed(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, fwd string) error {
	cs := cacheStatus{fwd: fwd}
	h.report(r, resultBypass)
	cw := &cacheStatusWriter{ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, value: cs.String()}
	defer cw.add()
	return next.ServeHTTP(cw, r)
}

// cacheStatusWriter adds the cache's Cache-Status member to a response
// that it passes on unseen, after the members the response brings: RFC
// 9211 §2, the last member is the cache closest to the client. A response
// the next handler does not write (an error, written by Caddy) gets it
// from add, called once the next handler returns.
type cacheStatusWriter struct {
	caddyhttp.ResponseWriterWrapper
	value string
	added bool
}

// add appends the member, once.
func (w *cacheStatusWriter) add() {
	if w.added {
		return
	}
	w.added = true
	hdr := w.Header()
	prev := hdr["Cache-Status"]
	hdr["Cache-Status"] = append(prev[:len(prev):len(prev)], w.value)
}

// WriteHeader adds the member to a final response (101 included: it ends
// an Upgrade request's HTTP exchange).
func (w *cacheStatusWriter) WriteHeader(status int) {
	if status >= 200 || status == http.StatusSwitchingProtocols {
		w.add()
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *cacheStatusWriter) Write(p []byte) (int, error) {
	w.add()
	return w.ResponseWriter.Write(p)
}

func (w *cacheStatusWriter) ReadFrom(r io.Reader) (int64, error) {
	w.add()
	return w.ResponseWriterWrapper.ReadFrom(r)
}

// serveUnsafe passes a request with a method other than GET and HEAD to
// next, and when it succeeds invalidates the stored responses of its URI and
// of the same-host Location and Content-Location (RFC 9111 §4.4).
func (h *Handler) serveUnsafe(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if r.Method == http.MethodPost {
		// RFC 9110 §9.3.3: a POST response with explicit freshness and a
		// Content-Location equal to the target URI may be stored, under
		// the key a GET of that URI has; the invalidation (§4.4) comes
		// first, when the status is known.
		rq := policy.RequestDirectives(r.Header)
		pkey := h.keys.key(r)
		// min_uses counts it as a request of the URL, and it stores
		// only as a GET would (serveCacheable).
		mayStore := !rq.NoStore && (h.uses == nil || h.usedEnough(pkey))
		f := fetch{h: h, r: r, rq: rq, next: next, lk: &lookup{pkey: pkey, key: pkey, fwd: fwdMethod}, mayStore: mayStore, post: true}
		f.cs.fwd = fwdMethod
		f.invalidate = func(status int, hdr http.Header) { h.invalidate(r, status, hdr) }
		return f.run(w)
	}
	cs := cacheStatus{fwd: fwdMethod}
	h.report(r, resultBypass)
	cw := &cacheStatusWriter{ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, value: cs.String()}
	defer cw.add()
	rec := caddyhttp.NewResponseRecorder(cw, nil, nil)
	if err := next.ServeHTTP(rec, r); err != nil {
		return err
	}
	status := rec.Status()
	if status == 0 {
		status = http.StatusOK
	}
	h.invalidate(r, status, rec.Header())
	return nil
}

// effectiveURI is the target URI of r (scheme, host, path, query), as the
// client requested it.
func effectiveURI(r *http.Request) *url.URL {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	// The URL as the client requested it, before any rewrite: its key's
	// group holds the rewritten requests' entries too (see keyer.key).
	u := r.URL
	if orig, ok := originalRequest(r); ok {
		u = orig.URL
	}
	return &url.URL{Scheme: scheme, Host: r.Host, Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery}
}

// invalidate removes the stored responses of the target URI of an unsafe
// request r answered with status and header hdr, and of the same-host
// Location and Content-Location (RFC 9111 §4.4).
func (h *Handler) invalidate(r *http.Request, status int, hdr http.Header) {
	// §4.4: only safe methods are exempt; policy decides on the status.
	for _, u := range policy.InvalidationTargets(r.Method, status, effectiveURI(r), hdr) {
		key := h.keys.keyForURL(u)
		invalidations.record(purgeRecord{key: key}) // before it removes anything (see purges.go)
		n, err := h.purgeKey(context.WithoutCancel(r.Context()), key, false)
		if err != nil {
			h.storeFailed("invalidating after unsafe request", err, zap.String("uri", u.String()))
			continue
		}
		if n > 0 {
			metrics.purged.WithLabelValues("invalidation").Add(float64(n))
		}
	}
}

// lookup is the result of looking a request up in the store.
type lookup struct {
	pkey  string // primary key
	key   string // store key: primary, or primary+varySep+secondary
	fwd   string // when entry is nil: uri-miss or vary-miss
	entry *store.Entry
	body  store.Body
}

// close releases the body of a found entry.
func (lk *lookup) close() {
	if lk.body != nil {
		lk.body.Close()
		lk.body = nil
	}
}

// lookup finds the stored response for a request with header reqHeader
// under primary key pkey, following a vary marker to the variant (§4.1).
func (h *Handler) lookup(ctx context.Context, pkey string, reqHeader http.Header) (lk lookup) {
	h.lookupInto(ctx, pkey, reqHeader, &lk)
	return lk
}

// lookupInto is lookup writing into lk, which a hit's path keeps in the
// frame of ServeHTTP (see ServeHTTP).
func (h *Handler) lookupInto(ctx context.Context, pkey string, reqHeader http.Header, lk *lookup) {
	*lk = lookup{pkey: pkey, key: pkey, fwd: fwdURIMiss}
	defer h.countLookup(lk)
	e, b, err := h.Store.Get(ctx, pkey)
	if err != nil {
		h.storeReadFailed(pkey, err)
		return
	}
	if e.Status == 0 { // a vary marker: the URL is known, find the variant
		if e, b = h.lookupVariant(ctx, lk, e, b, reqHeader); e == nil {
			return
		}
	}
	if len(h.keys.vary) > 0 && lk.key == pkey {
		// Stored before the vary option was set: it varies on nothing
		// the option names, so it answers no request.
		b.Close()
		return
	}
	if h.codingRefused(e, reqHeader) {
		b.Close()
		lk.fwd = fwdVaryMiss
		return
	}
	lk.entry, lk.body = e, b
}

// codingRefused tells whether the request with header reqHeader refused the
// content coding of the stored response e: RFC 9110 §12.5.3, never a coding
// the client refused, even from an origin that does not send Vary:
// Accept-Encoding. Whether the entry has a coding is in its derived data:
// most have none, and most hits then look at no field of the stored header
// here.
func (h *Handler) codingRefused(e *store.Entry, reqHeader http.Header) bool {
	coded := h.entryDerived(e).coded
	if !coded && reqHeader["Accept-Encoding"] == nil {
		return false
	}
	var ce []string
	if coded {
		ce = e.Header.Values("Content-Encoding")
	}
	return !policy.EncodingAcceptable(ce, reqHeader)
}

// lookupVariant follows the vary marker m (with body b, closed here) to the
// variant of the request with header reqHeader, setting lk's key and fwd.
// It returns the variant, or nil when there is none. Out of lookup's
// frame, as storeReadFailed is, to keep the stack of a hit short (see
// ServeHTTP).
func (h *Handler) lookupVariant(ctx context.Context, lk *lookup, m *store.Entry, b store.Body, reqHeader http.Header) (*store.Entry, store.Body) {
	b.Close()
	lk.fwd = fwdVaryMiss
	fields, parsed := m.Derived.(varyNames) // set by putMarker
	if !parsed {                            // a store that keeps no Derived
		fields = varyFields(&m.Header)
	}
	sec, ok := h.keys.variantKey(fields, reqHeader, replacerOf(ctx))
	if !ok {
		return nil, nil
	}
	lk.key = lk.pkey + varySep + sec
	e, b, err := h.Store.Get(ctx, lk.key)
	if err != nil {
		h.storeReadFailed(lk.key, err)
		return nil, nil
	}
	return e, b
}

// storeReadFailed logs a store's error reading key, but for a miss.
func (h *Handler) storeReadFailed(key string, err error) {
	if !errors.Is(err, store.ErrNotFound) {
		h.storeFailed("reading from the cache store", err, zap.String("key", key))
	}
}

// varyFields returns the field names listed in h's Vary fields.
func varyFields(h policy.FieldReader) varyNames {
	var out varyNames
	for _, v := range h.Values("Vary") {
		for _, name := range strings.Split(v, ",") {
			if name = strings.Trim(name, " \t"); name != "" { // OWS only (RFC 9110 §5.6.1), as policy.VaryKey reads names
				out = append(out, name)
			}
		}
	}
	return out
}

// varyNames is a vary marker's Derived data: the names its Vary field
// lists, parsed.
type varyNames []string

// markerDeriveKey is the store.Deriving key of vary markers, whose Derived
// data depends on no option.
const markerDeriveKey = "vary marker"

// DeriveKey names what derives vn (store.Deriving).
func (varyNames) DeriveKey() string { return markerDeriveKey }

// derived is what the handler computes once per stored entry
// (store.Entry.Derived), so that a hit parses no header field.
type derived struct {
	optsKey    string           // the policy options it was computed with
	fresh      policy.Freshness // §4.2.1, §4.2.2, RFC 5861
	initialAge time.Duration    // corrected_initial_age, §4.2.3
	// coded: the stored header has Content-Encoding, which a lookup then
	// checks against the request's Accept-Encoding.
	coded bool
	// relayed: the stored header has Cache-Status members of caches in
	// front of the origin, which hits keep before this cache's (RFC 9211
	// §2). Known here, so that a hit without them, the usual one, sets
	// Cache-Status in one assignment.
	relayed bool

	// Strings of the hit path, made once (per second for the ttl).
	hitStatus     atomic.Pointer[ttlString] // Cache-Status of a plain hit
	contentLength atomic.Pointer[string]    // when the stored header has none
}

// DeriveKey names the options d was derived with (store.Deriving).
func (d *derived) DeriveKey() string { return d.optsKey }

// ttlString is a Cache-Status value for one ttl, in seconds.
type ttlString struct {
	ttl int64
	s   string
}

// hitCacheStatus returns cs.String() for a plain hit, made once per ttl
// second.
func (d *derived) hitCacheStatus(cs *cacheStatus) string {
	ttl := ttlSeconds(cs.ttl)
	if p := d.hitStatus.Load(); p != nil && p.ttl == ttl {
		return p.s
	}
	s := cs.String()
	d.hitStatus.Store(&ttlString{ttl: ttl, s: s})
	return s
}

// contentLengthOf returns the body size as a field value, made once.
func (d *derived) contentLengthOf(size int64) string {
	if p := d.contentLength.Load(); p != nil {
		return *p
	}
	s := strconv.FormatInt(size, 10)
	d.contentLength.Store(&s)
	return s
}

// derive computes the derived data of an entry with status, header and
// times as given.
func (h *Handler) derive(status int, hdr policy.FieldReader, requestTime, responseTime time.Time) *derived {
	return optionsDeriver{key: h.optsKey, opts: h.opts}.derive(status, hdr, requestTime, responseTime)
}

// derive computes the derived data of an entry with status, header and
// times as given, with d's options.
func (d optionsDeriver) derive(status int, hdr policy.FieldReader, requestTime, responseTime time.Time) *derived {
	return &derived{
		optsKey:    d.key,
		fresh:      policy.ResponseFreshnessStatus(status, hdr, responseTime, d.opts),
		initialAge: policy.CorrectedInitialAge(hdr, requestTime, responseTime),
		coded:      hdr.Values("Content-Encoding") != nil,
		relayed:    hdr.Values("Cache-Status") != nil,
	}
}

// entryDerived returns e's derived data, computing it again when the
// store did not keep it or the options changed (a reload).
func (h *Handler) entryDerived(e *store.Entry) *derived {
	if d, ok := e.Derived.(*derived); ok && d.optsKey == h.optsKey {
		return d
	}
	return h.deriveEntry(e)
}

// deriveEntry computes e's derived data; apart from entryDerived, so that
// entryDerived is inlined and the parsing's frame is not on the stack of
// a hit on an entry whose data is kept.
func (h *Handler) deriveEntry(e *store.Entry) *derived {
	return h.derive(e.Status, &e.Header, e.RequestTime, e.ResponseTime)
}

// evaluate decides how the stored entry e may answer a request with
// header reqHeader now.
func (h *Handler) evaluate(rq *policy.Directives, e *store.Entry) policy.Decision {
	d := h.entryDerived(e)
	age := policy.AgeAt(d.initialAge, e.ResponseTime, h.now())
	if e.SoftPurged {
		f := softPurged(d.fresh, age)
		return policy.EvaluateRequest(rq, &f, age)
	}
	return policy.EvaluateRequest(rq, &d.fresh, age)
}

// softPurged returns the freshness of a soft-purged entry of age age: stale
// from now on whatever its lifetime, so that it is revalidated before it is
// served (no stale-while-revalidate); while it would have been fresh, its
// stale-if-error window still lets it answer when the origin fails.
func softPurged(f policy.Freshness, age time.Duration) policy.Freshness {
	f.Lifetime = min(f.Lifetime, age)
	f.StaleWhileRevalidate = 0
	return f
}

// cacheable is a GET or HEAD request on its way through the cache.
type cacheable struct {
	w    http.ResponseWriter
	r    *http.Request
	next caddyhttp.Handler
	pkey string            // primary key
	rq   policy.Directives // r's Cache-Control (or Pragma), parsed once
	// mayStore tells whether a fetch for the request may store the
	// response: a GET of the whole body whose request allows storing
	// (§5.2.1.5). When false, passDetail says why, for Cache-Status.
	mayStore   bool
	passDetail string
	collapse   collapse // how it took part in collapsing so far
	// waitUntil ends the request's waiting for other requests' fetches:
	// collapse_timeout after it first waited. A second wait, after a
	// fetch that failed, takes what is left of it.
	waitUntil time.Time
	// leaderFailed: the fetch it waited for broke without storing
	// anything (see leadOrWait).
	leaderFailed bool
}

// serveCacheable serves a GET or HEAD request from the store, or fetches it
// (collapsed with other requests of the same key) and stores it.
//
// Each pass looks the key up and either answers the request or waits for
// another request's fetch of the key and looks again. A request waits at
// most twice, and a second time only when the fetch it first waited for
// failed (see leadOrWait); a later pass that finds the key in flight again
// goes to the origin alone, so the loop ends by the third pass.
//
// first and firstDec are the first pass's lookup and decision, made by
// ServeHTTP; serveCacheable takes over first's body.
func (h *Handler) serveCacheable(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, first *lookup, firstDec policy.Decision) error {
	c := cacheable{w: w, r: r, next: next, pkey: first.pkey, rq: policy.RequestDirectives(r.Header), mayStore: true}
	switch {
	case r.Method == http.MethodHead:
		c.mayStore, c.passDetail = false, "head"
	case r.Header["Range"] != nil:
		c.mayStore, c.passDetail = false, "range"
	case c.rq.NoStore:
		c.mayStore, c.passDetail = false, string(policy.ReasonReqNoStore)
	case hasBody(r):
		// The origin may answer the body, not the URL: storing that
		// answer under the URL would poison it for every client.
		c.mayStore, c.passDetail = false, detailRequestBody
	case h.uses != nil && first.entry == nil && !h.usedEnough(first.pkey):
		// min_uses: not requested often enough yet to take room in the
		// store; it goes to the origin alone.
		c.mayStore, c.passDetail = false, detailMinUses
	}
	for attempt := 0; ; attempt++ {
		var lk lookup
		var dec policy.Decision
		if attempt == 0 {
			lk, dec = *first, firstDec
		} else {
			lk = h.lookup(r.Context(), c.pkey, r.Header)
			if lk.entry != nil {
				dec = h.evaluate(&c.rq, lk.entry)
			}
		}
		if lk.entry != nil {
			if dec.Action == policy.Serve || dec.Action == policy.ServeStaleRevalidate {
				return h.serveFromStore(&c, &lk, dec)
			}
		}
		if c.rq.OnlyIfCached {
			return h.serveUnavailable(&c, &lk)
		}
		f := h.newFetch(&c, lk, dec)
		var retry bool
		var err error
		if c.mayStore {
			retry, err = h.leadOrWait(&c, f, attempt)
		} else {
			retry, err = h.passThrough(&c, f)
		}
		if !retry {
			return err
		}
	}
}

// serveWaitTimedOut answers a request whose wait for another request's
// fetch of its key outlasted collapse_timeout, without going to the origin:
// when the origin hangs, every waiter would go there at once, each adding
// to the load of an origin that already does not answer. The request gets
// the stored response if the flight landed meanwhile, or a stale one that
// may be served when the origin fails (stale-if-error, RFC 5861 §4: the
// origin did not answer in time, as with a 504), and otherwise a 504 with
// Cache-Status detail=collapse-timeout.
func (h *Handler) serveWaitTimedOut(c *cacheable, f *fetch) error {
	lk := h.lookup(c.r.Context(), c.pkey, c.r.Header)
	if lk.entry != nil {
		dec := h.evaluate(&c.rq, lk.entry)
		if dec.Action == policy.Serve || dec.Action == policy.ServeStaleRevalidate {
			c.collapse = collapsedServed
			return h.serveFromStore(c, &lk, dec)
		}
		if dec.StaleIfErrorOK || dec.StaleIfUnreachableOK { // the origin did not answer in time
			cs := cacheStatus{fwd: fwdStale, collapsed: collapsedUnused, ttl: dec.TTL, hasTTL: true, detail: detailCollapseTimeout}
			return h.serveStored(c.w, c.r, &lk, dec, &cs, resultStale)
		}
		lk.close()
	}
	cs := cacheStatus{fwd: f.cs.fwd, collapsed: collapsedUnused, detail: detailCollapseTimeout}
	c.w.Header()["Cache-Status"] = []string{cs.String()}
	h.report(c.r, resultUnavailable)
	c.w.WriteHeader(http.StatusGatewayTimeout)
	return nil
}

// serveFromStore answers the request with the stored response lk found,
// which dec allows serving: fresh, or stale within stale-while-revalidate
// (RFC 5861 §3), which starts a background refresh, unless the request
// says no-store: its refresh could store nothing (RFC 9111 §5.2.1.5) and
// would make the key hit-for-miss for every client; the next request
// refreshes it.
func (h *Handler) serveFromStore(c *cacheable, lk *lookup, dec policy.Decision) error {
	if dec.Action == policy.ServeStaleRevalidate {
		if !c.rq.NoStore {
			h.refresh(c.r, c.next, *lk, dec, nil)
		}
		cs := cacheStatus{ttl: dec.TTL, hasTTL: true, detail: "stale-while-revalidate"}
		return h.serveStored(c.w, c.r, lk, dec, &cs, resultStale)
	}
	cs := cacheStatus{ttl: dec.TTL, hasTTL: true}
	result := resultHit
	if c.collapse == collapsedServed {
		cs.fwd, cs.collapsed, result = fwdURIMiss, collapsedServed, resultCollapsed
	}
	return h.serveStored(c.w, c.r, lk, dec, &cs, result)
}

// serveUnavailable answers an only-if-cached request that the store cannot
// answer with 504 (§5.2.1.7).
func (h *Handler) serveUnavailable(c *cacheable, lk *lookup) error {
	lk.close()
	cs := cacheStatus{fwd: lk.fwd, detail: "only-if-cached"}
	if lk.entry != nil {
		cs.fwd = fwdStale
	}
	c.w.Header()["Cache-Status"] = []string{cs.String()}
	h.report(c.r, resultUnavailable)
	c.w.WriteHeader(http.StatusGatewayTimeout)
	return nil
}

// newFetch prepares the fetch of a request that the store could not answer
// with what lk found (dec: the decision on lk.entry): a miss, or a
// revalidation of the stored response, which may be served stale if the
// origin fails (RFC 5861 §4).
func (h *Handler) newFetch(c *cacheable, lk lookup, dec policy.Decision) *fetch {
	f := &fetch{h: h, r: c.r, rq: c.rq, next: c.next, dec: dec, mayStore: c.mayStore, lkv: lk}
	f.lk = &f.lkv
	f.cs.fwd = lk.fwd
	if lk.entry != nil {
		f.cs.fwd = fwdStale
		// RFC 9211 §2.2: "request" when the entry was fresh (and its own
		// no-cache did not send it to the origin) but the request's
		// directives did not allow it: min-fresh, max-age, no-cache.
		fresh := dec.TTL > 0 && !h.entryDerived(lk.entry).fresh.NoCache
		if c.rq.NoCache || (c.rq.MaxAge.Set && c.rq.MaxAge.D == 0) || fresh {
			f.cs.fwd = fwdRequest
		}
		f.revalidate = dec.Action == policy.Revalidate && policy.HasValidator(&lk.entry.Header)
		f.staleIfError = dec.StaleIfErrorOK
		f.staleIfUnreachable = dec.StaleIfUnreachableOK
	}
	if c.collapse != notCollapsed {
		// Waited for another request's fetch and could not use it (e.g.
		// another variant).
		f.cs.collapsed = collapsedUnused
	}
	return f
}

// passThrough sends a request whose response is not stored (HEAD, Range,
// request no-store) to the next handler. On the first pass, a Range
// request that the store cannot answer first starts a background fill of
// the whole response, and a HEAD miss waits for a GET of its key already in
// flight: retry tells that the GET's response landed in the store, to be
// looked up again.
func (h *Handler) passThrough(c *cacheable, f *fetch) (retry bool, err error) {
	f.cs.detail = c.passDetail
	if c.collapse != notCollapsed {
		return false, f.run(c.w)
	}
	switch {
	case c.passDetail == "range" && c.r.Method == http.MethodGet && !c.rq.NoStore && h.wantsFill(f.lk, c.r.Header):
		// A Range miss goes to the origin untouched, so that the client is
		// not delayed, and starts one background fill of the whole
		// response, which answers the next ranges (RFC 9111 §3.3 would
		// allow storing the 206 itself; this cache stores complete
		// responses only). A stale entry is revalidated the same way.
		// Fills are bounded (rangeFills): beyond the limit, a Range miss
		// just passes through.
		select {
		case rangeFills <- struct{}{}:
			if h.refresh(c.r, c.next, *f.lk, f.dec, func() { <-rangeFills }) {
				f.cs.detail = detailRangeFill
			}
		default:
		}
	case c.r.Method == http.MethodHead && f.lk.entry == nil:
		// A HEAD miss waits for a GET of its key already in flight and is
		// answered from it (RFC 9110 §9.3.2: the GET response without
		// content); without one, it goes to the origin as HEAD.
		if fl, _ := h.joinFlight(f.lk.key, waitOnly); fl != nil {
			until := time.Now().Add(time.Duration(h.CollapseTimeout))
			o, ok, follow := h.wait(c.r.Context(), fl, until, fl.started)
			if follow {
				// The GET's header is known: the HEAD is answered with it
				// now, not once its body is stored.
				if served, err := h.follow(c, fl); served {
					return false, err
				}
				o, ok, _ = h.wait(c.r.Context(), fl, until, nil)
			}
			if ok && o == outcomeStored {
				c.collapse = collapsedServed
				return true, nil
			}
			if err := c.r.Context().Err(); err != nil {
				return false, err
			}
			if !ok && fl.streaming.Load() {
				// As a GET waiter: the origin answered the GET, whose body
				// takes longer than collapse_timeout; a 504 would say it
				// did not. The HEAD goes to the origin.
				f.cs.collapsed, f.cs.detail = collapsedUnused, detailCollapseTimeout
				return false, f.run(c.w)
			}
			if !ok { // as a GET waiter: no herd on a hanging origin
				return false, h.serveWaitTimedOut(c, f)
			}
			f.cs.collapsed = collapsedUnused
		}
	}
	return false, f.run(c.w)
}

// leadOrWait fetches a response that may be stored, collapsed with the
// other requests of its key: the first request leads the fetch, the others
// wait for it to land (at most collapse_timeout) and then, with retry,
// look the key up again. A key recently found uncacheable (hit-for-miss)
// goes to the origin without collapsing, and so does a request that waited
// once already (attempt > 0) and finds the key in flight again, or whose
// wait ended with an uncacheable response. A wait that outlasts
// collapse_timeout does not go to the origin (see serveWaitTimedOut).
func (h *Handler) leadOrWait(c *cacheable, f *fetch, attempt int) (retry bool, err error) {
	if f.lk.entry == nil && h.hitForMiss(f.lk.key, c.r.Header) {
		f.cs.detail = detailHitForMiss
		return false, f.run(c.w)
	}
	fl, leader := h.joinFlight(f.lk.key, joinOrLead)
	if leader {
		f.flight = fl
		// The waiters depend on this fetch: it outlives its client, as
		// long as any waits for it.
		f.det.flight, f.det.h = fl, h
		f.detach()
		if hasAnyField(c.r.Header, clientConditionals) {
			// It may be answered with 304 before the body has arrived
			// (aside.go).
			if aside, err := h.leadAside(c, f); aside {
				return false, err
			}
		}
		defer f.undetach()
		return false, f.run(c.w)
	}
	// It waits at its first pass, and once more when the fetch it waited
	// for failed: an origin connection reset mid-body, an origin error. The
	// waiters then collapse again behind one of them, the new leader,
	// instead of all going to the origin at once, within the one
	// collapse_timeout. Any other later pass (the flight stored another
	// variant, or failed twice) goes to the origin alone, with the stored
	// entry it found: it revalidates it, and serves it stale where
	// stale-if-error allows when the origin fails again.
	if attempt > 1 || (attempt == 1 && !c.leaderFailed) {
		f.cs.collapsed = collapsedUnused
		return false, f.run(c.w)
	}
	// A waiter: do not hold the stored body while waiting.
	f.lk.close()
	f.lk.entry, f.revalidate, f.staleIfError, f.staleIfUnreachable = nil, false, false, false
	if attempt == 0 {
		c.waitUntil = time.Now().Add(time.Duration(h.CollapseTimeout))
	}
	o, ok, follow := h.wait(c.r.Context(), fl, c.waitUntil, fl.started)
	if follow {
		// The leader's response is being stored: answered from it as
		// its body arrives, if it answers this request; otherwise wait
		// on for it to land.
		if served, err := h.follow(c, fl); served {
			return false, err
		}
		o, ok, _ = h.wait(c.r.Context(), fl, c.waitUntil, nil)
	}
	if err := c.r.Context().Err(); err != nil && !ok {
		return false, err
	}
	if !ok {
		if fl.streaming.Load() {
			// The origin answered the leader, with a body that takes
			// longer than collapse_timeout to arrive (a large object, a
			// slow origin): no hanging origin to spare, and waiting on
			// would hold this client until the whole body is stored. It
			// gets a response of its own, not stored, as nginx's
			// proxy_cache_lock_timeout does.
			f.cs.collapsed, f.cs.detail, f.mayStore = collapsedUnused, detailCollapseTimeout, false
			return false, f.run(c.w)
		}
		return false, h.serveWaitTimedOut(c, f)
	}
	if o == outcomeUncacheable || (o == outcomeCredentialed && policy.HasCredentials(c.r.Header)) {
		f.cs.collapsed = collapsedUnused
		return false, f.run(c.w)
	}
	if o == outcomeCredentialed {
		// Only the leader's credentials kept its response out: this
		// request, without any, may store it. As after a failed fetch,
		// the waiters collapse again behind one of them.
		o = outcomeFailed
	}
	if o == outcomeStored {
		c.collapse = collapsedServed
	}
	c.leaderFailed = o == outcomeFailed
	return true, nil
}

// serveStored writes a stored response: its header, Age, Cache-Status, and
// its body (or 304 to a matching conditional request, or a range). A nil
// cs stands for a plain hit's: the entry's time to live.
func (h *Handler) serveStored(w http.ResponseWriter, r *http.Request, lk *lookup, dec policy.Decision, cs *cacheStatus, result string) error {
	defer lk.close()
	e, body := lk.entry, lk.body
	h.storedHeader(w.Header(), lk, dec, cs)
	h.report(r, result)

	switch answerFor(r, e) {
	case answerNotModified:
		delete(w.Header(), "Content-Length")
		w.WriteHeader(http.StatusNotModified)
		return nil
	case answerRange:
		return serveRange(w, r, e, body)
	}
	w.WriteHeader(e.Status)
	if r.Method == http.MethodHead {
		return nil
	}
	// Errors writing to the client are the client's (gone); nothing to do.
	if bb, ok := body.(store.BytesBody); ok {
		_, _ = w.Write(bb.Bytes())
		return nil
	}
	_, _ = io.Copy(w, body)
	return nil
}

// storedHeader sets the fields of the stored response lk found in the
// client's header hdr, with Age, Cache-Status cs and, for a response the
// origin sent without a length, Content-Length. A function of its own, so
// that its frame is off the stack when the response is written.
func (h *Handler) storedHeader(hdr http.Header, lk *lookup, dec policy.Decision, cs *cacheStatus) {
	e := lk.entry
	d := h.entryDerived(e)
	if cs == nil {
		cs = &cacheStatus{ttl: dec.TTL, hasTTL: true}
	}
	var status string
	if cs.fwd == "" && cs.detail == "" && cs.hasTTL {
		status = d.hitCacheStatus(cs)
	} else {
		status = cs.String()
	}
	// The response gets value slices of its own (a handler after this one
	// may rewrite values in place: Caddy's header directive assigns to
	// hdr[name][i]), in one allocation with room for Age, Cache-Status and
	// Content-Length.
	var front http.Header
	if len(hdr) > 1 || hdr["Server"] == nil {
		front = frontFields(hdr, &e.Header)
	}
	vals := e.Header.CopyTo(hdr, 3)
	for name, vv := range front {
		hdr[name] = append(vv[:len(vv):len(vv)], hdr[name]...)
	}
	i := len(vals)
	vals = append(vals, strconv.FormatInt(int64(max(dec.Age, 0)/time.Second), 10), status)
	hdr["Age"] = vals[i : i+1 : i+1]
	if d.relayed {
		// RFC 9211 §2: the upstream's members, which CopyTo just set,
		// stay, ours last.
		up := hdr["Cache-Status"]
		hdr["Cache-Status"] = append(up[:len(up):len(up)], status)
	} else {
		// Replaces any member set before: only the stored response's
		// stay.
		hdr["Cache-Status"] = vals[i+1 : i+2 : i+2]
	}
	if _, ok := hdr["Content-Length"]; !ok && lk.body.Size() >= 0 {
		// A response the origin sent without a length (chunked), now
		// stored whole. A follower of one still being written
		// (follow.go) has no length to give: it is sent chunked too.
		vals = append(vals, d.contentLengthOf(lk.body.Size()))
		hdr["Content-Length"] = vals[i+2 : i+3 : i+3]
	}
}

// frontFields returns the fields of the client's header hdr that a
// handler in front of the cache set (a header directive applied at once)
// and that the stored response has too, or nil: the response's values go
// after them, not in their place, as reverse_proxy adds the origin's
// fields to the client's header. Without the cache, the client gets both
// (the operator's Content-Security-Policy or X-Frame-Options and the
// origin's); replaced, the operator's would be lost. Not Server, which
// Caddy sets on every request and reverse_proxy removes, nor Cache-Status,
// whose members storedHeader orders itself.
func frontFields(hdr http.Header, stored *store.Fields) http.Header {
	var front http.Header
	for name, vv := range hdr {
		if name == "Server" || name == "Cache-Status" || !stored.Has(name) {
			continue
		}
		if front == nil {
			front = make(http.Header, 1)
		}
		front[name] = vv
	}
	return front
}

// answer is how a stored response answers a request.
type answer int

const (
	answerWhole       answer = iota // the status and the whole body (none for HEAD)
	answerNotModified               // 304
	answerRange                     // 206 or 416 (serveRange)
)

// answerFor tells how the stored response e answers r: §4.3.2, a fresh or
// validated stored response answers the client's conditional request with
// 304; a complete 200 answers a GET's byte Range with the range.
func answerFor(r *http.Request, e *store.Entry) answer {
	switch {
	case e.Status >= 200 && e.Status < 300 && policy.NotModifiedAt(r.Header, &e.Header, e.ResponseTime):
		return answerNotModified
	case e.Status == http.StatusOK && r.Header["Range"] != nil && byteRange(r):
		return answerRange
	}
	return answerWhole
}

// byteRange tells whether r's Range is one the store answers: RFC 9110
// §14.2, Range is defined for GET only and must be ignored for any other
// method (a HEAD gets the GET's header: 200 and the whole length), and a
// range unit the server does not know is ignored too, never answered with
// 416. http.ServeContent knows "bytes=" alone.
func byteRange(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.HasPrefix(r.Header.Get("Range"), "bytes=")
}

// serveRange answers a Range request (RFC 9110 §14) from a complete stored
// 200 response, with 206 or 416, honouring If-Range against the stored
// ETag and, when it is a strong validator, Last-Modified.
func serveRange(w http.ResponseWriter, r *http.Request, e *store.Entry, body store.Body) error {
	hdr := w.Header()
	// http.ServeContent sets Content-Length itself, except for encoded
	// content, where the stored full length would be wrong for a part.
	delete(hdr, "Content-Length")
	if _, ok := hdr["Content-Type"]; !ok {
		hdr["Content-Type"] = nil // no sniffing: the origin sent none
	}
	// RFC 9110 §13.1.5: an If-Range date matches only a strong
	// Last-Modified (§8.8.2.2); with a zero modtime, ServeContent finds
	// the condition false and sends the whole body.
	modtime, _ := policy.StrongLastModified(&e.Header)
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	http.ServeContent(w, rangeRequest(r), "", modtime, body)
	return nil
}

// rangeRequest returns r as http.ServeContent is to see it: without the
// conditionals that the cache either evaluated already (If-None-Match,
// If-Modified-Since: answerFor) or must not evaluate (If-Match,
// If-Unmodified-Since apply to the origin only, RFC 9111 §4.3.2), so that
// ServeContent evaluates If-Range alone.
func rangeRequest(r *http.Request) *http.Request {
	if !hasAnyField(r.Header, originPreconditions) && !hasAnyField(r.Header, clientConditionals) {
		return r
	}
	r2 := *r
	r2.Header = r.Header.Clone()
	for _, name := range originPreconditions {
		delete(r2.Header, name)
	}
	for _, name := range clientConditionals {
		delete(r2.Header, name)
	}
	return &r2
}

// originPreconditions are the request's preconditions that only the origin
// evaluates (RFC 9111 §4.3.2, RFC 9110 §13.2.2).
var originPreconditions = []string{"If-Match", "If-Unmodified-Since"}

// wantsFill tells whether a Range request that lk cannot answer should
// start a background fill: on a miss, unless the key is hit-for-miss; with
// a stored entry, only when the entry itself is stale, not when the
// request's directives (no-cache, max-age, min-fresh) refused it, nor when
// the response's no-cache asks for a revalidation at every use (§5.2.2.4):
// that would double the origin requests of every range.
func (h *Handler) wantsFill(lk *lookup, reqHeader http.Header) bool {
	if lk.entry == nil {
		// A fill stores the response: with min_uses, only once the URL
		// was requested (ranges included) often enough.
		return !h.hitForMiss(lk.key, reqHeader) && (h.uses == nil || h.usedEnough(lk.pkey))
	}
	if h.entryDerived(lk.entry).fresh.NoCache {
		return false
	}
	return h.evaluate(&policy.Directives{}, lk.entry).Action != policy.Serve
}

// refresh starts a background fetch of the whole GET response for lk.key,
// unless the key is already being fetched, and tells whether it started
// one: the revalidation of a stale entry served under
// stale-while-revalidate (RFC 5861 §3), or, when lk.entry is nil, the fill
// of a key that a Range request missed. It runs detached from the client's
// request, bounded by refreshTimeout, max_object_size and the config's
// lifetime.
//
// done, if not nil, is called once the fetch is over, or at once when
// refresh starts none.
func (h *Handler) refresh(r *http.Request, next caddyhttp.Handler, lk lookup, dec policy.Decision, done func()) bool {
	if done == nil {
		done = func() {}
	}
	// Background fetches are bounded (backgroundFetches): a client's
	// request ends before its refresh, so without a bound, requests for
	// many stale keys at the rate hits are served would start as many
	// origin requests at once, each holding up to max_object_size until it
	// lands. Beyond the bound the stale response is served without a
	// refresh, which RFC 5861 §3 allows (the window bounds its age), and
	// a Range miss just passes through.
	select {
	case h.refreshing <- struct{}{}:
	default:
		done()
		return false
	}
	select {
	case backgroundFetches <- struct{}{}:
	default:
		<-h.refreshing
		done()
		return false
	}
	finished := done
	done = func() {
		<-backgroundFetches
		<-h.refreshing
		finished()
	}
	fl, leader := h.joinFlight(lk.key, leadOnly)
	if !leader {
		done()
		return false
	}
	// Another fetch may have landed since lk was looked up.
	if e, b, err := h.Store.Get(r.Context(), lk.key); err == nil {
		b.Close()
		if lk.entry == nil || e.ResponseTime.After(lk.entry.ResponseTime) {
			h.land(lk.key, fl, outcomeStored)
			done()
			return false
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), refreshTimeout)
	stop := func() bool { return false }
	if h.ctx != nil {
		stop = context.AfterFunc(h.ctx, cancel)
	}
	w := &discardWriter{header: make(http.Header)}
	f := fetch{
		h: h, r: backgroundRequest(ctx, r, w, h.copied, cancel), next: next, dec: dec, mayStore: true, flight: fl, background: true, cancel: cancel,
		lk:         &lookup{pkey: lk.pkey, key: lk.key, fwd: lk.fwd, entry: lk.entry},
		revalidate: lk.entry != nil && policy.HasValidator(&lk.entry.Header),
	}
	f.cs.fwd = lk.fwd
	if lk.entry != nil {
		f.cs.fwd = fwdStale
	}
	if !h.goBackground() {
		// The config is being cleaned up: start nothing it would not wait for.
		stop()
		cancel()
		h.land(lk.key, fl, outcomeFailed)
		done()
		return false
	}
	go func() {
		defer h.wg.Done()
		defer done()
		defer cancel()
		defer stop()
		defer func() {
			if p := recover(); p != nil && p != http.ErrAbortHandler {
				h.logger.Error("background refresh panicked", zap.Any("panic", p))
			}
		}()
		if err := f.run(w); err != nil {
			if c := h.logger.Check(zapcore.DebugLevel, "background refresh failed"); c != nil {
				c.Write(zap.String("key", lk.key), zap.Error(err))
			}
		}
	}()
	return true
}

// backgroundRequest returns the request of a background fetch for the
// client's request r, living in ctx (cancel cancels it) and answered to w:
// the whole GET response, without the client's conditionals, Range and
// body.
//
// The fetch outlives the client's handler, whose goroutine goes on
// meanwhile (the stale response, log_append, the access log): it must not
// read the client's replacer then. Its providers are not only the values
// Set, which are safe to read, but also lazy ones bound to the client's
// request and vars, a plain map (a map handler's destinations), which the
// client's goroutine writes meanwhile (a {http.request.uuid} evaluated
// first in a deferred header or in log_append): the process would die of
// a concurrent map read and write. So the placeholders the next handlers
// looked up in the client's replacer before (keys) are read now, on the
// client's goroutine; one looked up for the first time is learnt, and
// cancels the fetch, which would otherwise store a response to another
// request than the client's: the next one has it.
func backgroundRequest(ctx context.Context, r *http.Request, w http.ResponseWriter, keys *copiedKeys, cancel func()) *http.Request {
	r2 := asideCopy(ctx, r, w, func(orig *caddy.Replacer) caddy.ReplacerFunc {
		known := keys.read(orig)
		return func(key string) (any, bool) {
			if ownProbe(key) {
				return nil, false
			}
			if v, ok := known[key]; ok {
				return v.val, v.ok
			}
			keys.learn(key)
			cancel()
			return nil, false
		}
	})
	// Nor the client's idle timeouts, which the copy's context has from
	// the client's: a timeouts handler after the cache overrides the
	// idle timeout writer and reader it finds there, which are the
	// client's, written meanwhile by the client's goroutine (its
	// response), and restores them, setting the client connection's
	// deadlines, once the refresh is over. Without them, it wraps the
	// refresh's own writer. In place: the replacer reads r2 through this
	// pointer.
	*r2 = *r2.WithContext(caddyhttp.ContextWithIdleTimeouts(r2.Context(), nil, nil))
	r2.Method = http.MethodGet // a HEAD or Range hit refreshes the whole GET response
	for _, name := range clientConditionals {
		delete(r2.Header, name)
	}
	delete(r2.Header, "Range")
	delete(r2.Header, "If-Range")
	// Nor the client's preconditions: the origin would answer them with a
	// 412, which the cache's own GET has no use for.
	delete(r2.Header, "If-Match")
	delete(r2.Header, "If-Unmodified-Since")
	// The refresh is the cache's own GET of the URL: never with the
	// client's request body, whose answer must not be stored.
	r2.Body, r2.ContentLength, r2.TransferEncoding = http.NoBody, 0, nil
	delete(r2.Header, "Content-Length")
	delete(r2.Header, "Transfer-Encoding")
	return r2
}

// asideRequest returns a copy of the client's request r that lives in ctx
// and is answered to w, for a fetch that may outlive r's handler: a
// background fetch, or one that runs aside (aside.go).
//
// The client's goroutine waits for the fetch's calls (relay.serve) while
// the next handlers read the client's replacer, before the response's
// header is relayed: the fetch reads it then, and the keys it finds there
// are learnt for the background fetches (not the others: relay looks up
// reverse_proxy's own, most often unset, in the fetch's replacer).
func asideRequest(ctx context.Context, r *http.Request, w http.ResponseWriter, keys *copiedKeys) *http.Request {
	return asideCopy(ctx, r, w, func(orig *caddy.Replacer) caddy.ReplacerFunc {
		return func(key string) (any, bool) {
			if ownProbe(key) {
				return nil, false
			}
			v, ok := orig.Get(key)
			if ok {
				keys.learn(key)
			}
			return v, ok
		}
	})
}

// asideCopy is asideRequest, whose replacer reads the client's through
// the provider that fallback returns for it.
func asideCopy(ctx context.Context, r *http.Request, w http.ResponseWriter, fallback func(orig *caddy.Replacer) caddy.ReplacerFunc) *http.Request {
	r2 := r.Clone(ctx)
	srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if !ok || srv == nil {
		return r2
	}
	// A replacer and vars of its own: the client's request may be logged
	// while the fetch runs. They start as copies of the client's, so that
	// what earlier handlers set (vars, map) still steers the next handlers
	// (e.g. a dynamic upstream).
	repl := caddy.NewReplacer()
	r2 = caddyhttp.PrepareRequest(r2, repl, w, srv)
	if orig, ok := originalRequest(r); ok {
		// The request before its rewrites is the client's, not r's URL,
		// which PrepareRequest took: the next handlers read it
		// ({http.request.orig_uri}, php_fastcgi's REQUEST_URI) to know
		// which page a rewritten request asks for. Set in place, as the
		// replacer reads r2's context through this pointer.
		u := *orig.URL
		orig.URL = &u
		*r2 = *r2.WithContext(context.WithValue(r2.Context(), caddyhttp.OriginalRequestCtxKey, orig))
	}
	if groups, ok := r.Context().Value(routeGroupCtxKey).(map[string]struct{}); ok {
		// The route groups the client's request matched a route of
		// already (handle blocks), which PrepareRequest forgot: the routes
		// after the cache skip the others of those groups for the
		// client's request, and must for the copy, or a catch-all handle
		// after the one the cache is in would answer it instead of the
		// origin, under the client's key. A copy: the copy's routes add
		// to it.
		*r2 = *r2.WithContext(context.WithValue(r2.Context(), routeGroupCtxKey, maps.Clone(groups)))
	}
	if orig, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		// The fetch's own request answers the request's placeholders
		// (PrepareRequest's provider comes before this one); what reaches
		// the client's are the values earlier handlers set for it, which
		// the next handlers may build the origin's request with: a regexp
		// matcher's captures ({re.*}, http.regexp.*), the authenticated
		// user (http.auth.user.*). Without them, the fetch would ask the
		// origin for another response and store it under the client's key.
		repl.Map(fallback(orig))
	}
	vars, ok := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any)
	vars2, ok2 := r2.Context().Value(caddyhttp.VarsCtxKey).(map[string]any)
	if ok && ok2 {
		// Copied now, while the client's request waits for us; the
		// client's values win over PrepareRequest's: its address
		// (client_ip, trusted_proxy) was determined from its header as it
		// arrived, which earlier handlers may have changed since
		// (request_header -X-Forwarded-For).
		maps.Copy(vars2, vars)
	}
	return r2
}

// routeGroupCtxKey is caddyhttp's context key, unexported, of the route
// groups a request matched a route of (TestFetchAsideSkipsTheGroupsMatched
// fails if it changes).
const routeGroupCtxKey = caddy.CtxKey("route_group")

// copiedKeys are the placeholders that the next handlers of a handler's
// background fetches looked up in their client's replacer (see
// backgroundRequest). They are names in the config, not in requests: a
// few; beyond maxCopiedKeys, a background fetch that looks one up is
// canceled.
type copiedKeys struct {
	mu   sync.Mutex
	keys []string
}

const maxCopiedKeys = 64

// copiedValue is a placeholder's value as the client's replacer gave it.
type copiedValue struct {
	val any
	ok  bool
}

// read returns the values of the keys in orig, the client's replacer.
func (k *copiedKeys) read(orig *caddy.Replacer) map[string]copiedValue {
	if k == nil {
		return nil
	}
	k.mu.Lock()
	keys := k.keys
	k.mu.Unlock()
	if len(keys) == 0 {
		return nil
	}
	known := make(map[string]copiedValue, len(keys))
	for _, key := range keys {
		v, ok := orig.Get(key)
		known[key] = copiedValue{v, ok}
	}
	return known
}

// learn adds key to the keys.
func (k *copiedKeys) learn(key string) {
	if k == nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.keys) < maxCopiedKeys && !slices.Contains(k.keys, key) {
		// A new slice: read's callers may range over the old one.
		k.keys = append(slices.Clip(k.keys), key)
	}
}

// goBackground counts a background fetch about to start in h.wg, which
// Cleanup waits for, and tells whether it may start: not once Cleanup has
// begun (a request of an old config may outlive its grace period), since
// Cleanup would not wait for it (sync.WaitGroup forbids an Add from zero
// concurrent with Wait).
func (h *Handler) goBackground() bool {
	h.bgMu.Lock()
	defer h.bgMu.Unlock()
	if h.cleanedUp {
		return false
	}
	h.wg.Add(1)
	return true
}

// maxBackgroundFetches bounds the background fetches in flight over every
// http_cache of the process (stale-while-revalidate refreshes and range
// fills), and maxHandlerBackgroundFetches those of one handler, so that
// an origin that hangs holds a part of them only: the other sites go on
// refreshing.
const (
	maxBackgroundFetches        = 256
	maxHandlerBackgroundFetches = 32
)

// backgroundFetches holds a token for each background fetch in flight.
var backgroundFetches = make(chan struct{}, maxBackgroundFetches)

// maxRangeFills bounds the background fills that Range misses start, over
// every http_cache of the process. A fill holds up to max_object_size in
// the store's writer until it commits; beyond the limit, a Range miss just
// passes through, so that many Range misses on distinct large objects
// cannot multiply origin traffic and memory.
const maxRangeFills = 4

// rangeFills holds a token for each range fill in flight.
var rangeFills = make(chan struct{}, maxRangeFills)

// discardWriter is the response writer of a background refresh.
type discardWriter struct {
	header http.Header
}

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

// clientConditionals are the request fields a fetch that may store removes
// (and a revalidation replaces with the stored validators): the client's
// own conditionals must not decide what the cache stores (§4.3.1), and the
// cache answers them itself (§4.3.2). If-Match and If-Unmodified-Since are
// left for the origin to evaluate: its 412 is not stored.
var clientConditionals = []string{"If-None-Match", "If-Modified-Since"}
