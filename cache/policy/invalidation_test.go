package policy_test

import (
	"net/http"
	"net/url"
	"reflect"
	"testing"

	"github.com/caddy-edge/edge/cache/policy"
)

func TestInvalidationTargets(t *testing.T) {
	target, _ := url.Parse("https://example.com/items/1?x=1")
	tests := []struct {
		name   string
		method string
		status int
		target *url.URL
		h      http.Header
		want   []string
	}{
		{"GET invalidates nothing", "GET", 200, target, nil, nil},
		{"HEAD, OPTIONS, TRACE are safe", "OPTIONS", 200, target, nil, nil},
		{"POST 2xx invalidates the target (4.4)", "POST", 201, target, nil, []string{"https://example.com/items/1?x=1"}},
		{"PUT 3xx invalidates the target (4.4)", "PUT", 303, target, nil, []string{"https://example.com/items/1?x=1"}},
		{"DELETE 4xx invalidates nothing (4.4 non-error only)", "DELETE", 404, target, nil, nil},
		{"PATCH 5xx invalidates nothing", "PATCH", 500, target, nil, nil},
		{"1xx is not a success", "POST", 100, target, nil, nil},
		{"unknown method is unsafe (4.4)", "PURGEX", 200, target, nil, []string{"https://example.com/items/1?x=1"}},
		{"lowercase get is an unknown method, unsafe", "get", 200, target, nil, []string{"https://example.com/items/1?x=1"}},
		{"relative Location resolved against target", "POST", 201, target, http.Header{"Location": {"/items/2"}},
			[]string{"https://example.com/items/1?x=1", "https://example.com/items/2"}},
		{"Content-Location and Location both", "PUT", 200, target, http.Header{"Location": {"../list"}, "Content-Location": {"https://EXAMPLE.com:443/items/1/v2"}},
			[]string{"https://example.com/items/1?x=1", "https://example.com/list", "https://EXAMPLE.com:443/items/1/v2"}},
		{"other host not invalidated (4.4 MUST NOT)", "POST", 201, target, http.Header{"Location": {"https://evil.example/items/1"}},
			[]string{"https://example.com/items/1?x=1"}},
		{"other scheme not invalidated", "POST", 201, target, http.Header{"Location": {"http://example.com/items/2"}},
			[]string{"https://example.com/items/1?x=1"}},
		{"other port not invalidated", "POST", 201, target, http.Header{"Location": {"https://example.com:8443/items/2"}},
			[]string{"https://example.com/items/1?x=1"}},
		{"fragment dropped and duplicates listed once", "POST", 201, target, http.Header{"Location": {"/items/1?x=1#top"}, "Content-Location": {"/items/1?x=1"}},
			[]string{"https://example.com/items/1?x=1"}},
		{"unparsable Location ignored", "POST", 201, target, http.Header{"Location": {"http://[::1"}},
			[]string{"https://example.com/items/1?x=1"}},
		{"nil target", "POST", 200, nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, u := range policy.InvalidationTargets(tt.method, tt.status, tt.target, tt.h) {
				got = append(got, u.String())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("InvalidationTargets = %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("target not modified", func(t *testing.T) {
		u, _ := url.Parse("https://example.com/a#frag")
		policy.InvalidationTargets("POST", 200, u, nil)
		if u.Fragment != "frag" {
			t.Error("InvalidationTargets modified the target URL")
		}
	})
}
