package geofilter

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-edge/edge/geofilter/rules"
)

// lookupVarKey is the key, in the request's vars (caddyhttp.SetVar), of the
// request's *lookup: one lookup per request, shared by the geofilter
// handler, the geo matcher and the {geo.*} placeholders.
const lookupVarKey = "geofilter.lookup"

// The values of {geo.decision} and of the action label of the decisions
// metric.
const (
	decisionAllow     = "allow"
	decisionDeny      = "deny"
	decisionLog       = "log"        // a log rule matched, then the request went on
	decisionWouldDeny = "would_deny" // log_only: a deny that was not enforced
)

// lookup is what is known of one request's client address.
type lookup struct {
	ip       netip.Addr // invalid if the client address could not be parsed
	res      Result
	dbs      *databases // what res was looked up in (nil: no database)
	decision string     // "" until a geofilter handler decided
	rule     string     // the rule that decided, or "default"
	mapped   bool       // the placeholder provider is installed on the replacer
	logged   bool       // the access-log field "geo" refers to this lookup
}

// clientIP returns the client address as Caddy determined it (the
// client_ip var, which honours the server's trusted_proxies and
// client_ip_headers), normalised: IPv4-mapped IPv6 addresses are reduced
// to IPv4 and zones dropped. Outside a Caddy server (no vars), it falls back
// to the connection's remote address. It never reads a header itself.
func clientIP(r *http.Request) netip.Addr {
	vars, _ := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any)
	return clientIPFromVars(vars, r)
}

// clientIPFromVars is clientIP with the request's vars already at hand.
func clientIPFromVars(vars map[string]any, r *http.Request) netip.Addr {
	s, _ := vars[caddyhttp.ClientIPVarKey].(string)
	if s == "" {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		s = host
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return ip.Unmap().WithZone("")
}

// requestLookup returns the request's lookup, or nil if no geofilter
// handler made one.
func requestLookup(r *http.Request) *lookup {
	l, _ := caddyhttp.GetVar(r.Context(), lookupVarKey).(*lookup)
	return l
}

// newRequestLookup looks the client address up in dbs (which may be nil),
// stores the lookup in the request (reusing the record of an earlier
// geofilter handler of the same request) and installs the {geo.*}
// placeholders.
//
// It is on every request's path, so it does the least it can: the request's
// vars are fetched from the context once, and a request costs two
// allocations (the record, and the placeholder provider bound to it, which
// the Replacer API needs as a func value), none for a later handler of the
// same request.
func newRequestLookup(r *http.Request, dbs *databases) *lookup {
	ctx := r.Context()
	vars, _ := ctx.Value(caddyhttp.VarsCtxKey).(map[string]any)
	l, _ := vars[lookupVarKey].(*lookup)
	if l == nil {
		l = new(lookup)
		if vars != nil {
			vars[lookupVarKey] = l
		}
	} else {
		*l = lookup{mapped: l.mapped, logged: l.logged}
	}
	l.ip = clientIPFromVars(vars, r)
	l.dbs = dbs
	if dbs != nil && l.ip.IsValid() {
		dbs.Lookup(l.ip, &l.res)
	}
	if !l.mapped {
		if repl, ok := ctx.Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
			repl.Map(l.placeholder)
			l.mapped = true
		}
	}
	return l
}

// placeholder provides the {geo.*} placeholders; values are computed only
// when a placeholder is used.
func (l *lookup) placeholder(key string) (any, bool) {
	name, ok := strings.CutPrefix(key, "geo.")
	if !ok {
		return nil, false
	}
	g := &l.res
	switch name {
	case "country_code":
		return orUnknown(g.CountryCode), true
	case "continent_code":
		return orUnknown(g.ContinentCode), true
	case "in_eu":
		return g.InEU, true
	case "subdivision_code":
		return g.SubdivisionCode, true
	case "city":
		return g.City, true
	case "asn":
		if g.ASN == 0 {
			return "", true
		}
		return strconv.FormatUint(uint64(g.ASN), 10), true
	case "asn_org":
		return g.ASNOrg, true
	case "is_anonymous":
		return rules.IsAnonymous(g), true
	case "decision":
		return l.decision, true
	case "rule":
		return l.rule, true
	case "ip":
		if !l.ip.IsValid() {
			return "", true
		}
		return l.ip.String(), true
	}
	return nil, false
}

func orUnknown(s string) string {
	if s == "" {
		return rules.Unknown
	}
	return s
}

// MarshalLogObject writes the access-log field "geo".
func (l *lookup) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("country", orUnknown(l.res.CountryCode))
	if l.res.ASN != 0 {
		enc.AddUint32("asn", l.res.ASN)
	}
	if l.decision != "" {
		enc.AddString("decision", l.decision)
		enc.AddString("rule", l.rule)
	}
	return nil
}

// addLogFields attaches l to the access log of the request as the object
// field "geo" (country, asn, decision, rule), unless the server has no
// access log or the field already refers to l (the field is encoded when
// the access log is written, so it shows the last decision).
func addLogFields(r *http.Request, l *lookup) {
	if l.logged {
		return
	}
	ctx := r.Context()
	if srv, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok && srv.Logs == nil {
		return // the server writes no access log
	}
	if extra, ok := ctx.Value(caddyhttp.ExtraLogFieldsCtxKey).(*caddyhttp.ExtraLogFields); ok {
		extra.Set(zap.Object("geo", l))
		l.logged = true
	}
}
