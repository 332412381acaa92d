package policy_test

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/caddy-edge/edge/cache/policy"
)

func TestStripHopByHop(t *testing.T) {
	h := http.Header{
		"Connection":                {"close, X-Conn-A", "x-conn-b"},
		"X-Conn-A":                  {"1"},
		"X-Conn-B":                  {"2"},
		"Keep-Alive":                {"timeout=5"},
		"Proxy-Connection":          {"keep-alive"},
		"Te":                        {"trailers"},
		"Transfer-Encoding":         {"chunked"},
		"Upgrade":                   {"h2c"},
		"Trailer":                   {"X-Checksum"},
		"Proxy-Authenticate":        {"Basic"},
		"Proxy-Authentication-Info": {"x"},
		"Proxy-Authorization":       {"Basic y"},
		"Content-Type":              {"text/plain"},
		"Cache-Control":             {"max-age=60"},
	}
	conn := h["Connection"]
	kept := map[string]bool{}
	for name := range h {
		kept[name] = !policy.HopByHop(conn)(name)
	}
	policy.StripHopByHop(h)
	t.Run("HopByHop names exactly the fields StripHopByHop removes", func(t *testing.T) {
		for name, k := range kept {
			if _, left := h[name]; left != k {
				t.Errorf("%s: HopByHop says kept=%v, StripHopByHop left=%v", name, k, left)
			}
		}
	})
	want := http.Header{"Content-Type": {"text/plain"}, "Cache-Control": {"max-age=60"}}
	t.Run("hop-by-hop, Connection-listed and proxy fields removed (RFC 9110 7.6.1, RFC 9111 3.1)", func(t *testing.T) {
		if !reflect.DeepEqual(h, want) {
			t.Errorf("StripHopByHop left %v, want %v", h, want)
		}
	})
	t.Run("end-to-end fields untouched without Connection", func(t *testing.T) {
		h := http.Header{"Etag": {`"a"`}, "Vary": {"Accept"}}
		policy.StripHopByHop(h)
		if len(h) != 2 {
			t.Errorf("StripHopByHop removed end-to-end fields: %v", h)
		}
	})
}
