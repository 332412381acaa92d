package policy_test

import (
	"net/http"
	"testing"

	"github.com/caddy-edge/edge/cache/policy"
)

func TestVaryKey(t *testing.T) {
	tests := []struct {
		name   string
		vary   []string
		req    http.Header
		want   string
		wantOK bool
	}{
		{"no Vary: empty key", nil, http.Header{"Accept": {"x"}}, "", true},
		{"Vary star never matches (4.1)", []string{"Accept, *"}, http.Header{}, "", false},
		{"one field", []string{"Accept-Language"}, http.Header{"Accept-Language": {"en"}}, "accept-language=en", true},
		{"absent field differs from empty (4.1)", []string{"Accept-Language"}, http.Header{}, "accept-language", true},
		{"empty field value", []string{"Accept-Language"}, http.Header{"Accept-Language": {""}}, "accept-language=", true},
		{"names case-insensitive and sorted", []string{"X-B, accept-LANGUAGE"}, http.Header{"Accept-Language": {"en"}, "X-B": {"1"}},
			"accept-language=en&x-b=1", true},
		{"duplicate names listed once", []string{"Accept-Language, accept-language", "Accept-Language"}, http.Header{"Accept-Language": {"en"}},
			"accept-language=en", true},
		{"multiple field lines combined (RFC 9110 5.3)", []string{"Accept-Language"}, http.Header{"Accept-Language": {"en", "fr"}},
			"accept-language=en,fr", true},
		{"whitespace normalized", []string{"Accept-Language"}, http.Header{"Accept-Language": {"  en ,\tfr;q=0.5 ,, de   x "}},
			"accept-language=en,fr;q%3D0.5,de x", true},
		{"separators escaped", []string{"X-A"}, http.Header{"X-A": {"a=1&b%"}}, "x-a=a%3D1%26b%25", true},
		{"Accept-Encoding normalized", []string{"Accept-Encoding"}, http.Header{"Accept-Encoding": {"gzip, deflate, br;q=0.9"}},
			"accept-encoding=gzip", true},
		{"Accept-Encoding across lines", []string{"Accept-Encoding"}, http.Header{"Accept-Encoding": {"gzip;q=0.5", "zstd"}},
			"accept-encoding=zstd", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := policy.VaryKey(tt.vary, tt.req)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("VaryKey = %q, %v; want %q, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestVaryKeyOrderIndependentAndUnambiguous(t *testing.T) {
	req := http.Header{"Accept-Language": {"en"}, "X-Device": {"mobile"}}
	a, _ := policy.VaryKey([]string{"X-Device, Accept-Language"}, req)
	b, _ := policy.VaryKey([]string{"accept-language", "x-device"}, req)
	if a != b {
		t.Errorf("Vary order changes the key: %q vs %q", a, b)
	}
	// Without escaping, these two would both read "x-a=1&x-b=2".
	k1, _ := policy.VaryKey([]string{"X-A, X-B"}, http.Header{"X-A": {"1&x-b=2"}})
	k2, _ := policy.VaryKey([]string{"X-A, X-B"}, http.Header{"X-A": {"1"}, "X-B": {"2"}})
	if k1 == k2 {
		t.Errorf("different requests share key %q", k1)
	}
}

func TestNormalizeAcceptEncoding(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty value means identity (RFC 9110 12.5.3)", "", "identity"},
		{"identity only", "identity", "identity"},
		{"gzip", "gzip", "gzip"},
		{"Chrome", "gzip, deflate, br, zstd", "br"},
		{"Firefox", "gzip, deflate, br", "br"},
		{"old curl", "deflate, gzip", "gzip"},
		{"x-gzip is gzip (8.4.1.3)", "x-gzip", "gzip"},
		{"case-insensitive", "GZIP, BR", "br"},
		{"q decides over preference", "br;q=0.5, gzip", "gzip"},
		{"tie broken by preference br > zstd > gzip", "gzip;q=0.8, zstd;q=0.8", "zstd"},
		{"q=0 excludes", "br;q=0, gzip;q=0.1", "gzip"},
		{"q=0.000 excludes", "gzip;q=0.000", "identity"},
		{"star gives unlisted codings its q", "*;q=0.5, gzip;q=0.4", "br"},
		{"star with q=0 and explicit gzip", "*;q=0, gzip", "gzip"},
		{"star alone", "*", "br"},
		{"nothing acceptable is identity", "*;q=0", "identity"},
		{"unknown codings only", "deflate, compress", "identity"},
		{"invalid q ignores the element", "br;q=2, gzip", "gzip"},
		{"q above 1 invalid", "br;q=1.5", "identity"},
		{"q with four decimals invalid", "br;q=0.1234, gzip;q=0.1", "gzip"},
		{"Q parameter name case-insensitive, spaces", "br ; Q = 0.2, gzip;q=0.3", "gzip"},
		{"other parameters ignored", "gzip;level=9;q=0.7, br;q=0.6", "gzip"},
		{"duplicate coding takes smallest q", "br, br;q=0, gzip;q=0.1", "gzip"},
		{"garbage does not panic", ";;;,,q=,\xff;q=1", "identity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := policy.NormalizeAcceptEncoding(tt.in); got != tt.want {
				t.Errorf("NormalizeAcceptEncoding(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
