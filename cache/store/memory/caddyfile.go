package memory

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-edge/edge/cache/store/internal/sizing"
)

// UnmarshalCaddyfile sets up the store from Caddyfile tokens, starting at
// the token "memory" of http_cache's store option. Syntax:
//
//	memory {
//		max_size <size>
//		name     <name>
//	}
//
// The block is optional. max_size takes a size such as 512MiB or 1GB.
func (s *Store) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume the store name "memory"
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "max_size", "name":
		default:
			return d.Errf("unrecognized memory store option '%s'", opt)
		}
		if seen[opt] {
			return d.Errf("duplicate memory store option '%s'", opt)
		}
		seen[opt] = true
		if !d.NextArg() {
			return d.ArgErr()
		}
		val := d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
		switch opt {
		case "max_size":
			n, err := sizing.ParseMaxSize(val, "512MiB or 2GB")
			if err != nil {
				return d.Err(err.Error())
			}
			s.MaxSize = n
		case "name":
			s.Name = val
		}
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Store)(nil)
