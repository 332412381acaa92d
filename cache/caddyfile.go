package cache

import (
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	http_cache {
//	    store <module> [{ <module options> }]   # default: memory
//	    key <template>                          # default: scheme, host, path, query
//	    vary <placeholder...>                   # e.g. vary {geo.country_code}
//	    sort_query
//	    ignore_query_params <glob...>
//	    default_ttl <duration>                  # default: off
//	    default_ttl <status...> <duration>      # repeatable: per status, in place of the above
//	    max_ttl <duration>                      # default: none
//	    stale_while_revalidate <duration>       # default: off
//	    stale_if_error <duration>               # default: off
//	    stale_if_unreachable <duration>|off     # default: 1d
//	    statuses <code...>                      # default: RFC 9110 §15.1
//	    allow_set_cookie
//	    unsafe_credentialed_heuristics          # default_ttl/heuristics for Cookie/Authorization requests
//	    min_uses <count>                        # default: 1
//	    max_object_size <size>                  # default: 32MiB
//	    collapse_timeout <duration>             # default: 10s
//	    hit_for_miss_ttl <duration>             # default: 30s
//	    bypass <matcher...> | bypass { <matchers> }   # repeatable: any matching set bypasses
//	}
//
// http_cache alone stores in the memory store (256 MiB) with the RFC 9111
// defaults. Every option may be given once, except bypass,
// ignore_query_params and default_ttl with statuses.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if opt != "bypass" && opt != "ignore_query_params" && opt != "default_ttl" {
			if seen[opt] {
				return d.Errf("duplicate http_cache option '%s'", opt)
			}
			seen[opt] = true
		}
		switch opt {
		case "store":
			if !d.NextArg() {
				return argErr(d, opt)
			}
			name := d.Val()
			unm, err := caddyfile.UnmarshalModule(d, "http.cache.stores."+name)
			if err != nil {
				return err
			}
			h.StoreRaw = caddyconfig.JSONModuleObject(unm, "module", name, nil)

		case "key":
			if !d.NextArg() {
				return argErr(d, opt)
			}
			h.Key = d.Val()
			if d.NextArg() {
				return argErr(d, opt)
			}
			if err := validateKeyTemplate(h.Key); err != nil {
				return d.Err(err.Error())
			}
			if err := keyWithQueryOptions(d, seen, opt); err != nil {
				return err
			}

		case "sort_query":
			if d.NextArg() {
				return argErr(d, opt)
			}
			if err := keyWithQueryOptions(d, seen, opt); err != nil {
				return err
			}
			h.SortQuery = true

		case "allow_set_cookie":
			if d.NextArg() {
				return argErr(d, opt)
			}
			h.AllowSetCookie = true

		case "unsafe_credentialed_heuristics":
			if d.NextArg() {
				return argErr(d, opt)
			}
			h.UnsafeCredentialedHeuristics = true

		case "vary":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return argErr(d, opt)
			}
			for _, a := range args {
				if len(a) < 3 || a[0] != '{' || a[len(a)-1] != '}' || strings.ContainsAny(a[1:len(a)-1], "{}") {
					return d.Errf("bad vary '%s': want one placeholder per argument, e.g. {geo.country_code}", a)
				}
			}
			h.Vary = args

		case "ignore_query_params":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return argErr(d, opt)
			}
			if err := keyWithQueryOptions(d, seen, opt); err != nil {
				return err
			}
			seen[opt] = true
			h.IgnoreQueryParams = append(h.IgnoreQueryParams, args...)

		case "default_ttl":
			if err := parseDefaultTTL(d, h, seen); err != nil {
				return err
			}

		case "max_ttl", "stale_while_revalidate", "stale_if_error", "collapse_timeout", "hit_for_miss_ttl":
			if !d.NextArg() {
				return argErr(d, opt)
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil {
				return d.Errf("bad %s '%s': %v", opt, d.Val(), err)
			}
			if dur < 0 {
				return d.Errf("bad %s '%s': must not be negative", opt, d.Val())
			}
			// For these, 0 is the unset value that means the default
			// (10s, 30s, no bound): written, it would be silently ignored.
			if dur == 0 && (opt == "collapse_timeout" || opt == "hit_for_miss_ttl" || opt == "max_ttl") {
				return d.Errf("bad %s '%s': must be positive (leave the option out for its default)", opt, d.Val())
			}
			if d.NextArg() {
				return argErr(d, opt)
			}
			v := caddy.Duration(dur)
			switch opt {
			case "max_ttl":
				h.MaxTTL = v
			case "stale_while_revalidate":
				h.StaleWhileRevalidate = v
			case "stale_if_error":
				h.StaleIfError = v
			case "collapse_timeout":
				h.CollapseTimeout = v
			case "hit_for_miss_ttl":
				h.HitForMissTTL = v
			}

		case "stale_if_unreachable":
			if !d.NextArg() {
				return argErr(d, opt)
			}
			var window caddy.Duration
			if d.Val() != "off" {
				dur, err := caddy.ParseDuration(d.Val())
				if err != nil || dur <= 0 {
					return d.Errf("bad stale_if_unreachable '%s': want a positive duration or off", d.Val())
				}
				window = caddy.Duration(dur)
			}
			if d.NextArg() {
				return argErr(d, opt)
			}
			h.StaleIfUnreachable = &window

		case "statuses":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return argErr(d, opt)
			}
			for _, a := range args {
				code, err := strconv.Atoi(a)
				if err != nil || code < 200 || code > 599 || neverStored(code) {
					return d.Errf("bad statuses code '%s': want a final status code 200-599 other than 206, 304, 412 and 414, which are never stored", a)
				}
				h.Statuses = append(h.Statuses, code)
			}

		case "min_uses":
			if !d.NextArg() {
				return argErr(d, opt)
			}
			n, err := strconv.Atoi(d.Val())
			if err != nil || n < 1 || n > maxMinUses {
				return d.Errf("bad min_uses '%s': want a count of requests from 1 to %d", d.Val(), maxMinUses)
			}
			if d.NextArg() {
				return argErr(d, opt)
			}
			h.MinUses = n

		case "max_object_size":
			if !d.NextArg() {
				return argErr(d, opt)
			}
			size, err := humanize.ParseBytes(d.Val())
			if err != nil {
				return d.Errf("bad max_object_size '%s': %v", d.Val(), err)
			}
			if size == 0 || size > 1<<62 {
				return d.Errf("bad max_object_size '%s': must be between 1 byte and 4 EiB", d.Val())
			}
			h.MaxObjectSize = int64(size)
			if d.NextArg() {
				return argErr(d, opt)
			}

		case "bypass":
			ms, err := caddyhttp.ParseCaddyfileNestedMatcherSet(d)
			if err != nil {
				return err
			}
			if len(ms) == 0 {
				return d.Errf("bypass needs a matcher, e.g. 'bypass path /admin/*' or a block of matchers")
			}
			h.BypassRaw = append(h.BypassRaw, ms)

		default:
			return d.Errf("unrecognized http_cache option '%s'", opt)
		}
	}
	return nil
}

// parseDefaultTTL parses default_ttl <duration> (once) and default_ttl
// <status...> <duration> (repeatable, each status once).
func parseDefaultTTL(d *caddyfile.Dispenser, h *Handler, seen map[string]bool) error {
	const opt = "default_ttl"
	args := d.RemainingArgs()
	if len(args) == 0 {
		return argErr(d, opt)
	}
	last := args[len(args)-1]
	dur, err := caddy.ParseDuration(last)
	if err != nil {
		return d.Errf("bad %s '%s': %v (default_ttl <duration>, or default_ttl <status...> <duration>)", opt, last, err)
	}
	if dur < 0 {
		return d.Errf("bad %s '%s': must not be negative", opt, last)
	}
	statuses := args[:len(args)-1]
	if len(statuses) == 0 {
		if seen[opt] {
			return d.Errf("duplicate http_cache option '%s'", opt)
		}
		seen[opt] = true
		h.DefaultTTL = caddy.Duration(dur)
		return nil
	}
	if dur == 0 {
		return d.Errf("bad %s '%s' for statuses %v: must be positive", opt, last, statuses)
	}
	for _, a := range statuses {
		code, err := strconv.Atoi(a)
		if err != nil || code < 200 || code > 599 || neverStored(code) {
			return d.Errf("bad %s status '%s': want a final status code 200-599 other than 206, 304, 412 and 414", opt, a)
		}
		if _, dup := h.DefaultTTLByStatus[code]; dup {
			return d.Errf("duplicate %s for status %d", opt, code)
		}
		if h.DefaultTTLByStatus == nil {
			h.DefaultTTLByStatus = make(map[int]caddy.Duration)
		}
		h.DefaultTTLByStatus[code] = caddy.Duration(dur)
	}
	return nil
}

// keyWithQueryOptions refuses key together with sort_query or
// ignore_query_params (which shape the default key only), at the line of
// whichever of them comes second; Validate refuses the same in JSON.
func keyWithQueryOptions(d *caddyfile.Dispenser, seen map[string]bool, opt string) error {
	if opt == "key" {
		for _, o := range []string{"sort_query", "ignore_query_params"} {
			if seen[o] {
				return d.Errf("key with %s: %s shapes the default key only, with a key template it would do nothing (put the query in the template, or leave key out)", o, o)
			}
		}
		return nil
	}
	if seen["key"] {
		return d.Errf("%s with key: %s shapes the default key only, with a key template it would do nothing (put the query in the template, or leave key out)", opt, opt)
	}
	return nil
}

// argErr reports a wrong number of arguments to an option, naming it.
func argErr(d *caddyfile.Dispenser, opt string) error {
	return d.Errf("wrong argument count for http_cache option '%s'", opt)
}
