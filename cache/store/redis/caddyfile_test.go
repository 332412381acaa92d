package redis

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	for _, tt := range []struct {
		name, input, want string
	}{
		{"alone", `redis`, `{}`},
		{"every option", `redis {
			address 10.0.0.1:6379 10.0.0.2:6379
			address 10.0.0.3:6379
			username edge
			password {env.REDIS_PASSWORD}
			db 0
			tls {
				ca /etc/ssl/redis-ca.pem
				server_name redis.internal
				client_auth /etc/ssl/c.pem /etc/ssl/c.key
			}
			prefix cache:
			max_object_size 16MiB
			timeout 250ms
		}`, `{"address":["10.0.0.1:6379","10.0.0.2:6379","10.0.0.3:6379"],"username":"edge",` +
			`"password":"{env.REDIS_PASSWORD}","tls":{"ca":{"pem_files":["/etc/ssl/redis-ca.pem"],"provider":"file"},` +
			`"client_certificate_file":"/etc/ssl/c.pem","client_certificate_key_file":"/etc/ssl/c.key",` +
			`"server_name":"redis.internal"},"prefix":"cache:","max_object_size":16777216,"timeout":250000000}`},
		{"bare tls", "redis {\n\ttls\n\tdb 3\n}", `{"db":3,"tls":{}}`},
		{"insecure tls", "redis {\n\ttls {\n\t\tinsecure_skip_verify\n\t}\n}", `{"tls":{"insecure_skip_verify":true}}`},
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
		{"argument", `redis localhost`, "wrong argument count"},
		{"unknown", "redis {\n\thost x\n}", "unrecognized redis store option 'host'"},
		{"unknown without a value", "redis {\n\tsentinel\n}", "unrecognized redis store option 'sentinel'"},
		{"duplicate", "redis {\n\tprefix a\n\tprefix b\n}", "duplicate redis store option 'prefix'"},
		{"address empty", "redis {\n\taddress\n}", "wrong argument count"},
		{"bad db", "redis {\n\tdb one\n}", "bad db 'one'"},
		{"bad size", "redis {\n\tmax_object_size huge\n}", "bad max_object_size 'huge'"},
		{"bad timeout", "redis {\n\ttimeout 0s\n}", "bad timeout '0s'"},
		{"tls arg", "redis {\n\ttls yes\n}", "wrong argument count"},
		{"tls unknown", "redis {\n\ttls {\n\t\tverify no\n\t}\n}", "unrecognized redis store tls option 'verify'"},
		{"address without port", "redis {\n\taddress redis.internal\n}", "bad address 'redis.internal'"},
		{"brace in prefix", "redis {\n\tprefix {a}\n}", "bad prefix '{a}'"},
		{"db on a cluster", "redis {\n\taddress a:1 b:1\n\tdb 1\n}", "only db 0"},
		{"client_auth one file", "redis {\n\ttls {\n\t\tclient_auth a.pem\n\t}\n}", "wrong argument count"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var s Store
			err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "Testfile:") {
				t.Errorf("error %v, want one naming the line and containing %q", err, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		s    Store
		want string
	}{
		{"brace in prefix", Store{Prefix: "a{b}"}, "must not contain"},
		{"db on a cluster", Store{DB: 2, Address: []string{"a:1", "b:1"}}, "only db 0"},
		{"negative size", Store{MaxObjectSize: -1}, "negative"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.s.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if err := (&Store{Prefix: "edge:", DB: 1}).Validate(); err != nil {
		t.Errorf("Validate of a good config = %v", err)
	}
}
