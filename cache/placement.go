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
func checkPlacement(ctx caddy.Context) error {
	mods := ctx.Modules()
	for i := len(mods) - 1; i >= 0; i-- {
		switch m := mods[i].(type) {
		case *caddyhttp.Subroute:
			return checkRoutes(m.Routes)
		case *caddyhttp.App:
			for _, srv := range m.Servers {
				if err := checkRoutes(srv.Routes); err != nil {
					return err
				}
			}
			return nil
		}
	}
	return nil
}

// checkRoutes finds an http_cache after an unconditional terminal handler
// in routes.
func checkRoutes(routes caddyhttp.RouteList) error {
	terminal := "" // an unconditional terminal handler in an earlier route
	for _, r := range routes {
		unconditional := len(r.MatcherSets) == 0 && len(r.MatcherSetsRaw) == 0
		inRoute := "" // a terminal handler earlier in this route: matched or not, the rest of the route is dead
		for _, rh := range routeHandlers(r) {
			if before := cmp.Or(inRoute, terminal); rh.name == "http_cache" && before != "" {
				return fmt.Errorf("http_cache is placed after %s in the same route list (e.g. in a route block): %s answers every request it gets, so http_cache would never run; put http_cache before it", before, before)
			}
			if terminalHandlers[rh.name] && !rh.handlesResponses && inRoute == "" {
				inRoute = rh.name
			}
		}
		if unconditional && terminal == "" {
			terminal = inRoute
		}
	}
	return nil
}

// routeHandler is what checkRoutes needs of a handler in a route.
type routeHandler struct {
	name string
	// handlesResponses: a reverse_proxy with handle_response routes,
	// which may go on to the next handler (forward_auth).
	handlesResponses bool
}

// runsRoutes tells whether a handle_response of a reverse_proxy runs
// routes: it has some, and no status_code, which reverse_proxy applies in
// their place.
func runsRoutes(statusCode caddyhttp.WeakString, routes int) bool {
	return statusCode == "" && routes > 0
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
						rh.handlesResponses = rh.handlesResponses || runsRoutes(hr.StatusCode, len(hr.Routes))
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
				Routes     []json.RawMessage    `json:"routes"`
			} `json:"handle_response"`
		}
		if json.Unmarshal(raw, &v) == nil {
			rh := routeHandler{name: v.Handler}
			for _, hr := range v.HandleResponse {
				rh.handlesResponses = rh.handlesResponses || runsRoutes(hr.StatusCode, len(hr.Routes))
			}
			hs = append(hs, rh)
		}
	}
	return hs
}
