package cache_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-edge/edge/internal/caddytest"
)

// startH2Cache is startCache (startFollowCache with follow) on a server
// that speaks h2c, whose Client speaks HTTP/2 only (prior knowledge), so
// that every request of the test is a stream of one connection.
func startH2Cache(t *testing.T, o *origin, options string, follow bool) *caddytest.Server {
	t.Helper()
	cfg := siteConfig(o, options)
	if follow {
		proxy := "reverse_proxy " + o.addr()
		cfg = strings.Replace(cfg, proxy, proxy+" {\n\t\tflush_interval -1\n\t}", 1)
	}
	return startH2(t, "", cfg)
}

// startH2 starts Caddy with the site config cfg on a server that speaks
// h2c, with the server options serverOptions (lines), and gives it a
// Client that speaks HTTP/2 only.
func startH2(t *testing.T, serverOptions, cfg string) *caddytest.Server {
	t.Helper()
	s := caddytest.Start(t, caddytest.Global("\tservers {\n\t\tprotocols h1 h2c\n"+serverOptions+"\t}\n")+cfg)
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	s.Client = &http.Client{Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return s
}

// Over HTTP/2, what the cache answers from the store (memory and disk:
// whole, a range, a 304, a HEAD) and the misses it stores, with a length
// and without, are what an HTTP/1.1 client gets.
func TestHTTP2ClientsOfTheStore(t *testing.T) {
	body := strings.Repeat("0123456789", 30000)
	for _, store := range []string{"", "disk"} {
		for _, sized := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/sized=%v", store, sized), func(t *testing.T) {
				o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Cache-Control", "max-age=60")
					w.Header().Set("ETag", `"v1"`)
					if sized {
						w.Header().Set("Content-Length", strconv.Itoa(len(body)))
					}
					io.WriteString(w, body[:1000])
					w.(http.Flusher).Flush()
					io.WriteString(w, body[1000:])
				})
				opts := ""
				if store == "disk" {
					opts = "store disk {\n\tpath " + t.TempDir() + "\n}"
				}
				s := startH2Cache(t, o, opts, false)
				expect(t, "miss", get(t, s, "/o"), 200, body, "miss", "stored")
				landed(t)
				hit := get(t, s, "/o")
				expect(t, "hit", hit, 200, body, "hit", "hit")
				if cl := hit.header.Get("Content-Length"); cl != strconv.Itoa(len(body)) {
					t.Errorf("hit: Content-Length %q, want %d", cl, len(body))
				}
				expect(t, "range", get(t, s, "/o", "Range", "bytes=100-199"), 206, body[100:200], "hit")
				expect(t, "suffix range", get(t, s, "/o", "Range", "bytes=-5"), 206, body[len(body)-5:], "hit")
				expect(t, "304", get(t, s, "/o", "If-None-Match", `"v1"`), 304, "", "hit")
				head := do(t, s, http.MethodHead, "/o")
				expect(t, "HEAD", head, 200, "", "hit")
				if cl := head.header.Get("Content-Length"); cl != strconv.Itoa(len(body)) {
					t.Errorf("HEAD: Content-Length %q, want %d", cl, len(body))
				}
				if n := o.n.Load(); n != 1 {
					t.Errorf("origin got %d requests, want 1", n)
				}
			})
		}
	}
}

// Requests for one new key, streams of one HTTP/2 connection, collapse
// onto one fetch and follow its body as it arrives; when the origin cuts
// it, every stream ends with an error, never a clean end.
func TestHTTP2StreamsFollowOneFetch(t *testing.T) {
	for _, tc := range []struct {
		name       string
		sized, cut bool
		n          int // of each part
	}{
		{"sized", true, false, 50000}, {"chunked", false, false, 50000},
		{"small parts", true, false, 10}, {"small chunked parts", false, false, 10},
		{"cut", true, true, 50000}, {"chunked cut", false, true, 50000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first, second := bytes.Repeat([]byte("a"), tc.n), bytes.Repeat([]byte("b"), tc.n)
			release := make(chan struct{})
			var cut atomic.Bool // the first origin request only
			cut.Store(tc.cut)
			o := newOrigin(t, parts(first, second, release, func() bool { return cut.Swap(false) }, tc.sized))
			s := startH2Cache(t, o, "collapse_timeout 200ms", true)
			leader := leaderOf(t, s, "/k", first)
			waiters := startFollowers(t, s, "/k", 4, first)
			time.Sleep(300 * time.Millisecond) // past collapse_timeout
			close(release)
			for i, resp := range append(waiters, leader) {
				if resp.ProtoMajor != 2 {
					t.Fatalf("response %d over %s", i, resp.Proto)
				}
				if tc.cut {
					expectCut(t, fmt.Sprint("response ", i), resp, func(r rune) bool { return r != 'b' })
				} else if rest, err := io.ReadAll(resp.Body); err != nil || !bytes.Equal(rest, second) {
					t.Errorf("response %d: rest of the body %d bytes (%v), want %d", i, len(rest), err, len(second))
				}
			}
			landed(t)
			res := "hit"
			if tc.cut {
				res = "miss"
			}
			expect(t, "then", get(t, s, "/k"), 200, string(first)+string(second), res)
			if n, want := o.n.Load(), map[bool]int64{false: 1, true: 2}[tc.cut]; n != want {
				t.Errorf("origin got %d requests, want %d", n, want)
			}
		})
	}
}

// A stream that is cancelled mid-body, the fetch's own or a follower's,
// leaves the others on the connection with the whole body.
func TestHTTP2StreamCancelledMidBody(t *testing.T) {
	first, second := bytes.Repeat([]byte("1"), 40000), bytes.Repeat([]byte("2"), 40000)
	for _, who := range []int{0, 1} { // 0: the leader, 1: a follower
		t.Run(fmt.Sprint("cancel ", who), func(t *testing.T) {
			release := make(chan struct{})
			o := newOrigin(t, partsOrigin(first, second, release, nil))
			s := startH2Cache(t, o, "", true)
			resps := append([]*http.Response{leaderOf(t, s, "/c", first)}, startFollowers(t, s, "/c", 3, first)...)
			resps[who].Body.Close() // RST_STREAM
			time.Sleep(50 * time.Millisecond)
			close(release)
			for i, resp := range resps {
				if i != who {
					expectRest(t, fmt.Sprint("response ", i), resp, second)
				}
			}
			storedOnce(t, s, o, "/c", string(first)+string(second))
		})
	}
}

// Over HTTP/2: a stale-while-revalidate refresh started by a stream,
// POST bodies (passed on, and invalidating), Expect: 100-continue, a 103
// from the origin, and announced trailers of a hit.
func TestHTTP2RequestsOfEveryKind(t *testing.T) {
	var version atomic.Int64
	var posted atomic.Value
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost:
			b, _ := io.ReadAll(r.Body)
			posted.Store(string(b))
			io.WriteString(w, "posted "+string(b))
		case r.URL.Path == "/swr":
			w.Header().Set("Cache-Control", "max-age=1, stale-while-revalidate=3600")
			w.Header().Set("Age", "10")
			fmt.Fprint(w, "v", version.Add(1))
		case r.URL.Path == "/hints":
			w.Header().Set("Link", "</s.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Del("Link")
			w.Header().Set("Cache-Control", "max-age=60")
			io.WriteString(w, "page")
		case r.URL.Path == "/trailer":
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "with trailer")
			w.Header().Set("X-Sum", "abc")
		default:
			w.Header().Set("Cache-Control", "max-age=60")
			fmt.Fprint(w, "doc v", version.Add(1))
		}
	})
	s := startH2Cache(t, o, "", false)

	t.Run("swr", func(t *testing.T) {
		expect(t, "miss", get(t, s, "/swr"), 200, "v1", "miss")
		landed(t)
		expect(t, "stale", get(t, s, "/swr"), 200, "v1", "stale", "detail=stale-while-revalidate")
		waitFor(t, "the refresh", func() bool { return get(t, s, "/swr").body != "v1" })
	})

	t.Run("post", func(t *testing.T) {
		expect(t, "miss", get(t, s, "/doc"), 200, "*", "miss", "stored")
		landed(t)
		before := get(t, s, "/doc")
		body := strings.Repeat("p", 100000)
		req, _ := http.NewRequest(http.MethodPost, s.URL("/doc"), strings.NewReader(body))
		req.Header.Set("Expect", "100-continue")
		resp, err := s.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != "posted "+body || posted.Load() != body {
			t.Errorf("POST with Expect: 100-continue: %d bytes (%v), origin got %d bytes", len(b), err, len(posted.Load().(string)))
		}
		if after := get(t, s, "/doc"); after.body == before.body {
			t.Errorf("GET after the POST: %q, still the stored response (Cache-Status %q)", after.body, after.cs())
		}
	})

	t.Run("103", func(t *testing.T) {
		var hints atomic.Int64
		trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			if code == http.StatusEarlyHints && h.Get("Link") != "" {
				hints.Add(1)
			}
			return nil
		}}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), http.MethodGet, s.URL("/hints"), nil)
		resp, err := s.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		expect(t, "miss", result{status: resp.StatusCode, header: resp.Header, body: string(b)}, 200, "page", "miss", "stored")
		if hints.Load() != 1 || resp.Header.Get("Link") != "" {
			t.Errorf("%d 103 responses with Link, final Link %q; want 1 and none", hints.Load(), resp.Header.Get("Link"))
		}
		landed(t)
		expect(t, "hit", get(t, s, "/hints"), 200, "page", "hit")
	})

	t.Run("trailers", func(t *testing.T) {
		get(t, s, "/trailer")
		landed(t)
		resp, err := s.Client.Get(s.URL("/trailer"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Logf("hit: %s %q X-Result %q trailer %v", resp.Proto, b, resp.Header.Get("X-Result"), resp.Trailer)
		if string(b) != "with trailer" {
			t.Errorf("hit body %q", b)
		}
	})
}

// An HTTP/2 stream is not reset when the origin pauses for longer than
// the bound of a write to it (half of collapse_timeout) in the middle of
// the body of a miss: a GET of a range, a conditional GET, a HEAD. That
// bound is, on an HTTP/2 stream, a timer that resets the stream when it
// fires, even with no write in flight (net/http's HTTP/2 server): left set
// between writes, it cut the client of a miss being stored.
func TestHTTP2ClientsOfAPausingOriginAreNotReset(t *testing.T) {
	for _, tc := range []struct {
		name, method string
		fields       []string
		status       int
		body         string
	}{
		// The origin ignores Range; the miss passes through, and starts a fill.
		{"range", http.MethodGet, []string{"Range", "bytes=0-4"}, 200, "first part\nsecond part\n"},
		{"conditional", http.MethodGet, []string{"If-None-Match", `"other"`}, 200, "first part\nsecond part\n"},
		{"head", http.MethodHead, nil, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			o := newOrigin(t, slowSecondPart(release))
			s := startH2Cache(t, o, "collapse_timeout 200ms", true)
			go func() { time.Sleep(400 * time.Millisecond); close(release) }()
			expect(t, tc.name, do(t, s, tc.method, "/big", tc.fields...), tc.status, tc.body, "")
			landed(t)
			expect(t, "then", get(t, s, "/big"), 200, "first part\nsecond part\n", "")
		})
	}
}

// With the server's write timeout, an HTTP/2 stream of a miss being
// stored ends at that timeout when the origin pauses past it, as it does
// without the cache: removing the cache's own bound after each write
// leaves the timeout's deadline armed. It removed every deadline, and the
// stream outlived the timeout until the origin sent more. So it does with
// write_idle disabled, when the write timeout is net/http's own deadline
// on the stream, which Caddy's idle timeout writer does not keep.
func TestHTTP2WriteTimeoutEndsAStoredMissOnTime(t *testing.T) {
	for _, tc := range []struct{ name, timeouts string }{
		{"write_idle", "\t\t\twrite 1s\n"},
		{"no write_idle", "\t\t\twrite 1s\n\t\t\twrite_idle -1s\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			defer close(release)
			first, second := bytes.Repeat([]byte("a"), 1000), bytes.Repeat([]byte("b"), 1000)
			o := newOrigin(t, partsOrigin(first, second, release, nil))
			proxy := "reverse_proxy " + o.addr()
			cfg := strings.Replace(siteConfig(o, ""), proxy, proxy+" {\n\t\tflush_interval -1\n\t}", 1)
			s := startH2(t, "\t\ttimeouts {\n"+tc.timeouts+"\t\t}\n", cfg)
			resp := leaderOf(t, s, "/k", first)
			ended := make(chan error, 1)
			go func() {
				_, err := io.ReadAll(resp.Body)
				ended <- err
			}()
			select {
			case err := <-ended:
				if err == nil {
					t.Fatal("the stream ended cleanly without the rest of the body")
				}
			case <-time.After(8 * time.Second):
				t.Fatal("the stream outlived the write timeout while the origin paused")
			}
		})
	}
}

// A miss whose body the origin cuts, alone on its key, ends with a
// stream error over HTTP/2, stored or not, with a length or without.
func TestHTTP2CutMissEndsWithAStreamError(t *testing.T) {
	first, second := bytes.Repeat([]byte("a"), 20000), bytes.Repeat([]byte("b"), 20000)
	for _, tc := range []struct {
		name, cc string
		sized    bool
	}{{"stored", "max-age=60", true}, {"stored chunked", "max-age=60", false}, {"no-store", "no-store", true}, {"no-store chunked", "no-store", false}} {
		t.Run(tc.name, func(t *testing.T) {
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", tc.cc)
				if tc.sized {
					w.Header().Set("Content-Length", strconv.Itoa(len(first)+len(second)))
				}
				w.Write(first)
				w.(http.Flusher).Flush()
				panic(http.ErrAbortHandler)
			})
			s := startH2Cache(t, o, "", true)
			resp := leaderOf(t, s, "/cut", first)
			expectCut(t, "response", resp, func(r rune) bool { return r == 'a' })
		})
	}
}

// A stream that stops reading the body it caused to be fetched (its
// window fills, not a socket buffer) does not hold the streams that follow
// it on the same connection; when it reads on it gets the whole body. When
// the body outgrows the store, the fetch waits for it only half of
// collapse_timeout before its followers are cut.
func TestHTTP2StalledStreamDoesNotHoldItsFollowers(t *testing.T) {
	const mib = 1 << 20
	for _, outgrown := range []bool{false, true} {
		t.Run(fmt.Sprint("outgrown=", outgrown), func(t *testing.T) {
			first, second := bytes.Repeat([]byte("f"), mib), bytes.Repeat([]byte("s"), 24*mib)
			release := make(chan struct{})
			o := newOrigin(t, parts(first, second, release, nil, !outgrown))
			opts := "collapse_timeout 60s\nmax_object_size 32MiB"
			if outgrown {
				opts = "collapse_timeout 2s\nmax_object_size 16MiB"
			}
			s := startH2Cache(t, o, opts, true)
			leader := leaderOf(t, s, "/stalled", first)
			waiters := startFollowers(t, s, "/stalled", 2, first)
			close(release)
			done := make(chan error, len(waiters))
			for _, w := range waiters {
				go func() {
					rest, err := io.ReadAll(w.Body)
					if err == nil && !bytes.Equal(rest, second) {
						err = fmt.Errorf("rest of the body: %d bytes, want %d", len(rest), len(second))
					}
					done <- err
				}()
			}
			for range waiters {
				select {
				case err := <-done:
					if outgrown && err == nil {
						t.Error("a follower of an outgrown body got a complete response")
					} else if !outgrown && err != nil {
						t.Errorf("follower: %v", err)
					}
				case <-time.After(20 * time.Second):
					t.Fatal("the followers were held by the stream that stopped reading")
				}
			}
			if !outgrown {
				if rest, err := io.ReadAll(leader.Body); err != nil || !bytes.Equal(rest, second) {
					t.Errorf("stalled stream's rest: %d bytes (%v), want %d", len(rest), err, len(second))
				}
			}
			landed(t)
			if n := o.n.Load(); !outgrown && n != 1 {
				t.Errorf("origin got %d requests, want 1", n)
			}
		})
	}
}
