// Package rules is the Caddy-free rule evaluator of geofilter: ordered rules,
// each a set of conditions on what the databases know of the client address
// and on the request, and an action; the first allow or deny rule that
// matches decides.
//
// Conditions is the configuration form (JSON, and the target of the
// Caddyfile parser); Compile turns it into a Matcher that evaluates with no
// allocation.
package rules

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/caddy-edge/edge/geofilter/geodb"
)

// Action is what a rule does with a request it matches.
type Action uint8

// The actions. The zero value is not a valid action.
const (
	// Allow lets the request go on; later rules are not evaluated.
	Allow Action = iota + 1
	// Deny stops the request; later rules are not evaluated.
	Deny
	// Log records the match and goes on with the next rule.
	Log
)

// ParseAction parses "allow", "deny" or "log".
func ParseAction(s string) (Action, error) {
	switch s {
	case "allow":
		return Allow, nil
	case "deny":
		return Deny, nil
	case "log":
		return Log, nil
	}
	return 0, fmt.Errorf("unknown action %q (want allow, deny or log)", s)
}

// String returns the action's name as written in a config.
func (a Action) String() string {
	switch a {
	case Allow:
		return "allow"
	case Deny:
		return "deny"
	case Log:
		return "log"
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// MarshalText implements encoding.TextMarshaler.
func (a Action) MarshalText() ([]byte, error) {
	if a < Allow || a > Log {
		return nil, fmt.Errorf("invalid action %d", a)
	}
	return []byte(a.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *Action) UnmarshalText(b []byte) error {
	v, err := ParseAction(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// Unknown is the value that matches an address no database knows (for
// country and continent) in conditions.
const Unknown = "unknown"

// The values of the anonymous condition.
const (
	AnonAny              = "any" // any of the flags below, or the database's is_anonymous
	AnonVPN              = "vpn"
	AnonHosting          = "hosting"
	AnonPublicProxy      = "public_proxy"
	AnonTor              = "tor"
	AnonResidentialProxy = "residential_proxy"
)

// anonValues are the values of the anonymous condition and their flags: the
// one list that parsing, error messages and the Caddyfile shortcuts use.
var anonValues = [...]struct {
	name string
	flag anonFlags
}{
	{AnonAny, anonAny},
	{AnonVPN, anonVPN},
	{AnonHosting, anonHosting},
	{AnonPublicProxy, anonPublicProxy},
	{AnonTor, anonTor},
	{AnonResidentialProxy, anonResidentialProxy},
}

// AnonymousFlags returns the values of the anonymous condition other than
// "any": vpn, hosting, public_proxy, tor, residential_proxy.
func AnonymousFlags() []string {
	out := make([]string, 0, len(anonValues)-1)
	for _, v := range anonValues[1:] {
		out = append(out, v.name)
	}
	return out
}

// IsAnonymous reports whether any anonymous-IP flag of g is set (what the
// anonymous condition "any" and the {geo.is_anonymous} placeholder test).
func IsAnonymous(g *geodb.Result) bool {
	return g.IsAnonymous || g.IsAnonymousVPN || g.IsHostingProvider || g.IsPublicProxy ||
		g.IsTorExitNode || g.IsResidentialProxy
}

// The names of the conditions: the JSON keys of Conditions, and the names
// the Caddyfile and the CEL function geo() use.
const (
	CondCountry     = "country"
	CondContinent   = "continent"
	CondEU          = "eu"
	CondSubdivision = "subdivision"
	CondASN         = "asn"
	CondAnonymous   = "anonymous"
	CondIP          = "ip"
	CondIPList      = "ip_list"
)

// conditionNames lists the conditions in the order they are documented.
var conditionNames = [...]string{CondCountry, CondContinent, CondEU, CondSubdivision, CondASN, CondAnonymous, CondIP, CondIPList}

// ConditionNames returns the names of the conditions Add accepts.
func ConditionNames() []string { return slices.Clone(conditionNames[:]) }

// OrList joins names as "a, b or c", for error messages.
func OrList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// Conditions are the conditions of one rule. All the conditions that are set
// must hold (AND); within one condition, any of the values may match (OR).
// A rule with no condition at all is rejected by Compile.
type Conditions struct {
	// Country codes, ISO 3166-1 alpha-2 (case-insensitive), or "unknown" for
	// an address for which no database knows a country.
	Country []string `json:"country,omitempty"`
	// Continent codes: AF AN AS EU NA OC SA, or "unknown".
	Continent []string `json:"continent,omitempty"`
	// EU, if set, holds when the country's EU membership equals it.
	EU *bool `json:"eu,omitempty"`
	// Subdivision codes: the ISO 3166-2 code of the first subdivision, either
	// alone ("CA", any country) or with the country ("US-CA").
	Subdivision []string `json:"subdivision,omitempty"`
	// Autonomous system numbers ("64496" or "AS64496").
	ASN []string `json:"asn,omitempty"`
	// Anonymity flags from an anonymous-IP database: "any", "vpn",
	// "hosting", "public_proxy", "tor", "residential_proxy".
	Anonymous []string `json:"anonymous,omitempty"`
	// IP addresses or CIDR ranges of the client address.
	IP []string `json:"ip,omitempty"`
	// Paths of IP list files (FireHOL or Spamhaus DROP style netsets,
	// reloaded on change like the databases).
	IPList []string `json:"ip_list,omitempty"`
	// Not holds when none of its condition sets holds: each entry is one
	// set of conditions (all of which must hold for the entry to hold).
	Not []Conditions `json:"not,omitempty"`
}

// IsZero reports whether no condition is set.
func (c *Conditions) IsZero() bool {
	return len(c.Country) == 0 && len(c.Continent) == 0 && c.EU == nil &&
		len(c.Subdivision) == 0 && len(c.ASN) == 0 && len(c.Anonymous) == 0 &&
		len(c.IP) == 0 && len(c.IPList) == 0 && len(c.Not) == 0
}

// Add adds the values of the condition named name (one of ConditionNames)
// to c, checking each value (the files of ip_list are opened by Compile).
// eu takes one value, true or false; the other conditions take one or more.
// Errors do not repeat the condition's name.
func (c *Conditions) Add(name string, values []string) error {
	if name == CondEU {
		if len(values) != 1 {
			return errors.New("takes one value, true or false")
		}
		b, err := strconv.ParseBool(values[0])
		if err != nil {
			return fmt.Errorf("bad value '%s': want true or false", values[0])
		}
		if c.EU != nil {
			return errors.New("duplicate eu condition")
		}
		c.EU = &b
		return nil
	}
	dst := c.list(name)
	if dst == nil {
		return fmt.Errorf("unknown condition %q (want %s)", name, OrList(conditionNames[:]))
	}
	if len(values) == 0 {
		return errors.New("missing value")
	}
	if name != CondIPList { // the values of ip_list are files, opened by Compile
		var one Conditions
		*one.list(name) = values
		if _, err := one.Compile(nil); err != nil {
			return err
		}
	}
	*dst = append(*dst, values...)
	return nil
}

// list returns the field of c that holds the values of the condition named
// name, or nil for eu and unknown names.
func (c *Conditions) list(name string) *[]string {
	switch name {
	case CondCountry:
		return &c.Country
	case CondContinent:
		return &c.Continent
	case CondSubdivision:
		return &c.Subdivision
	case CondASN:
		return &c.ASN
	case CondAnonymous:
		return &c.Anonymous
	case CondIP:
		return &c.IP
	case CondIPList:
		return &c.IPList
	}
	return nil
}

// NeedsGeo reports whether evaluating c needs a database lookup.
func (c *Conditions) NeedsGeo() bool {
	if len(c.Country) > 0 || len(c.Continent) > 0 || c.EU != nil ||
		len(c.Subdivision) > 0 || len(c.ASN) > 0 || len(c.Anonymous) > 0 {
		return true
	}
	for i := range c.Not {
		if c.Not[i].NeedsGeo() {
			return true
		}
	}
	return false
}

// FieldNeed is what one condition reads of the databases: any of Fields
// (names of geodb.FieldNames) must be provided by a database for the
// condition ever to hold as configured.
type FieldNeed struct {
	Condition string   // as written: "country", "eu", "anonymous tor", ...
	Fields    []string // any of these
}

// Needs lists what the conditions (Not included) read of the databases, so
// that a config whose databases cannot serve a condition is refused at load
// rather than matching nothing (or everything, negated) at each request.
func (c *Conditions) Needs() []FieldNeed {
	var out []FieldNeed
	add := func(cond string, fields ...string) {
		for _, n := range out {
			if n.Condition == cond {
				return
			}
		}
		out = append(out, FieldNeed{Condition: cond, Fields: fields})
	}
	if len(c.Country) > 0 {
		add("country", "country_code")
	}
	if len(c.Continent) > 0 {
		add("continent", "continent_code")
	}
	if c.EU != nil {
		add("eu", "in_eu")
	}
	if len(c.Subdivision) > 0 {
		add("subdivision", "subdivision_code")
	}
	if len(c.ASN) > 0 {
		add("asn", "asn")
	}
	for _, v := range c.Anonymous {
		switch strings.ToLower(v) {
		case AnonAny:
			add("anonymous", "is_anonymous", "is_anonymous_vpn", "is_hosting_provider", "is_public_proxy", "is_tor_exit_node", "is_residential_proxy")
		case AnonVPN:
			add("anonymous vpn", "is_anonymous_vpn")
		case AnonHosting:
			add("anonymous hosting", "is_hosting_provider")
		case AnonPublicProxy:
			add("anonymous public_proxy", "is_public_proxy")
		case AnonTor:
			add("anonymous tor", "is_tor_exit_node")
		case AnonResidentialProxy:
			add("anonymous residential_proxy", "is_residential_proxy")
		}
	}
	for i := range c.Not {
		for _, n := range c.Not[i].Needs() {
			add(n.Condition, n.Fields...)
		}
	}
	return out
}

// IPSet is a set of addresses, such as an IP list file.
type IPSet interface {
	Contains(ip netip.Addr) bool
}

// OpenIPList opens the IP list file at path; Compile calls it for each
// ip_list entry.
type OpenIPList func(path string) (IPSet, error)

// Input is what a rule is evaluated on. Geo is what the databases know of
// IP; it must not be nil.
type Input struct {
	IP  netip.Addr
	Geo *geodb.Result
}

// Matcher is a compiled set of Conditions.
type Matcher struct {
	countries    [(26*26 + 63) / 64]uint64 // bit i: country code i (see countryIndex)
	hasCountry   bool
	countryUnkwn bool

	continents   uint8 // bit i: continentCodes[i]
	continentUnk bool

	eu *bool

	subdivs  []subdiv
	asns     []uint32 // sorted
	anon     anonFlags
	prefixes []netip.Prefix
	lists    []IPSet
	not      []*Matcher
}

type subdiv struct{ country, code string }

type anonFlags uint8

const (
	anonAny anonFlags = 1 << iota
	anonVPN
	anonHosting
	anonPublicProxy
	anonTor
	anonResidentialProxy
)

var continentCodes = [...]string{"AF", "AN", "AS", "EU", "NA", "OC", "SA"}

// countryIndex returns the index of a two-letter upper-case code, or -1.
func countryIndex(code string) int {
	if len(code) != 2 || code[0] < 'A' || code[0] > 'Z' || code[1] < 'A' || code[1] > 'Z' {
		return -1
	}
	return int(code[0]-'A')*26 + int(code[1]-'A')
}

// NormalizeCountry returns the ISO code of a country as it is counted and
// shown: "unknown" for "", the code itself if it has two upper-case
// letters, and "other" for anything else a database may hold (so a metric
// label stays bounded).
func NormalizeCountry(code string) string {
	if code == "" {
		return Unknown
	}
	if countryIndex(code) < 0 {
		return "other"
	}
	return code
}

// Compile checks the conditions and builds their Matcher. openList opens
// ip_list files; it may be nil if there are none.
func (c *Conditions) Compile(openList OpenIPList) (*Matcher, error) {
	if c.IsZero() {
		return nil, errors.New("rule has no condition")
	}
	m := new(Matcher)
	for _, v := range c.Country {
		if strings.EqualFold(v, Unknown) {
			m.countryUnkwn = true
			continue
		}
		up := strings.ToUpper(v)
		i := countryIndex(up)
		if i < 0 {
			return nil, fmt.Errorf("bad country code %q: want two letters (ISO 3166-1 alpha-2) or %q", v, Unknown)
		}
		if !geodb.IsCountry(up) {
			// A code no database gives would never match: say so at load.
			return nil, fmt.Errorf("bad country code %q: not an assigned ISO 3166-1 alpha-2 code%s (or %q for an address no database places)", v, countryHint(up), Unknown)
		}
		m.countries[i/64] |= 1 << (i % 64)
	}
	m.hasCountry = len(c.Country) > 0
	for _, v := range c.Continent {
		if strings.EqualFold(v, Unknown) {
			m.continentUnk = true
			continue
		}
		i := slices.Index(continentCodes[:], strings.ToUpper(v))
		if i < 0 {
			return nil, fmt.Errorf("bad continent code %q: want one of %s or %q", v, strings.Join(continentCodes[:], " "), Unknown)
		}
		m.continents |= 1 << i
	}
	if c.EU != nil {
		eu := *c.EU
		m.eu = &eu
	}
	for _, v := range c.Subdivision {
		s, err := parseSubdivision(v)
		if err != nil {
			return nil, err
		}
		m.subdivs = append(m.subdivs, s)
	}
	for _, v := range c.ASN {
		n, err := parseASN(v)
		if err != nil {
			return nil, err
		}
		m.asns = append(m.asns, n)
	}
	slices.Sort(m.asns)
	m.asns = slices.Compact(m.asns)
	for _, v := range c.Anonymous {
		f, err := parseAnon(v)
		if err != nil {
			return nil, err
		}
		m.anon |= f
	}
	for _, v := range c.IP {
		p, err := parsePrefix(v)
		if err != nil {
			return nil, err
		}
		m.prefixes = append(m.prefixes, p)
	}
	for _, path := range c.IPList {
		if openList == nil {
			return nil, fmt.Errorf("ip_list %s: no way to open IP lists here", path)
		}
		l, err := openList(path)
		if err != nil {
			return nil, fmt.Errorf("ip_list %s: %w", path, err)
		}
		m.lists = append(m.lists, l)
	}
	for i := range c.Not {
		n, err := c.Not[i].Compile(openList)
		if err != nil {
			return nil, fmt.Errorf("not: %w", err)
		}
		m.not = append(m.not, n)
	}
	return m, nil
}

// countryHint suggests what was meant by a code that is not assigned.
func countryHint(cc string) string {
	switch cc {
	case "UK":
		return ": the United Kingdom is GB"
	case "EU":
		return ": for the European Union use the eu condition, for Europe continent EU"
	case "XX", "ZZ", "A1", "A2", "AP":
		return ": databases write no such code for an unknown address"
	}
	return ""
}

// parseASN parses an autonomous system number, "64496" or "AS64496".
func parseASN(s string) (uint32, error) {
	t := s
	if len(t) > 2 && strings.EqualFold(t[:2], "AS") {
		t = t[2:]
	}
	n, err := strconv.ParseUint(t, 10, 32)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("bad ASN %q: want a number from 1 to 4294967295, optionally prefixed with AS", s)
	}
	return uint32(n), nil
}

// parsePrefix parses a CIDR range or a single address (a /32 or /128);
// IPv4-mapped IPv6 forms are reduced to IPv4.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("bad CIDR %q: %v", s, err)
		}
		if p.Addr().Is4In6() {
			// Client addresses are matched unmapped: a mapped network
			// shorter than /96 would never match one (an IP list refuses
			// it too).
			if p.Bits() < 96 {
				return netip.Prefix{}, fmt.Errorf("bad CIDR %q: IPv4-mapped network shorter than /96", s)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		if m := p.Masked(); m != p {
			// 10.0.0.1/8 is 10.0.0.0/8: a rule meant for one address or a
			// small network would apply to the whole range (nginx's geo
			// warns of it; IP list files, written by tools, are masked).
			return netip.Prefix{}, fmt.Errorf("bad CIDR %q: address bits set beyond the /%d (the network is %s; for one address, give it without /%d)", s, p.Bits(), m, p.Bits())
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad IP address %q: %v", s, err)
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func parseSubdivision(v string) (subdiv, error) {
	var s subdiv
	code := strings.ToUpper(v)
	if c, rest, ok := strings.Cut(code, "-"); ok {
		if countryIndex(c) < 0 {
			return s, fmt.Errorf("bad subdivision %q: the part before '-' must be a two-letter country code", v)
		}
		s.country, code = c, rest
	}
	if len(code) == 0 || len(code) > 3 || strings.IndexFunc(code, func(r rune) bool {
		return (r < 'A' || r > 'Z') && (r < '0' || r > '9')
	}) >= 0 {
		return s, fmt.Errorf("bad subdivision %q: want an ISO 3166-2 code such as CA or US-CA", v)
	}
	s.code = code
	return s, nil
}

func parseAnon(v string) (anonFlags, error) {
	names := make([]string, len(anonValues))
	for i, a := range anonValues {
		if strings.EqualFold(v, a.name) {
			return a.flag, nil
		}
		names[i] = a.name
	}
	return 0, fmt.Errorf("bad anonymous flag %q: want %s", v, OrList(names))
}

// Match reports whether all the conditions hold for in.
func (m *Matcher) Match(in *Input) bool {
	g := in.Geo
	if m.hasCountry {
		if g.CountryCode == "" {
			if !m.countryUnkwn {
				return false
			}
		} else if i := countryIndex(g.CountryCode); i < 0 || m.countries[i/64]&(1<<(i%64)) == 0 {
			return false
		}
	}
	if m.continents != 0 || m.continentUnk {
		if g.ContinentCode == "" {
			if !m.continentUnk {
				return false
			}
		} else if i := slices.Index(continentCodes[:], g.ContinentCode); i < 0 || m.continents&(1<<i) == 0 {
			return false
		}
	}
	if m.eu != nil && *m.eu != g.InEU {
		return false
	}
	if len(m.subdivs) > 0 && !m.matchSubdiv(g) {
		return false
	}
	if len(m.asns) > 0 {
		if _, ok := slices.BinarySearch(m.asns, g.ASN); !ok {
			return false
		}
	}
	if m.anon != 0 && !m.matchAnon(g) {
		return false
	}
	if len(m.prefixes) > 0 && !m.matchPrefix(in.IP) {
		return false
	}
	if len(m.lists) > 0 && !m.matchLists(in.IP) {
		return false
	}
	for _, n := range m.not {
		if n.Match(in) {
			return false
		}
	}
	return true
}

func (m *Matcher) matchSubdiv(g *geodb.Result) bool {
	if g.SubdivisionCode == "" {
		return false
	}
	for _, s := range m.subdivs {
		if s.code == g.SubdivisionCode && (s.country == "" || s.country == g.CountryCode) {
			return true
		}
	}
	return false
}

func (m *Matcher) matchAnon(g *geodb.Result) bool {
	f := m.anon
	return f&anonAny != 0 && IsAnonymous(g) ||
		f&anonVPN != 0 && g.IsAnonymousVPN ||
		f&anonHosting != 0 && g.IsHostingProvider ||
		f&anonPublicProxy != 0 && g.IsPublicProxy ||
		f&anonTor != 0 && g.IsTorExitNode ||
		f&anonResidentialProxy != 0 && g.IsResidentialProxy
}

func (m *Matcher) matchPrefix(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	for _, p := range m.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (m *Matcher) matchLists(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	for _, l := range m.lists {
		if l.Contains(ip) {
			return true
		}
	}
	return false
}

// RequestMatcher matches a request on anything besides the address, such as
// Caddy's request matchers (caddyhttp.MatcherSet satisfies it).
type RequestMatcher interface {
	MatchWithError(r *http.Request) (bool, error)
}

// Rule is one compiled rule.
type Rule struct {
	// Name identifies the rule in logs and in the answers of Decide's
	// callers.
	Name string
	// Cond is the compiled conditions; nil means none (then Request must be
	// set).
	Cond *Matcher
	// Request, if not nil, must also match.
	Request RequestMatcher
	// Action is what the rule does.
	Action Action
}

// Set is an ordered list of rules and the default action.
type Set struct {
	Rules []Rule
	// Default is the action when no allow or deny rule matches: Allow or
	// Deny. The zero value means Allow.
	Default Action
}

// Decision is the outcome of evaluating a Set.
type Decision struct {
	// Action is Allow or Deny: what happens to the request.
	Action Action
	// Rule is the index of the rule that decided, or -1 for the default.
	Rule int
	// Logged is the index of the first log rule that matched before the
	// decision, or -1.
	Logged int
}

// Decide evaluates the rules in order on in and r (r may be nil if no rule
// has a Request matcher): a log rule that matches is noted and evaluation
// goes on; the first allow or deny rule that matches decides; with none,
// the default decides. An error from a request matcher stops evaluation.
func (s *Set) Decide(in *Input, r *http.Request) (Decision, error) {
	d := Decision{Rule: -1, Logged: -1}
	for i := range s.Rules {
		rule := &s.Rules[i]
		if rule.Cond != nil && !rule.Cond.Match(in) {
			continue
		}
		if rule.Request != nil {
			if r == nil {
				continue
			}
			ok, err := rule.Request.MatchWithError(r)
			if err != nil {
				return d, fmt.Errorf("rule %s: %w", rule.Name, err)
			}
			if !ok {
				continue
			}
		}
		if rule.Action == Log {
			if d.Logged < 0 {
				d.Logged = i
			}
			continue
		}
		d.Action, d.Rule = rule.Action, i
		return d, nil
	}
	d.Action = s.Default
	if d.Action != Deny {
		d.Action = Allow
	}
	return d, nil
}
