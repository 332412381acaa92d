package cache_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/caddy-edge/edge"
	"github.com/caddy-edge/edge/internal/caddytest"
)

// origin is a real HTTP origin on loopback whose behaviour a test can
// switch, and that counts the requests it gets.
type origin struct {
	*httptest.Server
	n  atomic.Int64
	mu sync.Mutex
	h  http.HandlerFunc
	// reqs are the requests it got, in order (method, path and header).
	reqs []*http.Request
}

func newOrigin(t *testing.T, h http.HandlerFunc) *origin {
	t.Helper()
	o := &origin{h: h}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.n.Add(1)
		o.mu.Lock()
		o.reqs = append(o.reqs, r.Clone(r.Context()))
		h := o.h
		o.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(o.Close)
	return o
}

// set switches the origin's behaviour.
func (o *origin) set(h http.HandlerFunc) {
	o.mu.Lock()
	o.h = h
	o.mu.Unlock()
}

// last returns the last request the origin got.
func (o *origin) last() *http.Request {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.reqs[len(o.reqs)-1]
}

// requests returns the requests the origin got, in order.
func (o *origin) requests() []*http.Request {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]*http.Request(nil), o.reqs...)
}

func (o *origin) addr() string { return strings.TrimPrefix(o.URL, "http://") }

// serve returns a handler answering with the header fields (name, value
// pairs) and body.
func serve(body string, fields ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(fields); i += 2 {
			w.Header().Add(fields[i], fields[i+1])
		}
		io.WriteString(w, body)
	}
}

// startCache runs a real Caddy with http_cache (with the given block
// lines) in front of reverse_proxy to o. The site adds X-Result, the
// {http_cache.status} placeholder, to every response.
func startCache(t *testing.T, o *origin, options string) *caddytest.Server {
	t.Helper()
	return caddytest.Start(t, siteConfig(o, options))
}

func siteConfig(o *origin, options string) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(options), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, "\t\t"+l)
		}
	}
	directive := "http_cache"
	if len(lines) > 0 {
		directive = "http_cache {\n" + strings.Join(lines, "\n") + "\n\t}"
	}
	return `
http://localhost:{HTTP_PORT} {
	header >X-Result {http_cache.status}
	` + directive + `
	reverse_proxy ` + o.addr() + `
}
`
}

// result is a response read whole.
type result struct {
	status int
	header http.Header
	body   string
}

func (r result) cs() string { return r.header.Get("Cache-Status") }

// do sends a request through the cache; fields are header name, value
// pairs.
func do(t *testing.T, s *caddytest.Server, method, path string, fields ...string) result {
	t.Helper()
	r, err := send(context.Background(), s, method, path, fields...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// send is do for another goroutine than the test's, or for a test that
// looks at a broken response: it returns the error instead of failing,
// with the status, header and bytes read of a body that broke.
func send(ctx context.Context, s *caddytest.Server, method, path string, fields ...string) (result, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.URL(path), nil)
	if err != nil {
		return result{}, err
	}
	for i := 0; i+1 < len(fields); i += 2 {
		req.Header.Add(fields[i], fields[i+1])
	}
	resp, err := s.Client.Do(req)
	for try := 0; err != nil && try < 3 && wasReloaded(s); try++ {
		// Right after a reload, the old server may still accept a
		// connection and close it while shutting down: try again.
		resp, err = s.Client.Do(req)
	}
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		err = fmt.Errorf("reading body: %w", err)
	}
	return result{status: resp.StatusCode, header: resp.Header, body: string(b)}, err
}

func get(t *testing.T, s *caddytest.Server, path string, fields ...string) result {
	t.Helper()
	return do(t, s, http.MethodGet, path, fields...)
}

// getAll sends n GET requests for path at once and returns their results.
func getAll(t *testing.T, s *caddytest.Server, path string, n int) []result {
	t.Helper()
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i] = get(t, s, path) })
	}
	wg.Wait()
	return results
}

// expect checks a response's status, body and X-Result, and that its
// Cache-Status contains every part.
func expect(t *testing.T, what string, r result, status int, body, res string, csParts ...string) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d, want %d (Cache-Status %q)", what, r.status, status, r.cs())
	}
	if body != "*" && r.body != body {
		t.Errorf("%s: body %q, want %q", what, r.body, body)
	}
	if got := r.header.Get("X-Result"); res != "" && got != res {
		t.Errorf("%s: {http_cache.status} %q, want %q (Cache-Status %q)", what, got, res, r.cs())
	}
	for _, p := range csParts {
		if !strings.Contains(r.cs(), p) {
			t.Errorf("%s: Cache-Status %q lacks %q", what, r.cs(), p)
		}
	}
}

// waitFor waits until cond holds, failing after 10 s. It is for work the
// cache does in the background (a refresh); nothing is asserted on time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// reload replaces the config like `caddy reload`; the client drops its idle
// connections, which the old server closes.
func reload(t *testing.T, s *caddytest.Server, caddyfile string) {
	t.Helper()
	s.Load(t, caddyfile)
	s.Client.CloseIdleConnections()
	reloaded.Store(s, true)
}

// reloaded holds the servers whose config was reloaded.
var reloaded sync.Map

func wasReloaded(s *caddytest.Server) bool {
	_, ok := reloaded.Load(s)
	return ok
}

// untilReloaded gets path until its Cache-Status contains want: right after
// a reload, the old config's server may still answer a request.
func untilReloaded(t *testing.T, s *caddytest.Server, path, want string) result {
	t.Helper()
	var r result
	waitFor(t, "the reloaded config to answer "+path, func() bool {
		r = get(t, s, path)
		return strings.Contains(r.cs(), want)
	})
	return r
}

// scrapeMetrics returns the admin API's /metrics, on a connection of its
// own: the admin endpoint restarts with a reload, and a kept-alive
// connection from before may be reset.
func scrapeMetrics(t *testing.T, s *caddytest.Server) string {
	t.Helper()
	admin := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := admin.Get(s.AdminURL("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
