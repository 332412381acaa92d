package cache_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache"
	"github.com/caddy-edge/edge/internal/caddytest"
)

// stallingGet sends a GET for path over a connection with a tiny receive
// buffer and never reads the response: a client that leads a miss and
// then stops reading. close ends the connection.
func stallingGet(t *testing.T, s *caddytest.Server, path string) (close func()) {
	t.Helper()
	u, err := url.Parse(s.URL(path))
	if err != nil {
		t.Fatal(err)
	}
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", u.RequestURI(), u.Host)
	var once sync.Once
	cl := func() { once.Do(func() { c.Close() }) }
	t.Cleanup(cl)
	return cl
}

// CPDoS by a slow reader. The leader of a collapsed miss writes the body
// to its own client and into the store in step: a client that sends the
// GET of a large hot object and then stops reading (a zero TCP window;
// Caddy has no write timeout by default) holds the flight open for as
// long as it keeps the connection. The fetch is not "gone" (the write
// blocks, it does not fail), so the orphan watch never ends it, and every
// other client of the key waits collapse_timeout and gets a 504, never a
// request of its own: one idle TCP connection per URL takes it offline.
func TestStallingLeaderDoesNotTakeTheKeyDown(t *testing.T) {
	big := strings.Repeat("x", 16<<20) // more than the socket buffers hold
	o := newOrigin(t, serve(big, "Cache-Control", "max-age=600"))
	// The default collapse_timeout (10 s): the leader's client is cut off
	// at half of it, which leaves the rest of the body time to reach the
	// store, under -race too.
	s := startCache(t, o, "")

	stallingGet(t, s, "/bundle.js")
	waitFor(t, "the stalling client to lead the fetch", func() bool { return o.n.Load() == 1 })
	time.Sleep(200 * time.Millisecond) // its connection fills up

	for i := range 3 {
		r := get(t, s, "/bundle.js")
		if r.status != 200 || len(r.body) != len(big) {
			t.Fatalf("victim %d after a client stalled its miss: %d, %d bytes (Cache-Status %q); want 200 with the body",
				i, r.status, len(r.body), r.cs())
		}
	}
}

// The same from a HEAD: a HEAD miss waits for the GET in flight and times
// out the same way (covered by the fix of the GET's writer).

// A client can make a key hit-for-miss by its own request fields: a
// response that is not stored only because the request had Cookie or
// Authorization (no explicit freshness), or because the origin refused
// this one request with a 4xx that says nothing of the resource (a WAF's
// 403, a 429 rate limit, 400/431 for an oversized header, 406 for an odd
// Accept), is remembered as "the key is uncacheable" for hit_for_miss_ttl.
// The next clients' concurrent misses then go to the origin side by side
// instead of collapsing (and range misses start no fill). The 412 case was
// fixed for exactly this reason ("any client could otherwise make a key
// hit-for-miss at will"); these are the same.
func TestClientCannotMarkKeyHitForMiss(t *testing.T) {
	lm := time.Now().Add(-240 * time.Hour).UTC().Format(http.TimeFormat)
	cases := []struct {
		name   string
		fields []string
		opts   string
	}{
		{"cookie/heuristic", []string{"Cookie", "session=attacker"}, ""},
		{"cookie/default_ttl", []string{"Cookie", "session=attacker"}, "default_ttl 1m"},
		{"authorization", []string{"Authorization", "Bearer x"}, "default_ttl 1m"},
		{"431-oversized-header", []string{"X-Big", strings.Repeat("a", 9000)}, "default_ttl 1m"},
		{"403-waf", []string{"User-Agent", "sqlmap/1.7"}, "default_ttl 1m"},
		{"429-rate-limited", []string{"X-Client", "noisy"}, "default_ttl 1m"},
		{"406-accept", []string{"Accept", "application/x-nothing"}, "default_ttl 1m"},
		// An origin that answers a request with a session cookie, any
		// session cookie, as personal (many CMSs), or clears a cookie it
		// does not know.
		{"cookie/private", []string{"Cookie", "session=junk"}, "default_ttl 1m"},
		{"cookie/set-cookie", []string{"Cookie", "stale=1"}, "default_ttl 1m"},
		{"authorization/no-store", []string{"Authorization", "Bearer junk"}, "default_ttl 1m"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var hold chan struct{}
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				switch {
				case len(r.Header.Get("X-Big")) > 8192:
					http.Error(w, "too large", http.StatusRequestHeaderFieldsTooLarge)
					return
				case strings.HasPrefix(r.UserAgent(), "sqlmap"):
					http.Error(w, "blocked", http.StatusForbidden)
					return
				case r.Header.Get("X-Client") == "noisy":
					http.Error(w, "slow down", http.StatusTooManyRequests)
					return
				case r.Header.Get("Accept") == "application/x-nothing":
					http.Error(w, "not acceptable", http.StatusNotAcceptable)
					return
				case r.Header.Get("Cookie") == "session=junk":
					w.Header().Set("Cache-Control", "private")
					io.WriteString(w, "page")
					return
				case r.Header.Get("Cookie") == "stale=1":
					w.Header().Set("Set-Cookie", "stale=; Max-Age=0")
					io.WriteString(w, "page")
					return
				case r.Header.Get("Authorization") == "Bearer junk":
					w.Header().Set("Cache-Control", "no-store")
					io.WriteString(w, "page")
					return
				}
				mu.Lock()
				h := hold
				mu.Unlock()
				if h != nil {
					// Hold the victims' fetch until all of them are in.
					deadline := time.Now().Add(5 * time.Second)
					for cache.Waiting() < 4 && time.Now().Before(deadline) {
						time.Sleep(time.Millisecond)
					}
				}
				w.Header().Set("Last-Modified", lm)
				io.WriteString(w, "page")
			})
			s := startCache(t, o, tc.opts)
			get(t, s, "/page", tc.fields...) // the attacker, once
			before := o.n.Load()
			mu.Lock()
			hold = make(chan struct{})
			mu.Unlock()
			rs := getAll(t, s, "/page", 5)
			for i, r := range rs {
				if r.status != 200 || r.body != "page" {
					t.Errorf("victim %d: %d %q", i, r.status, r.body)
				}
			}
			if d := o.n.Load() - before; d != 1 {
				t.Errorf("5 concurrent victims after one %s request made %d origin requests, want 1 (collapsed); Cache-Status %q",
					tc.name, d, rs[0].cs())
			}
		})
	}
}

// Orphaned fetches are bounded one by one (max_object_size, 30 s after
// the client left) but not in number, unlike range fills (4 in the
// process, "so that many Range misses on distinct large objects cannot
// multiply origin traffic and memory"). Every storable miss is detached
// from its client, whether or not any request waits for it: a client that
// sends GETs for many distinct large objects (a query string is enough)
// and hangs up at once leaves each fetch downloading at the origin's pace
// into an in-flight store buffer (up to max_object_size each, not counted
// against max_size) for up to 30 s. Here nobody waits for any of them, yet
// the origin requests go on after every client left.
func TestOrphanedFetchesWithoutWaitersEnd(t *testing.T) {
	const clients = 8
	var mu sync.Mutex
	cancelled := 0
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Length", fmt.Sprint(8<<20))
		chunk := strings.Repeat("x", 64<<10)
		ended := func() {
			mu.Lock()
			cancelled++
			mu.Unlock()
		}
		for range 128 {
			if _, err := io.WriteString(w, chunk); err != nil {
				ended()
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				ended()
				return
			case <-time.After(50 * time.Millisecond): // 8 MiB in about 6 s
			}
		}
	})
	s := startCache(t, o, "")
	for i := range clients {
		resp, err := s.Client.Get(s.URL(fmt.Sprintf("/video.mp4?x=%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close() // hangs up after the header
	}
	s.Client.CloseIdleConnections()
	time.Sleep(2500 * time.Millisecond)
	mu.Lock()
	n := cancelled
	mu.Unlock()
	if n != clients {
		t.Errorf("%d of %d origin fetches were cancelled 2.5 s after their clients left, with nobody waiting for them (%d flights still in the air)",
			n, clients, cache.Flights())
	}
}

// Stale-while-revalidate refreshes are bounded: a client's request ends
// before its refresh, so requests for many stale keys must not start as
// many origin requests at once. Beyond the bound the stale response is
// served without a refresh (RFC 5861 §3 lets the window bound its age).
// The bound is a handler's: another site, whose origin answers, goes on
// refreshing while the first one's origin hangs.
func TestStaleRefreshesInFlightAreBounded(t *testing.T) {
	const objects = cache.MaxHandlerBackgroundFetches + 16
	release := make(chan struct{})
	var mu sync.Mutex
	seen := map[string]int{}
	var refreshes, otherRefreshes atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		// Stale on arrival, within a long stale-while-revalidate window.
		w.Header().Set("Cache-Control", "max-age=1, stale-while-revalidate=3600")
		w.Header().Set("Age", "10")
		mu.Lock()
		seen[r.URL.Path]++
		first := seen[r.URL.Path] == 1
		mu.Unlock()
		switch {
		case first:
		case strings.HasPrefix(r.URL.Path, "/other/"):
			otherRefreshes.Add(1)
		default:
			refreshes.Add(1)
			select { // refreshes hang until every stale request was answered
			case <-release:
			case <-time.After(20 * time.Second):
			}
		}
		io.WriteString(w, "v")
	})
	s := caddytest.Start(t, `
http://localhost:{HTTP_PORT} {
	header >X-Result {http_cache.status}
	handle /other/* {
		http_cache
		reverse_proxy `+o.addr()+`
	}
	handle {
		http_cache
		reverse_proxy `+o.addr()+`
	}
}
`)
	waitFor(t, "earlier fetches to end", func() bool { return cache.Flights() == 0 })
	for i := range objects {
		expect(t, fmt.Sprint("miss ", i), get(t, s, fmt.Sprintf("/s%d", i)), 200, "v", "")
	}
	for i := range objects {
		expect(t, fmt.Sprint("stale ", i), get(t, s, fmt.Sprintf("/s%d", i)), 200, "v", "stale", "detail=stale-while-revalidate")
	}
	// Each refresh is in flight from before its request is answered.
	if n := cache.Flights(); n != cache.MaxHandlerBackgroundFetches {
		t.Errorf("%d refreshes in flight after %d stale requests, want the bound, %d", n, objects, cache.MaxHandlerBackgroundFetches)
	}
	waitFor(t, "the refreshes to reach the origin", func() bool { return refreshes.Load() >= cache.MaxHandlerBackgroundFetches })
	if n := refreshes.Load(); n != cache.MaxHandlerBackgroundFetches {
		t.Errorf("%d of %d stale requests started a refresh, want the bound, %d", n, objects, cache.MaxHandlerBackgroundFetches)
	}
	// The other site refreshes meanwhile.
	expect(t, "other miss", get(t, s, "/other/x"), 200, "v", "")
	expect(t, "other stale", get(t, s, "/other/x"), 200, "v", "stale", "detail=stale-while-revalidate")
	waitFor(t, "the other site's refresh", func() bool { return otherRefreshes.Load() == 1 })
	close(release)
	waitFor(t, "the refreshes to end", func() bool { return cache.Flights() == 0 })
	// A slot is free again: the next stale request refreshes its key.
	expect(t, "stale after the refreshes", get(t, s, fmt.Sprintf("/s%d", objects-1)), 200, "v", "stale", "detail=stale-while-revalidate")
	waitFor(t, "a refresh once slots are free", func() bool { return refreshes.Load() == cache.MaxHandlerBackgroundFetches+1 })
}

// CPDoS by a long unkeyed query. An origin refuses a request target past
// its limit with 414 (nginx at 8 KiB, Apache and Go's server too), a
// status cacheable by default (RFC 9110 §15.1), which default_ttl then
// stores. The default key holds the whole target, so a 414 only ever
// answered the URL that caused it; but a parameter that
// ignore_query_params drops, or a key template without the query, makes
// the 414 of /page?utm_x=<9 KiB> the entry of /page, for every client.
func TestLongUnkeyedQueryDoesNotPoisonTheKey(t *testing.T) {
	cases := []struct{ name, opts string }{
		{"ignore_query_params", "default_ttl 1m\nignore_query_params utm_*"},
		{"key-without-query", "default_ttl 1m\nkey {http.request.host}{http.request.uri.path}"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				if len(r.RequestURI) > 8192 {
					http.Error(w, "URI too long", http.StatusRequestURITooLong)
					return
				}
				io.WriteString(w, "page")
			})
			s := startCache(t, o, tc.opts)
			r := get(t, s, "/page?utm_x="+strings.Repeat("a", 9000))
			if r.status != http.StatusRequestURITooLong {
				t.Fatalf("attacker: %d %q, want the origin's 414", r.status, r.body)
			}
			expect(t, "victim", get(t, s, "/page"), 200, "page", "")
		})
	}
}

// A client cannot make a key hit-for-miss with a Range the cache does not
// see: Apache httpd honours the legacy Request-Range field as Range, and
// answers the cache's GET with 206, which answers that client's request,
// not the URL.
func TestRequestRangeDoesNotMarkKeyHitForMiss(t *testing.T) {
	var waiting atomic.Bool
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if rr := r.Header.Get("Request-Range"); rr != "" && r.Header.Get("Range") == "" {
			r.Header.Set("Range", rr) // as Apache's byterange filter
		}
		if waiting.Load() {
			deadline := time.Now().Add(5 * time.Second)
			for cache.Waiting() < 4 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
		}
		w.Header().Set("Cache-Control", "max-age=600")
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader("page"))
	})
	s := startCache(t, o, "")
	r := get(t, s, "/page", "Request-Range", "bytes=0-0")
	if r.status != http.StatusPartialContent {
		t.Fatalf("attacker: %d %q, want the origin's 206", r.status, r.body)
	}
	before := o.n.Load()
	waiting.Store(true)
	rs := getAll(t, s, "/page", 5)
	for i, r := range rs {
		if r.status != 200 || r.body != "page" {
			t.Errorf("victim %d: %d %q", i, r.status, r.body)
		}
	}
	if d := o.n.Load() - before; d != 1 {
		t.Errorf("5 concurrent victims after one Request-Range made %d origin requests, want 1 (collapsed); Cache-Status %q", d, rs[0].cs())
	}
}

// Many origins redirect a URL with tracking parameters to the URL without
// them. With those parameters in ignore_query_params, the redirect of
// /page?utm_source=x is stored under the key of /page, the URL it points
// to: every client of /page is then sent to /page, by the stored
// redirect, for ever (a redirect loop). A redirect to its own key is
// never stored.
func TestRedirectToItsOwnKeyNotStored(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.RawQuery, "utm_") {
			w.Header().Set("Cache-Control", "max-age=3600")
			http.Redirect(w, r, r.URL.Path, http.StatusMovedPermanently)
			return
		}
		io.WriteString(w, "page")
	})
	s := startCache(t, o, "ignore_query_params utm_*")
	r := get(t, s, "/page?utm_source=newsletter")
	if r.status != http.StatusMovedPermanently || r.header.Get("Location") != "/page" {
		t.Fatalf("visitor from the newsletter: %d, Location %q; want the origin's 301 to /page", r.status, r.header.Get("Location"))
	}
	expect(t, "visitor of /page", get(t, s, "/page"), 200, "page", "")

	// The key holds the Host in lower case; an origin that sends a Host
	// in another case to its canonical name is answered the same.
	o.set(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != strings.ToLower(r.Host) {
			w.Header().Set("Cache-Control", "max-age=3600")
			http.Redirect(w, r, "http://"+strings.ToLower(r.Host)+r.URL.Path, http.StatusMovedPermanently)
			return
		}
		io.WriteString(w, "page")
	})
	rawGetHost(t, s, strings.ToUpper, "/other")
	expect(t, "visitor of /other", get(t, s, "/other"), 200, "page", "")
}

// A stale-while-revalidate hit for a request that says no-store starts no
// refresh: the refresh could store nothing, and its outcome would make the
// key hit-for-miss for every client, whose requests would then no longer
// collapse. The next request without it refreshes the key.
func TestNoStoreRequestStartsNoRefresh(t *testing.T) {
	var n atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Cache-Control", "max-age=1, stale-while-revalidate=3600")
		w.Header().Set("Age", "10") // stale on arrival
		io.WriteString(w, "v")
	})
	s := startCache(t, o, "")
	expect(t, "miss", get(t, s, "/k"), 200, "v", "")
	expect(t, "stale, no-store", get(t, s, "/k", "Cache-Control", "no-store"), 200, "v", "stale", "detail=stale-while-revalidate")
	waitFor(t, "no fetch in flight", func() bool { return cache.Flights() == 0 })
	if got := n.Load(); got != 1 {
		t.Errorf("origin got %d requests after a no-store request's stale hit, want 1 (no refresh)", got)
	}
	expect(t, "stale", get(t, s, "/k"), 200, "v", "stale", "detail=stale-while-revalidate")
	waitFor(t, "the refresh", func() bool { return n.Load() == 2 })
	waitFor(t, "no fetch in flight", func() bool { return cache.Flights() == 0 })
	// The key collapses again: the refresh left it stored, not
	// hit-for-miss.
	for _, r := range getAll(t, s, "/k", 5) {
		if r.status != http.StatusOK || r.body != "v" {
			t.Fatalf("then: %d %q", r.status, r.body)
		}
	}
}
