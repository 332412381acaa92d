// Package edge is the Caddy wiring of caddy-edge: an RFC 9111 shared cache
// (http_cache) and a geo and rule filter (geofilter) for Caddy v2.
//
// This file is the one place that registers every module the plugin adds.
// The packages below register nothing themselves, so that tests can import
// them without side effects.
package edge

import (
	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-edge/edge/cache"
	"github.com/caddy-edge/edge/cache/store/disk"
	"github.com/caddy-edge/edge/cache/store/memory"
	"github.com/caddy-edge/edge/cache/store/redis"
	"github.com/caddy-edge/edge/cache/store/tiered"
	"github.com/caddy-edge/edge/geofilter"
)

func init() {
	registerCache()
	registerGeofilter()
}

// registerCache registers the http_cache handler, its stores and its admin
// routes.
func registerCache() {
	caddy.RegisterModule(cache.Handler{})
	caddy.RegisterModule(cache.Admin{})
	caddy.RegisterModule(memory.Store{})
	caddy.RegisterModule(disk.Store{})
	caddy.RegisterModule(disk.StartCheck{})
	caddy.RegisterModule(redis.Store{})
	caddy.RegisterModule(tiered.Store{})
}

// registerGeofilter registers the geofilter handler, the geo matcher and
// their admin routes.
func registerGeofilter() {
	caddy.RegisterModule(geofilter.Handler{})
	caddy.RegisterModule(geofilter.MatchGeo{})
	caddy.RegisterModule(geofilter.Admin{})
}
