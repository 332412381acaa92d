package disk

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	for _, tt := range []struct {
		input, want, err string
	}{
		{"disk {\n path /var/cache/edge\n max_size 10GiB\n}", `{"path":"/var/cache/edge","max_size":10737418240}`, ""},
		{"disk /var/cache/edge", `{"path":"/var/cache/edge"}`, ""},
		{"disk {env.DIR}/c {\n max_size 1MiB\n}", `{"path":"{env.DIR}/c","max_size":1048576}`, ""},
		{"disk", "", "path is required"},
		{"disk {\n max_size 2GiB\n}", "", "path is required"},
		{"disk /a {\n path /b\n}", "", "duplicate disk store option 'path'"},
		{"disk {\n path /a\n max_size 1GiB\n max_size 2GiB\n}", "", "duplicate disk store option 'max_size'"},
		{"disk /a {\n max_size lots\n}", "", "bad max_size 'lots'"},
		{"disk /a {\n max_size 512KiB\n}", "", "the minimum is 1MiB"},
		{"disk /a {\n sync off\n}", "", "unrecognized disk store option 'sync'"},
		{"disk /a {\n max_entries 1000000\n}", `{"path":"/a","max_entries":1000000}`, ""},
		{"disk /a {\n max_entries 0\n}", "", "bad disk store max_entries '0'"},
		{"disk /a {\n max_entries 1M\n}", "", "bad disk store max_entries '1M'"},
		{"disk /a {\n max_entries 5\n max_entries 6\n}", "", "duplicate disk store option 'max_entries'"},
		{"disk /a /b", "", "wrong argument count"},
		{"disk /a {\n path\n}", "", "duplicate disk store option 'path'"},
	} {
		var s Store
		err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: error %v, want one with %q", tt.input, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.input, err)
			continue
		}
		if got, _ := json.Marshal(s); string(got) != tt.want {
			t.Errorf("%q: %s, want %s", tt.input, got, tt.want)
		}
	}
}
