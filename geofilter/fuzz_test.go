package geofilter

import (
	"encoding/json"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// FuzzUnmarshalCaddyfile checks that no input makes the parser panic, and
// that what it accepts survives a JSON round trip unchanged (what `caddy
// adapt` produces is what the handler loads).
func FuzzUnmarshalCaddyfile(f *testing.F) {
	for _, seed := range []string{
		"geofilter",
		"geofilter {\n\tdb a.mmdb\n\tdeny country CN RU\n\tallow ip 10.0.0.0/8\n\tdefault allow\n}",
		"geofilter {\n\tdeny not continent EU {\n\t\tstatus 451\n\t\tbody x\n\t}\n}",
		"geofilter {\n\trule deny n {\n\t\tcountry CN\n\t\tnot asn 1\n\t\tpath /a\n\t\theader X y\n\t}\n}",
		"geofilter {\n\tdb b {\n\t\tfields {\n\t\t\tcountry_code a 0 b\n\t\t}\n\t}\n\tlog_only\n\tdeny tor\n\tallow eu false\n}",
		"geofilter {\n\tdeny ip_list /x\n\tdeny subdivision US-CA\n\tlog anonymous vpn\n}",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		var h Handler
		d := caddyfile.NewTestDispenser(input)
		if err := h.UnmarshalCaddyfile(d); err != nil {
			return
		}
		b, err := json.Marshal(h)
		if err != nil {
			t.Fatalf("accepted config does not marshal: %v", err)
		}
		var back Handler
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("accepted config does not unmarshal: %v\n%s", err, b)
		}
		b2, _ := json.Marshal(back)
		if string(b) != string(b2) {
			t.Fatalf("JSON round trip changed the config:\n%s\n%s", b, b2)
		}
	})
}
