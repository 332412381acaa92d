package cache

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
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

	store        bool   // the response may be stored (GET, no Range, no request no-store)
	revalidate   bool   // send lk.entry's validators; a 304 freshens it (§4.3)
	staleIfError bool   // on an origin error, serve lk.entry stale (RFC 5861 §4)
	background   bool   // a background refresh or range fill: nobody to answer
	cancel       func() // of a background fetch: stops it once nothing will be stored
	flight       *flight
	cs           cacheStatus // Cache-Status so far (fwd, collapsed, detail)
}

// run sends the request to the next handler and handles the response:
// streams it to w while storing it, or freshens the stored entry with a
// 304, or replaces an origin error by the stale entry.
func (f *fetch) run(w http.ResponseWriter) error {
	h := f.h
	if !f.store {
		f.revalidate = false
	}
	o := outcomeFailed
	landed := false
	land := func() {
		if f.flight != nil && !landed {
			landed = true
			h.land(f.lk.key, f.flight, o)
		}
	}
	defer land()
	defer f.lk.close()

	out := f.r
	if f.store && !f.background {
		// The client's own conditionals must not decide what is stored:
		// fetch the whole response, answer the client's conditional from it.
		out = f.r.Clone(f.r.Context())
		for _, k := range clientConditionals {
			delete(out.Header, k)
		}
	}
	if f.revalidate {
		// §4.3.1: validate with the stored response's validators.
		for k, v := range policy.ConditionalHeaders(f.lk.entry.Header) {
			out.Header[k] = v
		}
	}

	fw := &fetchWriter{f: f, rw: w, header: make(http.Header), reqTime: h.now()}
	metrics.origin.Inc()
	p, err := callNext(f.next, fw, out)
	o = fw.finish(err, p != nil)
	if p != nil {
		land()
		panic(p)
	}

	switch {
	case fw.captured && fw.status == http.StatusNotModified:
		e, uerr := f.freshen(fw)
		if uerr == nil {
			o = outcomeStored
		}
		land()
		if f.background {
			return uerr
		}
		dec := h.evaluate(f.rq, e)
		f.lk.entry = e
		cs := f.cs
		cs.fwdStatus, cs.stored, cs.ttl, cs.hasTTL = http.StatusNotModified, uerr == nil, dec.TTL, true
		return h.serveStored(w, f.r, f.lk, dec, cs, resultRevalidated)

	case fw.captured:
		land()
		return f.serveStale(w, fw.status)

	case err != nil && !fw.wroteHeader:
		land()
		if f.staleIfError && f.r.Context().Err() == nil && isOriginFailure(err) {
			status := http.StatusBadGateway
			var he caddyhttp.HandlerError
			if errors.As(err, &he) && he.StatusCode != 0 {
				status = he.StatusCode
			}
			if c := h.logger.Check(zapcore.DebugLevel, "origin failed, serving stale"); c != nil {
				c.Write(zap.String("key", f.lk.key), zap.Error(err))
			}
			return f.serveStale(w, status)
		}
		if !f.background {
			cs := f.cs
			w.Header()["Cache-Status"] = []string{cs.String()}
			h.report(f.r, resultUncacheable)
		}
		return err
	}
	return err
}

// serveStale answers with the stale stored entry after the origin failed
// with status.
func (f *fetch) serveStale(w http.ResponseWriter, status int) error {
	cs := cacheStatus{fwd: fwdStale, fwdStatus: status, ttl: f.dec.TTL, hasTTL: true, detail: "stale-if-error", collapsed: f.cs.collapsed}
	return f.h.serveStored(w, f.r, f.lk, f.dec, cs, resultStale)
}

// freshen updates the stored entry with a 304 response (§4.3.4) and
// returns the updated entry.
func (f *fetch) freshen(fw *fetchWriter) (*store.Entry, error) {
	h := f.h
	nm := fw.header.Clone()
	policy.StripHopByHop(nm)
	delete(nm, "Set-Cookie")
	e := f.lk.entry.Clone()
	e.SoftPurged = false // validated: no longer purged
	e.Header = policy.Freshen(e.Header, nm).Clone()
	e.RequestTime, e.ResponseTime = fw.reqTime, fw.respTime
	d := h.derive(e.Status, e.Header, e.RequestTime, e.ResponseTime)
	e.Derived = d
	e.Expires = h.expires(d, e.Header, e.ResponseTime)
	e.Tags = tags(e.Header)
	err := h.Store.Update(f.r.Context(), f.lk.key, e)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		h.logger.Error("freshening a stored response", zap.String("key", f.lk.key), zap.Error(err))
	}
	return e, err
}

// expires is when the store may drop a response (derived data dv, header hdr) received
// at responseTime: after its freshness and stale windows, and, for one that
// can be revalidated, revalidationKeep more.
func (h *Handler) expires(dv *derived, hdr http.Header, responseTime time.Time) time.Time {
	fr := dv.fresh
	d := fr.Lifetime + max(fr.StaleWhileRevalidate, fr.StaleIfError)
	if policy.HasValidator(hdr) {
		d += revalidationKeep
	}
	return responseTime.Add(max(d, 0))
}

// tags returns the surrogate keys of a response: the space- or
// comma-separated values of Cache-Tag and Surrogate-Key.
func tags(hdr http.Header) []string {
	var out []string
	for _, name := range []string{"Cache-Tag", "Surrogate-Key"} {
		for _, v := range hdr[name] {
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
	f      *fetch
	rw     http.ResponseWriter
	header http.Header // the next handler's header, until passed on

	passed      bool // header passed to rw: Header returns rw's
	wroteHeader bool
	status      int
	reqTime     time.Time
	respTime    time.Time

	captured     bool // response kept from the client
	suppressBody bool // the client gets 304, the body only goes to the store

	sw       store.Writer // nil when not storing
	entry    *store.Entry
	storeKey string
	vary     []string // when storing a variant: the Vary fields
	written  int64
	reason   string  // why the response is not stored
	aborted  outcome // the outcome when the store write was aborted
	abortSet bool
}

// Header returns the header map the next handler fills.
func (fw *fetchWriter) Header() http.Header {
	if fw.passed {
		return fw.rw.Header()
	}
	return fw.header
}

// WriteHeader decides what happens to the response and passes its header
// on to the client.
func (fw *fetchWriter) WriteHeader(status int) {
	if fw.wroteHeader {
		return
	}
	f, h := fw.f, fw.f.h
	if status >= 100 && status < 200 {
		// Informational (e.g. 103 Early Hints): pass on, not final.
		dst := fw.rw.Header()
		for k, v := range fw.header {
			dst[k] = v
		}
		fw.rw.WriteHeader(status)
		return
	}
	fw.wroteHeader, fw.status, fw.respTime = true, status, h.now()

	if f.revalidate && status == http.StatusNotModified {
		fw.captured = true
		return
	}
	// RFC 5861 §4: an error is a 500, 502, 503 or 504.
	if f.staleIfError && (status == 500 || status == 502 || status == 503 || status == 504) {
		fw.captured = true
		return
	}
	if f.store {
		fw.decideStore(status)
	}

	dst := fw.rw.Header()
	for k, v := range fw.header {
		dst[k] = v
	}
	fw.passed = true
	if f.background {
		if fw.sw == nil {
			// Nobody gets this body: do not download it.
			fw.stop()
		}
		return
	}
	cs := f.cs
	cs.fwdStatus = status
	result := resultUncacheable
	if fw.sw != nil {
		cs.stored = true
		result = resultMiss
		d := fw.entry.Derived.(*derived)
		cs.ttl, cs.hasTTL = d.fresh.Lifetime-d.initialAge, true
	} else if fw.reason != "" && (cs.detail == "" || cs.detail == detailHitForMiss) {
		// Why this response is not stored says more than that the last
		// one was not.
		cs.detail = fw.reason
	}
	prev := dst["Cache-Status"]
	dst["Cache-Status"] = append(prev[:len(prev):len(prev)], cs.String())
	h.report(f.r, result)

	if f.store && status == http.StatusOK && policy.NotModified(f.r.Header, dst) {
		// The client's conditional matches the fresh response (§4.3.2):
		// 304 to the client, the body into the store only.
		fw.suppressBody = true
		delete(dst, "Content-Length")
		fw.rw.WriteHeader(http.StatusNotModified)
		return
	}
	fw.rw.WriteHeader(status)
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
	ok, reason := policy.Storable(http.MethodGet, f.r.Header, status, fw.header, h.opts)
	if !ok {
		fw.reason = string(reason)
		return
	}
	size := int64(-1)
	if cl := fw.header.Get("Content-Length"); cl != "" {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || n < 0 {
			fw.reason = "bad-content-length"
			return
		}
		if n > h.MaxObjectSize {
			fw.reason = string(policy.ReasonTooLarge)
			return
		}
		size = n
	}
	key := f.lk.pkey
	var vary []string
	if _, ok := fw.header["Vary"]; ok {
		vary = varyFields(fw.header)
		if len(vary) > 0 {
			sec, ok := policy.VaryKey(vary, f.r.Header)
			if !ok {
				fw.reason = string(policy.ReasonVaryStar)
				return
			}
			key = f.lk.pkey + varySep + sec
		}
	}
	hdr := fw.header.Clone()
	policy.StripHopByHop(hdr)
	// The cookie goes to the client that caused the fetch, never to others.
	delete(hdr, "Set-Cookie")
	dv := h.derive(status, hdr, fw.reqTime, fw.respTime)
	e := &store.Entry{
		Status:       status,
		Header:       hdr,
		RequestTime:  fw.reqTime,
		ResponseTime: fw.respTime,
		Expires:      h.expires(dv, hdr, fw.respTime),
		Tags:         tags(hdr),
		Size:         size,
		Derived:      dv,
	}
	sw, err := h.Store.Put(f.r.Context(), key, e)
	if err != nil {
		if errors.Is(err, store.ErrTooLarge) {
			fw.reason = string(policy.ReasonTooLarge)
			return
		}
		h.logger.Error("starting to store a response", zap.String("key", key), zap.Error(err))
		fw.reason = "store-error"
		return
	}
	fw.sw, fw.entry, fw.storeKey, fw.vary = sw, e, key, vary
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
	fw.reason, fw.aborted, fw.abortSet = reason, o, true
	fw.stop()
	if c := fw.f.h.logger.Check(zapcore.DebugLevel, "not storing response"); c != nil {
		c.Write(zap.String("key", fw.storeKey), zap.String("reason", reason))
	}
}

// Write sends p to the client and into the store.
func (fw *fetchWriter) Write(p []byte) (int, error) {
	if !fw.wroteHeader {
		fw.WriteHeader(http.StatusOK)
	}
	if fw.captured {
		return len(p), nil
	}
	n, err := len(p), error(nil)
	if !fw.suppressBody {
		n, err = fw.rw.Write(p)
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
	}
	fw.written += int64(n)
	return n, err
}

// ReadFrom lets a response that is not stored use the client writer's
// ReadFrom (sendfile); a stored one is copied through Write.
func (fw *fetchWriter) ReadFrom(src io.Reader) (int64, error) {
	if !fw.wroteHeader {
		fw.WriteHeader(http.StatusOK)
	}
	if fw.sw == nil && !fw.captured && !fw.suppressBody {
		if rf, ok := fw.rw.(io.ReaderFrom); ok {
			n, err := rf.ReadFrom(src)
			fw.written += n
			return n, err
		}
	}
	return io.Copy(writerOnly{fw}, src)
}

// writerOnly hides ReadFrom, so io.Copy uses Write.
type writerOnly struct{ io.Writer }

// FlushError flushes the client writer (reverse_proxy streams with it).
func (fw *fetchWriter) FlushError() error {
	if !fw.wroteHeader {
		fw.WriteHeader(http.StatusOK)
	}
	if fw.captured || fw.suppressBody {
		return nil
	}
	return http.NewResponseController(fw.rw).Flush()
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
	if fw.captured {
		return outcomeFailed
	}
	if fw.sw == nil {
		if fw.abortSet {
			return fw.aborted
		}
		// A server error is a failure, not a property of the resource:
		// remembering it as hit-for-miss would send every request of the
		// key to an origin that is struggling.
		if fw.wroteHeader && f.store && fw.reason != "" && fw.reason != "store-error" && fw.status < 500 {
			return outcomeUncacheable
		}
		return outcomeFailed
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
		h.logger.Error("committing a stored response", zap.String("key", fw.storeKey), zap.Error(err))
		return outcomeFailed
	}
	fw.sw = nil
	if len(fw.vary) > 0 {
		fw.putMarker()
	}
	return outcomeStored
}

// putMarker stores the vary marker under the primary key: an entry with
// status 0 and the Vary fields of the variant just stored (§4.1).
func (fw *fetchWriter) putMarker() {
	f, h := fw.f, fw.f.h
	m := &store.Entry{
		Header:       http.Header{"Vary": {strings.Join(fw.vary, ", ")}},
		RequestTime:  fw.reqTime,
		ResponseTime: fw.respTime,
		Expires:      fw.entry.Expires,
		Size:         0,
		Derived:      fw.vary, // the parsed field names, for lookups
	}
	mw, err := h.Store.Put(f.r.Context(), f.lk.pkey, m)
	if err == nil {
		err = mw.Commit()
	}
	if err != nil {
		h.logger.Error("storing a vary marker", zap.String("key", f.lk.pkey), zap.Error(err))
	}
}

// Interface guards
var (
	_ http.ResponseWriter = (*fetchWriter)(nil)
	_ http.Flusher        = (*fetchWriter)(nil)
	_ io.ReaderFrom       = (*fetchWriter)(nil)
)
