package redis

import (
	"math"
	"net"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
	"github.com/dustin/go-humanize"
)

// UnmarshalCaddyfile sets up the store from Caddyfile tokens, starting at
// the token "redis" of http_cache's store option. Syntax:
//
//	redis {
//		address         <host:port...>    # repeatable; several: a Redis Cluster
//		username        <user>
//		password        <password>        # e.g. {env.REDIS_PASSWORD}
//		db              <number>
//		tls {                             # the block is optional
//			ca                   <pem_file...>
//			insecure_skip_verify
//			server_name          <name>
//			client_auth          <cert_file> <key_file>
//		}
//		prefix          <prefix>
//		max_object_size <size>
//		timeout         <duration>
//	}
func (s *Store) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume the store name "redis"
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] && opt != "address" {
			return d.Errf("duplicate redis store option '%s'", opt)
		}
		seen[opt] = true
		switch opt {
		case "address":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			for _, a := range args {
				if _, _, err := net.SplitHostPort(a); err != nil && !strings.Contains(a, "{") {
					return d.Errf("bad address '%s': want host:port", a)
				}
			}
			s.Address = append(s.Address, args...)
		case "tls":
			if d.NextArg() {
				return d.ArgErr()
			}
			s.TLS = new(reverseproxy.TLSConfig)
			if err := unmarshalTLS(d, s.TLS); err != nil {
				return err
			}
		case "username", "password", "prefix", "db", "max_object_size", "timeout":
			if !d.NextArg() {
				return d.ArgErr()
			}
			val := d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
			switch opt {
			case "username":
				s.Username = val
			case "password":
				s.Password = val
			case "prefix":
				if strings.ContainsAny(val, "{}") {
					return d.Errf("bad prefix '%s': '{' and '}' would make a Redis Cluster hash tag", val)
				}
				s.Prefix = val
			case "db":
				n, err := strconv.Atoi(val)
				if err != nil || n < 0 {
					return d.Errf("bad db '%s': not a database number", val)
				}
				s.DB = n
			case "max_object_size":
				n, err := humanize.ParseBytes(val)
				if err != nil || n == 0 || n > math.MaxInt64 {
					return d.Errf("bad max_object_size '%s': not a size such as 64MiB", val)
				}
				s.MaxObjectSize = int64(n)
			case "timeout":
				dur, err := caddy.ParseDuration(val)
				if err != nil || dur <= 0 {
					return d.Errf("bad timeout '%s': not a positive duration such as 100ms", val)
				}
				s.Timeout = caddy.Duration(dur)
			}
		default:
			return d.Errf("unrecognized redis store option '%s'", opt)
		}
	}
	if s.DB != 0 && len(s.Address) > 1 {
		return d.Errf("db %d with several addresses: a Redis Cluster has only db 0", s.DB)
	}
	return nil
}

// unmarshalTLS reads the optional block of the tls option.
func unmarshalTLS(d *caddyfile.Dispenser, t *reverseproxy.TLSConfig) error {
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("duplicate redis store tls option '%s'", opt)
		}
		seen[opt] = true
		args := d.RemainingArgs()
		switch opt {
		case "ca":
			if len(args) == 0 {
				return d.ArgErr()
			}
			t.CARaw = caddyconfig.JSONModuleObject(caddytls.FileCAPool{TrustedCACertPEMFiles: args}, "provider", "file", nil)
		case "insecure_skip_verify":
			if len(args) != 0 {
				return d.ArgErr()
			}
			t.InsecureSkipVerify = true
		case "server_name":
			if len(args) != 1 {
				return d.ArgErr()
			}
			t.ServerName = args[0]
		case "client_auth":
			if len(args) != 2 {
				return d.ArgErr()
			}
			t.ClientCertificateFile, t.ClientCertificateKeyFile = args[0], args[1]
		default:
			return d.Errf("unrecognized redis store tls option '%s'", opt)
		}
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Store)(nil)
