// Package geofilter implements geofilter, a geo and rule filter for Caddy:
// the http.handlers.geofilter handler, the http.matchers.geo matcher, the
// {geo.*} placeholders, the admin.api.geofilter routes and the
// caddy_geofilter_* metrics.
package geofilter

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-edge/edge/geofilter/rules"
)

// Handler decides from the client address and ordered rules whether a
// request may go on.
//
// The client address is Caddy's own client_ip, which honours the server's
// trusted_proxies and client_ip_headers; the filter never reads a header
// itself. The address is looked up once per request in the databases; the
// rules are evaluated in order, and the first allow or deny rule that matches
// decides (log rules record their match and evaluation goes on); with none,
// the default action decides.
//
// A denied request gets, when its rule (or the default's response) sets no
// body, file or header, a Caddy error with the status (default 403), so that
// handle_errors can restyle it; with a body, file or header the response is
// written directly.
//
// The handler sets these placeholders, computed only when used:
//
// Placeholder | Description
// ------------|-------------
// `{geo.country_code}` | ISO 3166-1 country code, or `unknown`
// `{geo.continent_code}` | continent code (AF AN AS EU NA OC SA), or `unknown`
// `{geo.in_eu}` | `true` if the country is in the EU
// `{geo.subdivision_code}` | ISO 3166-2 code of the first subdivision, or empty
// `{geo.city}` | city name (English), or empty
// `{geo.asn}` | autonomous system number, or empty
// `{geo.asn_org}` | autonomous system organisation, or empty
// `{geo.is_anonymous}` | `true` if any anonymous-IP flag is set
// `{geo.decision}` | `allow`, `deny`, `log` (a log rule matched and the request went on) or `would_deny` (log_only)
// `{geo.rule}` | name of the rule that decided, or `default`
// `{geo.ip}` | the client address that was looked up
type Handler struct {
	// Databases are the MaxMind-format (.mmdb) databases the client
	// address is looked up in (country, city, ASN, anonymous-IP, ...). What
	// several databases know is merged. A database used by several sites or
	// handlers is opened once, and survives a config reload.
	Databases []DatabaseConfig `json:"databases,omitempty"`

	// ReloadInterval is how often the database and IP list files are
	// checked for a change (replaced or rewritten); a changed file is loaded
	// and swapped in, a corrupt one is rejected and the last good one keeps
	// serving. A negative value turns the checks off (reloads then only
	// happen through the admin API). Default: 1m.
	ReloadInterval caddy.Duration `json:"reload_interval,omitempty"`

	// Rules are evaluated in order; the first allow or deny rule that
	// matches decides.
	Rules []Rule `json:"rules,omitempty"`

	// Default is the action when no allow or deny rule matches: "allow" or
	// "deny" (answered as DefaultResponse says). Default: allow.
	Default string `json:"default,omitempty"`

	// DefaultResponse is how the default deny answers (status, body or
	// file, headers), as a deny rule does; only with Default "deny".
	// Default: a Caddy error with status 403, which handle_errors can
	// restyle.
	DefaultResponse *DenyResponse `json:"default_response,omitempty"`

	// LogOnly evaluates the rules, logs and counts what they decide, but
	// never blocks: a deny becomes the decision "would_deny" and the request
	// goes on. For a safe rollout.
	LogOnly bool `json:"log_only,omitempty"`

	id        int     // in the admin API
	src       sources // databases and IP lists held open
	set       rules.Set
	responses []denyResponse // by rule index; the default's is dflt
	dflt      denyResponse
	logger    *zap.Logger
}

// Rule is one rule of the filter: conditions, all of which must hold, and
// an action.
type Rule struct {
	// Name identifies the rule in logs, the {geo.rule} placeholder and the
	// admin API. Default: "#" and the rule's position, from 1.
	Name string `json:"name,omitempty"`

	// Action is "allow", "deny" or "log" (record the match in the log and
	// go on with the next rule).
	Action rules.Action `json:"action"`

	// The conditions on what the databases know of the client address and
	// on the address itself.
	rules.Conditions

	// Match is a set of Caddy request matchers (path, method, header,
	// expression, ...) that must also match, all of them.
	MatchRaw caddy.ModuleMap `json:"match,omitempty" caddy:"namespace=http.matchers"`

	// hasMatch records that MatchRaw was given: loading the matchers
	// (Provision) clears MatchRaw, and Validate runs after it.
	hasMatch bool

	// How a deny rule answers: status (default 403), body or file, and
	// headers. Only for deny rules.
	DenyResponse
}

// DenyResponse is how a deny answers. Without a body, a file or a header,
// the answer is a Caddy error with the status (which handle_errors can
// restyle); with any of them, the response is written directly.
type DenyResponse struct {
	// Status is the status code, from 300 to 599. Default: 403.
	Status int `json:"status,omitempty"`

	// Body is the body; placeholders are replaced. Mutually exclusive with
	// File.
	Body string `json:"body,omitempty"`

	// File is the path of a file sent as the body (read when the config is
	// loaded; its Content-Type is guessed from the file extension).
	File string `json:"file,omitempty"`

	// Headers are set on the response; placeholders in the values are
	// replaced.
	Headers http.Header `json:"headers,omitempty"`
}

// denyResponse is how one deny rule, or the default deny, answers.
type denyResponse struct {
	status  int
	body    []byte // also with direct, when the body is static
	bodyTpl string // body with placeholders, replaced per request
	ctype   string
	headers http.Header
	direct  bool // write the response, rather than return a Caddy error
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.geofilter",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision opens the databases and IP lists, reads the deny files and
// compiles the rules with their request matchers. What Validate checks is
// not checked again here.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if err := h.checkCacheAhead(ctx); err != nil {
		return err
	}
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	h.set.Default = rules.Allow
	if h.Default == "deny" {
		h.set.Default = rules.Deny
	}
	h.dflt = denyResponse{status: http.StatusForbidden}
	if h.DefaultResponse != nil {
		resp, err := h.DefaultResponse.compile()
		if err != nil {
			return fmt.Errorf("default_response: %w", err)
		}
		h.dflt = resp
	}
	h.id = newID()
	if err := h.src.open(h.Databases, time.Duration(h.ReloadInterval), h.logger, "geofilter "+strconv.Itoa(h.id)); err != nil {
		return err
	}
	if err := h.compileRules(ctx); err != nil {
		return err
	}
	if h.src.dbs == nil && len(h.Rules) == 0 {
		h.logger.Warn("geofilter has no database and no rule: it lets every request through")
	}
	if h.LogOnly {
		h.logger.Warn("log_only: the rules are evaluated and logged, but no request is blocked")
	}
	if h.allowsOnlyAllowed() {
		// "allow country DE AT" reads as caddy-maxmind-geolocation's
		// allow_countries, or nginx's map with "default no": only those
		// countries in. With the default allow, every request goes
		// through, listed or not.
		h.logger.Warn("geofilter has allow rules, but no rule denies and the default is allow: it lets every request through; " +
			"to let only the requests the allow rules match through, add \"default deny\"")
	}
	registerFilter(h)
	return nil
}

// checkCacheAhead refuses a filter after a cache that serves its hits
// without it. Refused when the cache takes every request the filter
// guards; a cache with a matcher or a bypass may leave them alone, which
// the filter cannot tell: said in the log. A filter that never denies
// (placeholders only, log_only) guards nothing.
func (h *Handler) checkCacheAhead(ctx caddy.Context) error {
	if !h.mayDeny() {
		return nil
	}
	c := findCacheAhead(ctx)
	if c.every {
		return errors.New("geofilter runs after http_cache (here in a handle or route block, the cache at the site's top level or earlier in the block): " +
			"a response the cache stored would be served to every client without this filter, to those it denies too; " +
			"put the geofilter at the site's top level, where it runs before http_cache (with a path condition on its rules: deny country CN { path /video/* }), " +
			"or bypass these requests in http_cache")
	}
	if c.found {
		h.logger.Warn("geofilter runs after an http_cache that has a matcher or a bypass: a request the cache takes is answered from it without this filter; " +
			"make sure the cache leaves alone the requests this filter guards, or put the geofilter at the site's top level")
	}
	return nil
}

// mayDeny reports whether the configured filter can deny a request: it is
// not log_only, and has a deny rule or the default deny.
func (h *Handler) mayDeny() bool {
	if h.LogOnly {
		return false
	}
	if h.Default == "deny" {
		return true
	}
	for i := range h.Rules {
		if h.Rules[i].Action == rules.Deny {
			return true
		}
	}
	return false
}

// allowsOnlyAllowed reports whether the filter has allow rules but can
// deny nothing: no deny rule, and the default allow.
func (h *Handler) allowsOnlyAllowed() bool {
	if h.set.Default == rules.Deny {
		return false
	}
	allow := false
	for i := range h.Rules {
		switch h.Rules[i].Action {
		case rules.Deny:
			return false
		case rules.Allow:
			allow = true
		}
	}
	return allow
}

// compileRules builds h.set.Rules and h.responses from h.Rules: names,
// request matchers (loaded as guest modules), compiled conditions (opening
// their IP lists) and deny responses (reading their files).
func (h *Handler) compileRules(ctx caddy.Context) error {
	h.set.Rules = make([]rules.Rule, len(h.Rules))
	h.responses = make([]denyResponse, len(h.Rules))
	for i := range h.Rules {
		rc := &h.Rules[i]
		r := &h.set.Rules[i]
		r.Name, r.Action = rc.name(i), rc.Action
		if rc.MatchRaw != nil {
			rc.hasMatch = len(rc.MatchRaw) > 0
			set, err := loadMatchers(ctx, rc)
			if err != nil {
				return fmt.Errorf("rule %s: %w", r.Name, err)
			}
			if len(set) > 0 {
				r.Request = set
			}
		}
		if !rc.Conditions.IsZero() {
			m, err := rc.Conditions.Compile(h.src.openList)
			if err != nil {
				return fmt.Errorf("rule %s: %w", r.Name, err)
			}
			r.Cond = m
			if err := h.src.dbs.checkNeeds(rc.Needs()); err != nil {
				return fmt.Errorf("rule %s: %w", r.Name, err)
			}
		}
		h.responses[i] = denyResponse{status: http.StatusForbidden}
		if rc.Action == rules.Deny {
			resp, err := rc.DenyResponse.compile()
			if err != nil {
				return fmt.Errorf("rule %s: %w", r.Name, err)
			}
			h.responses[i] = resp
		}
	}
	return nil
}

// loadMatchers loads the request matchers of rc.
func loadMatchers(ctx caddy.Context, rc *Rule) (caddyhttp.MatcherSet, error) {
	mods, err := ctx.LoadModule(rc, "MatchRaw")
	if err != nil {
		return nil, fmt.Errorf("loading matchers: %w", err)
	}
	var set caddyhttp.MatcherSet
	for name, m := range mods.(map[string]any) {
		switch m := m.(type) {
		case caddyhttp.RequestMatcherWithError:
			set = append(set, m)
		case caddyhttp.RequestMatcher: //lint:ignore SA1019 deprecated, but still accepted, as Caddy does
			set = append(set, m)
		default:
			return nil, fmt.Errorf("module %s is not a request matcher", name)
		}
	}
	return set, nil
}

// name returns the rule's name: its Name, or "#" and its position i+1.
func (rc *Rule) name(i int) string {
	if rc.Name != "" {
		return rc.Name
	}
	return "#" + strconv.Itoa(i+1)
}

// Validate checks the configuration: the actions, that each rule has a
// condition (and a database, if its conditions need one), and the deny
// responses.
func (h *Handler) Validate() error {
	switch h.Default {
	case "", "allow", "deny":
	default:
		return fmt.Errorf("default: unknown action %q (want allow or deny)", h.Default)
	}
	if h.DefaultResponse != nil {
		if h.Default != "deny" {
			return errors.New("default_response: only for default deny")
		}
		if err := h.DefaultResponse.validate(); err != nil {
			return fmt.Errorf("default_response: %w", err)
		}
	}
	for i := range h.Rules {
		if err := h.Rules[i].validate(len(h.Databases) > 0); err != nil {
			return fmt.Errorf("rule %s: %w", h.Rules[i].name(i), err)
		}
	}
	return nil
}

// validate checks the rule; haveDB tells whether the handler has a
// database.
func (rc *Rule) validate(haveDB bool) error {
	if rc.Action < rules.Allow || rc.Action > rules.Log {
		return errors.New("missing action (allow, deny or log)")
	}
	if rc.Conditions.IsZero() && len(rc.MatchRaw) == 0 && !rc.hasMatch {
		return errors.New("no condition")
	}
	if rc.NeedsGeo() && !haveDB {
		return errors.New("needs a database (db) to know where an address is")
	}
	if rc.Action != rules.Deny {
		if rc.DenyResponse.isSet() {
			return fmt.Errorf("status, body, file and headers are only for deny rules, this one is %s", rc.Action)
		}
		return nil
	}
	return rc.DenyResponse.validate()
}

// The range of the status code of a deny.
const (
	minDenyStatus = 300
	maxDenyStatus = 599
)

// errBodyAndFile is the error of a deny response with both a body and a
// file.
var errBodyAndFile = errors.New("body and file are mutually exclusive")

// validDenyStatus reports whether code may be the status of a deny.
func validDenyStatus(code int) bool {
	return code >= minDenyStatus && code <= maxDenyStatus
}

// isSet reports whether any option of dr is set.
func (dr *DenyResponse) isSet() bool {
	return dr.Status != 0 || dr.Body != "" || dr.File != "" || len(dr.Headers) > 0
}

// validate checks the status range and that body and file are not both
// set.
func (dr *DenyResponse) validate() error {
	if dr.Status != 0 && !validDenyStatus(dr.Status) {
		return fmt.Errorf("bad status %d: want %d to %d", dr.Status, minDenyStatus, maxDenyStatus)
	}
	if dr.Body != "" && dr.File != "" {
		return errBodyAndFile
	}
	switch dr.Status {
	case http.StatusNotModified:
		// RFC 9110 §15.4.5: the answer to a conditional request, "the
		// stored response is still valid": it carries no body, and a
		// client with nothing stored is left with nothing.
		return errors.New("status 304 cannot deny: it tells a client to use what it has stored")
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		// RFC 9110 §15.4: a redirect names its target in Location.
		if dr.Headers.Get("Location") == "" {
			return fmt.Errorf("status %d redirects, but no Location header says where: add header Location <url>", dr.Status)
		}
	}
	return nil
}

// compile reads the file of dr (already validated) and builds its
// response.
func (dr *DenyResponse) compile() (denyResponse, error) {
	d := denyResponse{status: dr.Status, headers: dr.Headers}
	if d.status == 0 {
		d.status = http.StatusForbidden
	}
	d.direct = dr.Body != "" || dr.File != "" || len(dr.Headers) > 0
	switch {
	case dr.File != "" && dr.Body == "": // both: refused by validate, with a clearer error than the file's
		b, err := os.ReadFile(dr.File)
		if err != nil {
			return d, fmt.Errorf("reading deny file: %w", err)
		}
		d.body = b
		d.ctype = mime.TypeByExtension(filepath.Ext(dr.File))
		if d.ctype == "" {
			d.ctype = http.DetectContentType(b)
		}
	case dr.Body != "":
		d.bodyTpl = dr.Body
		d.ctype = "text/plain; charset=utf-8"
	}
	return d, nil
}

// Cleanup releases the databases and IP lists.
func (h *Handler) Cleanup() error {
	unregisterFilter(h)
	return h.src.close()
}

// ServeHTTP looks the client address up, evaluates the rules and lets the
// request through or denies it. The work is done in decide, whose frame
// is gone before the next handler runs: the handlers after this one (a
// cache hit) then start that much higher on a goroutine stack that the
// collector shrinks to 8 KiB when the connection is idle.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	l, resp, err := h.decide(r)
	if err != nil {
		return err
	}
	if resp == nil {
		return next.ServeHTTP(w, r)
	}
	return h.deny(w, r, l, resp)
}

// decide looks the client address up, evaluates the rules, records the
// decision, and returns the lookup and, for a denied request, the
// response to deny it with (nil to let it through).
func (h *Handler) decide(r *http.Request) (*lookup, *denyResponse, error) {
	l := newRequestLookup(r, h.src.dbs)
	if h.src.dbs != nil && !l.res.Found {
		lookupsNotFound.Inc()
	}
	d, err := h.set.Decide(&rules.Input{IP: l.ip, Geo: &l.res}, r)
	if err != nil {
		return nil, nil, caddyhttp.Error(http.StatusInternalServerError, fmt.Errorf("geofilter: %w", err))
	}
	h.record(l, d)
	addLogFields(r, l)
	if l.decision != decisionDeny {
		return l, nil, nil
	}
	if d.Rule >= 0 {
		return l, &h.responses[d.Rule], nil
	}
	return l, &h.dflt, nil
}

// outcome returns the decision ({geo.decision}) and the deciding rule's
// name for d.
func (h *Handler) outcome(d rules.Decision) (decision, rule string) {
	rule = "default"
	if d.Rule >= 0 {
		rule = h.set.Rules[d.Rule].Name
	}
	switch {
	case d.Action == rules.Deny && h.LogOnly:
		return decisionWouldDeny, rule
	case d.Action == rules.Deny:
		return decisionDeny, rule
	case d.Logged >= 0:
		if d.Rule < 0 {
			rule = h.set.Rules[d.Logged].Name
		}
		return decisionLog, rule
	}
	return decisionAllow, rule
}

// record sets the decision and rule of l from d, counts it and logs what
// the user asked to be logged.
func (h *Handler) record(l *lookup, d rules.Decision) {
	l.decision, l.rule = h.outcome(d)
	country := rules.NormalizeCountry(l.res.CountryCode)
	countDecision(l.decision, country)

	// A log rule, and a deny that log_only did not enforce, are what the
	// user asked to see: they are logged at Info. Other decisions only at
	// Debug (they are in the access log's "geo" field).
	level := zapcore.DebugLevel
	if d.Logged >= 0 || l.decision == decisionWouldDeny {
		level = zapcore.InfoLevel
	}
	if h.logger.Core().Enabled(level) {
		h.logDecision(l, d, level, country)
	}
}

// logDecision writes the log line of a decision. A function of its own,
// so that zap's Check and the fields, more than a kilobyte of stack, are
// not on the stack of every request (the stack of an idle connection is
// shrunk by each collection, and a deeper request then copies it).
func (h *Handler) logDecision(l *lookup, d rules.Decision, level zapcore.Level, country string) {
	if c := h.logger.Check(level, "geofilter decision"); c != nil {
		fields := []zap.Field{
			zap.Stringer("client_ip", l.ip),
			zap.String("country", country),
			zap.Uint32("asn", l.res.ASN),
			zap.String("decision", l.decision),
			zap.String("rule", l.rule),
		}
		if d.Logged >= 0 {
			fields = append(fields, zap.String("log_rule", h.set.Rules[d.Logged].Name))
		}
		c.Write(fields...)
	}
}

// deny answers a denied request.
func (h *Handler) deny(w http.ResponseWriter, r *http.Request, l *lookup, resp *denyResponse) error {
	// A deny answers the client's address, which no cache key holds: a
	// shared cache in front (a CDN, another Caddy's http_cache) must not
	// store it by its status (404, 410, 451, 301 are cacheable by
	// default) and serve it to the clients the filter allows. The rule's
	// own Cache-Control header, set below, replaces this one; error
	// routes may set theirs.
	w.Header().Set("Cache-Control", "no-store")
	if !resp.direct {
		if resp.status >= 500 && !hasErrorRoutes(r) {
			// Caddy logs a handler error of status 5xx at error level,
			// with its stack trace: for a deny, the filter's decision,
			// that would be an error line per denied request, which any
			// client of a denied network could send by the thousand.
			// Without error routes to restyle it, Caddy would answer the
			// status alone: so does this.
			w.WriteHeader(resp.status)
			return nil
		}
		return caddyhttp.Error(resp.status, fmt.Errorf("geofilter: request denied by rule %s", l.rule))
	}
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl == nil {
		repl = caddy.NewReplacer()
	}
	hdr := w.Header()
	if resp.ctype != "" {
		hdr.Set("Content-Type", resp.ctype)
	}
	for k, vs := range resp.headers {
		hdr.Del(k)
		for _, v := range vs {
			hdr.Add(k, repl.ReplaceAll(v, ""))
		}
	}
	body := resp.body
	if resp.bodyTpl != "" {
		body = []byte(repl.ReplaceAll(resp.bodyTpl, ""))
	}
	if len(body) > 0 {
		hdr.Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.WriteHeader(resp.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	return nil
}

// hasErrorRoutes tells whether the server of r has error routes
// (handle_errors), which a deny returned as a Caddy error goes through.
func hasErrorRoutes(r *http.Request) bool {
	srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	return !ok || srv == nil || srv.Errors != nil && len(srv.Errors.Routes) > 0
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
