package geofilter

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-edge/edge/geofilter/rules"
)

// MatchGeo matches requests by what the databases know of the client
// address (Caddy's client_ip, as for the geofilter handler): country,
// continent, EU membership, subdivision, ASN, anonymous-IP flags, IP ranges
// and IP lists. All the conditions given must hold; within one condition,
// any value may match.
//
// Without databases of its own, the matcher reuses the lookup that a
// geofilter handler made earlier for the same request (the geofilter
// directive runs before header, reverse_proxy and the other handlers, so a
// site with a geofilter needs nothing more); a request that reaches such a
// matcher with no geofilter having run fails with an error. With databases
// of its own, it looks the address up itself (every time; a lookup costs
// well under a microsecond).
type MatchGeo struct {
	// The conditions; same names and values as in geofilter rules.
	rules.Conditions

	// Databases for a matcher used where no geofilter handler runs before
	// it. Shared with any handler that opens the same files.
	Databases []DatabaseConfig `json:"databases,omitempty"`

	// ReloadInterval is how often the matcher's own files are checked for a
	// change. Default: 1m.
	ReloadInterval caddy.Duration `json:"reload_interval,omitempty"`

	m *rules.Matcher
	// checked caches, by the *databases of a geofilter whose lookup the
	// matcher reads, whether those databases can serve its conditions
	// (value: error, or nil). Set by Provision and by geo() in CEL.
	checked *sync.Map
	id      int     // in the admin API
	src     sources // the matcher's own databases and IP lists
	logger  *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (MatchGeo) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.matchers.geo",
		New: func() caddy.Module { return new(MatchGeo) },
	}
}

// Provision opens the matcher's databases and IP lists and compiles its
// conditions.
func (m *MatchGeo) Provision(ctx caddy.Context) error {
	m.logger = ctx.Logger()
	// A matcher with databases or IP lists of its own counts their
	// reloads and updates: the collectors must be on this config's
	// registry even when no geofilter handler registers them.
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	m.id = newID()
	if err := m.src.open(m.Databases, time.Duration(m.ReloadInterval), m.logger, "geo matcher "+strconv.Itoa(m.id)); err != nil {
		return err
	}
	cm, err := m.Conditions.Compile(m.src.openList)
	if err != nil {
		return err
	}
	// Without databases of its own, the matcher reads the lookup of the
	// site's geofilter, whose rules are checked there.
	if err := m.src.dbs.checkNeeds(m.Needs()); err != nil {
		return fmt.Errorf("geo matcher: %w", err)
	}
	m.m = cm
	m.checked = new(sync.Map)
	return nil
}

// Cleanup releases the databases and IP lists.
func (m *MatchGeo) Cleanup() error {
	return m.src.close()
}

// errNoLookup is returned by a matcher without databases when no geofilter
// handler ran before it: the site has none, or the matcher is on a
// directive that Caddy runs before geofilter (which runs just before
// header), such as vars or log_skip, where a site's geofilter has not
// looked the address up yet.
var errNoLookup = errors.New("geo matcher: no geofilter handler ran before this matcher for the request, " +
	"and the matcher has no db of its own: add a geofilter directive to the site, or a db to the matcher; " +
	"map, vars, root, log_append, log_skip, log_name and log_level run before geofilter, " +
	"so a geo matcher on them needs a db of its own even in a site with a geofilter")

// MatchWithError reports whether the request's client address meets the
// conditions.
func (m *MatchGeo) MatchWithError(r *http.Request) (bool, error) {
	if m.src.dbs != nil {
		in := rules.Input{IP: clientIP(r)}
		var res Result
		if in.IP.IsValid() {
			m.src.dbs.Lookup(in.IP, &res)
		}
		in.Geo = &res
		return m.m.Match(&in), nil
	}
	if !m.NeedsGeo() {
		return m.m.Match(&rules.Input{IP: clientIP(r), Geo: &Result{}}), nil
	}
	l := requestLookup(r)
	if l == nil {
		return false, caddyhttp.Error(http.StatusInternalServerError, errNoLookup)
	}
	if err := m.checkLookup(l.dbs); err != nil {
		return false, caddyhttp.Error(http.StatusInternalServerError, err)
	}
	return m.m.Match(&rules.Input{IP: l.ip, Geo: &l.res}), nil
}

// checkLookup tells whether the databases of the geofilter whose lookup
// the matcher reads can serve the matcher's conditions: a condition on a
// field none of them provides would never hold (or, negated, always), so
// the request fails with an error that says so, as when no geofilter ran.
// The answer is cached by databases.
func (m *MatchGeo) checkLookup(dbs *databases) error {
	if m.checked != nil {
		if v, ok := m.checked.Load(dbs); ok {
			err, _ := v.(error)
			return err
		}
	}
	var err error
	if dbs == nil {
		err = errors.New("geo matcher: the geofilter that ran before this matcher has no db, and the matcher has none of its own")
	} else if e := dbs.checkNeeds(m.Needs()); e != nil {
		err = fmt.Errorf("geo matcher (reading the lookup of the site's geofilter): %w", e)
	}
	if m.checked != nil {
		m.checked.Store(dbs, err)
	}
	return err
}

// Interface guards
var (
	_ caddy.Provisioner                 = (*MatchGeo)(nil)
	_ caddy.CleanerUpper                = (*MatchGeo)(nil)
	_ caddyhttp.RequestMatcherWithError = (*MatchGeo)(nil)
	_ caddyfile.Unmarshaler             = (*MatchGeo)(nil)
)
