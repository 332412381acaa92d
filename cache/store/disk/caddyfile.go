package disk

import (
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-edge/edge/cache/store/internal/sizing"
)

// UnmarshalCaddyfile sets up the store from Caddyfile tokens, starting at
// the token "disk" of http_cache's store option. Syntax:
//
//	disk [<path>] {
//		path        <directory>
//		max_size    <size>
//		max_entries <count>
//	}
//
// path is required (as the argument or in the block). max_size takes a
// size such as 10GiB; max_entries a positive count such as 1000000.
func (s *Store) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume the store name "disk"
	if d.NextArg() {
		s.Path = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "path", "max_size", "max_entries":
		default:
			return d.Errf("unrecognized disk store option '%s'", opt)
		}
		if seen[opt] || (opt == "path" && s.Path != "") {
			return d.Errf("duplicate disk store option '%s'", opt)
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
		case "path":
			s.Path = val
		case "max_size":
			n, err := sizing.ParseMaxSize(val, "10GiB or 500MB")
			if err != nil {
				return d.Err(err.Error())
			}
			s.MaxSize = n
		case "max_entries":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil || n <= 0 {
				return d.Errf("bad disk store max_entries '%s': want a positive count of entries, such as 1000000", val)
			}
			s.MaxEntries = n
		}
	}
	if s.Path == "" {
		return d.Err("disk store: path is required")
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Store)(nil)
