package cache_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache"
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

	results := make([]result, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = get(t, s, "/hot")
		}()
	}
	wg.Wait()
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

	run := func() []result {
		res := make([]result, clients)
		var wg sync.WaitGroup
		for i := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res[i] = get(t, s, "/nostore")
			}()
		}
		wg.Wait()
		return res
	}
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

// Waiting is bounded: after collapse_timeout a waiter goes to the
// origin on its own (collapsed=?0) instead of waiting for a slow leader.
func TestCollapseWaitIsBounded(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	n := 0
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		first := n == 1
		mu.Unlock()
		if first {
			// The leader's origin answer is slow: it waits for the waiter
			// to give up and come here itself.
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
			w.Header().Set("Cache-Control", "max-age=60")
			io.WriteString(w, "slow")
			return
		}
		once.Do(func() { close(release) })
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "fast")
	})
	s := startCache(t, o, "collapse_timeout 50ms")
	leader := make(chan result)
	go func() { leader <- get(t, s, "/slow") }()
	waitFor(t, "the leader to reach the origin", func() bool { return o.n.Load() == 1 })
	r := get(t, s, "/slow")
	expect(t, "waiter", r, 200, "fast", "miss", "fwd=uri-miss", "collapsed=?0")
	expect(t, "leader", <-leader, 200, "slow", "miss", "stored")
}

// A client that goes away mid-body does not leave a truncated
// entry: the next request is a miss that gets the whole body.
func TestClientGoneMidBodyIsNotStored(t *testing.T) {
	originDone := make(chan struct{})
	var calls sync.Mutex
	n := 0
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Lock()
		n++
		first := n == 1
		calls.Unlock()
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "first part\n")
		w.(http.Flusher).Flush()
		if first {
			// Wait until the proxy gives up on this request (its client
			// left), then try to send the rest.
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			io.WriteString(w, "second part\n")
			close(originDone)
			return
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
	select {
	case <-originDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the origin request was not cancelled")
	}
	waitFor(t, "the abandoned fetch to end", func() bool { return cache.Waiting() == 0 })
	expect(t, "after the client left", get(t, s, "/gone"), 200, "first part\nsecond part\n", "", "fwd=uri-miss")
	expect(t, "then a hit", get(t, s, "/gone"), 200, "first part\nsecond part\n", "hit", "hit")
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
