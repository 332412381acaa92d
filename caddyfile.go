package edge

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-edge/edge/cache"
	"github.com/caddy-edge/edge/geofilter"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("http_cache", parseHTTPCache)
	httpcaddyfile.RegisterHandlerDirective("geofilter", parseGeofilter)

	// geofilter runs before header: blocked requests cost nothing, and the
	// {geo.*} placeholders are set for every later directive.
	httpcaddyfile.RegisterDirectiveOrder("geofilter", httpcaddyfile.Before, "header")

	// http_cache runs after basic_auth, forward_auth and request_header (a hit
	// is never served to a client that fails authentication, and the key sees
	// the rewritten request) and before encode and reverse_proxy.
	httpcaddyfile.RegisterDirectiveOrder("http_cache", httpcaddyfile.Before, "encode")
}

// parseHTTPCache sets up the http_cache handler from Caddyfile tokens; the
// syntax is documented on cache.Handler.UnmarshalCaddyfile.
func parseHTTPCache(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	c := new(cache.Handler)
	if err := c.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return c, nil
}

// parseGeofilter sets up the geofilter handler from Caddyfile tokens; the
// syntax is documented on geofilter.Handler.UnmarshalCaddyfile. Rules may
// name the site's named matchers (@name), resolved here with the Helper.
func parseGeofilter(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	g := new(geofilter.Handler)
	named := func(tok caddyfile.Token) (caddy.ModuleMap, error) {
		one := h
		one.Dispenser = caddyfile.NewDispenser([]caddyfile.Token{tok})
		set, ok, err := one.MatcherToken()
		if err != nil {
			return nil, h.Errf("%v", err)
		}
		if !ok || set == nil {
			return nil, h.Errf("unknown named matcher %s", tok.Text)
		}
		return set, nil
	}
	if err := g.UnmarshalCaddyfileNamed(h.Dispenser, named); err != nil {
		return nil, err
	}
	return g, nil
}
