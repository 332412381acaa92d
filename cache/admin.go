package cache

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"sync"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-edge/edge/cache/store"
)

// Admin is the admin API of http_cache (module admin.api.http_cache). Its
// routes:
//
//	POST /http_cache/purge   {"url": "https://example.com/a"}  a URL: all its variants, for GET and HEAD
//	                         {"prefix": "https://example.com/img/"}  every key with that prefix
//	                         {"tag": "product-42"}  every entry whose Cache-Tag or Surrogate-Key had the tag
//	GET  /http_cache/stats   requests by result, hits, misses and hit ratio since
//	                         Caddy started, and the occupation of every store in use
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
	}
}

// PurgeRequest is the body of POST /http_cache/purge; exactly one field is
// set.
type PurgeRequest struct {
	URL    string `json:"url,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	Tag    string `json:"tag,omitempty"`
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
		n, err = live.purgeURL(ctx, u)
	case req.Prefix != "":
		kind = "prefix"
		n, err = live.each(func(s store.Store) (int, error) { return s.PurgePrefix(ctx, req.Prefix) })
	default:
		kind = "tag"
		n, err = live.each(func(s store.Store) (int, error) { return s.PurgeTag(ctx, req.Tag) })
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
		out = append(out, liveStore{name: h.storeName, store: h.Store})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// each calls f on every live store once and sums the counts.
func (g *registry) each(f func(store.Store) (int, error)) (int, error) {
	total := 0
	for _, ls := range g.stores() {
		n, err := f(ls.store)
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// purgeURL removes u's primary key and all its variants from the store of
// every live handler, each handler computing the key its own way.
func (g *registry) purgeURL(ctx context.Context, u *url.URL) (int, error) {
	g.mu.Lock()
	hs := make([]*Handler, 0, len(g.handlers))
	for h := range g.handlers {
		hs = append(hs, h)
	}
	g.mu.Unlock()
	total := 0
	for _, h := range hs {
		n, err := h.purgeKey(ctx, h.keys.keyForURL(u))
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// Interface guards
var (
	_ caddy.AdminRouter = (*Admin)(nil)
)
