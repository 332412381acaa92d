package policy_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache/policy"
)

func TestCurrentAge(t *testing.T) {
	req := t0.Add(-2 * time.Second) // request sent 2 s before the response arrived at t0
	tests := []struct {
		name string
		h    http.Header
		now  time.Time
		want time.Duration
	}{
		{"no Date, no Age: response delay plus resident time (4.2.3)", http.Header{}, t0.Add(10 * time.Second), 12 * time.Second},
		{"apparent age from Date (4.2.3)", http.Header{"Date": {httpDate(t0.Add(-30 * time.Second))}}, t0.Add(10 * time.Second), 40 * time.Second},
		{"Date in the future: apparent age 0", http.Header{"Date": {httpDate(t0.Add(time.Hour))}}, t0, 2 * time.Second},
		{"Age plus response delay (corrected_age_value)", http.Header{"Age": {"100"}, "Date": {httpDate(t0)}}, t0.Add(time.Second), 103 * time.Second},
		{"max of apparent and corrected age", http.Header{"Age": {"5"}, "Date": {httpDate(t0.Add(-60 * time.Second))}}, t0, 60 * time.Second},
		{"Date in RFC 850 format", http.Header{"Date": {t0.Add(-30 * time.Second).UTC().Format("Monday, 02-Jan-06 15:04:05 GMT")}}, t0, 30 * time.Second},
		{"Date in asctime format", http.Header{"Date": {t0.Add(-30 * time.Second).Format(time.ANSIC)}}, t0, 30 * time.Second},
		{"invalid Age ignored (5.1)", http.Header{"Age": {"abc"}}, t0, 2 * time.Second},
		{"negative Age ignored (5.1)", http.Header{"Age": {"-50"}}, t0, 2 * time.Second},
		{"Age list: the first value (RFC 9110 5.5)", http.Header{"Age": {"5, 6"}}, t0, 7 * time.Second},
		{"two Age lines: the first value (RFC 9110 5.5)", http.Header{"Age": {"5", "6"}}, t0, 7 * time.Second},
		{"Age list with an invalid first value ignored (5.1)", http.Header{"Age": {"x, 6"}}, t0, 2 * time.Second},
		{"Age 7200, 0 is 7200 (RFC 9110 5.5)", http.Header{"Age": {"7200, 0"}}, t0, 7202 * time.Second},
		{"huge Age clamped to 2^31 s (5.1)", http.Header{"Age": {"99999999999999999999"}}, t0.Add(time.Hour), policy.MaxDelta},
		{"Date of year 1 clamped to 2^31 s", http.Header{"Date": {"Mon, 01 Jan 0001 00:00:00 GMT"}}, t0, policy.MaxDelta},
		{"now before response time: no negative resident time", http.Header{}, t0.Add(-time.Hour), 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := policy.CurrentAge(tt.h, req, t0, tt.now); got != tt.want {
				t.Errorf("CurrentAge = %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("request time after response time: no negative delay", func(t *testing.T) {
		if got := policy.CurrentAge(http.Header{}, t0.Add(time.Minute), t0, t0); got != 0 {
			t.Errorf("CurrentAge = %v, want 0", got)
		}
	})
	t.Run("AgeAt with precomputed corrected initial age equals CurrentAge", func(t *testing.T) {
		h := http.Header{"Age": {"7"}, "Date": {httpDate(t0.Add(-3 * time.Second))}}
		ia := policy.CorrectedInitialAge(h, req, t0)
		now := t0.Add(time.Minute)
		if got, want := policy.AgeAt(ia, t0, now), policy.CurrentAge(h, req, t0, now); got != want || want != 69*time.Second {
			t.Errorf("AgeAt = %v, CurrentAge = %v, want 69s", got, want)
		}
	})
}
