package cache

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestCacheStatusString(t *testing.T) {
	for _, tt := range []struct {
		cs   cacheStatus
		want string
	}{
		{cacheStatus{ttl: 42 * time.Second, hasTTL: true}, "caddy-edge; hit; ttl=42"},
		{cacheStatus{ttl: -3500 * time.Millisecond, hasTTL: true, detail: "stale-while-revalidate"}, "caddy-edge; hit; ttl=-3; detail=stale-while-revalidate"},
		{cacheStatus{fwd: fwdURIMiss, fwdStatus: 200, stored: true, ttl: time.Minute, hasTTL: true}, "caddy-edge; fwd=uri-miss; fwd-status=200; stored; ttl=60"},
		{cacheStatus{fwd: fwdURIMiss, collapsed: 1, ttl: time.Minute, hasTTL: true}, "caddy-edge; fwd=uri-miss; collapsed; ttl=60"},
		{cacheStatus{fwd: fwdVaryMiss, fwdStatus: 200, collapsed: -1, detail: "no-store"}, "caddy-edge; fwd=vary-miss; fwd-status=200; collapsed=?0; detail=no-store"},
		{cacheStatus{fwd: fwdStale, fwdStatus: 503, ttl: -time.Minute, hasTTL: true, detail: "stale-if-error"}, "caddy-edge; fwd=stale; fwd-status=503; ttl=-60; detail=stale-if-error"},
		{cacheStatus{fwd: fwdBypass}, "caddy-edge; fwd=bypass"},
	} {
		if got := tt.cs.String(); got != tt.want {
			t.Errorf("got  %q\nwant %q", got, tt.want)
		}
	}
}

func TestDefaultKey(t *testing.T) {
	for _, tt := range []struct {
		k                         keyer
		scheme, host, path, query string
		want                      string
	}{
		{keyer{}, "http", "Example.COM", "/a", "b=1", "http://example.com/a?b=1"},
		{keyer{}, "https", "h", "", "", "https://h/"},
		{keyer{sortQuery: true}, "http", "h", "/", "b=2&a=1&a=0", "http://h/?a=1&a=0&b=2"},
		{keyer{ignore: []string{"utm_*", "fbclid"}}, "http", "h", "/", "utm_source=x&id=3&fbclid=y", "http://h/?id=3"},
		{keyer{ignore: []string{"utm_*"}}, "http", "h", "/", "utm_a=1", "http://h/"},
		{keyer{ignore: []string{"utm_*"}}, "http", "h", "/", "%75tm_a=1&x", "http://h/?x"},
	} {
		if got := tt.k.defaultKey(tt.scheme, tt.host, tt.path, tt.query); got != tt.want {
			t.Errorf("defaultKey(%q, %q, %q, %q) = %q, want %q", tt.scheme, tt.host, tt.path, tt.query, got, tt.want)
		}
	}
}

// Each result is logged at Debug, with the request's method and URI, when
// the logger is at Debug, and not otherwise.
func TestReportLogsAtDebug(t *testing.T) {
	for _, level := range []zapcore.Level{zapcore.DebugLevel, zapcore.InfoLevel} {
		core, logs := observer.New(level)
		h := &Handler{logger: zap.New(core)}
		h.report(httptest.NewRequest(http.MethodGet, "/a?b", nil), resultHit)
		got := logs.FilterMessage("http_cache").All()
		if level == zapcore.InfoLevel {
			if len(got) != 0 {
				t.Errorf("at Info: %d debug lines logged", len(got))
			}
			continue
		}
		if len(got) != 1 {
			t.Fatalf("at Debug: %d lines logged, want 1", len(got))
		}
		if f := got[0].ContextMap(); f["result"] != resultHit || f["method"] != "GET" || f["uri"] != "/a?b" {
			t.Errorf("logged %v", f)
		}
	}
}

// TestStatusPlaceholderLastResultWins checks {http_cache.status} when a
// request gets several results (an http_cache handler further out in the
// chain, or the error routes, reporting after the first): the placeholder
// holds the last one, whether the first was given to the replacer as a
// provider or not.
func TestStatusPlaceholderLastResultWins(t *testing.T) {
	repl := caddy.NewReplacer()
	if _, ok := repl.Get(statusPlaceholder); ok {
		t.Fatal("a new replacer already knows the placeholder")
	}
	for _, result := range []string{resultHit, resultMiss, resultStale, "not-a-result", resultBypass, resultHit} {
		if result == resultHit { // a plain hit's, as plainHit reports it
			setHitStatus(repl)
		} else {
			setStatus(repl, result)
		}
		if got, _ := repl.GetString(statusPlaceholder); got != result {
			t.Errorf("after %q the placeholder is %q", result, got)
		}
	}
	if got, _ := repl.GetString("http_cache.other"); got != "" {
		t.Errorf("the provider answered another placeholder with %q", got)
	}
}

// TestStatusSetWhileReplacerIsRead: every result but a plain hit's is Set,
// which is safe while another goroutine reads the replacer, as a
// background fetch's replacer reads the client's. Under the race detector
// (make test) it fails if report added them as providers.
func TestStatusSetWhileReplacerIsRead(t *testing.T) {
	repl := caddy.NewReplacer()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			repl.Get("http_cache.other")
		}
	}()
	h := &Handler{logger: zap.NewNop()}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
	for _, result := range []string{resultStale, resultMiss, resultRevalidated} {
		h.report(r, result)
	}
	<-done
	if got, _ := repl.GetString(statusPlaceholder); got != resultRevalidated {
		t.Errorf("the placeholder is %q, want %q", got, resultRevalidated)
	}
}
