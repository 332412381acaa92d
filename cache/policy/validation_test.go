package policy_test

import (
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache/policy"
)

func TestHasValidatorAndConditionalHeaders(t *testing.T) {
	lm := httpDate(t0.Add(-time.Hour))
	tests := []struct {
		name string
		h    http.Header
		want http.Header
	}{
		{"no validator: nil (4.3.1)", http.Header{"Content-Type": {"text/plain"}}, nil},
		{"empty ETag is no validator", http.Header{"Etag": {""}}, nil},
		{"ETag gives If-None-Match (4.3.1 MUST)", http.Header{"Etag": {`W/"v1"`}}, http.Header{"If-None-Match": {`W/"v1"`}}},
		{"Last-Modified gives If-Modified-Since (4.3.1 SHOULD)", http.Header{"Last-Modified": {lm}}, http.Header{"If-Modified-Since": {lm}}},
		{"both validators sent (4.3.1)", http.Header{"Etag": {`"v1"`}, "Last-Modified": {lm}},
			http.Header{"If-None-Match": {`"v1"`}, "If-Modified-Since": {lm}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := policy.ConditionalHeaders(tt.h); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ConditionalHeaders = %v, want %v", got, tt.want)
			}
			if got := policy.HasValidator(tt.h); got != (tt.want != nil) {
				t.Errorf("HasValidator = %v, want %v", got, tt.want != nil)
			}
		})
	}
}

func TestFreshen(t *testing.T) {
	stored := http.Header{
		"Content-Type":     {"text/html"},
		"Content-Length":   {"1234"},
		"Content-Encoding": {"gzip"},
		"Cache-Control":    {"max-age=60"},
		"Date":             {httpDate(t0)},
		"Etag":             {`"v1"`},
		"X-Old":            {"kept"},
	}
	notModified := http.Header{
		"Content-Length":     {"0"},
		"Content-Encoding":   {"br"},
		"Content-Range":      {"bytes 0-1/2"},
		"Cache-Control":      {"max-age=600"},
		"Date":               {httpDate(t0.Add(time.Hour))},
		"Etag":               {`"v1"`},
		"X-New":              {"a", "b"},
		"Connection":         {"X-Hop"},
		"X-Hop":              {"secret"},
		"Keep-Alive":         {"timeout=5"},
		"Transfer-Encoding":  {"chunked"},
		"Proxy-Authenticate": {"Basic"},
	}
	want := http.Header{
		"Content-Type":     {"text/html"},   // not in the 304: kept
		"Content-Length":   {"1234"},        // §3.2: never from the 304
		"Content-Encoding": {"gzip"},        // §3.2: the stored body depends on it
		"Cache-Control":    {"max-age=600"}, // §4.3.4: replaced
		"Date":             {httpDate(t0.Add(time.Hour))},
		"Etag":             {`"v1"`},
		"X-Old":            {"kept"},
		"X-New":            {"a", "b"}, // added, all lines
	}
	storedCopy := stored.Clone()
	got := policy.Freshen(stored, notModified)
	t.Run("304 fields replace stored ones except 3.1 and 3.2 exceptions", func(t *testing.T) {
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Freshen =\n%v\nwant\n%v", got, want)
		}
	})
	t.Run("stored header left unmodified for concurrent readers", func(t *testing.T) {
		if !reflect.DeepEqual(stored, storedCopy) {
			t.Errorf("stored header modified: %v", stored)
		}
		notModified["X-New"][0] = "changed"
		if got["X-New"][0] != "a" {
			t.Error("result shares value slices with the 304")
		}
	})
	t.Run("nil stored header", func(t *testing.T) {
		if got := policy.Freshen(nil, http.Header{"X-A": {"1"}}); !reflect.DeepEqual(got, http.Header{"X-A": {"1"}}) {
			t.Errorf("Freshen(nil) = %v", got)
		}
	})
}

func TestNotModified(t *testing.T) {
	lm := t0.Add(-time.Hour)
	stored := http.Header{"Etag": {`"abc"`}, "Last-Modified": {httpDate(lm)}}
	weakStored := http.Header{"Etag": {`W/"abc"`}}
	tests := []struct {
		name string
		req  http.Header
		h    http.Header
		want bool
	}{
		{"no conditional", http.Header{}, stored, false},
		{"If-None-Match equal tag (RFC 9110 13.1.2)", http.Header{"If-None-Match": {`"abc"`}}, stored, true},
		{"If-None-Match different tag", http.Header{"If-None-Match": {`"xyz"`}}, stored, false},
		{"If-None-Match weak comparison: W/ in request (8.8.3.2)", http.Header{"If-None-Match": {`W/"abc"`}}, stored, true},
		{"If-None-Match weak comparison: W/ stored", http.Header{"If-None-Match": {`"abc"`}}, weakStored, true},
		{"If-None-Match star matches a stored response", http.Header{"If-None-Match": {"*"}}, http.Header{}, true},
		{"If-None-Match list", http.Header{"If-None-Match": {`"x", W/"y" ,"abc"`}}, stored, true},
		{"If-None-Match over several lines", http.Header{"If-None-Match": {`"x"`, `"abc"`}}, stored, true},
		{"If-None-Match with a comma inside a tag", http.Header{"If-None-Match": {`"a,b"`}}, http.Header{"Etag": {`"a,b"`}}, true},
		{"If-None-Match malformed element skipped", http.Header{"If-None-Match": {`abc, "abc"`}}, stored, true},
		{"If-None-Match unquoted does not match", http.Header{"If-None-Match": {`abc`}}, stored, false},
		{"If-None-Match without stored ETag", http.Header{"If-None-Match": {`"abc"`}}, http.Header{"Last-Modified": {httpDate(lm)}}, false},
		{"If-None-Match takes precedence over If-Modified-Since (13.2.2)",
			http.Header{"If-None-Match": {`"xyz"`}, "If-Modified-Since": {httpDate(t0)}}, stored, false},
		{"If-Modified-Since not modified (13.1.3)", http.Header{"If-Modified-Since": {httpDate(t0)}}, stored, true},
		{"If-Modified-Since equal to Last-Modified", http.Header{"If-Modified-Since": {httpDate(lm)}}, stored, true},
		{"If-Modified-Since before Last-Modified", http.Header{"If-Modified-Since": {httpDate(lm.Add(-time.Second))}}, stored, false},
		{"If-Modified-Since invalid is ignored (13.1.3)", http.Header{"If-Modified-Since": {"yesterday"}}, stored, false},
		{"If-Modified-Since with two lines is ignored", http.Header{"If-Modified-Since": {httpDate(t0), httpDate(t0)}}, stored, false},
		{"If-Modified-Since without stored Last-Modified", http.Header{"If-Modified-Since": {httpDate(t0)}}, http.Header{"Etag": {`"abc"`}}, false},
		{"If-Modified-Since in RFC 850 format", http.Header{"If-Modified-Since": {t0.UTC().Format("Monday, 02-Jan-06 15:04:05 GMT")}}, stored, true},
		{"If-Match present: leave it to the origin (13.2.2)", http.Header{"If-Match": {`"abc"`}, "If-None-Match": {`"abc"`}}, stored, false},
		{"If-Unmodified-Since present: leave it to the origin (13.2.2)", http.Header{"If-Unmodified-Since": {httpDate(t0)}, "If-Modified-Since": {httpDate(t0)}}, stored, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := policy.NotModified(tt.req, tt.h); got != tt.want {
				t.Errorf("NotModified = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFreshenMatches(t *testing.T) {
	lm := httpDate(t0.Add(-time.Hour))
	tests := []struct {
		name       string
		stored, nm http.Header
		want       bool
	}{
		{"same strong ETag (4.3.4)", http.Header{"Etag": {`"a"`}}, http.Header{"Etag": {`"a"`}}, true},
		{"different strong ETag must not update (4.3.4)", http.Header{"Etag": {`"a"`}}, http.Header{"Etag": {`"b"`}}, false},
		{"strong 304 ETag vs weak stored one: strong comparison fails", http.Header{"Etag": {`W/"a"`}}, http.Header{"Etag": {`"a"`}}, false},
		{"weak 304 ETag matches weakly", http.Header{"Etag": {`"a"`}}, http.Header{"Etag": {`W/"a"`}}, true},
		{"304 ETag but stored has none", http.Header{"Last-Modified": {lm}}, http.Header{"Etag": {`"a"`}}, false},
		{"malformed 304 ETag", http.Header{"Etag": {`"a"`}}, http.Header{"Etag": {`a`}}, false},
		{"same Last-Modified", http.Header{"Last-Modified": {lm}}, http.Header{"Last-Modified": {lm}}, true},
		{"different Last-Modified", http.Header{"Last-Modified": {lm}}, http.Header{"Last-Modified": {httpDate(t0)}}, false},
		{"304 without validators updates the one validated response", http.Header{"Etag": {`"a"`}}, http.Header{"Cache-Control": {"max-age=5"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := policy.FreshenMatches(tt.stored, tt.nm); got != tt.want {
				t.Errorf("FreshenMatches = %v, want %v", got, tt.want)
			}
		})
	}
}

// Issue 11 item 4: If-Modified-Since on a stored response without
// Last-Modified is evaluated against its Date, else the time it was
// received (RFC 9111 §4.3.2).
func TestNotModifiedAt(t *testing.T) {
	ims := http.Header{"If-Modified-Since": {httpDate(t0)}}
	for _, tt := range []struct {
		name     string
		req, h   http.Header
		received time.Time
		want     bool
	}{
		{"Date before the request's date (4.3.2)", ims, http.Header{"Date": {httpDate(t0.Add(-time.Minute))}}, t0.Add(time.Hour), true},
		{"Date equal to it", ims, http.Header{"Date": {httpDate(t0)}}, time.Time{}, true},
		{"Date after it", ims, http.Header{"Date": {httpDate(t0.Add(time.Minute))}}, t0.Add(-time.Hour), false},
		{"no Date: received before it", ims, http.Header{}, t0.Add(-time.Minute), true},
		{"no Date: received after it", ims, http.Header{}, t0.Add(time.Minute), false},
		{"no Date, no receive time", ims, http.Header{}, time.Time{}, false},
		{"Last-Modified wins over Date", ims, http.Header{"Last-Modified": {httpDate(t0.Add(time.Minute))}, "Date": {httpDate(t0.Add(-time.Minute))}}, time.Time{}, false},
		{"invalid Last-Modified: no fallback", ims, http.Header{"Last-Modified": {"yesterday"}, "Date": {httpDate(t0.Add(-time.Minute))}}, time.Time{}, false},
		{"invalid If-Modified-Since ignored", http.Header{"If-Modified-Since": {"Sun, 06 Nov 1994 8:49:37 GMT"}}, http.Header{"Date": {httpDate(t0)}}, time.Time{}, false},
	} {
		if got := policy.NotModifiedAt(tt.req, tt.h, tt.received); got != tt.want {
			t.Errorf("%s: NotModifiedAt = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// RFC 9110 §8.8.2.2: a cache may take a stored Last-Modified as strong
// only when the stored Date is at least one second after it.
func TestStrongLastModified(t *testing.T) {
	const lm = "Mon, 01 Jan 2024 00:00:00 GMT"
	for _, tc := range []struct {
		date string
		want bool
	}{
		{"Mon, 01 Jan 2024 00:00:01 GMT", true},
		{"Mon, 01 Jan 2024 00:00:00 GMT", false}, // the same second: weak
		{"Sun, 31 Dec 2023 23:59:59 GMT", false}, // Date before it
		{"", false},                              // no Date: nothing to deduce strength from
	} {
		h := http.Header{"Last-Modified": {lm}}
		if tc.date != "" {
			h["Date"] = []string{tc.date}
		}
		if _, got := policy.StrongLastModified(h); got != tc.want {
			t.Errorf("Date %q: strong %v, want %v", tc.date, got, tc.want)
		}
	}
}
