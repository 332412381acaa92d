package memory

import (
	"math"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"
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
			n, err := humanize.ParseBytes(val)
			if err != nil {
				return d.Errf("bad max_size '%s': not a size such as 512MiB or 2GB", val)
			}
			if n > math.MaxInt64 {
				return d.Errf("bad max_size '%s': too large", val)
			}
			if int64(n) < MinMaxSize {
				return d.Errf("bad max_size '%s': the minimum is 1MiB", val)
			}
			s.MaxSize = int64(n)
		case "name":
			s.Name = val
		}
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Store)(nil)
