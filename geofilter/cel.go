package geofilter

import (
	"fmt"
	"slices"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types/ref"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-edge/edge/geofilter/rules"
)

// CELLibrary makes the matcher usable in CEL expressions:
//
//	expression geo({'continent': ['EU']})
//	expression geo({'country': ['US', 'CA'], 'asn': ['64496']}) || path('/public/*')
//
// Keys are the condition names (country, continent, eu, subdivision, asn,
// anonymous, ip); eu takes ['true'] or ['false']. ip_list and databases are
// not available in CEL: the expression uses the lookup of the geofilter
// handler that ran before it, like a geo matcher without db.
func (MatchGeo) CELLibrary(_ caddy.Context) (cel.Library, error) {
	return caddyhttp.CELMatcherImpl(
		"geo",
		"geo_matcher_request_map",
		[]*cel.Type{caddyhttp.CELTypeJSON},
		func(data ref.Val) (caddyhttp.RequestMatcherWithError, error) {
			m, err := caddyhttp.CELValueToMapStrList(data)
			if err != nil {
				return nil, err
			}
			c, err := celConditions(m)
			if err != nil {
				return nil, err
			}
			compiled, err := c.Compile(nil)
			if err != nil {
				return nil, fmt.Errorf("geo: %w", err)
			}
			return &MatchGeo{Conditions: c, m: compiled, checked: new(sync.Map)}, nil
		},
	)
}

// celConditions turns the map argument of geo() into Conditions. Every
// condition of the rules is available except ip_list; anonymous with no
// value means any.
func celConditions(m map[string][]string) (rules.Conditions, error) {
	var c rules.Conditions
	for k, vs := range m {
		if !slices.Contains(celConditionNames(), k) {
			return c, fmt.Errorf("geo: unknown condition %q in an expression (want %s)", k, rules.OrList(celConditionNames()))
		}
		if k == rules.CondAnonymous && len(vs) == 0 {
			vs = []string{rules.AnonAny}
		}
		if err := c.Add(k, vs); err != nil {
			return c, fmt.Errorf("geo: %s: %w", k, err)
		}
	}
	return c, nil
}

// celConditionNames are the conditions geo() takes: all but ip_list.
func celConditionNames() []string {
	return slices.DeleteFunc(rules.ConditionNames(), func(n string) bool { return n == rules.CondIPList })
}

// Interface guards
var (
	_ caddyhttp.CELLibraryProducer = (*MatchGeo)(nil)
)
