package cache

import (
	"cmp"
	"encoding/json"
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// terminalHandlers are the handlers that answer every request they get
// and never call the next one. A handler after them in a route list never
// runs. reverse_proxy is one unless it has handle_response routes: those
// may call the next handler (forward_auth's route for an allowed request
// does), see routeHandler. A handle_response with a status_code
// (replace_status) is not one: the proxy only writes the origin's
// response with that status, and runs none of its routes.
var terminalHandlers = map[string]bool{"reverse_proxy": true, "static_response": true, "error": true}

// checkPlacement refuses an http_cache placed after a terminal handler
// (reverse_proxy, respond, error) in the same route list with no matcher
// in between, e.g. "route { reverse_proxy ...; http_cache }": the cache
// would never see a request. A handler cannot see its position, but Caddy
// provisions a route list's handlers in order with the list's owner (the
// subroute of a route or handle block, or the http app for a server's
// top-level routes) in the context's lineage (caddy.Context.Modules):
// the routes before ours are loaded (Handlers), ours and those after it
// still hold their JSON (HandlersRaw). The nearest owner is checked.
//
// It also names an authentication handler (basic_auth, forward_auth)
// placed after http_cache in the same route list, e.g. "route { http_cache;
// forward_auth ...; reverse_proxy ... }": a hit is then served without it.
// That config works, and a response to a request with credentials is
// stored only with explicit freshness (RFC 9111 §3.5, and the cache's
// rule for Cookie), so it is a warning, not an error.
func checkPlacement(ctx caddy.Context) (gate string, err error) {
	mods := ctx.Modules()
	for i := len(mods) - 1; i >= 0; i-- {
		switch m := mods[i].(type) {
		case *caddyhttp.Subroute:
			return checkRoutes(m.Routes)
		case *caddyhttp.App:
			for _, srv := range m.Servers {
				g, err := checkRoutes(srv.Routes)
				if err != nil {
					return "", err
				}
				gate = cmp.Or(gate, g)
			}
			return gate, nil
		}
	}
	return "", nil
}

// checkRoutes finds an http_cache after an unconditional terminal handler
// in routes. It also returns the name of an authentication handler placed
// after an http_cache in routes, for a warning (see gateAfter).
func checkRoutes(routes caddyhttp.RouteList) (gate string, err error) {
	terminal := "" // an unconditional terminal handler in an earlier route
	cached := false
	for _, r := range routes {
		unconditional := len(r.MatcherSets) == 0 && len(r.MatcherSetsRaw) == 0
		inRoute := "" // a terminal handler earlier in this route: matched or not, the rest of the route is dead
		for _, rh := range routeHandlers(r) {
			if before := cmp.Or(inRoute, terminal); rh.name == "http_cache" && before != "" {
				return "", fmt.Errorf("http_cache is placed after %s in the same route list (e.g. in a route block): %s answers every request it gets, so http_cache would never run; put http_cache before it", before, before)
			}
			if cached && gate == "" && (rh.name == "authentication" || rh.gate) {
				gate = rh.name
				if rh.gate {
					gate = "forward_auth (a reverse_proxy whose handle_response lets requests through)"
				}
			}
			cached = cached || rh.name == "http_cache"
			if terminalHandlers[rh.name] && !rh.handlesResponses && inRoute == "" {
				inRoute = rh.name
			}
		}
		if unconditional && terminal == "" {
			terminal = inRoute
		}
	}
	return gate, nil
}

// answering are the handlers that answer a request in a handle_response
// route, or may (a subroute): a route without one goes on to the next
// handler, as forward_auth's does for a request it lets through.
var answering = map[string]bool{"static_response": true, "file_server": true, "reverse_proxy": true, "copy_response": true, "error": true, "subroute": true}

// passesOn tells whether handle_response routes go on to the next
// handler: none of their handlers answers.
func passesOn(routes []caddyhttp.Route) bool {
	for _, r := range routes {
		for _, rh := range routeHandlers(r) {
			if answering[rh.name] {
				return false
			}
		}
	}
	return true
}

// routeHandler is what checkRoutes needs of a handler in a route.
type routeHandler struct {
	name string
	// handlesResponses: a reverse_proxy with handle_response routes,
	// which may go on to the next handler (forward_auth).
	handlesResponses bool
	// gate: a reverse_proxy with a handle_response route that goes on to
	// the next handler (passesOn): forward_auth, which lets a request
	// through once its server says yes.
	gate bool
}

// handleResponse records a handle_response of a reverse_proxy, with its
// status_code and routes. It runs the routes only when it has some and no
// status_code, which reverse_proxy applies in their place.
func (rh *routeHandler) handleResponse(statusCode caddyhttp.WeakString, routes []caddyhttp.Route) {
	if statusCode != "" || len(routes) == 0 {
		return
	}
	rh.handlesResponses = true
	rh.gate = rh.gate || passesOn(routes)
}

// routeHandlers returns the handlers of a route, loaded or not.
func routeHandlers(r caddyhttp.Route) []routeHandler {
	var hs []routeHandler
	if len(r.Handlers) > 0 {
		for _, h := range r.Handlers {
			if m, ok := h.(caddy.Module); ok {
				rh := routeHandler{name: m.CaddyModule().ID.Name()}
				if rp, ok := h.(*reverseproxy.Handler); ok {
					for _, hr := range rp.HandleResponse {
						rh.handleResponse(hr.StatusCode, hr.Routes)
					}
				}
				hs = append(hs, rh)
			}
		}
		return hs
	}
	for _, raw := range r.HandlersRaw {
		var v struct {
			Handler        string `json:"handler"`
			HandleResponse []struct {
				StatusCode caddyhttp.WeakString `json:"status_code"`
				Routes     []caddyhttp.Route    `json:"routes"`
			} `json:"handle_response"`
		}
		if json.Unmarshal(raw, &v) == nil {
			rh := routeHandler{name: v.Handler}
			for _, hr := range v.HandleResponse {
				rh.handleResponse(hr.StatusCode, hr.Routes)
			}
			hs = append(hs, rh)
		}
	}
	return hs
}
