package policy_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache/policy"
)

func TestEvaluate(t *testing.T) {
	const (
		serve = policy.Serve
		swr   = policy.ServeStaleRevalidate
		reval = policy.Revalidate
	)
	const m = time.Minute
	// The stored response arrived at t0, sent at t0 with no Age: its age
	// is exactly now - t0.
	stored := http.Header{"Date": {httpDate(t0)}}
	fresh60 := policy.Freshness{Lifetime: m}
	cc := func(v string) http.Header { return http.Header{"Cache-Control": {v}} }
	tests := []struct {
		name    string
		req     http.Header
		f       policy.Freshness
		age     time.Duration
		action  policy.Action
		staleOK bool
	}{
		{"fresh response is served (4.2)", nil, fresh60, 30 * time.Second, serve, false},
		{"age equal to lifetime is stale (4.2)", nil, fresh60, m, reval, false},
		{"stale response is revalidated (4.2.4)", nil, fresh60, 2 * m, reval, false},
		{"zero lifetime is stale at once", nil, policy.Freshness{}, 0, reval, false},
		{"request no-cache revalidates a fresh response (5.2.1.4)", cc("no-cache"), fresh60, time.Second, reval, false},
		{"Pragma no-cache without Cache-Control (RFC 7234 5.4)", http.Header{"Pragma": {"no-cache"}}, fresh60, time.Second, reval, false},
		{"Pragma ignored when Cache-Control present (5.4)", http.Header{"Pragma": {"no-cache"}, "Cache-Control": {"max-stale"}}, fresh60, time.Second, serve, true},
		{"response no-cache revalidates a fresh response (5.2.2.4)", nil, policy.Freshness{Lifetime: m, NoCache: true}, time.Second, reval, false},
		{"immutable does not override request no-cache (RFC 8246)", cc("no-cache"), fresh60, time.Second, reval, false},
		{"request max-age older than age revalidates (5.2.1.1)", cc("max-age=10"), fresh60, 20 * time.Second, reval, false},
		{"request max-age=0 revalidates (5.2.1.1)", cc("max-age=0"), fresh60, time.Second, reval, false},
		{"request max-age not exceeded serves", cc("max-age=30"), fresh60, 20 * time.Second, serve, false},
		{"request min-fresh satisfied (5.2.1.3)", cc("min-fresh=20"), fresh60, 30 * time.Second, serve, false},
		{"request min-fresh not satisfied (5.2.1.3)", cc("min-fresh=40"), fresh60, 30 * time.Second, reval, false},
		{"request max-stale without value serves any stale (5.2.1.2)", cc("max-stale"), fresh60, 1000 * m, swr, true},
		{"request max-stale within value (5.2.1.2)", cc("max-stale=60"), fresh60, 90 * time.Second, swr, true},
		{"request max-stale exceeded", cc("max-stale=10"), fresh60, 90 * time.Second, reval, false},
		{"must-revalidate forbids max-stale (5.2.2.2)", cc("max-stale"), policy.Freshness{Lifetime: m, MustRevalidate: true}, 2 * m, reval, false},
		{"must-revalidate forbids stale-while-revalidate (4.2.4)", nil, policy.Freshness{Lifetime: m, MustRevalidate: true, StaleWhileRevalidate: time.Hour, StaleIfError: time.Hour}, 2 * m, reval, false},
		{"stale within stale-while-revalidate (RFC 5861 3)", nil, policy.Freshness{Lifetime: m, StaleWhileRevalidate: m}, 90 * time.Second, swr, false},
		{"stale past stale-while-revalidate", nil, policy.Freshness{Lifetime: m, StaleWhileRevalidate: m}, 3 * m, reval, false},
		{"request no-cache forbids stale-while-revalidate", cc("no-cache"), policy.Freshness{Lifetime: m, StaleWhileRevalidate: m}, 90 * time.Second, reval, false},
		{"request max-age forbids stale-while-revalidate (5.2.1.1)", cc("max-age=3600"), policy.Freshness{Lifetime: m, StaleWhileRevalidate: m}, 90 * time.Second, reval, false},
		{"request min-fresh forbids stale-while-revalidate", cc("min-fresh=1"), policy.Freshness{Lifetime: m, StaleWhileRevalidate: m}, 90 * time.Second, reval, false},
		{"exceeded max-stale forbids stale-while-revalidate", cc("max-stale=5"), policy.Freshness{Lifetime: m, StaleWhileRevalidate: m}, 90 * time.Second, reval, false},
		{"within stale-if-error (RFC 5861 4)", nil, policy.Freshness{Lifetime: m, StaleIfError: m}, 90 * time.Second, reval, true},
		{"past stale-if-error", nil, policy.Freshness{Lifetime: m, StaleIfError: m}, 3 * m, reval, false},
		{"request stale-if-error (RFC 5861 4)", cc("stale-if-error=300"), fresh60, 3 * m, reval, true},
		{"request stale-if-error too short", cc("stale-if-error=30"), fresh60, 3 * m, reval, false},
		{"stale-if-error=0 allows nothing", cc("stale-if-error=0"), fresh60, 61 * time.Second, reval, false},
		{"response no-cache forbids stale-if-error (4.2.4)", nil, policy.Freshness{Lifetime: m, NoCache: true, StaleIfError: time.Hour}, 2 * m, reval, false},
		{"must-revalidate forbids request stale-if-error", cc("stale-if-error=300"), policy.Freshness{Lifetime: m, MustRevalidate: true}, 2 * m, reval, false},
		{"fresh response revalidated on request no-cache may be served on error within stale-if-error", cc("no-cache"), policy.Freshness{Lifetime: m, StaleIfError: m}, time.Second, reval, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req
			if req == nil {
				req = http.Header{}
			}
			d := policy.Evaluate(req, stored, tt.f, t0, t0, t0.Add(tt.age))
			if d.Action != tt.action || d.StaleIfErrorOK != tt.staleOK {
				t.Errorf("Evaluate: action %v staleIfErrorOK %v; want %v %v", d.Action, d.StaleIfErrorOK, tt.action, tt.staleOK)
			}
			if d.Age != tt.age {
				t.Errorf("Age = %v, want %v", d.Age, tt.age)
			}
			if d.TTL != tt.f.Lifetime-tt.age {
				t.Errorf("TTL = %v, want %v", d.TTL, tt.f.Lifetime-tt.age)
			}
			if e := policy.EvaluateAge(req, tt.f, tt.age); e != d {
				t.Errorf("EvaluateAge = %+v, Evaluate = %+v", e, d)
			}
		})
	}
	t.Run("age includes the Age field of the stored response (4.2.3)", func(t *testing.T) {
		h := http.Header{"Date": {httpDate(t0)}, "Age": {"50"}}
		d := policy.Evaluate(http.Header{}, h, fresh60, t0, t0, t0.Add(20*time.Second))
		if d.Age != 70*time.Second || d.Action != reval || d.TTL != -10*time.Second {
			t.Errorf("got %+v, want age 70s, Revalidate, ttl -10s", d)
		}
	})
}
