package tiered

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-edge/edge/cache/store/redis"
)

func init() {
	// The root package registers every module; this test parses a back
	// store, so it registers the one it names.
	caddy.RegisterModule(redis.Store{})
}

func TestUnmarshalCaddyfile(t *testing.T) {
	for _, tt := range []struct {
		name, input, want string
	}{
		{"redis", `tiered {
			memory {
				max_size 32MiB
			}
			redis {
				address 127.0.0.1:6380
				prefix edge:
			}
		}`, `{"memory":{"max_size":33554432},"back":{"address":["127.0.0.1:6380"],"module":"redis","prefix":"edge:"}}`},
		{"default memory", "tiered {\n\tredis\n}", `{"back":{"module":"redis"}}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var s Store
			if err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input)); err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(&s)
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	for _, tt := range []struct {
		name, input, want string
	}{
		{"no back", "tiered {\n\tmemory {\n\t\tmax_size 8MiB\n\t}\n}", "a back store (redis or disk) is required"},
		{"two backs", "tiered {\n\tredis\n\tredis\n}", "a second back store"},
		{"tiered back", "tiered {\n\ttiered\n}", "cannot be the back store"},
		{"small memory", "tiered {\n\tmemory {\n\t\tmax_size 1KiB\n\t}\n\tredis\n}", "the minimum is 1MiB"},
		{"memory option", "tiered {\n\tmemory {\n\t\tname x\n\t}\n\tredis\n}", "unrecognized tiered memory option 'name'"},
		{"unknown back", "tiered {\n\tnosuch\n}", "nosuch"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var s Store
			err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
