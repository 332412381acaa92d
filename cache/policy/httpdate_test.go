package policy_test

import (
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache/policy"
)

// Issue 11 item 3: Expires (and every HTTP-date) is exactly RFC 9110
// §5.6.7's grammar; anything else is invalid, and an invalid Expires means
// already expired (RFC 9111 §5.3).
func TestParseHTTPDate(t *testing.T) {
	want := time.Date(1994, time.November, 6, 8, 49, 37, 0, time.UTC)
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{"Sun, 06 Nov 1994 08:49:37 GMT", true},                                 // IMF-fixdate
		{"Sunday, 06-Nov-94 08:49:37 GMT", true},                                // rfc850-date (obsolete, MUST accept)
		{"Sun Nov  6 08:49:37 1994", true},                                      // asctime-date (obsolete, MUST accept)
		{"Sun Nov 06 08:49:37 1994", true},                                      // asctime with 2DIGIT day
		{"Sun, 06 Nov 1994 08:49:37 gmt", true},                                 // GMT in any case
		{"Sun, 06 Nov 1994 08:49:37 UTC", false},                                // another zone
		{"Sun,  06 Nov 1994 08:49:37 GMT", false},                               // double space
		{"Sun, 06 Nov 1994 8:49:37 GMT", false},                                 // one-digit hour
		{"Sun, 6 Nov 1994 08:49:37 GMT", false},                                 // one-digit day
		{"Sun, 06-Nov-1994 08:49:37 GMT", false},                                // dashes where IMF-fixdate has none
		{"sun, 06 nov 1994 08:49:37 GMT", false},                                // names are case-sensitive (%s)
		{"Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT", false}, // several values
		{" Sun, 06 Nov 1994 08:49:37 GMT", false},                               // leading space (OWS is trimmed by the field reader)
		{"Sun, 31 Apr 1994 08:49:37 GMT", false},                                // no such day
		{"Sun, 06 Nov 1994 24:00:00 GMT", false},                                // hour 24
		{"Sunday, 06-Nov-94 08:49:37 UTC", false},
		{"Sun Nov 6 08:49:37 1994", false}, // asctime needs the padding space
		{"0", false},
		{"", false},
	} {
		got, ok := policy.ParseHTTPDate(tt.in)
		if ok != tt.ok || (ok && !got.Equal(want)) {
			t.Errorf("ParseHTTPDate(%q) = %v, %v; want ok=%v", tt.in, got, ok, tt.ok)
		}
	}
	if _, ok := policy.ParseHTTPDate("Thu, 01 Jan 1970 00:00:00 GMT"); !ok {
		t.Error("epoch refused")
	}
}

// Issue 11 items 2 and 3 through the freshness rules.
func TestExpiresAndAgeStrictness(t *testing.T) {
	date := httpDate(t0)
	for _, tt := range []struct {
		name string
		h    http.Header
		want time.Duration
	}{
		{"valid Expires (5.3)", http.Header{"Date": {date}, "Expires": {httpDate(t0.Add(time.Hour))}}, time.Hour},
		{"Expires with a double space is expired (5.3, RFC 9110 5.6.7)", http.Header{"Date": {date}, "Expires": {"Sun,  06 Nov 2044 08:49:37 GMT"}}, 0},
		{"Expires with a one-digit hour is expired", http.Header{"Date": {date}, "Expires": {"Sun, 06 Nov 2044 8:49:37 GMT"}}, 0},
		{"Expires with two dates in one line is expired", http.Header{"Date": {date}, "Expires": {httpDate(t0.Add(time.Hour)) + ", " + httpDate(t0.Add(time.Hour))}}, 0},
		{"two Expires lines are stale (4.2.1)", http.Header{"Date": {date}, "Expires": {httpDate(t0.Add(time.Hour)), httpDate(t0.Add(time.Hour))}}, 0},
	} {
		if got := policy.ResponseFreshness(tt.h, t0, policy.Options{}).Lifetime; got != tt.want {
			t.Errorf("%s: lifetime %v, want %v", tt.name, got, tt.want)
		}
	}
	// RFC 9110 §5.5: "Age: 7200, 0" is 7200, so a max-age=3600 response is
	// stale.
	h := http.Header{"Cache-Control": {"max-age=3600"}, "Age": {"7200, 0"}}
	f := policy.ResponseFreshness(h, t0, policy.Options{})
	if d := policy.Evaluate(http.Header{}, h, f, t0, t0, t0); d.Action == policy.Serve {
		t.Errorf("Age: 7200, 0 with max-age=3600 served as fresh: %+v", d)
	}
}

// The RFC 9110 §5.6.7 grammar, as regular expressions, for the fuzzer.
var (
	reIMF     = regexp.MustCompile(`^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} [Gg][Mm][Tt]$`)
	reRFC850  = regexp.MustCompile(`^(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), [0-9]{2}-(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} [Gg][Mm][Tt]$`)
	reAsctime = regexp.MustCompile(`^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([0-9]{2}| [0-9]) [0-9]{2}:[0-9]{2}:[0-9]{2} [0-9]{4}$`)
)

// FuzzParseHTTPDate compares ParseHTTPDate with the grammar: it accepts
// only what the grammar matches, accepts everything the grammar matches
// that names a real date and time, and agrees with time.Parse on the
// value. Seeds in testdata/fuzz/FuzzParseHTTPDate.
func FuzzParseHTTPDate(f *testing.F) {
	for _, s := range []string{"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "Sun, 06 Nov 1994 8:49:37 GMT"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := policy.ParseHTTPDate(s)
		var layout string
		switch {
		case reIMF.MatchString(s):
			layout = "Mon, 02 Jan 2006 15:04:05 MST"
		case reRFC850.MatchString(s):
			layout = "Monday, 02-Jan-06 15:04:05 MST"
		case reAsctime.MatchString(s):
			layout = "Mon Jan _2 15:04:05 2006"
		}
		if layout == "" {
			if ok {
				t.Fatalf("ParseHTTPDate(%q) accepted what the grammar refuses", s)
			}
			return
		}
		// time.Parse checks ranges (day of month, hour, minute, second <
		// 60); the grammar allows second 60 (a leap second).
		norm := s
		if len(norm) > 3 && isGMTSuffix(norm) {
			norm = norm[:len(norm)-3] + "GMT"
		}
		ref, err := time.Parse(layout, norm)
		if err != nil {
			if ok && got.Second() != 0 && got.Second() != 59 {
				t.Fatalf("ParseHTTPDate(%q) = %v, time.Parse refuses it: %v", s, got, err)
			}
			return
		}
		if !ok {
			t.Fatalf("ParseHTTPDate(%q) refused a valid date (%v)", s, ref)
		}
		ref = ref.UTC()
		if d := got.Year() - ref.Year(); d != 0 && d%100 == 0 && reRFC850.MatchString(s) {
			// rfc850: time.Parse's years are 1969-2068, ours within 50
			// years of now (RFC 9110 §5.6.7); the centuries may differ.
			ref = ref.AddDate(d, 0, 0)
		}
		if !got.Equal(ref) {
			t.Fatalf("ParseHTTPDate(%q) = %v, time.Parse %v", s, got, ref)
		}
	})
}

func isGMTSuffix(s string) bool {
	e := s[len(s)-3:]
	return (e[0] == 'G' || e[0] == 'g') && (e[1] == 'M' || e[1] == 'm') && (e[2] == 'T' || e[2] == 't')
}

// RFC 9110 §5.6.7: a two-digit year more than 50 years in the future is
// the most recent past year with those digits. In 2026 an Expires of
// "01-Jan-70" is 2070 (44 years ahead), which Go's time package reads as
// 1970; "01-Jan-77" is past the 50 years and so 1977.
func TestRFC850TwoDigitYear(t *testing.T) {
	now := time.Date(2026, time.December, 2, 3, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		yy   int
		mon  time.Month
		day  int
		want int
	}{
		{94, time.November, 6, 1994},
		{26, time.December, 2, 2026},
		{70, time.January, 1, 2070},
		{76, time.December, 1, 2076}, // 50 years ahead less a day
		{76, time.December, 3, 1976}, // more than 50 years ahead
		{77, time.January, 1, 1977},
		{0, time.February, 29, 2000},
	} {
		if got := policy.RFC850Year(tc.yy, tc.mon, tc.day, 0, 0, 0, now); got != tc.want {
			t.Errorf("%02d-%s-%d in %d: year %d, want %d", tc.day, tc.mon, tc.yy, now.Year(), got, tc.want)
		}
	}
	// Near the end of a century the next one's years come first.
	late := time.Date(2090, time.June, 1, 0, 0, 0, 0, time.UTC)
	if got := policy.RFC850Year(10, time.January, 1, 0, 0, 0, late); got != 2110 {
		t.Errorf("10 in 2090: year %d, want 2110", got)
	}
	if got := policy.RFC850Year(95, time.January, 1, 0, 0, 0, late); got != 2095 {
		t.Errorf("95 in 2090: year %d, want 2095", got)
	}
	// Through the parser: an Expires of 1 Jan 2070 is in the future.
	if ts, ok := policy.ParseHTTPDate("Wednesday, 01-Jan-70 00:00:00 GMT"); !ok || ts.Year() != 2070 {
		t.Errorf("Wednesday, 01-Jan-70: %v %v, want 2070", ts, ok)
	}
}
