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
			"accept-encoding=br,deflate,gzip", true},
		{"Accept-Encoding across lines", []string{"Accept-Encoding"}, http.Header{"Accept-Encoding": {"gzip;q=0.5", "zstd"}},
			"accept-encoding=gzip,zstd", true},
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

// Issue 8 item 2: the normalized Accept-Encoding keeps apart every set of
// acceptable codings (RFC 9110 §12.5.3), so that a variant is only shared
// by requests that accept every coding the origin may have chosen.
func TestNormalizeAcceptEncoding(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty value means identity only (RFC 9110 12.5.3)", "", "identity"},
		{"identity only", "identity", "identity"},
		{"gzip", "gzip", "gzip"},
		{"Chrome", "gzip, deflate, br, zstd", "br,deflate,gzip,zstd"},
		{"Firefox", "gzip, deflate, br", "br,deflate,gzip"},
		{"order and weights do not matter", "br;q=0.5, gzip, deflate;q=0.1", "br,deflate,gzip"},
		{"deflate kept apart from identity (12.5.3)", "deflate", "deflate"},
		{"x-gzip is gzip (8.4.1.3)", "x-gzip", "gzip"},
		{"x-compress is compress (8.4.1.1)", "x-compress, compress;q=0.5", "compress"},
		{"case-insensitive", "GZIP, BR", "br,gzip"},
		{"q=0 excludes (12.4.2)", "gzip;q=0, deflate", "deflate"},
		{"q=0 of the only coding", "gzip;q=0", "identity"},
		{"q=0.000 excludes", "gzip;q=0.000", "identity"},
		{"star covers unlisted codings (12.5.3)", "*;q=0.5, gzip;q=0.4", "gzip,*"},
		{"star with exclusions", "*, gzip;q=0", "*,-gzip"},
		{"star with q=0 refuses identity too", "*;q=0, gzip", "gzip,!identity"},
		{"identity;q=0 refused", "identity;q=0, br", "br,!identity"},
		{"star with q=0 but identity listed", "*;q=0, identity", "identity"},
		{"star alone", "*", "*"},
		{"nothing acceptable", "*;q=0", "!identity"},
		{"unknown codings are kept", "compress, x-foo", "compress,x-foo"},
		{"a coding spelled like a refusal stays apart", "!identity", "%21identity"},
		{"a coding spelled like an exclusion stays apart", "-gzip, *", "%2Dgzip,*"},
		{"invalid q ignores the element", "br;q=2, gzip", "gzip"},
		{"q above 1 invalid", "br;q=1.5", "identity"},
		{"q with four decimals invalid", "br;q=0.1234, gzip;q=0.1", "gzip"},
		{"Q parameter name case-insensitive, spaces", "br ; Q = 0, gzip;q=0.3", "gzip"},
		{"other parameters ignored", "gzip;level=9;q=0.7, br;q=0.6", "br,gzip"},
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

// Issue 8 item 2: a stored response is served only when its
// Content-Encoding is acceptable to the request (RFC 9110 §12.5.3).
func TestEncodingAcceptable(t *testing.T) {
	tests := []struct {
		name string
		ce   []string
		ae   []string // nil: no Accept-Encoding field
		want bool
	}{
		{"no Accept-Encoding: anything (12.5.3)", []string{"deflate"}, nil, true},
		{"deflate to a client that sent identity", []string{"deflate"}, []string{"identity"}, false},
		{"deflate to gzip;q=0 only", []string{"deflate"}, []string{"gzip;q=0"}, false},
		{"deflate to gzip;q=0, deflate", []string{"deflate"}, []string{"gzip;q=0, deflate"}, true},
		{"gzip refused with q=0", []string{"gzip"}, []string{"gzip;q=0, deflate"}, false},
		{"x-gzip is gzip", []string{"x-gzip"}, []string{"gzip"}, true},
		{"case-insensitive", []string{"GZIP"}, []string{"gzip"}, true},
		{"star covers it", []string{"br"}, []string{"*"}, true},
		{"star q=0 with explicit", []string{"br"}, []string{"*;q=0, br"}, true},
		{"explicit q=0 beats star", []string{"br"}, []string{"*, br;q=0"}, false},
		{"every layer must be acceptable", []string{"gzip, br"}, []string{"gzip"}, false},
		{"layers over lines", []string{"gzip", "br"}, []string{"gzip, br"}, true},
		{"empty Accept-Encoding: no coding", []string{"gzip"}, []string{""}, false},
		{"unencoded to empty Accept-Encoding", nil, []string{""}, true},
		{"unencoded by default", nil, []string{"gzip"}, true},
		{"identity;q=0 refuses unencoded", nil, []string{"gzip, identity;q=0"}, false},
		{"*;q=0 refuses unencoded", nil, []string{"*;q=0"}, false},
		{"IDENTITY;q=0 in any case refuses unencoded", nil, []string{"gzip", "IDENTITY;q=0"}, false},
		{"identity listed with a weight accepts unencoded", nil, []string{"identity;q=0.5, *;q=0"}, true},
		{"identity Content-Encoding is no coding", []string{"identity"}, []string{"gzip"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := http.Header{}
			if tt.ae != nil {
				req["Accept-Encoding"] = tt.ae
			}
			if got := policy.EncodingAcceptable(tt.ce, req); got != tt.want {
				t.Errorf("EncodingAcceptable(%q, %q) = %v, want %v", tt.ce, tt.ae, got, tt.want)
			}
		})
	}
}
