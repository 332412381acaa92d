package policy_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache/policy"
)

// TestStaleIfUnreachable: a stored response may be served stale when the
// origin cannot be reached (§4.2.4), within the configured window, unless a
// directive of the response forbids serving it stale.
func TestStaleIfUnreachable(t *testing.T) {
	const day = 24 * time.Hour
	opts := policy.Options{StaleIfUnreachable: day}
	tests := []struct {
		name   string
		cc     string
		opts   policy.Options
		age    time.Duration
		wantOK bool
	}{
		{"stale within the window (4.2.4: disconnected)", "max-age=60", opts, time.Hour, true},
		{"stale past the window", "max-age=60", opts, day + 2*time.Minute, false},
		{"fresh: served anyway, and the window holds too", "max-age=3600", opts, time.Minute, true},
		{"window off", "max-age=60", policy.Options{}, time.Hour, false},
		{"must-revalidate forbids it (5.2.2.2)", "max-age=60, must-revalidate", opts, time.Hour, false},
		{"proxy-revalidate forbids it (5.2.2.8)", "max-age=60, proxy-revalidate", opts, time.Hour, false},
		{"s-maxage forbids it (5.2.2.10)", "s-maxage=60", opts, time.Hour, false},
		{"no-cache forbids it (5.2.2.4)", "max-age=60, no-cache", opts, time.Hour, false},
		{"stale-if-error does not narrow it (RFC 5861 4 is about error responses)", "max-age=60, stale-if-error=10", opts, time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := policy.ResponseFreshnessStatus(http.StatusOK, http.Header{"Cache-Control": {tt.cc}}, t0, tt.opts)
			d := policy.EvaluateRequest(&policy.Directives{}, &f, tt.age)
			if d.StaleIfUnreachableOK != tt.wantOK {
				t.Errorf("StaleIfUnreachableOK = %v, want %v (freshness %+v)", d.StaleIfUnreachableOK, tt.wantOK, f)
			}
		})
	}
}
