package geofilter

import (
	"fmt"
	"strconv"

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
			return &MatchGeo{Conditions: c, m: compiled}, nil
		},
	)
}

// celConditions turns the map argument of geo() into Conditions.
func celConditions(m map[string][]string) (rules.Conditions, error) {
	var c rules.Conditions
	for k, vs := range m {
		switch k {
		case "country":
			c.Country = vs
		case "continent":
			c.Continent = vs
		case "subdivision":
			c.Subdivision = vs
		case "asn":
			c.ASN = vs
		case "anonymous":
			c.Anonymous = vs
			if len(vs) == 0 {
				c.Anonymous = []string{rules.AnonAny}
			}
		case "ip":
			c.IP = vs
		case "eu":
			if len(vs) != 1 {
				return c, fmt.Errorf("geo: eu takes one value, true or false")
			}
			b, err := strconv.ParseBool(vs[0])
			if err != nil {
				return c, fmt.Errorf("geo: eu: bad value %q: want true or false", vs[0])
			}
			c.EU = &b
		default:
			return c, fmt.Errorf("geo: unknown condition %q in an expression (want country, continent, eu, subdivision, asn, anonymous or ip)", k)
		}
	}
	return c, nil
}

// Interface guards
var (
	_ caddyhttp.CELLibraryProducer = (*MatchGeo)(nil)
)
