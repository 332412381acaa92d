package policy_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache/policy"
)

// t0 is the fixed clock of every test: Fri, 27 Nov 2026 10:00:00 GMT.
var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func httpDate(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

func TestResponseFreshness(t *testing.T) {
	date := httpDate(t0)
	tests := []struct {
		name   string
		status int
		h      http.Header
		opts   policy.Options
		want   policy.Freshness
	}{
		{"s-maxage over max-age (4.2.1)", 200, http.Header{"Cache-Control": {"max-age=60, s-maxage=10"}}, policy.Options{},
			policy.Freshness{Lifetime: 10 * time.Second, MustRevalidate: true}},
		{"max-age over Expires (4.2.1)", 200, http.Header{"Cache-Control": {"max-age=60"}, "Date": {date}, "Expires": {httpDate(t0.Add(time.Hour))}}, policy.Options{},
			policy.Freshness{Lifetime: time.Minute}},
		{"Expires minus Date (4.2.1)", 200, http.Header{"Date": {date}, "Expires": {httpDate(t0.Add(time.Hour))}}, policy.Options{},
			policy.Freshness{Lifetime: time.Hour}},
		{"Expires minus response time when Date is missing (RFC 9110 6.6.1)", 200, http.Header{"Expires": {httpDate(t0.Add(30 * time.Minute))}}, policy.Options{},
			policy.Freshness{Lifetime: 30 * time.Minute}},
		{"Expires minus response time when Date is invalid", 200, http.Header{"Date": {"yesterday"}, "Expires": {httpDate(t0.Add(30 * time.Minute))}}, policy.Options{},
			policy.Freshness{Lifetime: 30 * time.Minute}},
		{"Expires in RFC 850 format", 200, http.Header{"Date": {date}, "Expires": {t0.Add(time.Hour).UTC().Format("Monday, 02-Jan-06 15:04:05 GMT")}}, policy.Options{},
			policy.Freshness{Lifetime: time.Hour}},
		{"Expires in asctime format", 200, http.Header{"Date": {date}, "Expires": {t0.Add(time.Hour).Format(time.ANSIC)}}, policy.Options{},
			policy.Freshness{Lifetime: time.Hour}},
		{"invalid Expires 0 is already expired (5.3)", 200, http.Header{"Date": {date}, "Expires": {"0"}, "Last-Modified": {httpDate(t0.Add(-100 * time.Hour))}}, policy.Options{},
			policy.Freshness{}},
		{"Expires in the past is zero lifetime", 200, http.Header{"Date": {date}, "Expires": {httpDate(t0.Add(-time.Hour))}}, policy.Options{},
			policy.Freshness{}},
		{"conflicting Expires lines are stale (4.2.1)", 200, http.Header{"Date": {date}, "Expires": {httpDate(t0.Add(time.Hour)), httpDate(t0.Add(2 * time.Hour))}}, policy.Options{},
			policy.Freshness{}},
		{"invalid max-age is stale even with Expires (4.2.1)", 200, http.Header{"Cache-Control": {"max-age=soon"}, "Date": {date}, "Expires": {httpDate(t0.Add(time.Hour))}}, policy.Options{},
			policy.Freshness{}},
		{"huge max-age clamped, not negative", 200, http.Header{"Cache-Control": {"max-age=9300000000"}}, policy.Options{},
			policy.Freshness{Lifetime: policy.MaxDelta}},
		{"heuristic 10% of Date - Last-Modified (4.2.2)", 200, http.Header{"Date": {date}, "Last-Modified": {httpDate(t0.Add(-10 * time.Hour))}}, policy.Options{},
			policy.Freshness{Lifetime: time.Hour, Heuristic: true}},
		{"heuristic capped at 24h by default", 200, http.Header{"Date": {date}, "Last-Modified": {httpDate(t0.Add(-1000 * time.Hour))}}, policy.Options{},
			policy.Freshness{Lifetime: 24 * time.Hour, Heuristic: true}},
		{"heuristic fraction and cap configurable", 200, http.Header{"Date": {date}, "Last-Modified": {httpDate(t0.Add(-10 * time.Hour))}},
			policy.Options{HeuristicFraction: 0.5, HeuristicMax: 2 * time.Hour},
			policy.Freshness{Lifetime: 2 * time.Hour, Heuristic: true}},
		{"heuristic with Last-Modified in the future is zero", 200, http.Header{"Date": {date}, "Last-Modified": {httpDate(t0.Add(time.Hour))}}, policy.Options{},
			policy.Freshness{Heuristic: true}},
		{"no heuristic for a status not cacheable by default (4.2.2)", 302, http.Header{"Date": {date}, "Last-Modified": {httpDate(t0.Add(-10 * time.Hour))}}, policy.Options{},
			policy.Freshness{}},
		{"heuristic for any status when public (4.2.2)", 302, http.Header{"Cache-Control": {"public"}, "Date": {date}, "Last-Modified": {httpDate(t0.Add(-10 * time.Hour))}}, policy.Options{},
			policy.Freshness{Lifetime: time.Hour, Heuristic: true}},
		{"no heuristic with invalid Last-Modified", 200, http.Header{"Last-Modified": {"long ago"}}, policy.Options{},
			policy.Freshness{}},
		{"default TTL when nothing else", 200, http.Header{}, policy.Options{DefaultTTL: 5 * time.Minute},
			policy.Freshness{Lifetime: 5 * time.Minute, Heuristic: true}},
		{"default TTL replaces the Last-Modified heuristic", 200, http.Header{"Date": {date}, "Last-Modified": {httpDate(t0.Add(-10 * time.Hour))}}, policy.Options{DefaultTTL: 5 * time.Minute},
			policy.Freshness{Lifetime: 5 * time.Minute, Heuristic: true}},
		{"status TTL in place of the default TTL", 404, http.Header{}, policy.Options{DefaultTTL: 5 * time.Minute, StatusTTLs: map[int]time.Duration{404: time.Minute}},
			policy.Freshness{Lifetime: time.Minute, Heuristic: true}},
		{"default TTL for a status without its own", 200, http.Header{}, policy.Options{DefaultTTL: 5 * time.Minute, StatusTTLs: map[int]time.Duration{404: time.Minute}},
			policy.Freshness{Lifetime: 5 * time.Minute, Heuristic: true}},
		{"status TTL without a default TTL", 404, http.Header{"Date": {date}, "Last-Modified": {httpDate(t0.Add(-10 * time.Hour))}}, policy.Options{StatusTTLs: map[int]time.Duration{404: time.Minute}},
			policy.Freshness{Lifetime: time.Minute, Heuristic: true}},
		{"status TTL does not override explicit max-age", 404, http.Header{"Cache-Control": {"max-age=7"}}, policy.Options{StatusTTLs: map[int]time.Duration{404: time.Minute}},
			policy.Freshness{Lifetime: 7 * time.Second}},
		{"status TTL capped by max TTL", 302, http.Header{}, policy.Options{StatusTTLs: map[int]time.Duration{302: 2 * time.Hour}, MaxTTL: time.Hour},
			policy.Freshness{Lifetime: time.Hour, Heuristic: true}},
		{"default TTL does not override explicit max-age=0", 200, http.Header{"Cache-Control": {"max-age=0"}}, policy.Options{DefaultTTL: 5 * time.Minute},
			policy.Freshness{}},
		{"max TTL caps explicit freshness", 200, http.Header{"Cache-Control": {"max-age=86400"}}, policy.Options{MaxTTL: time.Hour},
			policy.Freshness{Lifetime: time.Hour}},
		{"max TTL caps default TTL", 200, http.Header{}, policy.Options{DefaultTTL: 2 * time.Hour, MaxTTL: time.Hour},
			policy.Freshness{Lifetime: time.Hour, Heuristic: true}},
		{"stale windows from the response (RFC 5861)", 200, http.Header{"Cache-Control": {"max-age=1, stale-while-revalidate=30, stale-if-error=600"}},
			policy.Options{StaleWhileRevalidate: time.Hour, StaleIfError: time.Hour},
			policy.Freshness{Lifetime: time.Second, StaleWhileRevalidate: 30 * time.Second, StaleIfError: 10 * time.Minute}},
		{"stale windows from the defaults", 200, http.Header{"Cache-Control": {"max-age=1"}},
			policy.Options{StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour},
			policy.Freshness{Lifetime: time.Second, StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour}},
		{"response stale-if-error=0 overrides the default", 200, http.Header{"Cache-Control": {"max-age=1, stale-if-error=0"}},
			policy.Options{StaleIfError: time.Hour},
			policy.Freshness{Lifetime: time.Second}},
		{"must-revalidate (5.2.2.2)", 200, http.Header{"Cache-Control": {"max-age=5, must-revalidate"}}, policy.Options{},
			policy.Freshness{Lifetime: 5 * time.Second, MustRevalidate: true}},
		{"proxy-revalidate (5.2.2.8)", 200, http.Header{"Cache-Control": {"max-age=5, proxy-revalidate"}}, policy.Options{},
			policy.Freshness{Lifetime: 5 * time.Second, MustRevalidate: true}},
		{"no-cache revalidates every use (5.2.2.4)", 200, http.Header{"Cache-Control": {"no-cache, max-age=60"}}, policy.Options{},
			policy.Freshness{Lifetime: time.Minute, NoCache: true}},
		{"CDN-Cache-Control max-age replaces Cache-Control (RFC 9213)", 200, http.Header{"Cache-Control": {"max-age=600"}, "Cdn-Cache-Control": {"max-age=3600"}}, policy.Options{},
			policy.Freshness{Lifetime: time.Hour}},
		{"CDN-Cache-Control makes Expires ignored (RFC 9213 2.2)", 200, http.Header{"Cdn-Cache-Control": {"must-revalidate"}, "Date": {date}, "Expires": {httpDate(t0.Add(time.Hour))}}, policy.Options{},
			policy.Freshness{MustRevalidate: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := policy.ResponseFreshnessStatus(tt.status, tt.h, t0, tt.opts)
			if got != tt.want {
				t.Errorf("ResponseFreshnessStatus\n got %+v\nwant %+v", got, tt.want)
			}
			if tt.status == 200 {
				if got := policy.ResponseFreshness(tt.h, t0, tt.opts); got != tt.want {
					t.Errorf("ResponseFreshness\n got %+v\nwant %+v", got, tt.want)
				}
			}
		})
	}
}
