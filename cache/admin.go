package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-edge/edge/cache/policy"
	"github.com/caddy-edge/edge/cache/store"
)

// Admin is the admin API of http_cache (module admin.api.http_cache). Its
// routes:
//
//	POST /http_cache/purge   {"url": "https://example.com/a"}  a URL: all its variants, for GET and HEAD
//	                         {"prefix": "https://example.com/img/"}  every key with that prefix
//	                         {"tag": "product-42"}  every entry whose Cache-Tag or Surrogate-Key had the tag
//	                         with "soft": true, the entries are marked stale instead of removed
//	GET  /http_cache/stats   requests by result, hits, misses and hit ratio since
//	                         Caddy started, and the occupation and counters of every store in use
//	GET  /http_cache/entries?prefix=...&limit=...&after=...&store=...  the stored entries, by key
//
// Purges act on every store used by a live http_cache handler. Purging is
// only possible through the admin API, never through requests to a site.
type Admin struct{}

// CaddyModule returns the Caddy module information.
func (Admin) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.http_cache",
		New: func() caddy.Module { return new(Admin) },
	}
}

// Routes returns the admin routes of http_cache.
func (a *Admin) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/http_cache/purge", Handler: caddy.AdminHandlerFunc(a.handlePurge)},
		{Pattern: "/http_cache/stats", Handler: caddy.AdminHandlerFunc(a.handleStats)},
		{Pattern: "/http_cache/entries", Handler: caddy.AdminHandlerFunc(a.handleEntries)},
	}
}

// PurgeRequest is the body of POST /http_cache/purge; exactly one field is
// set.
type PurgeRequest struct {
	URL    string `json:"url,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	Tag    string `json:"tag,omitempty"`
	// Soft marks the entries stale instead of removing them: they are
	// revalidated with the origin (a 304 keeps the body) and may still be
	// served where stale responses are allowed (stale-if-error).
	Soft bool `json:"soft,omitempty"`
}

// PurgeResponse is the answer to a purge.
type PurgeResponse struct {
	// Purged is the number of entries removed (vary markers and variants
	// count one each), or -1 when a store cannot tell.
	Purged int `json:"purged"`
}

func (a *Admin) handlePurge(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method not allowed")}
	}
	var req PurgeRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("decoding purge request: %v", err)}
	}
	// One JSON object and nothing after it (but white space): a body such
	// as {"url":"a"}{"url":"b"} is refused whole rather than half obeyed.
	if _, err := dec.Token(); err != io.EOF {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("decoding purge request: data after the JSON object")}
	}
	set := 0
	for _, s := range []string{req.URL, req.Prefix, req.Tag} {
		if s != "" {
			set++
		}
	}
	if set != 1 {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("purge request needs exactly one of url, prefix, tag")}
	}
	ctx := r.Context()
	var (
		n    int
		err  error
		kind string
	)
	switch {
	case req.URL != "":
		u, perr := url.Parse(req.URL)
		if perr != nil || u.Scheme == "" || u.Host == "" {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("purge url must be absolute, e.g. https://example.com/path: %q", req.URL)}
		}
		kind = "url"
		n, err = live.purgeURL(ctx, u, req.Soft)
	case req.Prefix != "":
		kind = "prefix"
		purges.record(purgeRecord{prefix: req.Prefix}) // before it removes anything (see purges.go)
		n, err = live.each(func(s store.Store) (int, error) { return s.PurgePrefix(ctx, req.Prefix, req.Soft) })
	default:
		kind = "tag"
		purges.record(purgeRecord{tag: req.Tag})
		n, err = live.each(func(s store.Store) (int, error) { return s.PurgeTag(ctx, req.Tag, req.Soft) })
	}
	if req.Soft {
		kind = "soft_" + kind
	}
	if n > 0 {
		metrics.purged.WithLabelValues(kind).Add(float64(n))
	}
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: fmt.Errorf("purging: %v", err)}
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(PurgeResponse{Purged: n})
}

// StoreStats is one store's entry in GET /http_cache/stats.
type StoreStats struct {
	Name string `json:"name"`
	store.Stats
}

// StatsResponse is the answer to GET /http_cache/stats.
type StatsResponse struct {
	// Requests counts the requests of each result ({http_cache.status})
	// since Caddy started, as caddy_http_cache_requests_total does.
	Requests map[string]uint64 `json:"requests"`
	// Hits are the requests served from the store: hit, stale,
	// revalidated and collapsed.
	Hits uint64 `json:"hits"`
	// Misses are the requests looked up that found nothing usable: miss,
	// uncacheable and unavailable. Bypassed requests are neither.
	Misses uint64 `json:"misses"`
	// HitRatio is Hits / (Hits + Misses), rounded to 3 decimals; 0 before
	// the first lookup.
	HitRatio float64      `json:"hit_ratio"`
	Stores   []StoreStats `json:"stores"`
}

func (a *Admin) handleStats(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method not allowed")}
	}
	resp := StatsResponse{Requests: metrics.requestCounts(), Stores: []StoreStats{}}
	for result, n := range resp.Requests {
		switch result {
		case resultHit, resultStale, resultRevalidated, resultCollapsed:
			resp.Hits += n
		case resultMiss, resultUncacheable, resultUnavailable:
			resp.Misses += n
		}
	}
	if total := resp.Hits + resp.Misses; total > 0 {
		resp.HitRatio = math.Round(float64(resp.Hits)/float64(total)*1000) / 1000
	}
	for _, ls := range live.stores() {
		resp.Stores = append(resp.Stores, StoreStats{Name: ls.name, Stats: ls.store.Stats()})
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(resp)
}

// Bounds of GET /http_cache/entries.
const (
	defaultEntriesLimit = 100
	maxEntriesLimit     = 1000
)

// EntryInfo is one entry in GET /http_cache/entries.
type EntryInfo struct {
	// Key is the store key: for a variant, the primary key, a NUL byte
	// and the request's values of the Vary fields.
	Key string `json:"key"`
	// Status is the stored status code; 0 for a vary marker.
	Status int `json:"status"`
	// Size is the body's length in bytes.
	Size int64 `json:"size"`
	// Age is the entry's current age in seconds (RFC 9111 §4.2.3).
	Age int64 `json:"age"`
	// TTL is the freshness left, in seconds: negative once stale.
	TTL int64 `json:"ttl"`
	// Tags are the entry's surrogate keys.
	Tags []string `json:"tags"`
	// SoftPurged tells a soft-purged entry (stale until revalidated).
	SoftPurged bool `json:"soft_purged,omitempty"`
	// Store is the name of the store that holds it.
	Store string `json:"store"`
}

// EntriesResponse is the answer to GET /http_cache/entries.
type EntriesResponse struct {
	Entries []EntryInfo `json:"entries"`
	// Next is the after value that gives the next page; empty on the
	// last page.
	Next string `json:"next,omitempty"`
}

// handleEntries lists stored entries in key order. Query parameters:
// prefix (keys that start with it), after (keys greater than it: the next
// value of the previous page), limit (default 100, at most 1000) and store
// (only the store of that name; default every store in use, merged by key).
func (a *Admin) handleEntries(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method not allowed")}
	}
	q := r.URL.Query()
	limit, err := entriesLimit(q.Get("limit"))
	if err != nil {
		return err
	}
	// One more than the page from each store, to tell whether there is a
	// next page.
	all, err := listEntries(r.Context(), q.Get("store"), q.Get("prefix"), q.Get("after"), limit+1)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(entriesPage(all, limit))
}

// entriesLimit parses the limit parameter of the entries listing.
func entriesLimit(v string) (int, error) {
	if v == "" {
		return defaultEntriesLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxEntriesLimit {
		return 0, caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("limit must be an integer from 1 to %d: %q", maxEntriesLimit, v)}
	}
	return n, nil
}

// listEntries lists, sorted by key, at most limit entries of each live
// store (of the store named only, if not empty) whose key starts with
// prefix and comes after after.
func listEntries(ctx context.Context, only, prefix, after string, limit int) ([]EntryInfo, error) {
	var all []EntryInfo
	found := false
	for _, ls := range live.stores() {
		if only != "" && ls.name != only {
			continue
		}
		found = true
		l, err := ls.store.Entries(ctx, prefix, after, limit)
		if err != nil {
			return nil, caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: fmt.Errorf("listing store %s: %v", ls.name, err)}
		}
		now := ls.h.now()
		for _, le := range l {
			all = append(all, entryInfo(ls, le, now))
		}
	}
	if only != "" && !found {
		return nil, caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no store named %q in use", only)}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Key < all[j].Key })
	return all, nil
}

// entriesPage makes the page of at most limit entries from all (sorted by
// key), with the key to continue after when there are more.
func entriesPage(all []EntryInfo, limit int) EntriesResponse {
	resp := EntriesResponse{Entries: all}
	if len(all) > limit {
		// Cut between two keys, never inside one key held by several
		// stores, so that the next page starts after the last key listed.
		cut := limit
		for cut > 0 && all[cut].Key == all[cut-1].Key {
			cut--
		}
		if cut == 0 { // one key fills the page: list all its copies
			for cut = limit; cut < len(all) && all[cut].Key == all[0].Key; cut++ {
			}
		}
		resp.Entries = all[:cut]
		if cut < len(all) {
			resp.Next = all[cut-1].Key
		}
	}
	if resp.Entries == nil {
		resp.Entries = []EntryInfo{}
	}
	return resp
}

// entryInfo describes a listed entry, its age and ttl as seen by the
// handler h of its store at now.
func entryInfo(ls liveStore, le store.Listed, now time.Time) EntryInfo {
	e := le.Entry
	info := EntryInfo{Key: le.Key, Status: e.Status, Size: e.Size, Tags: e.Tags, SoftPurged: e.SoftPurged, Store: ls.name}
	if info.Tags == nil {
		info.Tags = []string{}
	}
	d := ls.h.entryDerived(e)
	age := policy.AgeAt(d.initialAge, e.ResponseTime, now)
	fr := d.fresh
	if e.SoftPurged {
		fr = softPurged(fr, age)
	}
	info.Age = int64(max(age, 0) / time.Second)
	info.TTL = int64((fr.Lifetime - age) / time.Second)
	return info
}

// registry knows the live handlers, so that the admin API (provisioned
// before any app) and the store metrics find the stores in use per
// request. Handlers add themselves in Provision and leave in Cleanup.
type registry struct {
	mu       sync.Mutex        // protects handlers
	handlers map[*Handler]bool // live handlers
}

var live = &registry{handlers: make(map[*Handler]bool)}

func (g *registry) add(h *Handler) {
	g.mu.Lock()
	g.handlers[h] = true
	g.mu.Unlock()
}

func (g *registry) remove(h *Handler) {
	g.mu.Lock()
	delete(g.handlers, h)
	g.mu.Unlock()
}

// liveStore is a store in use, with the name it is reported by.
type liveStore struct {
	name  string
	store store.Store
	h     *Handler // a handler that uses it, for the freshness of its entries
}

// stores returns each live store once, sorted by name. Handlers that name
// the same store (e.g. memory stores of one name) share it, so a store is
// identified by its name.
func (g *registry) stores() []liveStore {
	g.mu.Lock()
	defer g.mu.Unlock()
	names := make(map[string]bool)
	var out []liveStore
	for h := range g.handlers {
		if h.Store == nil || names[h.storeName] {
			continue
		}
		names[h.storeName] = true
		out = append(out, liveStore{name: h.storeName, store: h.Store, h: h})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// each calls f on every live store once and sums the counts. A store that
// fails does not keep f from the others: the errors are joined, each
// naming its store.
func (g *registry) each(f func(store.Store) (int, error)) (int, error) {
	total := 0
	var errs []error
	for _, ls := range g.stores() {
		n, err := f(ls.store)
		total += n
		if err != nil {
			errs = append(errs, fmt.Errorf("store %s: %w", ls.name, err))
		}
	}
	return total, errors.Join(errs...)
}

// purgeURL removes u's primary key and all its variants from the store of
// every live handler, each handler computing the key its own way. A key
// that handlers sharing a store compute alike is purged (and counted) once.
func (g *registry) purgeURL(ctx context.Context, u *url.URL, soft bool) (int, error) {
	g.mu.Lock()
	hs := make([]*Handler, 0, len(g.handlers))
	for h := range g.handlers {
		hs = append(hs, h)
	}
	g.mu.Unlock()
	type storeKey struct{ store, key string }
	done := make(map[storeKey]bool, len(hs))
	total := 0
	var errs []error
	for _, h := range hs {
		key := h.keys.keyForURL(u)
		sk := storeKey{h.storeName, key}
		if done[sk] {
			continue
		}
		done[sk] = true
		purges.record(purgeRecord{key: key}) // before it removes anything (see purges.go)
		n, err := h.purgeKey(ctx, key, soft)
		total += n
		if err != nil {
			errs = append(errs, fmt.Errorf("store %s: %w", h.storeName, err))
		}
	}
	return total, errors.Join(errs...)
}

// Interface guards
var (
	_ caddy.AdminRouter = (*Admin)(nil)
)
