package geofilter

import (
	"encoding/json"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// An http_cache that runs before a geofilter answers a hit itself: the
// filter never sees the request, and a response stored for an allowed
// client is served to a denied one. The Caddyfile orders a site's
// geofilter before its http_cache, but a geofilter in a handle (or route)
// block runs after a cache of the site's top level, which is the usual way
// to guard one path. A handler cannot see its position, but Caddy
// provisions a route list's routes in order with the list's owner (a
// subroute, or the http app) in the context's lineage: the routes before
// ours are loaded (HandlersRaw cleared), ours and those after it still
// hold their JSON (as http_cache's own placement check reads them).

// cacheModuleName is the handler name of http_cache.
const cacheModuleName = "http_cache"

// cacheAhead is what findCacheAhead found of the caches that run before a
// geofilter.
type cacheAhead struct {
	found bool // a cache runs before the filter, for some requests at least
	// every: the cache takes every request that reaches the filter (no
	// matcher on its way, no bypass), so every stored response skips it.
	every bool
}

// bypasser is what http_cache tells of its bypass matchers.
type bypasser interface{ HasBypass() bool }

// findCacheAhead looks, in every route list that holds the handler being
// provisioned, for an http_cache in a route before the handler's (or
// earlier in the handler's own route).
func findCacheAhead(ctx caddy.Context) cacheAhead {
	var c cacheAhead
	mods := ctx.Modules()
	for i := len(mods) - 1; i >= 0; i-- {
		switch m := mods[i].(type) {
		case *caddyhttp.Subroute:
			c.routesAhead(m.Routes, false)
		case *caddyhttp.App:
			for _, srv := range m.Servers {
				// A server none of whose routes is loaded yet is ours
				// (the filter in its first route) or one provisioned
				// after it: only with one server can it be told.
				if len(m.Servers) == 1 || len(srv.Routes) > 0 && srv.Routes[0].HandlersRaw == nil {
					c.routesAhead(srv.Routes, false)
				}
			}
			return c
		}
	}
	return c
}

// routesAhead records the caches of the routes before the one being
// loaded (the first that still holds its JSON); conditional tells that
// those routes run only for some requests. A list whose routes are all
// loaded is another server's, provisioned before: none of it runs before
// the filter.
func (c *cacheAhead) routesAhead(routes caddyhttp.RouteList, conditional bool) {
	ours := -1
	for i := range routes {
		if routes[i].HandlersRaw != nil {
			ours = i
			break
		}
	}
	if ours < 0 {
		return
	}
	for i := range ours {
		r := &routes[i]
		if routes[ours].Group != "" && r.Group == routes[ours].Group || r.Terminal {
			// Of the same group as ours (only one of them runs), or
			// terminal (another site's: when it runs, nothing after it
			// does).
			continue
		}
		cond := conditional || len(r.MatcherSets) > 0 || len(r.MatcherSetsRaw) > 0
		for _, h := range r.Handlers {
			c.handlerAhead(h, cond)
		}
	}
	// In the route being loaded, a cache (or a subroute that holds one)
	// before a geofilter (or a subroute that holds one: the filter being
	// provisioned is in one of them) runs first for every request of the
	// route.
	var before cacheAhead
	for _, raw := range routes[ours].HandlersRaw {
		if before.found && rawHasFilter(raw) {
			c.found = true
			c.every = c.every || before.every && !conditional
		}
		before.rawHandler(raw, false)
	}
}

// rawHandlerJSON is what the checks read of a handler not loaded yet.
type rawHandlerJSON struct {
	Handler string            `json:"handler"`
	Bypass  []json.RawMessage `json:"bypass"` // http_cache's
	Routes  []struct {        // subroute's
		Match    json.RawMessage   `json:"match"`
		Handle   []json.RawMessage `json:"handle"`
		Terminal bool              `json:"terminal"`
	} `json:"routes"`
}

// rawHasFilter tells whether the handler raw (JSON) is a geofilter or a
// subroute that holds one.
func rawHasFilter(raw json.RawMessage) bool {
	var v rawHandlerJSON
	if json.Unmarshal(raw, &v) != nil {
		return false
	}
	if v.Handler == "geofilter" {
		return true
	}
	for _, r := range v.Routes {
		for _, h := range r.Handle {
			if rawHasFilter(h) {
				return true
			}
		}
	}
	return false
}

// rawHandler records the handler raw (JSON, not loaded yet) if it is a
// cache, or a subroute that holds one.
func (c *cacheAhead) rawHandler(raw json.RawMessage, conditional bool) {
	var v rawHandlerJSON
	if json.Unmarshal(raw, &v) != nil {
		return
	}
	switch v.Handler {
	case cacheModuleName:
		c.found = true
		c.every = c.every || !conditional && len(v.Bypass) == 0
	case "subroute":
		for _, r := range v.Routes {
			if r.Terminal {
				continue // when it runs, the chain ends in it
			}
			for _, h := range r.Handle {
				c.rawHandler(h, conditional || len(r.Match) > 0)
			}
		}
	}
}

// handlerAhead records h if it is a cache, or holds one that runs before
// the rest of the chain (the routes of a subroute call the next handler
// after them).
func (c *cacheAhead) handlerAhead(h caddyhttp.MiddlewareHandler, conditional bool) {
	switch h := h.(type) {
	case *caddyhttp.Subroute:
		for i := range h.Routes {
			r := &h.Routes[i]
			if r.Terminal {
				continue // when it runs, the chain ends in it
			}
			cond := conditional || len(r.MatcherSets) > 0 || len(r.MatcherSetsRaw) > 0
			for _, sh := range r.Handlers {
				c.handlerAhead(sh, cond)
			}
		}
	case caddy.Module:
		if h.CaddyModule().ID.Name() != cacheModuleName {
			return
		}
		c.found = true
		if b, ok := h.(bypasser); ok && b.HasBypass() {
			conditional = true
		}
		c.every = c.every || !conditional
	}
}
