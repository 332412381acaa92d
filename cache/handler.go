// Package cache implements http_cache, an RFC 9111 shared HTTP cache for
// Caddy.
package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddy-edge/edge/cache/internal/ratelog"
	"github.com/caddy-edge/edge/cache/policy"
	"github.com/caddy-edge/edge/cache/store"
	_ "github.com/caddy-edge/edge/cache/store/memory" // the default store, loaded by its module ID
)

// Defaults of the handler's options.
const (
	DefaultMaxObjectSize   int64 = 32 << 20
	DefaultCollapseTimeout       = 10 * time.Second
	DefaultHitForMissTTL         = 30 * time.Second
	// DefaultStaleIfUnreachable is stale_if_unreachable's default.
	DefaultStaleIfUnreachable = 24 * time.Hour
	// refreshTimeout bounds a background fetch: a stale-while-revalidate
	// refresh or the fill started by a Range miss.
	refreshTimeout = 30 * time.Second
	// revalidationKeep is how long past its freshness (and stale windows)
	// the store keeps a response that has a validator, so that it can be
	// revalidated with a cheap 304 instead of fetched again.
	revalidationKeep = time.Hour
)

// Handler is an RFC 9111 shared HTTP cache. It sits in front of
// reverse_proxy (or any handler that produces responses) and serves stored
// responses without asking the next handler.
//
// Every response that passed through the cache carries a Cache-Status
// field (RFC 9211) for the cache "caddy-edge", and every response served
// from the store an Age field. The handler sets this placeholder and the
// access-log field http_cache_status with the same value:
//
// Placeholder | Description
// ------------|-------------
// `{http_cache.status}` | `hit`, `stale`, `revalidated`, `collapsed`, `miss`, `uncacheable`, `bypass` or `unavailable`
//
// hit: a fresh stored response; stale: a stale one (stale-while-revalidate
// or stale-if-error); revalidated: a stored response the origin confirmed
// with 304; collapsed: the request waited for another request's fetch and
// was served from it; miss: fetched and stored; uncacheable: fetched and not
// stored; bypass: not looked up (bypass matcher, method other than GET and
// HEAD, Upgrade); unavailable: only-if-cached with nothing usable (504).
type Handler struct {
	// The store that keeps responses, a module in the http.cache.stores
	// namespace. Default: the memory store with its defaults (256 MiB).
	StoreRaw json.RawMessage `json:"store,omitempty" caddy:"namespace=http.cache.stores inline_key=module"`

	// The cache key, a placeholder template, e.g.
	// "{http.request.host}{http.request.uri.path}". Default: scheme, host,
	// path and query of the request (built without the replacer).
	Key string `json:"key,omitempty"`

	// Sort the query parameters by name in the default key, so that ?a=1&b=2
	// and ?b=2&a=1 are one entry. Not with key. Default: off.
	SortQuery bool `json:"sort_query,omitempty"`

	// Placeholders whose values select a variant, as if the response's Vary
	// named them, e.g. ["{geo.country_code}", "{http.request.header.X-Device}"]:
	// every response is stored as a variant under the URL's key (so a purge
	// of the URL or of a prefix takes every variant), chosen by the values
	// of these placeholders (and of the fields the response's Vary lists).
	// Each is one placeholder in braces; an unknown one is empty. Default:
	// none.
	Vary []string `json:"vary,omitempty"`

	// Query parameters left out of the default key, as globs (path.Match
	// syntax), e.g. ["utm_*", "fbclid"]. The origin still receives them.
	// Not with key.
	IgnoreQueryParams []string `json:"ignore_query_params,omitempty"`

	// Freshness lifetime of a response that gives none (no max-age,
	// s-maxage, Expires, and no Last-Modified for heuristics). Default: 0,
	// such responses are not stored unless they have a validator.
	DefaultTTL caddy.Duration `json:"default_ttl,omitempty"`

	// Freshness lifetimes by status code, each in place of default_ttl
	// for responses with that status that give none, as nginx's
	// proxy_cache_valid 404 1m: {"404": 60000000000}. A status listed
	// here may be stored without explicit freshness, as if cacheable by
	// default (RFC 9110 §15.1), so that a 302 can be given a lifetime too;
	// the origin's no-store, private and explicit lifetimes still win.
	// Statuses 200-599 but 206, 304, 412 and 414, which are never stored;
	// with statuses, only statuses listed there. Default: none.
	DefaultTTLByStatus map[int]caddy.Duration `json:"default_ttl_by_status,omitempty"`

	// UNSAFE: let default_ttl and heuristic freshness (10% of the time
	// since Last-Modified, RFC 9111 §4.2.2) apply to responses to requests
	// that carried Cookie or Authorization. Such a response may be one
	// user's page; by default it is stored only when the origin gives it
	// explicit freshness (max-age, s-maxage or Expires), so that a page
	// that forgot its Cache-Control is never served to another client.
	// Default: false.
	UnsafeCredentialedHeuristics bool `json:"unsafe_credentialed_heuristics,omitempty"`

	// Upper bound of every freshness lifetime. Default: no bound.
	MaxTTL caddy.Duration `json:"max_ttl,omitempty"`

	// stale-while-revalidate window (RFC 5861) for responses that send
	// none. Default: 0 (only what the origin sends).
	StaleWhileRevalidate caddy.Duration `json:"stale_while_revalidate,omitempty"`

	// stale-if-error window (RFC 5861) for responses that send none.
	// Default: 0 (only what the origin sends).
	StaleIfError caddy.Duration `json:"stale_if_error,omitempty"`

	// How long past its freshness a stored response is served (stale)
	// when the origin cannot be reached: the next handler fails before
	// any response header (connection refused or reset, timeout), as
	// opposed to answering with a 5xx, which stale_if_error covers.
	// Never for responses with must-revalidate, proxy-revalidate,
	// s-maxage or no-cache (RFC 9111 §4.2.4). Stored responses are kept
	// this long past their freshness for it. 0 turns it off. Default:
	// 86400000000000 (1 day).
	StaleIfUnreachable *caddy.Duration `json:"stale_if_unreachable,omitempty"`

	// Status codes that may be stored. Default: those cacheable by default
	// (RFC 9110 §15.1) and any final status with explicit freshness.
	Statuses []int `json:"statuses,omitempty"`

	// Store responses that have Set-Cookie. The stored copy never has the
	// Set-Cookie field: only the client that caused the fetch gets the
	// cookie. Default: false (such responses are not stored).
	AllowSetCookie bool `json:"allow_set_cookie,omitempty"`

	// The largest body stored, in bytes; larger bodies still stream to the
	// client. Default: 32 MiB.
	MaxObjectSize int64 `json:"max_object_size,omitempty"`

	// How long a request waits for another request's fetch of the same key
	// before it goes to the origin itself. Default: 10s.
	CollapseTimeout caddy.Duration `json:"collapse_timeout,omitempty"`

	// How long a key whose response was not storable goes straight to the
	// origin, without waiting for other requests of the same key
	// (Varnish's hit-for-miss). Default: 30s.
	HitForMissTTL caddy.Duration `json:"hit_for_miss_ttl,omitempty"`

	// How many requests for a URL with nothing stored it takes before its
	// response is stored, as nginx's proxy_cache_min_uses: the requests
	// before that go to the origin and are not stored
	// (Cache-Status detail=min-uses), so that URLs requested once do not
	// push out those requested often. Requests are counted for 10
	// minutes from a URL's first; at most 100,000 URLs are counted at a
	// time. Default: 1, the first response is stored.
	MinUses int `json:"min_uses,omitempty"`

	// Requests that match any of these matcher sets bypass the cache: they
	// are neither looked up nor stored.
	BypassRaw caddyhttp.RawMatcherSets `json:"bypass,omitempty" caddy:"namespace=http.matchers"`

	// Store is the store in use, loaded from StoreRaw.
	Store store.Store `json:"-"`

	storeName string
	// storeHits and storeMisses count the lookups in the store by result.
	storeHits, storeMisses prometheus.Counter
	bypass                 caddyhttp.MatcherSets
	keys                   keyer
	opts                   policy.Options
	optsKey                string   // opts as a string: tells derived data computed with other options
	releaseDerive          []func() // release the keys given to the store's SetDerive
	logger                 *zap.Logger
	// storeErrs rate-limits the log lines of failed store operations.
	storeErrs *ratelog.ByMessage
	// noAccessLog: the server this handler is in writes no access log, so
	// the result is not added to the log's fields (ExtraLogFields.Set
	// allocates). A handler belongs to one server, known at Provision.
	noAccessLog bool
	ctx         context.Context  // the config's context: done when it is unloaded
	now         func() time.Time // the clock; time.Now unless a test injects one

	mu      *sync.Mutex        // protects flights, hfm and uses
	flights map[string]*flight // key -> the fetch in flight
	hfm     map[uint64]hfmMark // hit-for-miss: the key's hash -> until when, for whom
	uses    map[uint64]useMark // min_uses: the key's hash -> its requests so far
	// keySeed seeds the hashes of hfm's and uses' keys (see keyHash).
	keySeed maphash.Seed

	wg *sync.WaitGroup // background refreshes
	// refreshing holds a token for each of the handler's background
	// fetches in flight (see maxHandlerBackgroundFetches).
	refreshing chan struct{}
	bgMu       *sync.Mutex // protects cleanedUp, and h.wg's Add against Cleanup's Wait
	cleanedUp  bool        // Cleanup has begun: no new background fetch
	// copied are the placeholders background fetches read from their
	// client's replacer (backgroundRequest).
	copied *copiedKeys
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.http_cache",
		New: func() caddy.Module { return new(Handler) },
	}
}

// HasBypass reports whether the handler has bypass matchers, which pass
// the requests they match on without the cache. A geofilter that runs
// after the cache asks: without them, every response the cache stores is
// served to clients the filter would deny.
func (h *Handler) HasBypass() bool { return len(h.bypass) > 0 }

// Provision sets up the handler: loads the store and the bypass matchers,
// applies defaults, registers metrics and makes the store known to the
// admin API.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.storeErrs = new(ratelog.ByMessage)
	gate, err := checkPlacement(ctx)
	if err != nil {
		return err
	}
	if gate != "" {
		h.logger.Warn("http_cache runs before an authentication handler in the same route list: a stored response is served to clients that handler would refuse; put http_cache after it", zap.String("handler", gate))
	}
	h.ctx = ctx
	if srv, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok && srv != nil {
		h.noAccessLog = srv.Logs == nil
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.MaxObjectSize == 0 {
		h.MaxObjectSize = DefaultMaxObjectSize
	}
	if h.CollapseTimeout == 0 {
		h.CollapseTimeout = caddy.Duration(DefaultCollapseTimeout)
	}
	if h.HitForMissTTL == 0 {
		h.HitForMissTTL = caddy.Duration(DefaultHitForMissTTL)
	}

	if err := h.loadStore(ctx); err != nil {
		return err
	}
	h.storeHits, h.storeMisses = metrics.storeLookups(h.storeName)

	if h.BypassRaw != nil {
		ms, err := ctx.LoadModule(h, "BypassRaw")
		if err != nil {
			return fmt.Errorf("loading bypass matchers: %w", err)
		}
		if err := h.bypass.FromInterface(ms); err != nil {
			return fmt.Errorf("bypass matchers: %w", err)
		}
	}

	h.keys = newKeyer(h.Key, h.SortQuery, h.IgnoreQueryParams, h.Vary)
	h.opts = policy.Options{
		Statuses:               h.Statuses,
		AllowSetCookie:         h.AllowSetCookie,
		CredentialedHeuristics: h.UnsafeCredentialedHeuristics,
		DefaultTTL:             time.Duration(h.DefaultTTL),
		StatusTTLs:             statusTTLs(h.DefaultTTLByStatus),
		MaxTTL:                 time.Duration(h.MaxTTL),
		StaleWhileRevalidate:   time.Duration(h.StaleWhileRevalidate),
		StaleIfError:           time.Duration(h.StaleIfError),
		StaleIfUnreachable:     DefaultStaleIfUnreachable,
	}
	if h.StaleIfUnreachable != nil {
		h.opts.StaleIfUnreachable = time.Duration(*h.StaleIfUnreachable)
	}
	h.optsKey = fmt.Sprintf("%+v", h.opts)
	for _, status := range slices.Sorted(maps.Keys(h.DefaultTTLByStatus)) {
		if perRequestStatus(status) {
			h.logger.Warn("default_ttl for a status that usually answers the request, not the URL: one client's response is stored and served to every client of the URL",
				zap.Int("status", status))
		}
	}
	// A store that decodes entries (memory, disk) or fills a copy of
	// entries it read elsewhere (tiered's memory tier) derives them once,
	// so that its hits parse no header.
	if ds, ok := h.Store.(store.Deriving); ok {
		// The function holds the options, not the handler: a store
		// outlives the configs it served.
		fn := optionsDeriver{key: h.optsKey, opts: h.opts}.entry
		h.releaseDerive = append(h.releaseDerive, ds.SetDerive(h.optsKey, fn), ds.SetDerive(markerDeriveKey, fn))
	}
	h.flights = make(map[string]*flight)
	h.hfm, h.keySeed = make(map[uint64]hfmMark), maphash.MakeSeed()
	if h.MinUses > 1 {
		h.uses = make(map[uint64]useMark)
	}
	h.mu = new(sync.Mutex)
	h.wg = new(sync.WaitGroup)
	h.refreshing = make(chan struct{}, maxHandlerBackgroundFetches)
	h.bgMu = new(sync.Mutex)
	h.copied = new(copiedKeys)

	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("registering metrics: %w", err)
	}
	live.add(h)
	return nil
}

// optionsDeriver derives entries' data with one set of options.
type optionsDeriver struct {
	key  string
	opts policy.Options
}

// entry returns what a fetch stores as e.Derived: the derived data, or
// for a vary marker (status 0) its Vary field names.
func (d optionsDeriver) entry(e *store.Entry) any {
	if e.Status == 0 {
		return varyFields(&e.Header)
	}
	return d.derive(e.Status, &e.Header, e.RequestTime, e.ResponseTime)
}

// loadStore loads the configured store, or the default memory store, and
// the name it goes by in metrics and the admin API.
func (h *Handler) loadStore(ctx caddy.Context) error {
	var mod any
	var err error
	if h.StoreRaw != nil {
		mod, err = ctx.LoadModule(h, "StoreRaw")
	} else {
		mod, err = ctx.LoadModuleByID("http.cache.stores.memory", json.RawMessage("{}"))
	}
	if err != nil {
		return fmt.Errorf("loading store: %w", err)
	}
	st, ok := mod.(store.Store)
	if !ok {
		return fmt.Errorf("store module %T is not a cache store", mod)
	}
	h.Store = st
	switch m := mod.(type) {
	case store.Namer:
		h.storeName = m.StoreName()
	case caddy.Module:
		h.storeName = m.CaddyModule().ID.Name()
	}
	return nil
}

// validateKeyTemplate refuses a key template that would give every
// request one key: one without a placeholder, or with a placeholder
// that no request has a value for. Every placeholder of Caddy and its
// modules has a dotted name; a name without a dot is a Caddyfile
// shorthand ({host}, {uri}, {path}) that only the Caddyfile adapter
// expands, given in JSON, where it stays empty.
func validateKeyTemplate(t string) error {
	segs := parseTemplate(t)
	n, perRequest := 0, 0
	for _, s := range segs {
		if s.lit != "" {
			continue
		}
		n++
		if !strings.Contains(s.ph, ".") {
			return fmt.Errorf("key: {%s} in template %q is no placeholder (a Caddyfile shorthand, which JSON does not expand?): write its full name, such as {http.request.host} or {http.request.uri}", s.ph, t)
		}
		if !processWide(s.ph) {
			perRequest++
		}
	}
	switch {
	case n == 0:
		return fmt.Errorf("key: template %q holds no placeholder: every request would share one entry", t)
	case perRequest == 0:
		return fmt.Errorf("key: template %q holds only placeholders of the process ({env.*}, {system.*}, {time.*}, {file.*}), the same for every request: every request would share one entry; add one of the request, such as {http.request.uri}", t)
	}
	return nil
}

// processWide tells whether ph is one of Caddy's global placeholders,
// whose value is not the request's: environment variables, system
// facts, the clock and files' contents (caddy.NewReplacer's providers).
func processWide(ph string) bool {
	return strings.HasPrefix(ph, "env.") || strings.HasPrefix(ph, "system.") || strings.HasPrefix(ph, "time.") || strings.HasPrefix(ph, "file.")
}

// Validate checks the configuration.
func (h *Handler) Validate() error {
	if h.MaxObjectSize < 0 {
		return errors.New("max_object_size must not be negative")
	}
	if h.MinUses < 0 || h.MinUses > maxMinUses {
		return fmt.Errorf("min_uses %d: want 1 to %d", h.MinUses, maxMinUses)
	}
	if err := h.validateDurations(); err != nil {
		return err
	}
	for _, s := range h.Statuses {
		if s < 200 || s > 599 {
			return fmt.Errorf("status %d cannot be stored: statuses are final status codes 200-599", s)
		}
		if neverStored(s) {
			return fmt.Errorf("statuses: a %d is never stored (it is part of a response, only freshens a stored one, or answers the request's preconditions or the length of its target)", s)
		}
	}
	if err := validateVary(h.Vary); err != nil {
		return err
	}
	for _, c := range h.Key {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("key: template %q holds a control character", h.Key)
		}
	}
	if h.Key != "" {
		if err := validateKeyTemplate(h.Key); err != nil {
			return err
		}
	}
	if h.Key != "" && (h.SortQuery || len(h.IgnoreQueryParams) > 0) {
		return fmt.Errorf("sort_query and ignore_query_params shape the default key only: with key %q they would do nothing", h.Key)
	}
	for _, g := range h.IgnoreQueryParams {
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("ignore_query_params: bad glob %q: %v", g, err)
		}
	}
	return nil
}

// validateDurations refuses negative durations and a default_ttl longer
// than max_ttl.
func (h *Handler) validateDurations() error {
	var staleIfUnreachable caddy.Duration
	if h.StaleIfUnreachable != nil {
		staleIfUnreachable = *h.StaleIfUnreachable
	}
	for _, d := range []struct {
		name string
		d    caddy.Duration
	}{
		{"default_ttl", h.DefaultTTL}, {"max_ttl", h.MaxTTL},
		{"stale_while_revalidate", h.StaleWhileRevalidate}, {"stale_if_error", h.StaleIfError},
		{"stale_if_unreachable", staleIfUnreachable},
		{"collapse_timeout", h.CollapseTimeout}, {"hit_for_miss_ttl", h.HitForMissTTL},
	} {
		if d.d < 0 {
			return fmt.Errorf("%s must not be negative", d.name)
		}
	}
	if h.MaxTTL > 0 && h.DefaultTTL > h.MaxTTL {
		return fmt.Errorf("default_ttl %s is longer than max_ttl %s", time.Duration(h.DefaultTTL), time.Duration(h.MaxTTL))
	}
	for _, status := range slices.Sorted(maps.Keys(h.DefaultTTLByStatus)) {
		d := h.DefaultTTLByStatus[status]
		switch {
		case status < 200 || status > 599:
			return fmt.Errorf("default_ttl for status %d: statuses are final status codes 200-599", status)
		case neverStored(status):
			return fmt.Errorf("default_ttl for status %d: a %d is never stored (it is part of a response, only freshens a stored one, or answers the request's preconditions or the length of its target)", status, status)
		case d <= 0:
			return fmt.Errorf("default_ttl for status %d must be positive", status)
		case h.MaxTTL > 0 && d > h.MaxTTL:
			return fmt.Errorf("default_ttl %s for status %d is longer than max_ttl %s", time.Duration(d), status, time.Duration(h.MaxTTL))
		case h.Statuses != nil && !slices.Contains(h.Statuses, status):
			return fmt.Errorf("default_ttl for status %d: the status is not in statuses %v, so it is never stored", status, h.Statuses)
		}
	}
	return nil
}

// neverStored tells whether a response with status is never stored
// whatever the options: a 206 (part of a response), a 304 (it freshens
// a stored one), a 412 (the answer to the request's If-Match or
// If-Unmodified-Since) and a 414 (the answer to the request target's
// length, which the key may not hold whole; see fetchWriter.decideStore).
func neverStored(status int) bool {
	return status == http.StatusPartialContent || status == http.StatusNotModified || answersTheRequest(status)
}

// answersTheRequest tells whether a final status answers something of the
// request that its key may not hold, rather than the resource: a 412 (its
// If-Match or If-Unmodified-Since, which the origin evaluates) or a 414
// (the length of its target, which ignore_query_params or a key template
// may leave out of the key). Such a response is never stored, and does
// not make its key hit-for-miss: any client could send it.
func answersTheRequest(status int) bool {
	return status == http.StatusPreconditionFailed || status == http.StatusRequestURITooLong
}

// perRequestStatus tells whether a 4xx status usually answers the
// request rather than the URL: its credentials (401, 403, 407), its
// syntax, size or type (400, 411, 413, 415, 417, 422, 431), its timing or
// rate (408, 428, 429). Given a lifetime by default_ttl, one client's
// such response would be served to every client of the URL; allowed, as
// nginx allows it, but warned about.
func perRequestStatus(status int) bool {
	switch status {
	case 400, 401, 403, 407, 408, 411, 413, 415, 417, 422, 428, 429, 431:
		return true
	}
	return false
}

// statusTTLs converts default_ttl_by_status for the policy; nil when empty.
func statusTTLs(m map[int]caddy.Duration) map[int]time.Duration {
	if len(m) == 0 {
		return nil
	}
	out := make(map[int]time.Duration, len(m))
	for status, d := range m {
		out[status] = time.Duration(d)
	}
	return out
}

// validateVary requires each vary entry to be one placeholder, listed
// once.
func validateVary(vary []string) error {
	seen := make(map[string]bool)
	for _, v := range vary {
		if len(v) < 3 || v[0] != '{' || v[len(v)-1] != '}' || strings.ContainsAny(v[1:len(v)-1], "{}") {
			return fmt.Errorf("vary: %q is not one placeholder such as {geo.country_code}", v)
		}
		if seen[v] {
			return fmt.Errorf("vary: %s listed twice", v)
		}
		seen[v] = true
	}
	return nil
}

// Cleanup waits for background refreshes and makes the handler unknown to
// the admin API. The store itself is cleaned up by Caddy, which loaded it.
func (h *Handler) Cleanup() error {
	live.remove(h)
	// Once no handler holds these options' key, the store derives their
	// entries with the function set last (a reload's new handler).
	for _, release := range h.releaseDerive {
		release()
	}
	h.releaseDerive = nil
	if h.wg != nil {
		h.bgMu.Lock()
		h.cleanedUp = true
		h.bgMu.Unlock()
		h.wg.Wait()
	}
	return nil
}

// purgeKey removes the entry under the primary key and all its variants,
// and returns how many entries it removed. With soft, it marks them
// store.Entry.SoftPurged instead, so that they are revalidated before
// they are served again.
func (h *Handler) purgeKey(ctx context.Context, key string, soft bool) (int, error) {
	n := 0
	if e, body, err := h.Store.Get(ctx, key); err == nil {
		body.Close()
		if soft {
			if !e.SoftPurged {
				se := e.Clone()
				se.SoftPurged = true
				if err := h.Store.Update(ctx, key, se); err == nil {
					n++
				} else if !errors.Is(err, store.ErrNotFound) {
					return 0, err
				}
			} else {
				n++
			}
		} else {
			n++
		}
	}
	if !soft {
		if err := h.Store.Delete(ctx, key); err != nil {
			return 0, err
		}
	}
	m, err := h.Store.PurgePrefix(ctx, key+varySep, soft)
	if err != nil {
		return n, err
	}
	return n + m, nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
