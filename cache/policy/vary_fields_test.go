package policy_test

import (
	"net/http"
	"testing"

	"github.com/caddy-edge/edge/cache/policy"
)

// A field that is not a list keeps its lines and its whitespace: these
// are other values than the single line with commas (RFC 9110 §5.3).
func TestVaryKeyNonListFieldExact(t *testing.T) {
	one, _ := policy.VaryKey([]string{"User-Agent"}, http.Header{"User-Agent": {"A (KHTML, like Gecko) B"}})
	for _, other := range [][]string{
		{"A (KHTML", "like Gecko) B"},
		{"A (KHTML,like Gecko) B"},
		{"A (KHTML,  like Gecko)  B"},
	} {
		if k, _ := policy.VaryKey([]string{"User-Agent"}, http.Header{"User-Agent": other}); k == one {
			t.Errorf("User-Agent %q shares the variant of the one line (%q)", other, k)
		}
	}
	// Lists still combine lines.
	a, _ := policy.VaryKey([]string{"Accept-Language"}, http.Header{"Accept-Language": {"en", "fr"}})
	b, _ := policy.VaryKey([]string{"Accept-Language"}, http.Header{"Accept-Language": {"en, fr"}})
	if a != b {
		t.Errorf("Accept-Language lines not combined: %q vs %q", a, b)
	}
}
