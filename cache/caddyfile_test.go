package cache_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-edge/edge/cache"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	for _, tt := range []struct {
		name  string
		input string
		want  string // JSON of the handler
	}{
		{"alone", `http_cache`, `{}`},
		{"empty block", "http_cache {\n}", `{}`},
		{"every option", `http_cache {
			store memory {
				name edge
				max_size 64MiB
			}
			sort_query
			ignore_query_params utm_* fbclid
			ignore_query_params gclid
			default_ttl 5m
			max_ttl 1d
			stale_while_revalidate 30s
			stale_if_error 1h
			statuses 200 301 404
			allow_set_cookie
			max_object_size 10MiB
			collapse_timeout 3s
			hit_for_miss_ttl 1m
			bypass path /admin/*
			bypass {
				header Cookie *session*
			}
		}`, `{"store":{"max_size":67108864,"module":"memory","name":"edge"},` +
			`"sort_query":true,` +
			`"ignore_query_params":["utm_*","fbclid","gclid"],"default_ttl":300000000000,` +
			`"max_ttl":86400000000000,"stale_while_revalidate":30000000000,"stale_if_error":3600000000000,` +
			`"statuses":[200,301,404],"allow_set_cookie":true,"max_object_size":10485760,` +
			`"collapse_timeout":3000000000,"hit_for_miss_ttl":60000000000,` +
			`"bypass":[{"path":["/admin/*"]},{"header":{"Cookie":["*session*"]}}]}`},
		// key refuses sort_query and ignore_query_params, so it is apart.
		{"key", "http_cache {\n\tkey {http.request.host}{http.request.uri.path}\n}", `{"key":"{http.request.host}{http.request.uri.path}"}`},
		{"vary placeholders and the credentials risk (issue 11 item 8, issue 8 item 9)", `http_cache {
			vary {geo.country_code} {http.request.header.X-Device}
			unsafe_credentialed_heuristics
		}`, `{"vary":["{geo.country_code}","{http.request.header.X-Device}"],"unsafe_credentialed_heuristics":true}`},
		{"default_ttl per status (nginx proxy_cache_valid)", "http_cache {\n\tdefault_ttl 10m\n\tdefault_ttl 404 410 1m\n\tdefault_ttl 302 5m\n}",
			`{"default_ttl":600000000000,"default_ttl_by_status":{"302":300000000000,"404":60000000000,"410":60000000000}}`},
		{"min_uses", "http_cache {\n\tmin_uses 2\n}", `{"min_uses":2}`},
		{"stale_if_unreachable window", "http_cache {\n\tstale_if_unreachable 2h\n}", `{"stale_if_unreachable":7200000000000}`},
		{"stale_if_unreachable off", "http_cache {\n\tstale_if_unreachable off\n}", `{"stale_if_unreachable":0}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var h cache.Handler
			if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input)); err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			got, err := json.Marshal(&h)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	for _, tt := range []struct {
		name  string
		input string
		want  string // substring of the error
	}{
		{"argument on directive", `http_cache memory`, "wrong argument count"},
		{"unknown option", "http_cache {\n\tfrobnicate\n}", "unrecognized http_cache option 'frobnicate'"},
		{"duplicate", "http_cache {\n\tsort_query\n\tsort_query\n}", "duplicate http_cache option 'sort_query'"},
		{"duplicate ttl", "http_cache {\n\tmax_ttl 1m\n\tmax_ttl 2m\n}", "duplicate http_cache option 'max_ttl'"},
		{"store without module", "http_cache {\n\tstore\n}", "wrong argument count for http_cache option 'store'"},
		{"unknown store", "http_cache {\n\tstore nosuch\n}", "nosuch"},
		{"bad store option", "http_cache {\n\tstore memory {\n\t\tmax_size lots\n\t}\n}", "max_size"},
		{"key without template", "http_cache {\n\tkey\n}", "wrong argument count for http_cache option 'key'"},
		{"key with two", "http_cache {\n\tkey a b\n}", "wrong argument count for http_cache option 'key'"},
		// Refused at the line here, not only by Validate at load.
		{"key without placeholder", "http_cache {\n\tkey static\n}", "holds no placeholder"},
		{"key of the process", "http_cache {\n\tkey {env.SITE}\n}", "only placeholders of the process"},
		{"key then sort_query", "http_cache {\n\tkey {http.request.uri}\n\tsort_query\n}", "sort_query with key"},
		{"ignore_query_params then key", "http_cache {\n\tignore_query_params utm_*\n\tkey {http.request.uri}\n}", "key with ignore_query_params"},
		{"sort_query with arg", "http_cache {\n\tsort_query yes\n}", "wrong argument count for http_cache option 'sort_query'"},
		{"allow_set_cookie with arg", "http_cache {\n\tallow_set_cookie yes\n}", "wrong argument count for http_cache option 'allow_set_cookie'"},
		{"ignore_query_params empty", "http_cache {\n\tignore_query_params\n}", "wrong argument count for http_cache option 'ignore_query_params'"},
		{"bad duration", "http_cache {\n\tdefault_ttl soon\n}", "bad default_ttl 'soon'"},
		{"min_uses zero", "http_cache {\n\tmin_uses 0\n}", "bad min_uses '0'"},
		{"min_uses word", "http_cache {\n\tmin_uses twice\n}", "bad min_uses 'twice'"},
		{"min_uses huge", "http_cache {\n\tmin_uses 5000\n}", "bad min_uses '5000'"},
		{"min_uses two", "http_cache {\n\tmin_uses 2 3\n}", "wrong argument count for http_cache option 'min_uses'"},
		{"default_ttl twice", "http_cache {\n\tdefault_ttl 1m\n\tdefault_ttl 2m\n}", "duplicate http_cache option 'default_ttl'"},
		{"default_ttl status twice", "http_cache {\n\tdefault_ttl 404 1m\n\tdefault_ttl 410 404 2m\n}", "duplicate default_ttl for status 404"},
		{"default_ttl bad status", "http_cache {\n\tdefault_ttl 4o4 1m\n}", "bad default_ttl status '4o4'"},
		{"default_ttl 206", "http_cache {\n\tdefault_ttl 206 1m\n}", "bad default_ttl status '206'"},
		{"default_ttl 304", "http_cache {\n\tdefault_ttl 304 1m\n}", "bad default_ttl status '304'"},
		// A 412 answers the request's preconditions, never stored.
		{"default_ttl 412", "http_cache {\n\tdefault_ttl 412 1m\n}", "bad default_ttl status '412'"},
		// A 414 answers the target's length, which the key may not hold.
		{"statuses 414", "http_cache {\n\tstatuses 200 414\n}", "bad statuses code '414'"},
		{"default_ttl status without duration", "http_cache {\n\tdefault_ttl 404\n}", "bad default_ttl '404'"},
		{"default_ttl zero for a status", "http_cache {\n\tdefault_ttl 404 0s\n}", "must be positive"},
		{"default_ttl missing", "http_cache {\n\tdefault_ttl\n}", "wrong argument count for http_cache option 'default_ttl'"},
		{"negative duration", "http_cache {\n\tstale_if_error -1s\n}", "bad stale_if_error '-1s': must not be negative"},
		{"duration missing", "http_cache {\n\tcollapse_timeout\n}", "wrong argument count for http_cache option 'collapse_timeout'"},
		{"duration extra", "http_cache {\n\thit_for_miss_ttl 1s 2s\n}", "wrong argument count for http_cache option 'hit_for_miss_ttl'"},
		{"bad status", "http_cache {\n\tstatuses 200 abc\n}", "bad statuses code 'abc'"},
		{"informational status", "http_cache {\n\tstatuses 101\n}", "bad statuses code '101'"},
		{"never stored status", "http_cache {\n\tstatuses 200 304\n}", "bad statuses code '304'"},
		{"statuses empty", "http_cache {\n\tstatuses\n}", "wrong argument count for http_cache option 'statuses'"},
		{"bad size", "http_cache {\n\tmax_object_size big\n}", "bad max_object_size 'big'"},
		{"zero size", "http_cache {\n\tmax_object_size 0\n}", "bad max_object_size '0'"},
		{"size missing", "http_cache {\n\tmax_object_size\n}", "wrong argument count for http_cache option 'max_object_size'"},
		{"bypass without matcher", "http_cache {\n\tbypass\n}", "bypass needs a matcher"},
		{"vary without placeholder", "http_cache {\n\tvary\n}", "wrong argument count for http_cache option 'vary'"},
		{"stale_if_unreachable bad", "http_cache {\n\tstale_if_unreachable never\n}", "bad stale_if_unreachable 'never': want a positive duration or off"},
		{"stale_if_unreachable zero", "http_cache {\n\tstale_if_unreachable 0s\n}", "bad stale_if_unreachable '0s'"},
		{"stale_if_unreachable missing", "http_cache {\n\tstale_if_unreachable\n}", "wrong argument count for http_cache option 'stale_if_unreachable'"},
		{"vary on a header name", "http_cache {\n\tvary X-Device\n}", "bad vary 'X-Device'"},
		{"vary on two placeholders in one", "http_cache {\n\tvary {a}{b}\n}", "bad vary '{a}{b}'"},
		{"bypass unknown matcher", "http_cache {\n\tbypass nosuchmatcher x\n}", "nosuchmatcher"},
		// 0 is what JSON leaves out for the default: written here it would
		// silently mean 10s, 30s and no bound, not "off" or "never fresh".
		{"zero collapse_timeout", "http_cache {\n\tcollapse_timeout 0\n}", "bad collapse_timeout '0': must be positive"},
		{"zero hit_for_miss_ttl", "http_cache {\n\thit_for_miss_ttl 0s\n}", "bad hit_for_miss_ttl '0s': must be positive"},
		{"zero max_ttl", "http_cache {\n\tmax_ttl 0s\n}", "bad max_ttl '0s': must be positive"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var h cache.Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), "Testfile:") {
				t.Errorf("error %q does not name the line", err)
			}
		})
	}
}

// Validate accepts the templates the README shows.
func TestValidateAcceptsKeyTemplates(t *testing.T) {
	for _, key := range []string{
		"{http.request.host}{http.request.uri}",
		"{http.request.scheme}://{http.request.host}{http.request.orig_uri}",
		"{http.request.host}{http.request.uri.path}?lang={http.request.uri.query.lang}",
	} {
		h := cache.Handler{Key: key}
		if err := h.Validate(); err != nil {
			t.Errorf("Validate() of key %q = %v", key, err)
		}
	}
}

// Validate rejects what the Caddyfile parser cannot see (JSON configs).
func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		json string
		want string
	}{
		{"negative size", `{"max_object_size": -1}`, "max_object_size"},
		{"default over max", `{"default_ttl": 120000000000, "max_ttl": 60000000000}`, "longer than max_ttl"},
		{"negative min_uses", `{"min_uses": -1}`, "min_uses -1"},
		{"status ttl over max", `{"default_ttl_by_status": {"404": 120000000000}, "max_ttl": 60000000000}`, "for status 404 is longer than max_ttl"},
		{"status ttl zero", `{"default_ttl_by_status": {"404": 0}}`, "status 404 must be positive"},
		{"status ttl 304", `{"default_ttl_by_status": {"304": 60000000000}}`, "a 304 is never stored"},
		{"status ttl 412", `{"default_ttl_by_status": {"412": 60000000000}}`, "a 412 is never stored"},
		{"status ttl 414", `{"default_ttl_by_status": {"414": 60000000000}}`, "a 414 is never stored"},
		{"status ttl 1xx", `{"default_ttl_by_status": {"103": 60000000000}}`, "status 103: statuses are final"},
		{"status ttl outside statuses", `{"statuses": [200], "default_ttl_by_status": {"404": 60000000000}}`, "not in statuses [200]"},
		{"bad status", `{"statuses": [99]}`, "status 99"},
		{"never stored status", `{"statuses": [200, 206]}`, "a 206 is never stored"},
		{"bad glob", `{"ignore_query_params": ["[x"]}`, "bad glob"},
		{"negative duration", `{"collapse_timeout": -5}`, "collapse_timeout"},
		{"negative stale_if_unreachable", `{"stale_if_unreachable": -5}`, "stale_if_unreachable must not be negative"},
		// They shape the default key only: with a template they did nothing.
		{"sort_query with key", `{"key": "{http.request.host}{http.request.uri}", "sort_query": true}`, "sort_query"},
		{"ignore_query_params with key", `{"key": "{http.request.host}{http.request.uri}", "ignore_query_params": ["utm_*"]}`, "ignore_query_params"},
		// Templates that give every request one key.
		{"shorthands in JSON", `{"key": "{host}{uri}"}`, "{host}"},
		{"no placeholder", `{"key": "static"}`, "no placeholder"},
		{"escaped braces only", `{"key": "\\{http.request.uri\\}"}`, "no placeholder"},
		{"process placeholders only", `{"key": "{env.SITE}-{time.now.unix}"}`, "only placeholders of the process"},
		{"system placeholder only", `{"key": "{system.hostname}"}`, "only placeholders of the process"},
		// {file.*} is a file's content, the same for every request.
		{"file placeholder only", `{"key": "{file./etc/site}"}`, "only placeholders of the process"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var h cache.Handler
			if err := json.Unmarshal([]byte(tt.json), &h); err != nil {
				t.Fatal(err)
			}
			err := h.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want an error with %q", err, tt.want)
			}
		})
	}
}
