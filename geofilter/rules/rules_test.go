package rules

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/caddy-edge/edge/geofilter/geodb"
)

func ptr[T any](v T) *T { return &v }

type setOf []netip.Prefix

func (s setOf) Contains(ip netip.Addr) bool {
	for _, p := range s {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

var (
	de = geodb.Result{Found: true, CountryCode: "DE", ContinentCode: "EU", InEU: true, SubdivisionCode: "BE", ASN: 3320}
	us = geodb.Result{Found: true, CountryCode: "US", ContinentCode: "NA", SubdivisionCode: "CA", ASN: 64496,
		IsAnonymous: true, IsAnonymousVPN: true}
	tor     = geodb.Result{Found: true, CountryCode: "NL", ContinentCode: "EU", InEU: true, IsTorExitNode: true}
	nothing = geodb.Result{}
)

func TestMatch(t *testing.T) {
	lists := map[string]IPSet{"drop.netset": setOf{netip.MustParsePrefix("198.51.100.0/24")}}
	open := func(p string) (IPSet, error) {
		if l, ok := lists[p]; ok {
			return l, nil
		}
		return nil, errors.New("no such file")
	}
	tests := []struct {
		name string
		c    Conditions
		ip   string
		geo  geodb.Result
		want bool
	}{
		{"country hit", Conditions{Country: []string{"CN", "DE"}}, "192.0.2.1", de, true},
		{"country lower case", Conditions{Country: []string{"de"}}, "192.0.2.1", de, true},
		{"country miss", Conditions{Country: []string{"CN"}}, "192.0.2.1", de, false},
		{"country unknown matches nothing known", Conditions{Country: []string{"unknown"}}, "192.0.2.1", nothing, true},
		{"country unknown does not match a known one", Conditions{Country: []string{"unknown"}}, "192.0.2.1", de, false},
		{"country list without unknown misses unknown", Conditions{Country: []string{"DE"}}, "192.0.2.1", nothing, false},
		{"continent hit", Conditions{Continent: []string{"EU"}}, "192.0.2.1", de, true},
		{"continent miss", Conditions{Continent: []string{"AF", "AS"}}, "192.0.2.1", us, false},
		{"continent unknown", Conditions{Continent: []string{"unknown"}}, "192.0.2.1", nothing, true},
		{"eu true", Conditions{EU: ptr(true)}, "192.0.2.1", de, true},
		{"eu true on US", Conditions{EU: ptr(true)}, "192.0.2.1", us, false},
		{"eu false on US", Conditions{EU: ptr(false)}, "192.0.2.1", us, true},
		{"eu false on an address no database places", Conditions{EU: ptr(false)}, "192.0.2.1", nothing, true},
		{"eu false, not country unknown, on an unplaced address", Conditions{EU: ptr(false), Not: []Conditions{{Country: []string{"unknown"}}}}, "192.0.2.1", nothing, false},
		{"eu false, not country unknown, on US", Conditions{EU: ptr(false), Not: []Conditions{{Country: []string{"unknown"}}}}, "192.0.2.1", us, true},
		{"subdivision alone", Conditions{Subdivision: []string{"CA"}}, "192.0.2.1", us, true},
		{"subdivision with country", Conditions{Subdivision: []string{"US-CA"}}, "192.0.2.1", us, true},
		{"subdivision wrong country", Conditions{Subdivision: []string{"DE-CA"}}, "192.0.2.1", us, false},
		{"subdivision unknown never matches", Conditions{Subdivision: []string{"CA"}}, "192.0.2.1", nothing, false},
		{"asn hit", Conditions{ASN: []string{"AS64496", "1"}}, "192.0.2.1", us, true},
		{"asn miss", Conditions{ASN: []string{"64497"}}, "192.0.2.1", us, false},
		{"anonymous any", Conditions{Anonymous: []string{"any"}}, "192.0.2.1", tor, true},
		{"anonymous any on a plain address", Conditions{Anonymous: []string{"any"}}, "192.0.2.1", de, false},
		{"anonymous vpn", Conditions{Anonymous: []string{"vpn"}}, "192.0.2.1", us, true},
		{"anonymous tor is not vpn", Conditions{Anonymous: []string{"vpn"}}, "192.0.2.1", tor, false},
		{"anonymous tor", Conditions{Anonymous: []string{"hosting", "tor"}}, "192.0.2.1", tor, true},
		{"ip cidr", Conditions{IP: []string{"10.0.0.0/8"}}, "10.1.2.3", nothing, true},
		{"ip single", Conditions{IP: []string{"2001:db8::1"}}, "2001:db8::1", nothing, true},
		{"ip miss", Conditions{IP: []string{"10.0.0.0/8", "2001:db8::/32"}}, "192.0.2.1", nothing, false},
		{"ip mapped cidr", Conditions{IP: []string{"::ffff:10.0.0.0/104"}}, "10.9.9.9", nothing, true},
		{"ip on invalid address", Conditions{IP: []string{"0.0.0.0/0"}}, "", nothing, false},
		{"ip list hit", Conditions{IPList: []string{"drop.netset"}}, "198.51.100.7", nothing, true},
		{"ip list miss", Conditions{IPList: []string{"drop.netset"}}, "198.51.101.7", nothing, false},
		{"AND of conditions", Conditions{Country: []string{"DE"}, ASN: []string{"3320"}}, "192.0.2.1", de, true},
		{"AND fails on one", Conditions{Country: []string{"DE"}, ASN: []string{"1"}}, "192.0.2.1", de, false},
		{"not country", Conditions{Not: []Conditions{{Country: []string{"US", "CA"}}}}, "192.0.2.1", de, true},
		{"not country excludes", Conditions{Not: []Conditions{{Country: []string{"US", "CA"}}}}, "192.0.2.1", us, false},
		{"not is AND inside", Conditions{Not: []Conditions{{Country: []string{"US"}, ASN: []string{"1"}}}}, "192.0.2.1", us, true},
		{"two nots both must fail", Conditions{Not: []Conditions{{Country: []string{"DE"}}, {ASN: []string{"64496"}}}}, "192.0.2.1", us, false},
		{"condition with not", Conditions{Continent: []string{"EU"}, Not: []Conditions{{Country: []string{"DE"}}}}, "192.0.2.1", tor, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := tt.c.Compile(open)
			if err != nil {
				t.Fatal(err)
			}
			var ip netip.Addr
			if tt.ip != "" {
				ip = netip.MustParseAddr(tt.ip)
			}
			geo := tt.geo
			if got := m.Match(&Input{IP: ip, Geo: &geo}); got != tt.want {
				t.Errorf("Match = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	open := func(p string) (IPSet, error) { return nil, errors.New("open " + p + ": no such file or directory") }
	tests := []struct {
		name string
		c    Conditions
		want string
	}{
		{"empty", Conditions{}, "no condition"},
		{"country three letters", Conditions{Country: []string{"DEU"}}, `bad country code "DEU"`},
		{"country digits", Conditions{Country: []string{"1A"}}, `bad country code "1A"`},
		{"country UK", Conditions{Country: []string{"UK"}}, `bad country code "UK": not an assigned ISO 3166-1 alpha-2 code: the United Kingdom is GB`},
		{"country XX", Conditions{Country: []string{"de", "XX"}}, `bad country code "XX": not an assigned`},
		{"country EU", Conditions{Country: []string{"EU"}}, `use the eu condition`},
		{"continent", Conditions{Continent: []string{"XX"}}, `bad continent code "XX"`},
		{"subdivision long", Conditions{Subdivision: []string{"ABCD"}}, `bad subdivision "ABCD"`},
		{"subdivision bad country", Conditions{Subdivision: []string{"USA-CA"}}, `bad subdivision "USA-CA"`},
		{"asn text", Conditions{ASN: []string{"ASX"}}, `bad ASN "ASX"`},
		{"asn zero", Conditions{ASN: []string{"0"}}, `bad ASN "0"`},
		{"asn too big", Conditions{ASN: []string{"4294967296"}}, `bad ASN "4294967296"`},
		{"anonymous", Conditions{Anonymous: []string{"cloud"}}, `bad anonymous flag "cloud"`},
		{"cidr", Conditions{IP: []string{"10.0.0.0/33"}}, `bad CIDR "10.0.0.0/33"`},
		{"ip", Conditions{IP: []string{"10.0.0.300"}}, `bad IP address "10.0.0.300"`},
		{"ip list", Conditions{IPList: []string{"/nope"}}, "ip_list /nope: open /nope"},
		{"empty not", Conditions{Not: []Conditions{{}}}, "not: rule has no condition"},
		{"bad inside not", Conditions{Not: []Conditions{{Country: []string{"X"}}}}, `not: bad country code "X"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.c.Compile(open)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

type pathIs string

func (p pathIs) MatchWithError(r *http.Request) (bool, error) {
	if p == "/!" {
		return false, errors.New("boom")
	}
	return r.URL.Path == string(p), nil
}

func mustCompile(t testing.TB, c Conditions) *Matcher {
	t.Helper()
	m, err := c.Compile(nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDecide(t *testing.T) {
	cn := mustCompile(t, Conditions{Country: []string{"US"}})
	eu := mustCompile(t, Conditions{Continent: []string{"EU"}})
	office := mustCompile(t, Conditions{IP: []string{"10.0.0.0/8"}})
	set := Set{Rules: []Rule{
		{Name: "office", Cond: office, Action: Allow},
		{Name: "log-eu", Cond: eu, Action: Log},
		{Name: "us-admin", Cond: cn, Request: pathIs("/admin"), Action: Deny},
		{Name: "admin", Request: pathIs("/admin"), Action: Log},
		{Name: "us", Cond: cn, Action: Log},
	}}
	tests := []struct {
		name    string
		ip      string
		geo     geodb.Result
		path    string
		dflt    Action
		want    Decision
		wantErr bool
	}{
		{"first allow wins", "10.0.0.1", us, "/admin", 0, Decision{Allow, 0, -1}, false},
		{"deny with request matcher", "192.0.2.1", us, "/admin", 0, Decision{Deny, 2, -1}, false},
		{"request matcher fails, log rule later", "192.0.2.1", us, "/", 0, Decision{Allow, -1, 4}, false},
		{"first log rule is kept", "192.0.2.1", de, "/admin", 0, Decision{Allow, -1, 1}, false},
		{"default deny", "192.0.2.1", nothing, "/", Deny, Decision{Deny, -1, -1}, false},
		{"default allow", "192.0.2.1", nothing, "/", Allow, Decision{Allow, -1, -1}, false},
		{"zero default is allow", "192.0.2.1", nothing, "/", 0, Decision{Allow, -1, -1}, false},
		{"matcher error", "192.0.2.1", us, "!", 0, Decision{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := set
			s.Default = tt.dflt
			if tt.path == "!" {
				s.Rules = []Rule{{Name: "err", Request: pathIs("/!"), Action: Deny}}
			}
			geo := tt.geo
			got, err := s.Decide(&Input{IP: netip.MustParseAddr(tt.ip), Geo: &geo}, httptest.NewRequest("GET", "/"+strings.TrimPrefix(tt.path, "/"), nil))
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), "rule err: boom") {
					t.Fatalf("err = %v, want rule err: boom", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Decide = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestActionText(t *testing.T) {
	for _, a := range []Action{Allow, Deny, Log} {
		b, err := a.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Action
		if err := back.UnmarshalText(b); err != nil || back != a {
			t.Errorf("%v round trip: %v %v", a, back, err)
		}
	}
	if _, err := Action(0).MarshalText(); err == nil {
		t.Error("zero action marshals")
	}
	var a Action
	if err := a.UnmarshalText([]byte("block")); err == nil {
		t.Error("unknown action accepted")
	}
}

func TestNormalizeCountry(t *testing.T) {
	for in, want := range map[string]string{"": "unknown", "DE": "DE", "de": "other", "EUR": "other"} {
		if got := NormalizeCountry(in); got != want {
			t.Errorf("NormalizeCountry(%q) = %q, want %q", in, got, want)
		}
	}
}

// BenchmarkDecideRules is the rule part of the per-request cost: a few typical
// rules, the address decided by the default.
func BenchmarkDecideRules(b *testing.B) {
	s := Set{Rules: []Rule{
		{Name: "office", Cond: mustCompile(b, Conditions{IP: []string{"10.0.0.0/8", "192.168.0.0/16"}}), Action: Allow},
		{Name: "cn", Cond: mustCompile(b, Conditions{Country: []string{"CN", "RU", "KP", "IR"}}), Action: Deny},
		{Name: "asn", Cond: mustCompile(b, Conditions{ASN: []string{"64496", "64497", "64498"}}), Action: Deny},
		{Name: "tor", Cond: mustCompile(b, Conditions{Anonymous: []string{"tor"}}), Action: Deny},
	}}
	geo := de
	in := &Input{IP: netip.MustParseAddr("192.0.2.1"), Geo: &geo}
	b.ReportAllocs()
	for b.Loop() {
		if d, _ := s.Decide(in, nil); d.Action != Allow {
			b.Fatal(d)
		}
	}
}

func TestNeeds(t *testing.T) {
	yes := true
	c := Conditions{
		Country: []string{"DE"}, EU: &yes, Anonymous: []string{"tor", "any"},
		Not: []Conditions{{ASN: []string{"64496"}, Country: []string{"FR"}}},
	}
	var got []string
	for _, n := range c.Needs() {
		got = append(got, n.Condition+"="+strings.Join(n.Fields, "|"))
	}
	want := "country=country_code eu=in_eu anonymous tor=is_tor_exit_node " +
		"anonymous=is_anonymous|is_anonymous_vpn|is_hosting_provider|is_public_proxy|is_tor_exit_node|is_residential_proxy asn=asn"
	if strings.Join(got, " ") != want {
		t.Errorf("Needs() = %q\nwant      %q", strings.Join(got, " "), want)
	}
	if n := (&Conditions{IP: []string{"192.0.2.1"}}).Needs(); len(n) != 0 {
		t.Errorf("ip needs %v", n)
	}
}
