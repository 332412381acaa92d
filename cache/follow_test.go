package cache_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache"
	"github.com/caddy-edge/edge/internal/caddytest"
	"github.com/caddy-edge/edge/internal/redistest"
)

// startFollowCache is startCache with a reverse_proxy that passes each
// part of the body on as it arrives (flush_interval -1), as it does for
// streams: by default it buffers what is smaller than a write.
func startFollowCache(t *testing.T, o *origin, options string) *caddytest.Server {
	t.Helper()
	proxy := "reverse_proxy " + o.addr()
	return caddytest.Start(t, strings.Replace(siteConfig(o, options), proxy, proxy+" {\n\t\tflush_interval -1\n\t}", 1))
}

// partsOrigin answers with a Content-Length for first and second, sends
// first at once and second once release is closed (or after 10 s); with
// cut, it cuts the connection instead of sending second.
func partsOrigin(first, second []byte, release chan struct{}, cut func() bool) http.HandlerFunc {
	return parts(first, second, release, cut, true)
}

// unsizedPartsOrigin is partsOrigin without a Content-Length: the body is
// sent chunked.
func unsizedPartsOrigin(first, second []byte, release chan struct{}) http.HandlerFunc {
	return parts(first, second, release, nil, false)
}

func parts(first, second []byte, release chan struct{}, cut func() bool, sized bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if sized {
			w.Header().Set("Content-Length", strconv.Itoa(len(first)+len(second)))
		}
		w.Write(first)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		if cut != nil && cut() {
			panic(http.ErrAbortHandler)
		}
		w.Write(second)
	}
}

// follower is a request for path whose response header and first n bytes
// have arrived.
type follower struct {
	resp *http.Response
	err  error
}

// startFollowers sends n GETs of path to s, each reading its header and
// the first len(first) bytes of its body, which must be first; it returns
// once all have them.
func startFollowers(t *testing.T, s *caddytest.Server, path string, n int, first []byte) []*http.Response {
	t.Helper()
	return startRequests(t, s, path, n, first)
}

// startRequests is startFollowers for requests with the header fields
// (name, value pairs).
func startRequests(t *testing.T, s *caddytest.Server, path string, n int, first []byte, fields ...string) []*http.Response {
	t.Helper()
	ch := make(chan follower, n)
	for range n {
		go func() {
			req, err := http.NewRequest(http.MethodGet, s.URL(path), nil)
			if err != nil {
				ch <- follower{err: err}
				return
			}
			for i := 0; i+1 < len(fields); i += 2 {
				req.Header.Add(fields[i], fields[i+1])
			}
			resp, err := s.Client.Do(req)
			if err != nil {
				ch <- follower{err: err}
				return
			}
			got := make([]byte, len(first))
			if _, err := io.ReadFull(resp.Body, got); err != nil || !bytes.Equal(got, first) {
				resp.Body.Close()
				ch <- follower{err: err}
				return
			}
			ch <- follower{resp: resp}
		}()
	}
	var resps []*http.Response
	deadline := time.After(10 * time.Second)
	for range n {
		select {
		case f := <-ch:
			if f.err != nil || f.resp == nil {
				t.Fatalf("a waiting request did not get the first part: %v", f.err)
			}
			t.Cleanup(func() { f.resp.Body.Close() })
			resps = append(resps, f.resp)
		case <-deadline:
			t.Fatal("timed out waiting for the waiting requests' first part")
		}
	}
	return resps
}

// gzipLeader sends a GET of path that accepts gzip only, and returns its
// response once its header has arrived; the test ends by closing it.
func gzipLeader(t *testing.T, s *caddytest.Server, path string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL(path), nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := s.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// landed waits until no fetch is in the air: the clients can have read a
// followed body whole before its fetch has committed it (a disk store's
// fsync) and landed, and a request sent then would follow it too.
func landed(t *testing.T) {
	t.Helper()
	waitFor(t, "the fetch to land", func() bool { return cache.Flights() == 0 })
}

// expectCut reads the rest of resp's body, which must end with an error
// (an incomplete response, never one that looks complete) and hold only
// bytes for which sent is true.
func expectCut(t *testing.T, what string, resp *http.Response, sent func(rune) bool) {
	t.Helper()
	rest, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Errorf("%s ended without an error after %d more bytes, want an incomplete response", what, len(rest))
	}
	if bytes.ContainsFunc(rest, func(r rune) bool { return !sent(r) }) {
		t.Errorf("%s got bytes the origin never sent it", what)
	}
}

// expectRest reads the rest of resp's body, which must be rest.
func expectRest(t *testing.T, what string, resp *http.Response, rest []byte) {
	t.Helper()
	if got, err := io.ReadAll(resp.Body); err != nil || !bytes.Equal(got, rest) {
		t.Errorf("%s: rest of the body %d bytes (%v), want %d", what, len(got), err, len(rest))
	}
}

// storedOnce checks, once the fetch has landed, that path is a hit with
// body whole, which the origin sent once.
func storedOnce(t *testing.T, s *caddytest.Server, o *origin, path, whole string) {
	t.Helper()
	landed(t)
	expect(t, "then", get(t, s, path), 200, whole, "hit", "hit")
	if n := o.n.Load(); n != 1 {
		t.Errorf("origin got %d requests, want 1", n)
	}
}

// leaderOf sends the GET of path that leads the fetch and reads the first
// part of its body.
func leaderOf(t *testing.T, s *caddytest.Server, path string, first []byte) *http.Response {
	t.Helper()
	return startFollowers(t, s, path, 1, first)[0]
}

// The requests that wait for a fetch of their key get the response as its
// body arrives, from the store's writer, not once it is stored whole (nor
// after collapse_timeout from the origin each): the origin sends the body
// once, and every waiter has its first part while the origin still holds
// the second. In every store that can be followed, for a body with a
// Content-Length and for one without (chunked), which its followers get
// chunked too, and which has its length once stored.
func TestWaitersFollowTheBodyAsItArrives(t *testing.T) {
	first, second := bytes.Repeat([]byte("first part "), 20000), bytes.Repeat([]byte("second part "), 20000)
	whole := string(first) + string(second)
	for _, tc := range []struct {
		name  string
		store func(t *testing.T) string
	}{
		{"memory", func(*testing.T) string { return "" }},
		{"disk", func(t *testing.T) string { return "store disk {\n\tpath " + t.TempDir() + "\n}" }},
		{"tiered", func(t *testing.T) string {
			return "store tiered {\n\tmemory {\n\t\tmax_size 16MiB\n\t}\n\tdisk {\n\t\tpath " + t.TempDir() + "\n\t}\n}"
		}},
		// The body is larger than a Redis chunk (256 KiB): the followers
		// read its first chunk from Redis once it is sent, the rest from
		// the writer.
		{"redis", func(t *testing.T) string {
			return "store redis {\n\taddress " + redistest.Start(t).Addr + "\n\ttimeout 2s\n}"
		}},
		{"tiered-redis", func(t *testing.T) string {
			return "store tiered {\n\tmemory {\n\t\tmax_size 16MiB\n\t}\n\tredis {\n\t\taddress " + redistest.Start(t).Addr + "\n\t\ttimeout 2s\n\t}\n}"
		}},
	} {
		for _, sized := range []bool{true, false} {
			name, length := tc.name, strconv.Itoa(len(whole))
			if !sized {
				name, length = tc.name+"/chunked", ""
			}
			t.Run(name, func(t *testing.T) {
				testWaitersFollow(t, tc.store(t)+"\n", first, second, sized, length)
			})
		}
	}
}

func testWaitersFollow(t *testing.T, storeConfig string, first, second []byte, sized bool, length string) {
	t.Helper()
	whole := string(first) + string(second)
	release := make(chan struct{})
	o := newOrigin(t, parts(first, second, release, nil, sized))
	s := startFollowCache(t, o, "collapse_timeout 200ms\n"+storeConfig)
	leader := leaderOf(t, s, "/big", first)
	waiters := startFollowers(t, s, "/big", 8, first)
	// Past collapse_timeout, when a waiter of a body still
	// arriving would go to the origin on its own.
	time.Sleep(300 * time.Millisecond)
	if n := o.n.Load(); n != 1 {
		t.Fatalf("origin got %d requests while the body arrived, want 1", n)
	}
	for i, resp := range waiters {
		if got := resp.Header.Get("X-Result"); got != "collapsed" {
			t.Errorf("waiter %d: {http_cache.status} %q, want collapsed (Cache-Status %q)", i, got, resp.Header.Get("Cache-Status"))
		}
		if cl := resp.Header.Get("Content-Length"); cl != length {
			t.Errorf("waiter %d: Content-Length %q, want %q", i, cl, length)
		}
	}
	close(release)
	for i, resp := range append(waiters, leader) {
		rest, err := io.ReadAll(resp.Body)
		if err != nil || string(rest) != string(second) {
			t.Errorf("response %d: the rest of the body is %d bytes (%v), want the second part's %d", i, len(rest), err, len(second))
		}
	}
	landed(t)
	hit := get(t, s, "/big")
	expect(t, "then", hit, 200, whole, "hit", "hit")
	if cl := hit.header.Get("Content-Length"); cl != strconv.Itoa(len(whole)) {
		t.Errorf("hit: Content-Length %q, want %d", cl, len(whole))
	}
	if n := o.n.Load(); n != 1 {
		t.Errorf("origin got %d requests, want 1", n)
	}
}

// When the origin cuts a followed body short, the waiting requests'
// responses are cut too (their connection closed short of the
// Content-Length), never completed with other bytes; nothing is stored,
// and the next request fetches the response again.
func TestFollowersOfACutBodyAreCut(t *testing.T) {
	first, second := bytes.Repeat([]byte("a"), 50000), bytes.Repeat([]byte("b"), 50000)
	release := make(chan struct{})
	var cut atomic.Bool // the first origin request is cut, the next ones not
	cut.Store(true)
	o := newOrigin(t, partsOrigin(first, second, release, func() bool { return cut.Swap(false) }))
	s := startFollowCache(t, o, "")
	leader := leaderOf(t, s, "/cut", first)
	waiters := startFollowers(t, s, "/cut", 3, first)
	close(release)
	for i, resp := range append(waiters, leader) {
		expectCut(t, fmt.Sprint("response ", i), resp, func(r rune) bool { return r != 'b' })
	}
	landed(t)
	expect(t, "then", get(t, s, "/cut"), 200, string(first)+string(second), "miss", "stored")
	if n := o.n.Load(); n != 2 {
		t.Errorf("origin got %d requests, want the cut one and the next, 2", n)
	}
}

// A waiting request is only given the followed response when it is the
// request's variant: one with another Accept-Encoding, when the response
// varies on it, waits for the fetch to land and gets its own.
func TestWaitersFollowOnlyTheirVariant(t *testing.T) {
	release := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		body := "identity body, long enough to take two parts"
		if r.Header.Get("Accept-Encoding") == "gzip" {
			body = "gzip body, long enough to take two parts....."
		}
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Encoding")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		io.WriteString(w, body[:10])
		w.(http.Flusher).Flush()
		if r.Header.Get("Accept-Encoding") == "gzip" {
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
		}
		io.WriteString(w, body[10:])
	})
	s := startFollowCache(t, o, "")
	gzipLeader(t, s, "/v")
	waiter := make(chan result)
	go func() { waiter <- get(t, s, "/v", "Accept-Encoding", "identity") }()
	sameVariant := make(chan result)
	go func() { sameVariant <- get(t, s, "/v", "Accept-Encoding", "gzip") }()
	waitFor(t, "the waiting requests to join the flight", func() bool { return cache.Waiting() >= 2 })
	close(release)
	expect(t, "same variant", <-sameVariant, 200, "gzip body, long enough to take two parts.....", "collapsed", "collapsed")
	r := <-waiter
	expect(t, "other variant", r, 200, "identity body, long enough to take two parts", "miss", "stored")
	if n := o.n.Load(); n != 2 {
		t.Errorf("origin got %d requests, want the two variants', 2", n)
	}
}

// The fetch goes on for the requests that follow it when the client that
// started it leaves: they get the whole body, from one origin request.
func TestFollowersKeepTheFetchWhenItsClientLeaves(t *testing.T) {
	first, second := bytes.Repeat([]byte("1"), 40000), bytes.Repeat([]byte("2"), 40000)
	release := make(chan struct{})
	o := newOrigin(t, partsOrigin(first, second, release, nil))
	s := startFollowCache(t, o, "")
	leader := leaderOf(t, s, "/left", first)
	waiters := startFollowers(t, s, "/left", 2, first)
	leader.Body.Close()
	close(release)
	for i, resp := range waiters {
		expectRest(t, fmt.Sprint("waiter ", i), resp, second)
	}
	storedOnce(t, s, o, "/left", string(first)+string(second))
}

// A HEAD that waits for a GET of its key is answered with the GET's
// header as soon as the response is being stored, not once its body is.
func TestHEADFollowsAGETAtItsHeader(t *testing.T) {
	first, second := bytes.Repeat([]byte("h"), 30000), bytes.Repeat([]byte("t"), 30000)
	release := make(chan struct{})
	defer close(release)
	o := newOrigin(t, partsOrigin(first, second, release, nil))
	s := startFollowCache(t, o, "collapse_timeout 5s")
	leaderOf(t, s, "/head", first)
	r := do(t, s, http.MethodHead, "/head")
	expect(t, "HEAD", r, 200, "", "collapsed", "collapsed")
	if cl := r.header.Get("Content-Length"); cl != "60000" {
		t.Errorf("HEAD: Content-Length %q, want 60000", cl)
	}
	if n := o.n.Load(); n != 1 {
		t.Errorf("origin got %d requests, want the GET's, 1", n)
	}
}

// A request that comes after a purge (or an invalidating POST) of its
// URL does not follow a fetch that asked the origin before it: that
// fetch's response is the version the purge removed, which only its own
// client gets. The request waits for the fetch, whose response the purge
// keeps out of the store, and gets the new version.
func TestRequestAfterAPurgeDoesNotFollowAnOlderFetch(t *testing.T) {
	for _, tt := range []struct {
		name  string
		purge func(t *testing.T, s *caddytest.Server)
	}{
		{"url", func(t *testing.T, s *caddytest.Server) { adminPurge(t, s, `{"url": "`+s.URL("/page")+`"}`) }},
		{"tag", func(t *testing.T, s *caddytest.Server) { adminPurge(t, s, `{"tag": "page"}`) }},
		{"post", postPage},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var version atomic.Value
			version.Store("old")
			release := make(chan struct{})
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPost {
					version.Store("new")
					io.WriteString(w, "updated")
					return
				}
				v := version.Load().(string)
				w.Header().Set("Cache-Control", "max-age=600")
				w.Header().Set("Cache-Tag", "page")
				w.Header().Set("Content-Length", strconv.Itoa(2*len(v+" part\n")))
				io.WriteString(w, v+" part\n")
				w.(http.Flusher).Flush()
				if v == "old" {
					select {
					case <-release:
					case <-time.After(10 * time.Second):
					}
				}
				io.WriteString(w, v+" part\n")
			})
			s := startFollowCache(t, o, "collapse_timeout 5s")
			leader := leaderOf(t, s, "/page", []byte("old part\n"))
			version.Store("new")
			tt.purge(t, s)
			after := make(chan result, 1)
			go func() { after <- get(t, s, "/page") }()
			waitFor(t, "the request after the purge to wait", func() bool { return cache.Waiting() >= 1 })
			close(release)
			if rest, err := io.ReadAll(leader.Body); err != nil || string(rest) != "old part\n" {
				t.Fatalf("the fetch's client got %q (%v) after its first part", rest, err)
			}
			r := <-after
			if r.body != "new part\nnew part\n" {
				t.Fatalf("the request after the purge got %q (Cache-Status %q), want the new version", r.body, r.cs())
			}
			landed(t)
			expect(t, "then", get(t, s, "/page"), 200, "new part\nnew part\n", "hit")
		})
	}
}

// A waiting request is not given a followed response in a content coding
// it refused (RFC 9110 §12.5.3), even from an origin that does not send
// Vary: Accept-Encoding: a stored response is never served to it either.
// It waits for the fetch to land and gets a response of its own.
func TestWaitersDoNotFollowACodingTheyRefuse(t *testing.T) {
	release := make(chan struct{})
	first, second := bytes.Repeat([]byte("z"), 20000), bytes.Repeat([]byte("y"), 20000)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Length", "8")
			io.WriteString(w, "identity")
			return
		}
		// "Encoded", and no Vary: Accept-Encoding.
		w.Header().Set("Content-Encoding", "gzip")
		partsOrigin(first, second, release, nil)(w, r)
	})
	s := startFollowCache(t, o, "collapse_timeout 5s")
	leader := gzipLeader(t, s, "/coded")
	if _, err := io.ReadFull(leader.Body, make([]byte, len(first))); err != nil {
		t.Fatal(err)
	}
	waiter := make(chan result, 1)
	go func() { waiter <- get(t, s, "/coded", "Accept-Encoding", "identity") }()
	waitFor(t, "the waiting request to join the flight", func() bool { return cache.Waiting() >= 1 })
	close(release)
	r := <-waiter
	if ce := r.header.Get("Content-Encoding"); ce != "" || r.body != "identity" {
		t.Fatalf("a request refusing gzip got Content-Encoding %q and %d bytes (Cache-Status %q), want its own identity response", ce, len(r.body), r.cs())
	}
}

// A client that stops reading the body it caused to be fetched does not
// hold the requests that follow it: once they follow, it is served from
// the store as they are, and the fetch goes on at the origin's pace. They
// get the whole body while it reads nothing, and it still gets the whole
// body when it reads on (with collapse_timeout 60s, its writes alone would
// have held the body for 30 s before it counted as gone).
func TestSlowClientDoesNotSetTheFollowersPace(t *testing.T) {
	const size = 24 << 20
	body := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	release := make(chan struct{})
	o := newOrigin(t, partsOrigin(body[:1<<20], body[1<<20:], release, nil))
	s := startFollowCache(t, o, "collapse_timeout 60s\nmax_object_size 32MiB")
	// The slow client: a request on a connection of its own, of which it
	// reads the header and the first part only.
	host := strings.TrimPrefix(s.URL(""), "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /slow HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
	br := bufio.NewReaderSize(conn, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 1<<20)); err != nil {
		t.Fatalf("slow client's first part: %v", err)
	}
	waiters := startFollowers(t, s, "/slow", 2, body[:1<<20])
	close(release)
	done := make(chan error, len(waiters))
	for _, w := range waiters {
		go func() {
			rest, err := io.ReadAll(w.Body)
			if err == nil && !bytes.Equal(rest, body[1<<20:]) {
				err = fmt.Errorf("rest of the body: %d bytes, not the %d sent", len(rest), size-1<<20)
			}
			done <- err
		}()
	}
	for range waiters {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("follower: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the followers did not get the body while the client that caused the fetch read nothing")
		}
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(rest, body[1<<20:]) {
		t.Fatalf("slow client's rest: %d bytes (%v), want %d", len(rest), err, size-1<<20)
	}
	if n := o.n.Load(); n != 1 {
		t.Errorf("origin got %d requests, want 1", n)
	}
}

// holdingFill answers a request that holds 7 MiB of the memory store's
// buffers of bodies being written (startFullFill): it sends 2 MiB of the
// 7 MiB body hold, and the rest once release is closed.
func holdingFill(w http.ResponseWriter, r *http.Request, hold []byte, release <-chan struct{}) {
	w.Header().Set("Content-Length", strconv.Itoa(len(hold)))
	w.Write(hold[:2<<20])
	w.(http.Flusher).Flush()
	select {
	case <-release:
	case <-r.Context().Done():
		return
	}
	w.Write(hold[2<<20:])
}

// startFullFill starts a cache in front of o whose memory store (64 MiB:
// entries up to 8 MiB, the buffers of bodies being written 16 MiB
// together) has 14 MiB of those buffers held by two fetches, /h1 and /h2
// (holdingFill), so that the next body it stores is given up past 2 MiB.
func startFullFill(t *testing.T, o *origin, hold []byte) *caddytest.Server {
	t.Helper()
	s := startFollowCache(t, o, "collapse_timeout 30s\nstore memory {\n\tmax_size 64MiB\n}")
	leaderOf(t, s, "/h1", hold[:2<<20])
	leaderOf(t, s, "/h2", hold[:2<<20])
	return s
}

// When the store gives a followed body up midway (here the memory store's
// bound on the buffers of bodies being written), nobody can be served the
// rest: the followers are cut, and so is the client that caused the fetch,
// which is served from the store. It is cut then, not once the origin has
// sent the rest of a body that is stored for nobody, and the origin
// request ends with it.
func TestClientOfAFetchTheStoreGaveUpIsCutAtOnce(t *testing.T) {
	const mib = 1 << 20
	hold := bytes.Repeat([]byte("h"), 7*mib)
	big := bytes.Repeat([]byte("b"), 7*mib)
	holdRelease, bigRelease := make(chan struct{}), make(chan struct{})
	defer close(holdRelease)
	ended := make(chan bool, 1) // whether the /big origin request was cancelled
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if r.URL.Path != "/big" {
			holdingFill(w, r, hold, holdRelease)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(7*mib))
		w.Write(big[:mib/2])
		w.(http.Flusher).Flush()
		select {
		case <-bigRelease:
		case <-time.After(10 * time.Second):
		}
		w.Write(big[mib/2 : 3*mib])
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			ended <- true
			return
		case <-time.After(10 * time.Second):
			ended <- false
		}
		w.Write(big[3*mib:])
	})
	s := startFullFill(t, o, hold)
	leader := leaderOf(t, s, "/big", big[:mib/2])
	waiters := startFollowers(t, s, "/big", 2, big[:mib/2])
	close(bigRelease)
	done := make(chan error, 3)
	for _, resp := range append(waiters, leader) {
		go func() {
			rest, err := io.ReadAll(resp.Body)
			if err == nil {
				err = fmt.Errorf("ended without an error after %d more bytes", len(rest))
			} else {
				err = nil
			}
			done <- err
		}()
	}
	for i := range 3 {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("response %d: %v, want an incomplete response", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a client of a body the store gave up was held while the origin sent the rest")
		}
	}
	select {
	case cancelled := <-ended:
		if !cancelled {
			t.Error("the origin request went on for a body nobody gets")
		}
	case <-time.After(5 * time.Second):
		t.Error("the origin request went on for a body nobody gets")
	}
}

// A body without a length that grows past what is stored (max_object_size,
// or the largest entry the store takes) while requests follow it: they are
// cut, as when the store gives a body up, but the client that caused the
// fetch, served from the store until then, gets the rest from the fetch
// and the whole body. Nothing is stored.
func TestClientOfAnOutgrownBodyGetsItWhole(t *testing.T) {
	const mib = 1 << 20
	first := bytes.Repeat([]byte("f"), mib/2)
	second := bytes.Repeat([]byte("s"), 2*mib)
	for _, tc := range []struct{ name, options string }{
		{"max_object_size", "max_object_size 1MiB"},
		// An 8 MiB store takes entries of at most 1 MiB.
		{"store", "store memory {\n\tmax_size 8MiB\n}"},
	} {
		// A conditional request that its response does not match is
		// served through the fetch that runs aside (aside.go).
		for _, leaderFields := range [][]string{nil, {"If-None-Match", `"other"`}} {
			t.Run(fmt.Sprint(tc.name, leaderFields), func(t *testing.T) {
				testOutgrownBody(t, first, second, tc.options, leaderFields)
			})
		}
	}
}

func testOutgrownBody(t *testing.T, first, second []byte, options string, leaderFields []string) {
	release := make(chan struct{})
	o := newOrigin(t, unsizedPartsOrigin(first, second, release))
	s := startFollowCache(t, o, options)
	leader := startRequests(t, s, "/grown", 1, first, leaderFields...)[0]
	waiters := startFollowers(t, s, "/grown", 2, first)
	close(release)
	rest, err := io.ReadAll(leader.Body)
	if err != nil || !bytes.Equal(rest, second) {
		t.Fatalf("the client that caused the fetch got %d more bytes (%v), want the rest of the body, %d", len(rest), err, len(second))
	}
	for i, resp := range waiters {
		expectCut(t, fmt.Sprint("waiter ", i), resp, func(r rune) bool { return r == 's' })
	}
	landed(t)
	expect(t, "then", get(t, s, "/grown"), 200, string(first)+string(second), "miss", "uri-miss")
	if n := o.n.Load(); n != 2 {
		t.Errorf("origin got %d requests, want the followed one and the next, 2", n)
	}
}

// The client that caused the fetch of an outgrown body (above) stops
// reading while it is served from the store: the fetch waits for it to
// have been sent what was stored only as long as it would wait for one of
// its own writes to it (half of collapse_timeout), then counts it as gone.
// The followers are cut then, not held until that client reads or leaves,
// and the key can be fetched again.
func TestStalledClientOfAnOutgrownBodyDoesNotHoldItsFollowers(t *testing.T) {
	// A conditional request that its response does not match is served
	// through the fetch that runs aside (aside.go).
	for _, field := range []string{"", "If-None-Match: \"other\"\r\n"} {
		t.Run(strings.TrimSpace(field), func(t *testing.T) { testStalledClientOfAnOutgrownBody(t, field) })
	}
}

func testStalledClientOfAnOutgrownBody(t *testing.T, field string) {
	const mib = 1 << 20
	first := bytes.Repeat([]byte("f"), mib)
	second := bytes.Repeat([]byte("s"), 24*mib)
	release := make(chan struct{})
	o := newOrigin(t, unsizedPartsOrigin(first, second, release))
	// More than the connection's buffers hold, so that the delivery to
	// the client that reads nothing blocks before the body outgrows.
	s := startFollowCache(t, o, "collapse_timeout 2s\nmax_object_size 16MiB")
	host := strings.TrimPrefix(s.URL(""), "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /stalled HTTP/1.1\r\nHost: "+host+"\r\n"+field+"\r\n")
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 4096), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, mib)); err != nil {
		t.Fatalf("stalled client's first part: %v", err)
	}
	waiter := startFollowers(t, s, "/stalled", 1, first)[0]
	close(release)
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, waiter.Body)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the follower of an outgrown body got a complete response")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the follower was held by the client that stopped reading")
	}
	landed(t)
	expect(t, "then", get(t, s, "/stalled"), 200, string(first)+string(second), "miss", "uri-miss")
}

// The client that caused the fetch of an outgrown body (above) gets the
// rest from the fetch however long the origin takes to send it: the
// bound on its writes while the fetch waited for it to have what was
// stored (half of collapse_timeout) does not outlast the take-back, or a
// slow origin would have it cut once that much time has passed.
func TestClientOfAnOutgrownBodyGetsASlowRestWhole(t *testing.T) {
	const mib = 1 << 20
	first := bytes.Repeat([]byte("f"), mib)
	second := bytes.Repeat([]byte("s"), 64<<10)
	release := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write(first)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		// Past max_object_size: the fetch takes its client back here.
		w.Write(second)
		w.(http.Flusher).Flush()
		time.Sleep(700 * time.Millisecond)
		w.Write([]byte("tail"))
	})
	s := startFollowCache(t, o, "collapse_timeout 400ms\nmax_object_size 1MiB")
	leader := leaderOf(t, s, "/slowrest", first)
	waiter := startFollowers(t, s, "/slowrest", 1, first)[0]
	close(release)
	rest, err := io.ReadAll(leader.Body)
	if err != nil || string(rest) != string(second)+"tail" {
		t.Fatalf("the client that caused the fetch got %d more bytes (%v), want the rest of the body, %d", len(rest), err, len(second)+4)
	}
	if _, err := io.ReadAll(waiter.Body); err == nil {
		t.Error("the follower of an outgrown body got a complete response")
	}
}

// An HTTP/1.0 request cannot be sent a body chunked: one without a length
// ends when the connection closes, so that a cut one would look complete
// to it. It does not follow such a body (it waits for the fetch, as before
// bodies without a length were followed), and gets the whole body, never
// the part that the origin sent before it cut the fetch.
func TestHTTP10WaiterDoesNotFollowABodyWithoutLength(t *testing.T) {
	first, second := bytes.Repeat([]byte("a"), 50000), bytes.Repeat([]byte("b"), 50000)
	release := make(chan struct{})
	var cut atomic.Bool
	cut.Store(true)
	o := newOrigin(t, parts(first, second, release, func() bool { return cut.Swap(false) }, false))
	s := startFollowCache(t, o, "")
	leader := leaderOf(t, s, "/cut10", first)
	host := strings.TrimPrefix(s.URL(""), "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /cut10 HTTP/1.0\r\nHost: "+host+"\r\n\r\n")
	waitFor(t, "the HTTP/1.0 request to wait", func() bool { return cache.Waiting() == 1 })
	time.Sleep(100 * time.Millisecond) // it follows now, if it does
	close(release)
	io.ReadAll(leader.Body)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err == nil && string(body) != string(first)+string(second) {
		t.Errorf("HTTP/1.0 waiter got %d bytes and a clean end (Cache-Status %q), want the whole body, %d, or an error", len(body), resp.Header.Get("Cache-Status"), len(first)+len(second))
	}
}

// The client that caused the fetch of a body without a length is not
// served from the store when it speaks HTTP/1.0 (as above, its body ends
// when the connection closes): when the store gives the body up (here the
// memory store's bound on the buffers of bodies being written), its
// followers are cut, but it is not cut with them, which it would take for
// the whole body; it gets the rest from the fetch.
func TestHTTP10ClientOfABodyWithoutLengthTheStoreGaveUpGetsItWhole(t *testing.T) {
	const mib = 1 << 20
	hold := bytes.Repeat([]byte("h"), 7*mib)
	big := bytes.Repeat([]byte("b"), 4*mib)
	holdRelease, bigRelease := make(chan struct{}), make(chan struct{})
	defer close(holdRelease)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if r.URL.Path != "/big10" {
			holdingFill(w, r, hold, holdRelease)
			return
		}
		w.Write(big[:mib/2])
		w.(http.Flusher).Flush()
		select {
		case <-bigRelease:
		case <-time.After(10 * time.Second):
		}
		w.Write(big[mib/2:])
	})
	s := startFullFill(t, o, hold)
	host := strings.TrimPrefix(s.URL(""), "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /big10 HTTP/1.0\r\nHost: "+host+"\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, mib/2)); err != nil {
		t.Fatalf("HTTP/1.0 client's first part: %v", err)
	}
	waiters := startFollowers(t, s, "/big10", 2, big[:mib/2])
	close(bigRelease)
	rest, err := io.ReadAll(resp.Body)
	if err == nil && !bytes.Equal(rest, big[mib/2:]) {
		t.Errorf("HTTP/1.0 client got %d more bytes and a clean end, want the rest of the body, %d, or an error", len(rest), len(big)-mib/2)
	}
	for i, resp := range waiters {
		if _, err := io.ReadAll(resp.Body); err == nil {
			t.Errorf("waiter %d of a body the store gave up got a complete response", i)
		}
	}
}

// An origin can send trailer fields it did not announce; reverse_proxy
// adds them to the client's header (with http.TrailerPrefix) once the
// body is copied. When the client is served from the store (followed),
// the goroutine serving it may still be writing, and net/http reads that
// header when it sends the response's (unless it was sent already): the
// fields are kept apart until that goroutine is done, and the client
// still gets them.
func TestUnannouncedTrailersOfAFollowedBody(t *testing.T) {
	release := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "the body")
		w.Header().Set(http.TrailerPrefix+"X-Checksum", "abc")
	})
	s := startFollowCache(t, o, "")
	leader, err := s.Client.Get(s.URL("/trailers"))
	if err != nil {
		t.Fatal(err)
	}
	defer leader.Body.Close()
	waiter := make(chan result, 1)
	go func() { waiter <- get(t, s, "/trailers") }()
	waitFor(t, "the second request to wait", func() bool { return cache.Waiting() == 1 })
	time.Sleep(50 * time.Millisecond) // and to follow
	close(release)
	body, err := io.ReadAll(leader.Body)
	if err != nil || string(body) != "the body" {
		t.Fatalf("leader: %q, %v", body, err)
	}
	if got := leader.Trailer.Get("X-Checksum"); got != "abc" {
		t.Errorf("leader's trailer X-Checksum %q, want abc", got)
	}
	expect(t, "waiter", <-waiter, 200, "the body", "collapsed")
}

// Once a followed body without a length has outgrown what is stored, its
// fetch lands at once, as that of a response known not to be stored at
// its header does: the key's next requests go to the origin instead of
// waiting for the rest of a body that will not be stored (up to
// collapse_timeout), while the first client still gets the rest.
func TestRequestsAfterAnOutgrownBodyGoToTheOrigin(t *testing.T) {
	const kib = 1 << 10
	first := bytes.Repeat([]byte("f"), 512*kib)
	second := bytes.Repeat([]byte("s"), 1024*kib)
	third := bytes.Repeat([]byte("t"), 16*kib)
	grow, finish := make(chan struct{}), make(chan struct{})
	defer close(finish)
	var n atomic.Int32
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if n.Add(1) > 1 {
			w.Write(first)
			w.Write(second)
			w.Write(third)
			return
		}
		w.Write(first)
		w.(http.Flusher).Flush()
		<-grow
		w.Write(second)
		w.(http.Flusher).Flush()
		<-finish
		w.Write(third)
	})
	s := startFollowCache(t, o, "max_object_size 1MiB")
	leader := leaderOf(t, s, "/grown", first)
	waiter := startFollowers(t, s, "/grown", 1, first)[0]
	close(grow)
	expectCut(t, "waiter", waiter, func(r rune) bool { return r == 's' })
	got := make(chan result, 1)
	go func() { got <- get(t, s, "/grown") }()
	select {
	case r := <-got:
		expect(t, "next request", r, 200, string(first)+string(second)+string(third), "miss", "detail=hit-for-miss")
	case <-time.After(5 * time.Second):
		t.Fatal("the next request waited for the rest of a body that is not stored")
	}
	finish <- struct{}{}
	rest, err := io.ReadAll(leader.Body)
	if err != nil || string(rest) != string(second)+string(third) {
		t.Fatalf("the first client got %d more bytes (%v), want the rest of the body", len(rest), err)
	}
}
