package cache

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// deadlineRecorder is a response writer that records the write deadlines
// set on it, as net/http's writer takes them.
type deadlineRecorder struct {
	*httptest.ResponseRecorder
	deadlines []time.Time
}

func (d *deadlineRecorder) SetWriteDeadline(t time.Time) error {
	d.deadlines = append(d.deadlines, t)
	return nil
}

// Removing the bound of the writes to a client leaves what Caddy's idle
// timeout writer would have left after a write of its own: the write
// timeout's ceiling and, at the end of an HTTP/1 response, its idle bound,
// which bounds net/http's flush once the handler has returned. Without
// that writer (write_idle disabled) nor a write timeout, no deadline.
func TestWriteBoundLeavesCaddysDeadline(t *testing.T) {
	const idle = time.Minute
	hard := time.Now().Add(time.Hour)
	soon := time.Now().Add(time.Second)
	for _, tc := range []struct {
		name  string
		hard  time.Time
		idle  bool
		http2 bool
		final bool
		want  func(time.Time) bool
	}{
		{"no idle writer", time.Time{}, false, false, true, time.Time.IsZero},
		{"HTTP/1, end", time.Time{}, true, false, true, near(idle)},
		{"HTTP/1, end, ceiling later", hard, true, false, true, near(idle)},
		{"HTTP/1, end, ceiling sooner", soon, true, false, true, soon.Equal},
		{"HTTP/1, mid-response", hard, true, false, false, hard.Equal},
		{"HTTP/2, end", time.Time{}, true, true, true, time.Time.IsZero},
		{"HTTP/2, ceiling", hard, true, true, true, hard.Equal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &deadlineRecorder{ResponseRecorder: httptest.NewRecorder()}
			ctx := context.Background()
			if tc.idle {
				w := &caddyhttp.IdleTimeoutWriter{Deadline: caddyhttp.IdleDeadline{Timeout: idle, HardDeadline: tc.hard}}
				ctx = caddyhttp.ContextWithIdleTimeouts(ctx, nil, w)
			}
			b := writeBound{rw: rec, ctx: ctx, http2: tc.http2}
			b.before(time.Second)
			b.clear(tc.final)
			if len(rec.deadlines) != 2 || !tc.want(rec.deadlines[1]) {
				t.Fatalf("deadlines set %v", rec.deadlines)
			}
		})
	}
}

// Without Caddy's idle timeout writer (write_idle disabled), removing the
// bound leaves the deadline that net/http set from the server's write
// timeout when the request arrived (Caddy's start_time), mid-response and
// at its end, over HTTP/1 and HTTP/2.
func TestWriteBoundLeavesTheServersWriteTimeout(t *testing.T) {
	start := time.Now().Add(-time.Second)
	want := start.Add(time.Minute)
	for _, tc := range []struct {
		name         string
		http2, final bool
	}{{"HTTP/1, mid-response", false, false}, {"HTTP/1, end", false, true}, {"HTTP/2", true, false}} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &deadlineRecorder{ResponseRecorder: httptest.NewRecorder()}
			ctx := context.WithValue(context.Background(), caddyhttp.ServerCtxKey, &caddyhttp.Server{WriteTimeout: caddy.Duration(time.Minute)})
			ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{"start_time": start})
			b := writeBound{rw: rec, ctx: ctx, http2: tc.http2}
			b.before(time.Second)
			b.clear(tc.final)
			if len(rec.deadlines) != 2 || !rec.deadlines[1].Equal(want) {
				t.Fatalf("deadlines set %v, want the last %v", rec.deadlines, want)
			}
		})
	}
}

// near returns a check that a deadline is about d from now.
func near(d time.Duration) func(time.Time) bool {
	return func(t time.Time) bool {
		left := time.Until(t)
		return left > d-10*time.Second && left <= d
	}
}

var _ http.ResponseWriter = (*deadlineRecorder)(nil)
