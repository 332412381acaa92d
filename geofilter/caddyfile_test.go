package geofilter

import (
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-edge/edge/geofilter/geodb"
	"github.com/caddy-edge/edge/geofilter/rules"
)

func ptr[T any](v T) *T { return &v }

func TestUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  Handler
	}{
		{"bare", `geofilter`, Handler{}},
		{"db updates", `geofilter {
			db GeoLite2-Country {
				account_id 42
				license_key {env.MAXMIND_LICENSE_KEY}
				update_interval 24h
			}
			db /data/asn.mmdb {
				update_url https://example.com/asn.mmdb.gz
				update_max_size 64MiB
				update_timeout 2m
				fields {
					in_eu
					asn network asn
				}
			}
		}`, Handler{Databases: []DatabaseConfig{
			{Path: "GeoLite2-Country", Update: &UpdateConfig{AccountID: "42", LicenseKey: "{env.MAXMIND_LICENSE_KEY}", Interval: caddy.Duration(24 * time.Hour)}},
			{Path: "/data/asn.mmdb", Fields: geodb.FieldPaths{"in_eu": {}, "asn": {"network", "asn"}},
				Update: &UpdateConfig{URL: "https://example.com/asn.mmdb.gz", MaxSize: 64 << 20, Timeout: caddy.Duration(2 * time.Minute)}},
		}}},
		{"reload off", "geofilter {\n\treload_interval off\n}", Handler{ReloadInterval: -1}},
		{"design minimum", `geofilter {
			db /var/lib/GeoIP/GeoLite2-Country.mmdb
			deny country CN RU
			allow ip 10.0.0.0/8
			default allow
		}`, Handler{
			Databases: []DatabaseConfig{{Path: "/var/lib/GeoIP/GeoLite2-Country.mmdb"}},
			Rules: []Rule{
				{Action: rules.Deny, Conditions: rules.Conditions{Country: []string{"CN", "RU"}}},
				{Action: rules.Allow, Conditions: rules.Conditions{IP: []string{"10.0.0.0/8"}}},
			},
			Default: "allow",
		}},
		{"every short form", `geofilter {
			db a.mmdb
			db b.mmdb {
				fields {
					country_code country_code
					subdivision_code subdivisions 0 iso_code
				}
			}
			reload_interval 30s
			log_only
			default deny
			deny asn 64496 AS64497
			deny continent AF
			deny anonymous
			deny tor
			log anonymous vpn hosting
			deny ip_list /etc/firehol.netset
			allow country unknown
			allow eu
			log eu false
			deny subdivision US-CA
			deny not country US CA
		}`, Handler{
			Databases: []DatabaseConfig{{Path: "a.mmdb"}, {Path: "b.mmdb", Fields: geodb.FieldPaths{
				"country_code":     {"country_code"},
				"subdivision_code": {"subdivisions", 0, "iso_code"},
			}}},
			ReloadInterval: caddy.Duration(30e9),
			LogOnly:        true,
			Default:        "deny",
			Rules: []Rule{
				{Action: rules.Deny, Conditions: rules.Conditions{ASN: []string{"64496", "AS64497"}}},
				{Action: rules.Deny, Conditions: rules.Conditions{Continent: []string{"AF"}}},
				{Action: rules.Deny, Conditions: rules.Conditions{Anonymous: []string{"any"}}},
				{Action: rules.Deny, Conditions: rules.Conditions{Anonymous: []string{"tor"}}},
				{Action: rules.Log, Conditions: rules.Conditions{Anonymous: []string{"vpn", "hosting"}}},
				{Action: rules.Deny, Conditions: rules.Conditions{IPList: []string{"/etc/firehol.netset"}}},
				{Action: rules.Allow, Conditions: rules.Conditions{Country: []string{"unknown"}}},
				{Action: rules.Allow, Conditions: rules.Conditions{EU: ptr(true)}},
				{Action: rules.Log, Conditions: rules.Conditions{EU: ptr(false)}},
				{Action: rules.Deny, Conditions: rules.Conditions{Subdivision: []string{"US-CA"}}},
				{Action: rules.Deny, Conditions: rules.Conditions{Not: []rules.Conditions{{Country: []string{"US", "CA"}}}}},
			},
		}},
		{"rule block", `geofilter {
			rule deny admin {
				country CN RU
				not asn 64496
				path /admin/*
				method POST
				status 451
				body "not here"
				header X-Reason geo
				header X-Reason filter
			}
			deny country KP {
				file /srv/blocked.html
				match {
					header X-Debug 1
				}
			}
		}`, Handler{Rules: []Rule{
			{
				Name: "admin", Action: rules.Deny,
				Conditions: rules.Conditions{Country: []string{"CN", "RU"}, Not: []rules.Conditions{{ASN: []string{"64496"}}}},
				MatchRaw: caddy.ModuleMap{
					"path":   json.RawMessage(`["/admin/*"]`),
					"method": json.RawMessage(`["POST"]`),
				},
				DenyResponse: DenyResponse{
					Status:  451,
					Body:    "not here",
					Headers: map[string][]string{"X-Reason": {"geo", "filter"}},
				},
			},
			{
				Action:       rules.Deny,
				Conditions:   rules.Conditions{Country: []string{"KP"}},
				DenyResponse: DenyResponse{File: "/srv/blocked.html"},
				MatchRaw:     caddy.ModuleMap{"header": json.RawMessage(`{"X-Debug":["1"]}`)},
			},
		}}},
		{"default deny with a response", `geofilter {
			default deny {
				status 451
				body "not from {geo.country_code}"
				header Retry-After 3600
				header X-Reason geo
			}
		}`, Handler{Default: "deny", DefaultResponse: &DenyResponse{
			Status:  451,
			Body:    "not from {geo.country_code}",
			Headers: http.Header{"Retry-After": {"3600"}, "X-Reason": {"geo"}},
		}}},
		{"default deny with a file", `geofilter {
			default deny {
				file /srv/blocked.html
			}
		}`, Handler{Default: "deny", DefaultResponse: &DenyResponse{File: "/srv/blocked.html"}}},
		{"default deny with an empty block", "geofilter {\n\tdefault deny {\n\t}\n}", Handler{Default: "deny"}},
		{"rule with only a matcher and caddy's not", `geofilter {
			rule log {
				not path /health
			}
		}`, Handler{Rules: []Rule{{Action: rules.Log, MatchRaw: caddy.ModuleMap{
			"not": json.RawMessage(`[{"path":["/health"]}]`),
		}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Handler
			if err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input)); err != nil {
				t.Fatal(err)
			}
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(tt.want)
			if string(gj) != string(wj) {
				t.Errorf("got  %s\nwant %s", gj, wj)
			}
		})
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	tests := []struct {
		name, input, want string
	}{
		{"argument on the directive", `geofilter foo`, "wrong argument count"},
		{"unknown option", "geofilter {\n\tbogus 1\n}", "unrecognized geofilter option 'bogus', at Testfile:2"},
		// Clients are looked up unmapped (192.0.2.1, never ::ffff:192.0.2.1):
		// a mapped network shorter than /96 would never match one, as
		// an IP list refuses it.
		{"ip mapped network shorter than /96", "geofilter {\n\tdeny ip ::ffff:10.0.0.0/90\n}", "IPv4-mapped network shorter than /96, at Testfile:2"},
		{"db without path", "geofilter {\n\tdb\n}", "wrong argument count or unexpected line ending after"},
		{"db two paths", "geofilter {\n\tdb a b\n}", "wrong argument count or unexpected line ending after"},
		{"duplicate db", "geofilter {\n\tdb a\n\tdb a\n}", "duplicate db 'a', at Testfile:3"},
		{"db unknown option", "geofilter {\n\tdb a {\n\t\tfoo\n\t}\n}", "unrecognized db option 'foo', at Testfile:3"},
		{"db unknown field", "geofilter {\n\tdb a {\n\t\tfields {\n\t\t\tcountry iso\n\t\t}\n\t}\n}", "unknown field 'country', at Testfile:4"},
		{"db update without source", "geofilter {\n\tdb a.mmdb {\n\t\tupdate_interval 1h\n\t}\n}", "db a.mmdb: update options without a source: give update_url, or account_id and license_key, at Testfile:4"},
		{"db account without key", "geofilter {\n\tdb GeoLite2-Country {\n\t\taccount_id 42\n\t}\n}", "db GeoLite2-Country: a MaxMind update needs both account_id and license_key, at Testfile:4"},
		{"db update interval too short", "geofilter {\n\tdb a.mmdb {\n\t\tupdate_url https://x/y.mmdb\n\t\tupdate_interval 10s\n\t}\n}", "bad update_interval '10s': at least 1m0s"},
		{"db update url not http", "geofilter {\n\tdb a.mmdb {\n\t\tupdate_url ftp://x/y.mmdb\n\t}\n}", "bad update_url 'ftp://x/y.mmdb': want an https URL, at Testfile:3"},
		{"db update bad size", "geofilter {\n\tdb a.mmdb {\n\t\tupdate_url https://x/y.mmdb\n\t\tupdate_max_size lots\n\t}\n}", "bad update_max_size 'lots'"},
		{"db duplicate option", "geofilter {\n\tdb a.mmdb {\n\t\tupdate_url https://x/y.mmdb\n\t\tupdate_url https://x/z.mmdb\n\t}\n}", "duplicate db option 'update_url', at Testfile:4"},
		{"db duplicate field", "geofilter {\n\tdb a {\n\t\tfields {\n\t\t\tcity a\n\t\t\tcity b\n\t\t}\n\t}\n}", "duplicate field 'city', at Testfile:5"},
		{"reload_interval bad", "geofilter {\n\treload_interval soon\n}", "bad reload_interval 'soon', at Testfile:2"},
		{"reload_interval zero", "geofilter {\n\treload_interval 0s\n}", "bad reload_interval '0s': must be positive, at Testfile:2"},
		{"reload_interval twice", "geofilter {\n\treload_interval 1m\n\treload_interval 2m\n}", "duplicate reload_interval, at Testfile:3"},
		{"default twice", "geofilter {\n\tdefault allow\n\tdefault deny\n}", "duplicate default, at Testfile:3"},
		{"default bad", "geofilter {\n\tdefault log\n}", "bad default 'log': want allow or deny, at Testfile:2"},
		{"default missing", "geofilter {\n\tdefault\n}", "wrong argument count or unexpected line ending after"},
		{"default allow with options", "geofilter {\n\tdefault allow {\n\t\tstatus 451\n\t}\n}", "default allow takes no options: status, body, file and header are only for default deny, at Testfile:3"},
		{"default deny unknown option", "geofilter {\n\tdefault deny {\n\t\tstatus 451\n\t\tcountry CN\n\t}\n}", "unrecognized default deny option 'country' (want status, body, file or header), at Testfile:4"},
		{"default deny bad status", "geofilter {\n\tdefault deny {\n\t\tstatus 200\n\t}\n}", "bad status '200': want a status code from 300 to 599, at Testfile:3"},
		{"default deny duplicate body", "geofilter {\n\tdefault deny {\n\t\tbody a\n\t\tbody b\n\t}\n}", "duplicate body, at Testfile:4"},
		{"default deny body and file", "geofilter {\n\tdefault deny {\n\t\tbody a\n\t\tfile b\n\t}\n}", "default deny: body and file are mutually exclusive, at Testfile:5"},
		{"default deny header one arg", "geofilter {\n\tdefault deny {\n\t\theader X-A\n\t}\n}", "wrong argument count or unexpected line ending after 'X-A', at Testfile:3"},
		{"log_only twice", "geofilter {\n\tlog_only\n\tlog_only\n}", "duplicate log_only, at Testfile:3"},
		{"log_only argument", "geofilter {\n\tlog_only yes\n}", "wrong argument count or unexpected line ending after"},
		{"rule without condition", "geofilter {\n\tdeny\n}", "deny: missing condition, at Testfile:2"},
		{"unknown field", "geofilter {\n\tdeny city Paris\n}", "unknown condition 'city', at Testfile:2"},
		{"country without value", "geofilter {\n\tdeny country\n}", "wrong argument count or unexpected line ending after"},
		{"bad country", "geofilter {\n\tdeny country CHN\n}", `country: bad country code "CHN"`},
		{"country UK", "geofilter {\n\tallow ip 192.0.2.1\n\tdeny country DE UK\n}", `country: bad country code "UK": not an assigned ISO 3166-1 alpha-2 code: the United Kingdom is GB (or "unknown" for an address no database places), at Testfile:3`},
		{"country XX in a rule block", "geofilter {\n\trule deny {\n\t\tcountry XX\n\t}\n}", `country: bad country code "XX": not an assigned ISO 3166-1 alpha-2 code: databases write no such code for an unknown address (or "unknown" for an address no database places), at Testfile:3`},
		{"geo matcher country UK", "geofilter {\n\tdeny not country UK\n}", `the United Kingdom is GB`},
		{"bad continent", "geofilter {\n\tdeny continent EUR\n}", `continent: bad continent code "EUR"`},
		{"bad asn", "geofilter {\n\tdeny asn AS-1\n}", `asn: bad ASN "AS-1"`},
		{"bad cidr", "geofilter {\n\tallow ip 10.0.0.0/40\n}", `ip: bad CIDR "10.0.0.0/40"`},
		{"cidr with address bits", "geofilter {\n\tdeny ip 10.0.0.1/8\n}", `ip: bad CIDR "10.0.0.1/8": address bits set beyond the /8 (the network is 10.0.0.0/8`},
		{"bad ip", "geofilter {\n\tallow ip localhost\n}", `ip: bad IP address "localhost"`},
		{"bad subdivision", "geofilter {\n\tdeny subdivision California\n}", `subdivision: bad subdivision "California"`},
		{"bad anonymous flag", "geofilter {\n\tdeny anonymous cloud\n}", `anonymous: bad anonymous flag "cloud"`},
		{"shortcut with value", "geofilter {\n\tdeny tor yes\n}", "wrong argument count or unexpected line ending after"},
		{"bad eu", "geofilter {\n\tallow eu maybe\n}", "eu: bad value 'maybe', at Testfile:2"},
		{"ip_list without file", "geofilter {\n\tdeny ip_list\n}", "wrong argument count or unexpected line ending after"},
		{"not without condition", "geofilter {\n\tdeny not\n}", "not: missing condition, at Testfile:2"},
		{"not unknown condition", "geofilter {\n\tdeny not path /x\n}", "unknown condition 'path', at Testfile:2"},
		{"rule without action", "geofilter {\n\trule {\n\t\tcountry CN\n\t}\n}", "wrong argument count or unexpected line ending after"},
		{"rule bad action", "geofilter {\n\trule block {\n\t\tcountry CN\n\t}\n}", `rule: unknown action "block"`},
		{"rule no condition", "geofilter {\n\trule deny {\n\t\tstatus 451\n\t}\n}", "rule deny: no condition, at Testfile:4"},
		{"rule unknown option", "geofilter {\n\trule deny {\n\t\tcountry CN\n\t\tbogus 1\n\t}\n}", "unrecognized rule option, condition or matcher 'bogus', at Testfile:4"},
		{"bad status", "geofilter {\n\trule deny {\n\t\tcountry CN\n\t\tstatus 200\n\t}\n}", "bad status '200', at Testfile:4"},
		{"status not a number", "geofilter {\n\trule deny {\n\t\tcountry CN\n\t\tstatus teapot\n\t}\n}", "bad status 'teapot', at Testfile:4"},
		{"redirect without Location", "geofilter {\n\trule deny {\n\t\tcountry CN\n\t\tstatus 302\n\t}\n}", "status 302 redirects, but no Location header says where: add header Location <url>, at Testfile:5"},
		{"default deny redirect without Location", "geofilter {\n\tdefault deny {\n\t\tstatus 301\n\t}\n}", "default deny: status 301 redirects, but no Location header"},
		{"deny with 304", "geofilter {\n\trule deny {\n\t\tcountry CN\n\t\tstatus 304\n\t}\n}", "status 304 cannot deny"},
		{"duplicate status", "geofilter {\n\trule deny {\n\t\tcountry CN\n\t\tstatus 403\n\t\tstatus 451\n\t}\n}", "duplicate status, at Testfile:5"},
		{"header one arg", "geofilter {\n\trule deny {\n\t\tcountry CN\n\t\theader X-A\n\t}\n}", "wrong argument count or unexpected line ending after"},
		{"status on allow", "geofilter {\n\trule allow {\n\t\tcountry CN\n\t\tstatus 403\n\t}\n}", "status, body, file and header are only for deny rules, at Testfile:5"},
		{"body and file", "geofilter {\n\trule deny {\n\t\tcountry CN\n\t\tbody x\n\t\tfile y\n\t}\n}", "body and file are mutually exclusive, at Testfile:6"},
		{"bad matcher args", "geofilter {\n\trule deny {\n\t\tcountry CN\n\t\tpath_regexp a b c\n\t}\n}", "wrong argument count"},
		{"matcher twice", "geofilter {\n\trule deny {\n\t\tmethod GET\n\t\tmatch {\n\t\t\tmethod POST\n\t\t}\n\t}\n}", "matcher 'method' given twice"},
		{"named matcher without helper", "geofilter {\n\trule deny {\n\t\t@admin\n\t}\n}", "named matcher @admin: not available here, at Testfile:3"},
		{"duplicate name", "geofilter {\n\trule deny a {\n\t\tname b\n\t\tcountry CN\n\t}\n}", "duplicate rule name, at Testfile:3"},
		{"duplicate eu", "geofilter {\n\trule deny {\n\t\teu\n\t\teu false\n\t}\n}", "duplicate eu condition, at Testfile:4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if !errorHas(err, tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// errorHas reports whether err has the message want; a want of the form
// "msg, at Testfile:N" also checks the line the error names.
func errorHas(err error, want string) bool {
	if err == nil {
		return false
	}
	msg, at, ok := strings.Cut(want, ", at ")
	if !ok {
		return strings.Contains(err.Error(), want)
	}
	return strings.Contains(err.Error(), msg) && strings.HasSuffix(err.Error(), ", at "+at)
}

func TestUnmarshalCaddyfileNamed(t *testing.T) {
	named := func(tok caddyfile.Token) (caddy.ModuleMap, error) {
		if tok.Text != "@admin" {
			t.Fatalf("asked for %s", tok.Text)
		}
		return caddy.ModuleMap{"path": json.RawMessage(`["/admin/*"]`)}, nil
	}
	var h Handler
	err := h.UnmarshalCaddyfileNamed(caddyfile.NewTestDispenser("geofilter {\n\trule deny {\n\t\tcountry CN\n\t\t@admin\n\t}\n}"), named)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(h.Rules[0].MatchRaw["path"]); got != `["/admin/*"]` {
		t.Errorf("match = %s", got)
	}
}

func TestMatcherUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  MatchGeo
	}{
		{"continent", `geo continent EU`, MatchGeo{Conditions: rules.Conditions{Continent: []string{"EU"}}}},
		{"countries", `geo country US CA`, MatchGeo{Conditions: rules.Conditions{Country: []string{"US", "CA"}}}},
		{"asn", `geo asn 64496`, MatchGeo{Conditions: rules.Conditions{ASN: []string{"64496"}}}},
		{"anonymous", `geo anonymous`, MatchGeo{Conditions: rules.Conditions{Anonymous: []string{"any"}}}},
		{"eu", `geo eu`, MatchGeo{Conditions: rules.Conditions{EU: ptr(true)}}},
		{"unknown", `geo country unknown`, MatchGeo{Conditions: rules.Conditions{Country: []string{"unknown"}}}},
		{"not", `geo not country US`, MatchGeo{Conditions: rules.Conditions{Not: []rules.Conditions{{Country: []string{"US"}}}}}},
		{"block", `geo {
			country DE
			asn 3320
			db country.mmdb
			reload_interval 5m
		}`, MatchGeo{
			Conditions:     rules.Conditions{Country: []string{"DE"}, ASN: []string{"3320"}},
			Databases:      []DatabaseConfig{{Path: "country.mmdb"}},
			ReloadInterval: caddy.Duration(300e9),
		}},
		{"twice in a matcher set", "geo country DE\ngeo asn 3320", MatchGeo{Conditions: rules.Conditions{Country: []string{"DE"}, ASN: []string{"3320"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got MatchGeo
			if err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input)); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	for _, bad := range []struct{ input, want string }{
		{"geo", "geo matcher: no condition"},
		{"geo city Paris", "unknown condition 'city'"},
		{"geo country USA", `bad country code "USA"`},
		{"geo {\n\tdb\n}", "wrong argument count or unexpected line ending after"},
		{"geo {\n\treload_interval 1m\n\treload_interval 1m\n\tcountry US\n}", "duplicate reload_interval, at Testfile:3"},
	} {
		var m MatchGeo
		err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad.input))
		if !errorHas(err, bad.want) {
			t.Errorf("%q: err = %v, want %q", bad.input, err, bad.want)
		}
	}
}

// A rule's request matchers are real Caddy matchers once provisioned.
var _ rules.RequestMatcher = caddyhttp.MatcherSet(nil)

// TestRuleJSON: the deny response options of a rule are keys of the rule
// itself in JSON (status, body, file, headers), next to its conditions, and
// read back into the same rule.
func TestRuleJSON(t *testing.T) {
	in := `{"name":"no-cn","action":"deny","country":["CN"],"match":{"path":["/admin/*"]},` +
		`"status":451,"body":"not here","file":"/srv/x.html","headers":{"X-Reason":["geo"]}}`
	var r Rule
	if err := json.Unmarshal([]byte(in), &r); err != nil {
		t.Fatal(err)
	}
	want := Rule{
		Name: "no-cn", Action: rules.Deny,
		Conditions:   rules.Conditions{Country: []string{"CN"}},
		MatchRaw:     caddy.ModuleMap{"path": json.RawMessage(`["/admin/*"]`)},
		DenyResponse: DenyResponse{Status: 451, Body: "not here", File: "/srv/x.html", Headers: http.Header{"X-Reason": {"geo"}}},
	}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("unmarshalled %+v, want %+v", r, want)
	}
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != in {
		t.Errorf("marshalled\n%s\nwant\n%s", out, in)
	}
}

// TestEveryConditionEverywhere: every condition of the rules is accepted
// by the Caddyfile (rules and the geo matcher) and, but for ip_list, by the
// CEL function geo(), and means the same in each.
func TestEveryConditionEverywhere(t *testing.T) {
	sample := map[string]string{
		rules.CondCountry: "CN", rules.CondContinent: "EU", rules.CondEU: "false",
		rules.CondSubdivision: "US-CA", rules.CondASN: "64496", rules.CondAnonymous: "tor",
		rules.CondIP: "192.0.2.0/24", rules.CondIPList: "/srv/drop.netset",
	}
	for _, name := range rules.ConditionNames() {
		v, ok := sample[name]
		if !ok {
			t.Errorf("condition %s: no sample value in this test", name)
			continue
		}
		var want rules.Conditions
		if err := want.Add(name, []string{v}); err != nil {
			t.Fatalf("Add(%s, %s): %v", name, v, err)
		}
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("geofilter {\n\tdeny " + name + " " + v + "\n}")); err != nil {
			t.Errorf("rule condition %s: %v", name, err)
		} else if !reflect.DeepEqual(h.Rules[0].Conditions, want) {
			t.Errorf("rule condition %s = %+v, want %+v", name, h.Rules[0].Conditions, want)
		}
		var m MatchGeo
		if err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser("geo " + name + " " + v)); err != nil {
			t.Errorf("matcher condition %s: %v", name, err)
		} else if !reflect.DeepEqual(m.Conditions, want) {
			t.Errorf("matcher condition %s = %+v, want %+v", name, m.Conditions, want)
		}
		c, err := celConditions(map[string][]string{name: {v}})
		if name == rules.CondIPList {
			if err == nil {
				t.Error("geo() accepts ip_list")
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(c, want) {
			t.Errorf("geo({'%s': ['%s']}) = %+v, %v; want %+v", name, v, c, err, want)
		}
	}
	for _, flag := range rules.AnonymousFlags() {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("geofilter {\n\tdeny " + flag + "\n}")); err != nil {
			t.Errorf("shortcut %s: %v", flag, err)
		} else if got := h.Rules[0].Anonymous; !slices.Equal(got, []string{flag}) {
			t.Errorf("shortcut %s = anonymous %q", flag, got)
		}
	}
}
