package cache_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache"
	"github.com/caddy-edge/edge/internal/caddytest"
)

// N concurrent misses on one key make exactly one origin request;
// the others are served from it.
func TestConcurrentMissesCollapseIntoOneOriginRequest(t *testing.T) {
	const clients = 20
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		// Hold the response until every other client waits for it.
		deadline := time.Now().Add(10 * time.Second)
		for cache.Waiting() < clients-1 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "collapsed body")
	})
	s := startCache(t, o, "")
	collapsedBefore, originBefore := cache.Requests("collapsed"), cache.OriginRequests()

	results := getAll(t, s, "/hot", clients)
	if n := o.n.Load(); n != 1 {
		t.Fatalf("origin got %d requests for %d concurrent misses, want 1", n, clients)
	}
	var leaders, waiters int
	for i, r := range results {
		if r.status != 200 || r.body != "collapsed body" {
			t.Errorf("client %d: %d %q", i, r.status, r.body)
		}
		switch r.header.Get("X-Result") {
		case "miss":
			leaders++
		case "collapsed":
			waiters++
			if !strings.Contains(r.cs(), "fwd=uri-miss; collapsed") {
				t.Errorf("collapsed Cache-Status %q", r.cs())
			}
		}
	}
	if leaders != 1 || waiters != clients-1 {
		t.Errorf("%d leaders and %d collapsed, want 1 and %d", leaders, waiters, clients-1)
	}
	if d := cache.Requests("collapsed") - collapsedBefore; d != clients-1 {
		t.Errorf("caddy_http_cache_requests_total{result=collapsed} grew by %v, want %d", d, clients-1)
	}
	if d := cache.OriginRequests() - originBefore; d != 1 {
		t.Errorf("caddy_http_cache_origin_requests_total grew by %v, want 1", d)
	}
}

// When the response turns out uncacheable, the waiting requests go
// to the origin side by side, and so do the next requests for the key
// (hit-for-miss) instead of queueing one behind the other.
func TestUncacheableResponseDoesNotQueueRequests(t *testing.T) {
	const clients = 5
	var (
		mu      sync.Mutex
		arrived int
		all     = make(chan struct{})
		phase   = 1
	)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		p := phase
		if p == 1 {
			arrived++
		}
		first := arrived == 1
		if p == 2 {
			arrived++
			if arrived == clients {
				close(all)
			}
		}
		mu.Unlock()
		if p == 1 && first {
			// The leader: answer once the others wait.
			deadline := time.Now().Add(10 * time.Second)
			for cache.Waiting() < clients-1 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
		} else if p == 2 {
			// Only answer when all clients are here at once: queued
			// requests would never get here together.
			select {
			case <-all:
			case <-time.After(10 * time.Second):
				http.Error(w, "requests were queued", http.StatusGatewayTimeout)
				return
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, "private data")
	})
	s := startCache(t, o, "hit_for_miss_ttl 1h")

	run := func() []result { return getAll(t, s, "/nostore", clients) }
	for i, r := range run() {
		if r.status != 200 || r.body != "private data" {
			t.Errorf("phase 1 client %d: %d %q", i, r.status, r.body)
		}
	}
	if n := o.n.Load(); n != clients {
		t.Errorf("phase 1: origin got %d requests, want %d (1 leader, then the waiters)", n, clients)
	}
	mu.Lock()
	phase, arrived = 2, 0
	mu.Unlock()
	for i, r := range run() {
		expect(t, fmt.Sprint("hit-for-miss client ", i), r, 200, "private data", "uncacheable", "detail=no-store")
	}
}

// A miss streams the body to the client while it arrives: the
// client reads the first part before the origin has sent the rest; then
// the complete body is stored.
func TestMissStreamsWhileStoring(t *testing.T) {
	firstRead := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "first part\n")
		w.(http.Flusher).Flush()
		select {
		case <-firstRead:
		case <-time.After(10 * time.Second):
		}
		io.WriteString(w, "second part\n")
	})
	s := startCache(t, o, "")

	resp, err := s.Client.Get(s.URL("/stream"))
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "first part\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	close(firstRead) // the origin has not sent the rest yet: this was streamed
	rest, _ := io.ReadAll(br)
	resp.Body.Close()
	if string(rest) != "second part\n" {
		t.Fatalf("rest %q", rest)
	}
	expect(t, "hit", get(t, s, "/stream"), 200, "first part\nsecond part\n", "hit", "hit")
}

// A body larger than max_object_size still reaches the client
// whole, and is not stored, whether its length is known in advance or not.
func TestMaxObjectSizeStreamsButDoesNotStore(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 64<<10)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if r.URL.Query().Has("chunked") {
			for i := 0; i < len(big); i += 1024 {
				w.Write(big[i : i+1024])
				w.(http.Flusher).Flush()
			}
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(big)))
		w.Write(big)
	})
	s := startCache(t, o, "max_object_size 16KiB\nhit_for_miss_ttl 1ms")
	for _, p := range []string{"/big", "/big?chunked"} {
		for i := range 2 {
			r := get(t, s, p)
			expect(t, fmt.Sprint(p, " ", i), r, 200, string(big), "", "fwd=uri-miss")
			if strings.Contains(r.cs(), "; hit") {
				t.Errorf("%s was served from the store", p)
			}
		}
	}
	if n := o.n.Load(); n != 4 {
		t.Errorf("origin got %d requests, want 4", n)
	}
}

// Waiting is bounded without a herd: when the leader's fetch outlasts
// collapse_timeout, every waiter gets a 504 with Cache-Status
// detail=collapse-timeout instead of going to the hanging origin itself,
// and the origin sees one request. The leader still gets its response and
// stores it.
func TestCollapseTimeoutAnswersWaitersWithoutTheOrigin(t *testing.T) {
	const waiters = 20
	release := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		select { // the origin hangs until the waiters have given up
		case <-release:
		case <-time.After(10 * time.Second):
		}
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "slow")
	})
	s := startCache(t, o, "collapse_timeout 100ms")
	leader := make(chan result)
	go func() { leader <- get(t, s, "/slow") }()
	waitFor(t, "the leader to reach the origin", func() bool { return o.n.Load() == 1 })

	results := getAll(t, s, "/slow", waiters)
	for i, r := range results {
		expect(t, fmt.Sprint("waiter ", i), r, http.StatusGatewayTimeout, "", "unavailable", "fwd=uri-miss; collapsed=?0; detail=collapse-timeout")
	}
	if n := o.n.Load(); n != 1 {
		t.Errorf("origin got %d requests from 1 leader and %d timed-out waiters, want 1", n, waiters)
	}
	close(release)
	expect(t, "leader", <-leader, 200, "slow", "miss", "stored")
	expect(t, "then", get(t, s, "/slow"), 200, "slow", "hit", "hit")
}

// A waiter whose leader's response is arriving, but more slowly than
// collapse_timeout (a large object, a slow origin), and that cannot follow
// it (here the response is not fresh enough for the waiter's min-fresh;
// another variant, or a store that cannot be followed, such as Redis), is
// not answered 504: the origin answers, so it gets a response of its own,
// not stored, as nginx's proxy_cache_lock_timeout does; the leader still
// stores its response.
func TestWaiterOfAStreamingFetchGoesToTheOrigin(t *testing.T) {
	release := make(chan struct{})
	o := newOrigin(t, slowSecondPart(release))
	s := startCache(t, o, "collapse_timeout 200ms")
	resp, br := leaderPastFirstPart(t, s)
	waiter := make(chan result)
	go func() { waiter <- get(t, s, "/big", "Cache-Control", "min-fresh=120") }()
	waitFor(t, "the waiter to reach the origin", func() bool { return o.n.Load() == 2 })
	close(release)
	expect(t, "waiter", <-waiter, 200, "first part\nsecond part\n", "uncacheable", "collapsed=?0; detail=collapse-timeout")
	if rest, _ := io.ReadAll(br); string(rest) != "second part\n" {
		t.Errorf("leader's rest %q", rest)
	}
	resp.Body.Close()
	expect(t, "then", get(t, s, "/big"), 200, "first part\nsecond part\n", "hit", "hit")
	if n := o.n.Load(); n != 2 {
		t.Errorf("origin got %d requests, want the leader's and the waiter's, 2", n)
	}
}

// slowSecondPart is an origin whose body, "first part\n" then "second
// part\n", takes longer than a short collapse_timeout: the second part
// comes once release is closed (or after 10 s). A HEAD gets the length.
func slowSecondPart(release chan struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if r.Method == http.MethodHead {
			w.Header().Set("Content-Length", "23")
			return
		}
		io.WriteString(w, "first part\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		io.WriteString(w, "second part\n")
	}
}

// leaderPastFirstPart sends a GET of /big to s and reads the first line
// of its body: a leader whose fetch is streaming. The caller closes the
// response's body.
func leaderPastFirstPart(t *testing.T, s *caddytest.Server) (*http.Response, *bufio.Reader) {
	t.Helper()
	resp, err := s.Client.Get(s.URL("/big"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "first part\n" {
		t.Fatalf("leader's first line %q, %v", line, err)
	}
	return resp, br
}

// A waiter that times out while a stale stored response may be served on
// an origin error (stale-if-error) gets that response instead of a 504.
func TestCollapseTimeoutServesStaleIfError(t *testing.T) {
	release := make(chan struct{})
	var hang atomic.Bool
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if hang.Load() {
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
		}
		w.Header().Set("Cache-Control", "max-age=0, stale-if-error=600")
		w.Header().Set("ETag", `"v1"`)
		io.WriteString(w, "v1")
	})
	s := startCache(t, o, "collapse_timeout 100ms")
	expect(t, "first", get(t, s, "/s"), 200, "v1", "miss", "stored")
	hang.Store(true)
	leader := make(chan result)
	go func() { leader <- get(t, s, "/s") }()
	waitFor(t, "the leader's revalidation to reach the origin", func() bool { return o.n.Load() == 2 })
	expect(t, "waiter", get(t, s, "/s"), 200, "v1", "stale", "fwd=stale; collapsed=?0", "detail=collapse-timeout")
	if n := o.n.Load(); n != 2 {
		t.Errorf("origin got %d requests, want 2 (the waiter must not go there)", n)
	}
	close(release)
	<-leader
}

// The leader of a collapsed miss leaving does not abort the fetch: the
// response goes on into the store, the waiting requests are served from
// it, and the origin sees one request.
func TestLeaderLeavingKeepsTheCollapsedFetch(t *testing.T) {
	const waiters = 30
	leaderGone := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		// Answer once every waiter waits and the leader's client has left,
		// and only if the proxy has not given up this request meanwhile.
		deadline := time.Now().Add(10 * time.Second)
		for cache.Waiting() < waiters && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		<-leaderGone
		select {
		case <-r.Context().Done():
			return // the fetch was aborted with its client
		case <-time.After(300 * time.Millisecond):
		}
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "for the waiters")
	})
	s := startCache(t, o, "")

	cancel, leaderErr := getCancellable(t, s, "/hot")
	waitFor(t, "the leader to reach the origin", func() bool { return o.n.Load() == 1 })

	results := make([]result, waiters)
	var wg sync.WaitGroup
	for i := range waiters {
		wg.Go(func() { results[i] = get(t, s, "/hot") })
	}
	waitFor(t, "every waiter to wait", func() bool { return cache.Waiting() >= waiters })
	cancel() // the leader's client leaves
	if err := <-leaderErr; err == nil {
		t.Fatal("the leader's request was not cancelled")
	}
	close(leaderGone)
	wg.Wait()
	for i, r := range results {
		expect(t, fmt.Sprint("waiter ", i), r, 200, "for the waiters", "collapsed", "fwd=uri-miss; collapsed")
	}
	if n := o.n.Load(); n != 1 {
		t.Errorf("origin got %d requests for a leader that left and %d waiters, want 1", n, waiters)
	}
}

// A fetch that outlives its client for the requests that may wait for it
// is bounded: once the client has been gone for the grace period, the
// fetch is cancelled, so that a hanging origin holds no fetch, flight or
// origin connection forever.
func TestDetachedFetchEndsAfterItsClientLeft(t *testing.T) {
	defer cache.SetOrphanGrace(300*time.Millisecond, 20*time.Millisecond)()
	aborted := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			close(aborted)
		case <-time.After(20 * time.Second):
		}
	})
	s := startCache(t, o, "")

	cancel, clientErr := getCancellable(t, s, "/hangs")
	waitFor(t, "the request to reach the origin", func() bool { return o.n.Load() == 1 })
	cancel()
	if err := <-clientErr; err == nil {
		t.Fatal("the client's request was not cancelled")
	}
	select {
	case <-aborted:
	case <-time.After(10 * time.Second):
		t.Fatal("the origin request of a fetch whose client left was never cancelled")
	}
	waitFor(t, "the flight to end", func() bool { return cache.Flights() == 0 })
}

// getCancellable sends a GET for path in the background; cancel makes its
// client leave, and the channel receives the client's error (nil when it
// got a response).
func getCancellable(t *testing.T, s *caddytest.Server, path string) (cancel func(), errc <-chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := make(chan error, 1)
	go func() {
		resp, err := s.Client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		c <- err
	}()
	return cancel, c
}

// A client that goes away mid-body, with nobody waiting for its fetch,
// ends the fetch (so that clients cannot start downloads and hang up):
// what was stored of the body is dropped, and the next request is a miss
// that gets the whole body, never a hit on part of it.
func TestClientGoneMidBodyStoresNoPartialBody(t *testing.T) {
	defer cache.SetOrphanGrace(300*time.Millisecond, 20*time.Millisecond)()
	release := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "first part\n")
		w.(http.Flusher).Flush()
		select { // the rest only once the first fetch has ended
		case <-release:
		case <-r.Context().Done():
			return
		case <-time.After(10 * time.Second):
		}
		io.WriteString(w, "second part\n")
	})
	s := startCache(t, o, "")

	resp, err := s.Client.Get(s.URL("/gone"))
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "first part\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	resp.Body.Close() // the client leaves mid-body
	s.Client.CloseIdleConnections()
	waitFor(t, "the fetch to end", func() bool { return cache.Flights() == 0 })
	close(release)
	expect(t, "after the client left", get(t, s, "/gone"), 200, "first part\nsecond part\n", "miss", "stored")
	expect(t, "then", get(t, s, "/gone"), 200, "first part\nsecond part\n", "hit", "hit")
	if n := o.n.Load(); n != 2 {
		t.Errorf("origin got %d requests, want 2: the ended fetch and the miss after it", n)
	}
}

// A HEAD miss while a GET of its key is in flight waits for that GET and is
// answered from the stored response, without a body: the origin sees one
// request. If the GET turns out not storable, the HEAD goes to the origin
// as HEAD itself (collapsed=?0).
func TestHEADMissCollapsesIntoGETInFlight(t *testing.T) {
	const body = "slow body"
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			// The slow origin answers the GET once the HEAD waits for it.
			deadline := time.Now().Add(10 * time.Second)
			for cache.Waiting() < 1 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
		}
		if r.URL.Path == "/nostore" {
			w.Header().Set("Cache-Control", "no-store")
		} else {
			w.Header().Set("Cache-Control", "max-age=60")
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, body)
	})
	s := startCache(t, o, "")

	for _, tt := range []struct {
		path, result, cs string
		requests         int64
		methods          []string
	}{
		{"/slow", "collapsed", "fwd=uri-miss; collapsed; ttl=", 1, []string{"GET"}},
		{"/nostore", "uncacheable", "fwd=uri-miss; fwd-status=200; collapsed=?0; detail=head", 2, []string{"GET", "HEAD"}},
	} {
		before := o.n.Load()
		done := make(chan result)
		go func() { done <- get(t, s, tt.path) }()
		waitFor(t, "the GET to reach the origin", func() bool { return o.n.Load() == before+1 })
		h := do(t, s, http.MethodHead, tt.path)
		expect(t, "HEAD "+tt.path, h, 200, "", tt.result, tt.cs)
		if cl := h.header.Get("Content-Length"); cl != fmt.Sprint(len(body)) {
			t.Errorf("HEAD %s: Content-Length %q, want %d", tt.path, cl, len(body))
		}
		if ct := h.header.Get("Content-Type"); ct != "text/plain" {
			t.Errorf("HEAD %s: Content-Type %q", tt.path, ct)
		}
		expect(t, "GET "+tt.path, <-done, 200, body, "", "fwd=uri-miss; fwd-status=200")
		if n := o.n.Load() - before; n != tt.requests {
			t.Errorf("%s: origin got %d requests, want %d", tt.path, n, tt.requests)
		}
		var methods []string
		for _, r := range o.requests()[before:] {
			methods = append(methods, r.Method)
		}
		if fmt.Sprint(methods) != fmt.Sprint(tt.methods) {
			t.Errorf("%s: origin got %v, want %v", tt.path, methods, tt.methods)
		}
	}
}

// When the fetch that requests wait for fails (the origin cuts the body
// short, or answers 503), the waiters collapse again behind one of them
// instead of all going to the origin at once: one more origin request,
// whose response they all get.
func TestWaitersOfAFailedFetchCollapseAgain(t *testing.T) {
	for _, mode := range []string{"cut-mid-body", "503"} {
		t.Run(mode, func(t *testing.T) {
			const waiters = 20
			var n atomic.Int64
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				deadline := time.Now().Add(10 * time.Second)
				switch n.Add(1) {
				case 1: // fails once every waiter waits for it
					for cache.Waiting() < waiters && time.Now().Before(deadline) {
						time.Sleep(time.Millisecond)
					}
					if mode == "503" {
						w.WriteHeader(http.StatusServiceUnavailable)
						return
					}
					w.Header().Set("Cache-Control", "max-age=60")
					w.Header().Set("Content-Length", "100")
					io.WriteString(w, "cut")
					panic(http.ErrAbortHandler)
				case 2: // answers once the others wait for it
					for cache.Waiting() < waiters-1 && time.Now().Before(deadline) {
						time.Sleep(time.Millisecond)
					}
					w.Header().Set("Cache-Control", "max-age=60")
					io.WriteString(w, "second try")
				default:
					io.WriteString(w, "not collapsed")
				}
			})
			s := startCache(t, o, "")

			leaderDone := make(chan struct{})
			go func() {
				defer close(leaderDone)
				if resp, err := s.Client.Get(s.URL("/flaky")); err == nil {
					io.Copy(io.Discard, resp.Body) // cut short, or a 503
					resp.Body.Close()
				}
			}()
			waitFor(t, "the leader to reach the origin", func() bool { return o.n.Load() == 1 })
			results := getAll(t, s, "/flaky", waiters)
			<-leaderDone

			var leaders int
			for i, r := range results {
				expect(t, fmt.Sprint("waiter ", i), r, 200, "second try", "", "fwd=uri-miss")
				if r.header.Get("X-Result") == "miss" {
					leaders++
				} else if r.header.Get("X-Result") != "collapsed" {
					t.Errorf("waiter %d: X-Result %q, want miss (the new leader) or collapsed", i, r.header.Get("X-Result"))
				}
			}
			if leaders != 1 {
				t.Errorf("%d waiters went to the origin after the failed fetch, want 1 new leader", leaders)
			}
			if got := o.n.Load(); got != 2 {
				t.Errorf("origin got %d requests (a failed fetch and %d waiters), want 2", got, waiters)
			}
			expect(t, "then", get(t, s, "/flaky"), 200, "second try", "hit", "hit")
		})
	}
}

// The second wait after a failed fetch takes what is left of the one
// collapse_timeout: a waiter is answered (504, the origin not answering
// in time) when its collapse_timeout has passed since it first waited,
// not a whole collapse_timeout after the failure.
func TestSecondWaitKeepsTheFirstDeadline(t *testing.T) {
	const waiters = 5
	var n atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 { // fails late in the waiters' collapse_timeout
			deadline := time.Now().Add(10 * time.Second)
			for cache.Waiting() < waiters && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(600 * time.Millisecond)
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		time.Sleep(2 * time.Second) // the new leader's fetch is slow
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "late")
	})
	s := startCache(t, o, "collapse_timeout 1s")
	go get(t, s, "/slow")
	waitFor(t, "the leader to reach the origin", func() bool { return o.n.Load() == 1 })
	took := make([]time.Duration, waiters)
	results := make([]result, waiters)
	var wg sync.WaitGroup
	for i := range waiters {
		wg.Go(func() {
			start := time.Now()
			results[i] = get(t, s, "/slow")
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	timedOut := 0
	for i, r := range results {
		if r.header.Get("X-Result") == "miss" {
			expect(t, "the new leader", r, 200, "late", "miss", "stored")
			continue
		}
		timedOut++
		expect(t, fmt.Sprint("waiter ", i), r, http.StatusGatewayTimeout, "", "unavailable", "detail=collapse-timeout")
		// 1s after it first waited; a fresh collapse_timeout for the
		// second wait would make it about 1.6s.
		if took[i] > 1400*time.Millisecond {
			t.Errorf("waiter %d answered after %v, want about 1s (its collapse_timeout)", i, took[i])
		}
	}
	if timedOut != waiters-1 {
		t.Errorf("%d waiters timed out, want all but the new leader (%d)", timedOut, waiters-1)
	}
	if got := n.Load(); got != 2 {
		t.Errorf("origin got %d requests, want 2 (the failed fetch and the new leader's)", got)
	}
}

// Requests that wait for a revalidation of a stale entry that may be
// served on an origin error (stale-if-error) keep that right when the
// origin fails every time: after two failed fetches each goes to the
// origin on its own, and still gets the stale response, never the error.
func TestWaitersKeepStaleIfErrorWhenTheOriginKeepsFailing(t *testing.T) {
	const waiters = 6
	var failing atomic.Bool
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			// Fail once every request that is not fetching waits.
			deadline := time.Now().Add(5 * time.Second)
			for cache.Waiting() == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(20 * time.Millisecond)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Control", "max-age=0, stale-if-error=600")
		w.Header().Set("ETag", `"v1"`)
		io.WriteString(w, "v1")
	})
	s := startCache(t, o, "")
	expect(t, "first", get(t, s, "/down"), 200, "v1", "miss", "stored")
	failing.Store(true)
	results := getAll(t, s, "/down", waiters)
	for i, r := range results {
		expect(t, fmt.Sprint("request ", i), r, 200, "v1", "", "fwd=stale")
	}
}
