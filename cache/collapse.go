package cache

import (
	"context"
	"hash/maphash"
	"net/http"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-edge/edge/cache/policy"
)

// Request collapsing
//
// At most one request per store key goes to the origin at a time: the
// first miss (the leader) opens a flight under the key, later requests for
// the key (waiters) wait for it to land, bounded by collapse_timeout and
// their own context, then look the key up again. If the leader's fetch
// failed (an origin error, a body cut short), the waiters collapse once
// more, behind one of them, within the same collapse_timeout: a transient
// failure costs one more origin request, not one per waiter. If the
// leader's response was not storable, the key is remembered as hit-for-miss for
// hit_for_miss_ttl: its requests then go to the origin side by side instead
// of queueing behind one another, and the waiters of that flight go to the
// origin at once.

// outcome is how a flight ended.
type outcome int

const (
	outcomeNone        outcome = iota // not known yet
	outcomeFailed                     // the fetch broke (origin error, client gone): nothing stored, try again
	outcomeStored                     // a response was stored or freshened under the key
	outcomeUncacheable                // the response could not be stored
	// outcomeCredentialed: the response was not stored only because the
	// request carried Cookie or Authorization. It says nothing of what a
	// request without them gets: only credentialed requests of the key skip
	// collapsing afterwards (see hitForMiss).
	outcomeCredentialed
)

// hfmMark is a hit-for-miss key's entry: until when, and whether it holds
// only for requests with credentials (outcomeCredentialed).
type hfmMark struct {
	until        time.Time
	credentialed bool
}

// flight is a fetch in progress for one key.
type flight struct {
	// done is closed when the flight lands. It is made by the first
	// request that joins, under Handler.mu, and never changed after: most
	// flights have no waiter, and a miss makes one allocation less.
	done    chan struct{}
	outcome outcome // written before done is closed
	waiters int     // requests that joined and still wait; protected by Handler.mu
	// streaming is set once the origin answered the leader with a
	// response that is being stored: its body is on its way.
	streaming atomic.Bool

	// started is closed when the leader's response can be followed (see
	// follow.go): its header is known and its body is being stored. It
	// is made by the first waiter, under Handler.mu (a closed channel
	// when following started before any waiter came), and never changed.
	started chan struct{}
	// following and the fields of src are set by the leader before it
	// closes started, and never changed after.
	following bool
	src       followSource
}

// maxHitForMiss bounds the hit-for-miss map; when it is full, expired
// entries are dropped, and others until an eighth of it is free (see
// makeRoom).
const maxHitForMiss = 10000

// joinMode says how a request takes part in the flight of a key.
type joinMode int

const (
	// joinOrLead joins the flight in the air as a waiter, or opens one and
	// leads it: a miss that may be stored.
	joinOrLead joinMode = iota
	// leadOnly opens a flight only if none is in the air, and never waits:
	// a background refresh or range fill, which another fetch makes
	// needless.
	leadOnly
	// waitOnly joins the flight in the air as a waiter, and never opens
	// one: a HEAD miss, which a GET in flight can answer.
	waitOnly
)

// joinFlight finds or opens the flight for key as mode says. It returns the
// flight and whether the caller opened it, and so leads it (and must land
// it); fl is nil when mode allows neither (leadOnly with a flight in the
// air, waitOnly with none).
func (h *Handler) joinFlight(key string, mode joinMode) (fl *flight, leader bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if fl, ok := h.flights[key]; ok {
		if mode == leadOnly {
			return nil, false
		}
		fl.waiters++
		if fl.done == nil {
			fl.done = make(chan struct{})
		}
		if fl.started == nil {
			fl.started = make(chan struct{})
		}
		return fl, false
	}
	if mode == waitOnly {
		return nil, false
	}
	fl = &flight{}
	h.flights[key] = fl
	return fl, true
}

// land ends the flight fl for key with outcome o and wakes its waiters.
func (h *Handler) land(key string, fl *flight, o outcome) {
	hk := h.keyHash(key)
	h.mu.Lock()
	if h.flights[key] == fl {
		delete(h.flights, key)
	}
	switch o {
	case outcomeUncacheable, outcomeCredentialed:
		now := h.now()
		if len(h.hfm) >= maxHitForMiss {
			makeRoom(h.hfm, maxHitForMiss, func(m hfmMark) bool { return !now.Before(m.until) })
		}
		m := hfmMark{until: now.Add(time.Duration(h.HitForMissTTL)), credentialed: o == outcomeCredentialed}
		if old, ok := h.hfm[hk]; ok && m.credentialed && !old.credentialed && now.Before(old.until) {
			m = old // a mark for every request is not narrowed by a credentialed one
		}
		h.hfm[hk] = m
	case outcomeStored:
		delete(h.hfm, hk)
	}
	waiters, done := fl.waiters, fl.done
	// Woken now, they wait no more (see flightWaited): a fetch that lands
	// before its body ends (not stored) does not outlive its client for
	// them.
	fl.waiters = 0
	h.mu.Unlock()
	fl.outcome = o
	if done != nil {
		close(done)
	}
	if c := h.logger.Check(zapcore.DebugLevel, "fetch landed"); c != nil {
		c.Write(zap.String("key", key), zap.Int("outcome", int(o)), zap.Int("waiters", waiters))
	}
}

// hitForMiss tells whether key was recently found uncacheable for a
// request with header reqHeader: for any request, or, when only a
// request's credentials kept the response out of the store, for requests
// that carry credentials too.
func (h *Handler) hitForMiss(key string, reqHeader http.Header) bool {
	hk := h.keyHash(key)
	h.mu.Lock()
	defer h.mu.Unlock()
	m, ok := h.hfm[hk]
	if !ok {
		return false
	}
	if !h.now().Before(m.until) {
		delete(h.hfm, hk)
		return false
	}
	return !m.credentialed || policy.HasCredentials(reqHeader)
}

// min_uses bounds: how long a key's requests are counted from its first,
// how many keys are counted at a time, and the largest min_uses.
const (
	minUsesWindow = 10 * time.Minute
	maxUsesKeys   = 100_000
	maxMinUses    = 1000
)

// useMark counts the requests of a key with nothing stored (min_uses).
type useMark struct {
	n     int
	since time.Time // the first request counted
}

// usedEnough counts a request for key, which has nothing stored, and
// tells whether it is at least the min_uses-th within minUsesWindow: its
// response may then be stored. A key keeps its count once it got there,
// so that the requests that come while its first stored response is
// being fetched collapse behind that fetch. When maxUsesKeys keys are
// counted, expired counts are dropped, and others until an eighth of the
// room is free: a flood of URLs requested once only resets counts.
//
// Keys are counted by a 64-bit hash, as nginx's keys_zone keeps a hash:
// the keys themselves, each up to a request line long, would let a
// flood of long URLs requested once hold maxUsesKeys of them (about
// 2 GiB at Caddy's 16 KiB header limit). Two keys with one hash share a
// count: one of them is stored a request early.
func (h *Handler) usedEnough(key string) bool {
	hk := h.keyHash(key)
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	m, ok := h.uses[hk]
	if !ok || now.Sub(m.since) > minUsesWindow {
		if !ok && len(h.uses) >= maxUsesKeys {
			makeRoom(h.uses, maxUsesKeys, func(u useMark) bool { return now.Sub(u.since) > minUsesWindow })
		}
		m = useMark{since: now}
	}
	m.n = min(m.n+1, h.MinUses)
	h.uses[hk] = m
	return m.n >= h.MinUses
}

// makeRoom drops the expired marks of m, a map of at most limit marks,
// and others, in the map's random order, until an eighth of limit is
// free: a flood of keys that each come once only resets marks, and the
// map never grows past limit. Each call walks the whole map under the
// handler's lock; freeing an eighth makes the next limit/8 new keys walk
// nothing. Dropping only what had expired would not: when keys come at
// about the rate at which their marks expire, a few expire between two
// new keys, and every new key would walk the map (100,000 marks of
// min_uses, about a millisecond each, at 170 new URLs a second).
func makeRoom[V any](m map[uint64]V, limit int, expired func(V) bool) {
	for k, v := range m {
		if expired(v) {
			delete(m, k)
		}
	}
	for k := range m {
		if len(m) <= limit-limit/8 {
			break
		}
		delete(m, k)
	}
}

// keyHash is the hash the hit-for-miss and min_uses maps keep of a key,
// not the key itself: a key may be as long as a request line (16 KiB at
// Caddy's header limit), and any client can make a key hit-for-miss (an
// uncacheable URL) or counted (min_uses), so the maps would otherwise
// hold their maximum of such keys: 160 MiB and 1.6 GiB. Seeded per
// handler; two keys of one hash share a mark, which costs one of them a
// collapse or a request early.
func (h *Handler) keyHash(key string) uint64 { return maphash.String(h.keySeed, key) }

// storedWithoutFlight forgets that key was hit-for-miss once a fetch that
// led no flight (one that skipped collapsing) stored a response under it.
func (h *Handler) storedWithoutFlight(key string) {
	hk := h.keyHash(key)
	h.mu.Lock()
	delete(h.hfm, hk)
	h.mu.Unlock()
}

// wait waits for fl to land, at most until until and while ctx lives, or
// with a non-nil started until the flight's response can be followed
// (follow is true then, and the request still counts as a waiter). ok is
// false when it stopped waiting first.
func (h *Handler) wait(ctx context.Context, fl *flight, until time.Time, started <-chan struct{}) (o outcome, ok, follow bool) {
	t := time.NewTimer(time.Until(until))
	defer t.Stop()
	select {
	case <-fl.done:
		return fl.outcome, true, false
	case <-started:
		return outcomeNone, false, true
	case <-t.C:
	case <-ctx.Done():
	}
	h.stopWaiting(fl)
	return outcomeNone, false, false
}

// flightWaited tells whether any request still waits for fl.
func (h *Handler) flightWaited(fl *flight) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return fl.waiters > 0
}
