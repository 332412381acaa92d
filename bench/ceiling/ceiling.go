// Package ceiling is a bench-only Caddy handler: the fastest response a Caddy
// handler can give, a prebuilt byte slice written with one Write. The load
// harness (bench/harness.sh) measures every other handler against it. It is
// registered only by the bench binary (bench/cmd/caddy-bench), never by the
// plugin.
package ceiling

import (
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(Handler{})
	httpcaddyfile.RegisterHandlerDirective("bench_ceiling", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		c := new(Handler)
		return c, c.UnmarshalCaddyfile(h.Dispenser)
	})
	httpcaddyfile.RegisterDirectiveOrder("bench_ceiling", httpcaddyfile.Before, "respond")
}

// Handler answers every request with Size bytes of 'x', Cache-Control
// "public, max-age=3600" and a Content-Length, in one Write of a slice built
// at provisioning.
//
// Syntax:
//
//	bench_ceiling <size> [hit_fields]
type Handler struct {
	// Size of the body in bytes.
	Size int `json:"size,omitempty"`
	// HitFields adds the fields an http_cache hit sends and this handler
	// otherwise does not: the origin's Date, Age and Cache-Status (prebuilt
	// too). Measured against it, a hit shows what the cache's own work
	// costs, apart from what net/http spends writing three more fields.
	HitFields bool `json:"hit_fields,omitempty"`

	body   []byte
	length []string
	date   []string
}

var (
	age         = []string{"0"}
	cacheStatus = []string{"caddy-edge; hit; ttl=3600"}
)

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.bench_ceiling",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision builds the body.
func (h *Handler) Provision(caddy.Context) error {
	h.body = make([]byte, h.Size)
	for i := range h.body {
		h.body[i] = 'x'
	}
	h.length = []string{strconv.Itoa(h.Size)}
	h.date = []string{time.Now().UTC().Format(http.TimeFormat)}
	return nil
}

var cacheControl = []string{"public, max-age=3600"}
var contentType = []string{"text/plain"}

// ServeHTTP writes the prebuilt body.
func (h *Handler) ServeHTTP(w http.ResponseWriter, _ *http.Request, _ caddyhttp.Handler) error {
	hdr := w.Header()
	hdr["Cache-Control"] = cacheControl
	hdr["Content-Type"] = contentType
	hdr["Content-Length"] = h.length
	if h.HitFields {
		hdr["Date"] = h.date
		hdr["Age"] = age
		hdr["Cache-Status"] = cacheStatus
	}
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(h.body)
	return err
}

// UnmarshalCaddyfile reads `bench_ceiling <size>`.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if !d.NextArg() {
		return d.ArgErr()
	}
	n, err := strconv.Atoi(d.Val())
	if err != nil || n < 0 {
		return d.Errf("bad size '%s'", d.Val())
	}
	h.Size = n
	if d.NextArg() {
		if d.Val() != "hit_fields" {
			return d.Errf("unknown option '%s'", d.Val())
		}
		h.HitFields = true
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
