package geofilter

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/caddy-edge/edge/geofilter/geodb"
	"github.com/caddy-edge/edge/geofilter/geoupdate"
	"github.com/caddy-edge/edge/geofilter/rules"
)

// NamedMatcher resolves a named matcher token of the Caddyfile (@name) to
// its matcher set; the Caddyfile adapter provides it.
type NamedMatcher func(tok caddyfile.Token) (caddy.ModuleMap, error)

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	geofilter {
//		db <path> [{
//			fields {
//				<result_field> <key|index>...
//			}
//		}]
//		reload_interval <duration>|off
//		default allow|deny [{
//			<deny response options>
//		}]
//		log_only
//
//		allow|deny|log [not] <condition> [<values...>] [{
//			<rule options>
//		}]
//		rule allow|deny|log [<name>] {
//			<condition> [<values...>]
//			not <condition> [<values...>]
//			<rule options>
//		}
//	}
//
// Conditions: country <CC|unknown...>, continent <code|unknown...>,
// eu [true|false], subdivision <code|CC-code...>, asn <number...>,
// anonymous [any|vpn|hosting|public_proxy|tor|residential_proxy...] (alone:
// any), vpn, hosting, public_proxy, tor, residential_proxy (shortcuts for
// anonymous <flag>), ip <cidr|address...>, ip_list <file...>.
//
// Deny response options (of a deny rule and of the default deny): status
// <code>, body <text>, file <path>, header <name> <value>.
//
// Rule options: name <name>; the deny response options (deny only); match
// { <matchers> }; @<named
// matcher>; or any Caddy request matcher written directly (path, method,
// query, expression, ...). header and file are the deny response's: use
// match { header ... } for the request matchers of those names; likewise
// not followed by a condition is the geo negation, any other not is
// Caddy's not matcher.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return h.UnmarshalCaddyfileNamed(d, nil)
}

// UnmarshalCaddyfileNamed is UnmarshalCaddyfile with a resolver of named
// matchers (@name) used in rules; named may be nil.
func (h *Handler) UnmarshalCaddyfileNamed(d *caddyfile.Dispenser, named NamedMatcher) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	var seenDefault, seenInterval bool
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch opt := d.Val(); opt {
		case "db", "reload_interval":
			if err := parseSourceOption(d, &h.Databases, &h.ReloadInterval, &seenInterval); err != nil {
				return err
			}
		case "default":
			if seenDefault {
				return d.Err("duplicate default: there is one default action")
			}
			seenDefault = true
			var a string
			if !d.AllArgs(&a) {
				return d.ArgErr()
			}
			if a != "allow" && a != "deny" {
				return d.Errf("bad default '%s': want allow or deny", a)
			}
			h.Default = a
			var resp DenyResponse
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				if a != "deny" {
					return d.Errf("default %s takes no options: status, body, file and header are only for default deny", a)
				}
				if ok, err := parseDenyOption(d, &resp); err != nil {
					return err
				} else if !ok {
					return d.Errf("unrecognized default deny option '%s' (want status, body, file or header)", d.Val())
				}
			}
			if err := resp.validate(); err != nil {
				return d.Errf("default deny: %v", err)
			}
			if resp.isSet() {
				h.DefaultResponse = &resp
			}
		case "log_only":
			if h.LogOnly {
				return d.Err("duplicate log_only")
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			h.LogOnly = true
		case "allow", "deny", "log":
			r := Rule{Action: mustAction(opt)}
			if !d.NextArg() {
				return d.Errf("%s: missing condition (e.g. %s country CN)", opt, opt)
			}
			if err := parseShortCondition(d, &r.Conditions); err != nil {
				return err
			}
			if err := parseRuleBlock(d, &r, named); err != nil {
				return err
			}
			h.Rules = append(h.Rules, r)
		case "rule":
			var a string
			if !d.NextArg() {
				return d.ArgErr()
			}
			a = d.Val()
			act, err := rules.ParseAction(a)
			if err != nil {
				return d.Errf("rule: %v", err)
			}
			r := Rule{Action: act}
			if d.NextArg() {
				r.Name = d.Val()
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			if err := parseRuleBlock(d, &r, named); err != nil {
				return err
			}
			if r.Conditions.IsZero() && len(r.MatchRaw) == 0 {
				return d.Errf("rule %s: no condition", a)
			}
			h.Rules = append(h.Rules, r)
		default:
			return d.Errf("unrecognized geofilter option '%s'", opt)
		}
	}
	return nil
}

func mustAction(s string) rules.Action {
	a, err := rules.ParseAction(s)
	if err != nil {
		panic(err)
	}
	return a
}

// parseShortCondition parses "[not] <condition> <values...>" from the
// current token on.
func parseShortCondition(d *caddyfile.Dispenser, c *rules.Conditions) error {
	if d.Val() == "not" {
		if !d.NextArg() {
			return d.Err("not: missing condition")
		}
		var n rules.Conditions
		ok, err := parseCondition(d, &n)
		if err != nil {
			return err
		}
		if !ok {
			return d.Errf("unknown condition '%s'", d.Val())
		}
		c.Not = append(c.Not, n)
		return nil
	}
	ok, err := parseCondition(d, c)
	if err != nil {
		return err
	}
	if !ok {
		return d.Errf("unknown condition '%s' (want %s)", d.Val(), rules.OrList(caddyfileConditions()))
	}
	return nil
}

// caddyfileConditions returns the condition names of the Caddyfile: those
// of the rules, and a shortcut for each anonymous flag (vpn for anonymous
// vpn, ...).
func caddyfileConditions() []string {
	return append(rules.ConditionNames(), rules.AnonymousFlags()...)
}

func isCondition(s string) bool {
	return slices.Contains(caddyfileConditions(), s)
}

// parseCondition parses the condition at the current token and its values
// into c, checking each value. It returns false, consuming nothing, if the
// token is not a condition.
func parseCondition(d *caddyfile.Dispenser, c *rules.Conditions) (bool, error) {
	name := d.Val()
	if !isCondition(name) {
		return false, nil
	}
	args := d.RemainingArgs()
	switch {
	case name == rules.CondEU:
		switch len(args) {
		case 0:
			args = []string{"true"}
		case 1:
		default:
			return true, d.ArgErr()
		}
	case name == rules.CondAnonymous:
		if len(args) == 0 {
			args = []string{rules.AnonAny}
		}
	case slices.Contains(rules.AnonymousFlags(), name): // a shortcut
		if len(args) > 0 {
			return true, d.ArgErr()
		}
		name, args = rules.CondAnonymous, []string{name}
	}
	if len(args) == 0 {
		return true, d.ArgErr()
	}
	if err := c.Add(name, args); err != nil {
		return true, d.Errf("%s: %v", name, err)
	}
	return true, nil
}

// parseRuleBlock parses the optional block of a rule.
func parseRuleBlock(d *caddyfile.Dispenser, r *Rule, named NamedMatcher) error {
	matcherTokens := make(map[string][]caddyfile.Token)
	var matcherOrder []string
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if strings.HasPrefix(opt, "@") {
			if named == nil {
				return d.Errf("named matcher %s: not available here", opt)
			}
			set, err := named(d.Token())
			if err != nil {
				return err
			}
			if err := mergeMatchers(d, r, set); err != nil {
				return err
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			continue
		}
		if opt == "not" {
			if d.NextArg() {
				if isCondition(d.Val()) {
					var n rules.Conditions
					if _, err := parseCondition(d, &n); err != nil {
						return err
					}
					r.Not = append(r.Not, n)
					continue
				}
				d.Prev()
			}
			// Caddy's own not matcher.
		}
		if ok, err := parseCondition(d, &r.Conditions); ok || err != nil {
			if err != nil {
				return err
			}
			continue
		}
		if ok, err := parseDenyOption(d, &r.DenyResponse); ok || err != nil {
			if err != nil {
				return err
			}
			continue
		}
		switch opt {
		case "name":
			if r.Name != "" {
				return d.Err("duplicate rule name")
			}
			if !d.AllArgs(&r.Name) {
				return d.ArgErr()
			}
		case "match":
			set, err := caddyhttp.ParseCaddyfileNestedMatcherSet(d)
			if err != nil {
				return err
			}
			if err := mergeMatchers(d, r, set); err != nil {
				return err
			}
		default:
			if _, err := caddy.GetModule("http.matchers." + opt); err != nil {
				return d.Errf("unrecognized rule option, condition or matcher '%s'", opt)
			}
			if _, ok := matcherTokens[opt]; !ok {
				matcherOrder = append(matcherOrder, opt)
			}
			matcherTokens[opt] = append(matcherTokens[opt], d.NextSegment()...)
		}
	}
	if r.Action != rules.Deny && r.DenyResponse.isSet() {
		return d.Errf("status, body, file and header are only for deny rules, this one is %s", r.Action)
	}
	if err := r.DenyResponse.validate(); err != nil {
		return d.Err(err.Error())
	}
	set := make(caddy.ModuleMap)
	for _, name := range matcherOrder {
		toks := matcherTokens[name]
		md := caddyfile.NewDispenser(toks)
		mod, _ := caddy.GetModule("http.matchers." + name)
		unm, ok := mod.New().(caddyfile.Unmarshaler)
		if !ok {
			md.Next()
			return md.Errf("matcher '%s' cannot be written in a Caddyfile", name)
		}
		if err := unm.UnmarshalCaddyfile(md); err != nil {
			return err
		}
		switch unm.(type) {
		case caddyhttp.RequestMatcherWithError, caddyhttp.RequestMatcher: //lint:ignore SA1019 deprecated, but still accepted, as Caddy does
		default:
			md.Reset()
			md.Next()
			return md.Errf("module '%s' is not a request matcher", name)
		}
		b, err := json.Marshal(unm)
		if err != nil {
			return fmt.Errorf("encoding matcher %s: %v", name, err)
		}
		set[name] = b
	}
	return mergeMatchers(d, r, set)
}

// parseDenyOption parses the current option into resp if it is a deny
// response option (status, body, file, header) and reports whether it was.
func parseDenyOption(d *caddyfile.Dispenser, resp *DenyResponse) (bool, error) {
	switch d.Val() {
	case "status":
		var s string
		if resp.Status != 0 {
			return true, d.Err("duplicate status")
		}
		if !d.AllArgs(&s) {
			return true, d.ArgErr()
		}
		code, err := strconv.Atoi(s)
		if err != nil || !validDenyStatus(code) {
			return true, d.Errf("bad status '%s': want a status code from %d to %d", s, minDenyStatus, maxDenyStatus)
		}
		resp.Status = code
	case "body":
		if resp.Body != "" {
			return true, d.Err("duplicate body")
		}
		if !d.AllArgs(&resp.Body) {
			return true, d.ArgErr()
		}
	case "file":
		if resp.File != "" {
			return true, d.Err("duplicate file")
		}
		if !d.AllArgs(&resp.File) {
			return true, d.ArgErr()
		}
	case "header":
		var k, v string
		if !d.AllArgs(&k, &v) {
			return true, d.ArgErr()
		}
		if resp.Headers == nil {
			resp.Headers = make(http.Header)
		}
		resp.Headers.Add(k, v)
	default:
		return false, nil
	}
	return true, nil
}

func mergeMatchers(d *caddyfile.Dispenser, r *Rule, set caddy.ModuleMap) error {
	for k, v := range set {
		if r.MatchRaw == nil {
			r.MatchRaw = make(caddy.ModuleMap)
		}
		if _, dup := r.MatchRaw[k]; dup {
			return d.Errf("matcher '%s' given twice in one rule (inline, in match or in a named matcher)", k)
		}
		r.MatchRaw[k] = v
	}
	return nil
}

// parseSourceOption parses the options the handler and the matcher share,
// db and reload_interval, with the dispenser on the option's name.
// seenInterval rejects a second reload_interval.
func parseSourceOption(d *caddyfile.Dispenser, dbs *[]DatabaseConfig, interval *caddy.Duration, seenInterval *bool) error {
	if d.Val() == "db" {
		db, err := parseDB(d, *dbs)
		if err != nil {
			return err
		}
		*dbs = append(*dbs, db)
		return nil
	}
	if *seenInterval {
		return d.Err("duplicate reload_interval")
	}
	*seenInterval = true
	dur, err := parseInterval(d)
	if err != nil {
		return err
	}
	*interval = dur
	return nil
}

// parseDB parses
//
//	db <path|edition> [{
//		fields {
//			<field> [<key|index>...]
//		}
//		account_id <id>
//		license_key <key>
//		edition_id <id>
//		update_url <url>
//		update_interval <duration>
//		update_max_size <size>
//		update_timeout <duration>
//	}]
func parseDB(d *caddyfile.Dispenser, have []DatabaseConfig) (DatabaseConfig, error) {
	var db DatabaseConfig
	if !d.NextArg() {
		return db, d.ArgErr()
	}
	db.Path = d.Val()
	if d.NextArg() {
		return db, d.ArgErr()
	}
	for _, o := range have {
		if o.Path == db.Path {
			return db, d.Errf("duplicate db '%s'", db.Path)
		}
	}
	upd := new(UpdateConfig)
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return db, d.Errf("duplicate db option '%s'", opt)
		}
		seen[opt] = true
		var arg string
		switch opt {
		case "fields":
			if d.NextArg() {
				return db, d.ArgErr()
			}
			if err := parseFields(d, &db); err != nil {
				return db, err
			}
			continue
		case "account_id", "license_key", "edition_id", "update_url", "update_interval", "update_max_size", "update_timeout":
			if !d.AllArgs(&arg) {
				return db, d.ArgErr()
			}
		default:
			return db, d.Errf("unrecognized db option '%s' (want fields, account_id, license_key, edition_id, update_url, update_interval, update_max_size or update_timeout)", opt)
		}
		switch opt {
		case "account_id":
			upd.AccountID = arg
		case "license_key":
			upd.LicenseKey = arg
		case "edition_id":
			upd.EditionID = arg
		case "update_url":
			if !strings.HasPrefix(arg, "https://") && !strings.HasPrefix(arg, "http://") && !strings.HasPrefix(arg, "{") {
				return db, d.Errf("bad update_url '%s': want an https URL", arg)
			}
			upd.URL = arg
		case "update_interval", "update_timeout":
			dur, err := caddy.ParseDuration(arg)
			if err != nil || dur <= 0 {
				return db, d.Errf("bad %s '%s': want a positive duration", opt, arg)
			}
			if opt == "update_interval" && dur < geoupdate.MinInterval {
				return db, d.Errf("bad update_interval '%s': at least %s, update servers limit how often a client downloads", arg, geoupdate.MinInterval)
			}
			if opt == "update_interval" {
				upd.Interval = caddy.Duration(dur)
			} else {
				upd.Timeout = caddy.Duration(dur)
			}
		case "update_max_size":
			n, err := humanize.ParseBytes(arg)
			if err != nil || n == 0 || n > 1<<40 {
				return db, d.Errf("bad update_max_size '%s': want a size such as 512MiB", arg)
			}
			upd.MaxSize = int64(n)
		}
	}
	if *upd != (UpdateConfig{}) {
		maxmind := upd.AccountID != "" || upd.LicenseKey != "" || upd.EditionID != ""
		switch {
		case maxmind && (upd.AccountID == "" || upd.LicenseKey == ""):
			return db, d.Errf("db %s: a MaxMind update needs both account_id and license_key", db.Path)
		case !maxmind && upd.URL == "":
			return db, d.Errf("db %s: update options without a source: give update_url, or account_id and license_key", db.Path)
		}
		db.Update = upd
	}
	return db, nil
}

// parseFields parses the block of "fields": "<field> [<key|index>...]"; a
// field with no path is not read.
func parseFields(d *caddyfile.Dispenser, db *DatabaseConfig) error {
	for n2 := d.Nesting(); d.NextBlock(n2); {
		name := d.Val()
		if names := geodb.FieldNames(); !slices.Contains(names, name) {
			return d.Errf("unknown field '%s' (want one of %s)", name, strings.Join(names, ", "))
		}
		args := d.RemainingArgs()
		if db.Fields == nil {
			db.Fields = make(geodb.FieldPaths)
		}
		if _, dup := db.Fields[name]; dup {
			return d.Errf("duplicate field '%s'", name)
		}
		path := make([]any, len(args))
		for i, a := range args {
			if n, err := strconv.Atoi(a); err == nil {
				path[i] = n
			} else {
				path[i] = a
			}
		}
		db.Fields[name] = path
	}
	return nil
}

func parseInterval(d *caddyfile.Dispenser) (caddy.Duration, error) {
	var s string
	if !d.AllArgs(&s) {
		return 0, d.ArgErr()
	}
	if s == "off" {
		return -1, nil
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil {
		return 0, d.Errf("bad reload_interval '%s': %v", s, err)
	}
	if dur <= 0 {
		return 0, d.Errf("bad reload_interval '%s': must be positive, or off", s)
	}
	return caddy.Duration(dur), nil
}

// UnmarshalCaddyfile sets up the matcher from Caddyfile tokens. Syntax:
//
//	geo [not] <condition> [<values...>]
//	geo {
//		[not] <condition> [<values...>]
//		db <path> [{ fields { ... } }]
//		reload_interval <duration>
//	}
//
// The conditions are those of geofilter rules, e.g. `geo continent EU`,
// `geo country US CA`, `geo asn 64496`, `geo anonymous`, `geo eu`,
// `geo country unknown`. Several conditions must all hold.
func (m *MatchGeo) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	var seenInterval bool
	for d.Next() { // consume matcher name; repeated when used twice in a set
		if d.NextArg() {
			if err := parseShortCondition(d, &m.Conditions); err != nil {
				return err
			}
		}
		for nesting := d.Nesting(); d.NextBlock(nesting); {
			switch d.Val() {
			case "db", "reload_interval":
				if err := parseSourceOption(d, &m.Databases, &m.ReloadInterval, &seenInterval); err != nil {
					return err
				}
			default:
				if err := parseShortCondition(d, &m.Conditions); err != nil {
					return err
				}
			}
		}
	}
	if m.Conditions.IsZero() {
		return d.Err("geo matcher: no condition")
	}
	return nil
}
