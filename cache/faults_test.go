package cache_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/caddy-edge/edge/internal/caddytest"
)

// Issue 8: the admin API refuses a purge body with anything after the JSON
// object (400), and purges nothing: a body that is not exactly one request
// is refused whole rather than half obeyed. White space after the object
// (curl's newline) is fine.
func TestFaultAdminPurgeRefusesTrailingData(t *testing.T) {
	o := newOrigin(t, serve("v", "Cache-Control", "max-age=600"))
	s := startCache(t, o, "")
	expect(t, "fill", get(t, s, "/p"), 200, "v", "miss", "stored")
	purge := func(body string) (int, string) {
		t.Helper()
		resp, err := http.Post(s.AdminURL("/http_cache/purge"), "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	u := s.URL("/p")
	for _, body := range []string{
		`{"url":"` + u + `"}{"x":1}`,
		`{"url":"` + u + `"} garbage`,
		`{"url":"` + u + `"}{"url":"` + u + `"}`,
		`{"url":"` + u + `"}]`,
		`{"url":"` + u + `"} 1`,
		`{"url":"` + u + `"}` + "\x00",
	} {
		if code, msg := purge(body); code != http.StatusBadRequest {
			t.Errorf("purge %q: %d %s, want 400", body, code, msg)
		}
		expect(t, "after refused purge "+body, get(t, s, "/p"), 200, "v", "hit", "hit")
	}
	if code, msg := purge(`{"url":"` + u + `"}` + " \r\n\t\n"); code != 200 || !strings.Contains(msg, `"purged":1`) {
		t.Errorf("purge with trailing white space: %d %s, want 200 purged 1", code, msg)
	}
	expect(t, "after purge", get(t, s, "/p"), 200, "v", "miss", "fwd=uri-miss")
}

// rawOrigin is an origin on loopback that writes its answers byte by byte,
// so that it can break the protocol the way real servers and networks do:
// reset a connection, close it early, lie about Content-Length, stall.
// Every connection carries one exchange and is then closed.
type rawOrigin struct {
	ln   net.Listener
	addr string
	n    atomic.Int64
	mu   sync.Mutex
	// answer writes the response to one request on conn; the connection
	// is closed (gracefully) after it returns.
	answer func(conn net.Conn, r *http.Request)
	wg     sync.WaitGroup
	done   chan struct{}
}

func newRawOrigin(t *testing.T, answer func(net.Conn, *http.Request)) *rawOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &rawOrigin{ln: ln, addr: ln.Addr().String(), answer: answer, done: make(chan struct{})}
	o.serve(ln)
	t.Cleanup(func() {
		close(o.done)
		o.mu.Lock()
		o.ln.Close()
		o.mu.Unlock()
		o.wg.Wait()
	})
	return o
}

func (o *rawOrigin) serve(ln net.Listener) {
	o.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			o.wg.Go(func() {
				defer c.Close()
				// Bounded: a stalled exchange ends when the test does.
				c.SetDeadline(time.Now().Add(20 * time.Second))
				r, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				o.n.Add(1)
				o.mu.Lock()
				answer := o.answer
				o.mu.Unlock()
				answer(c, r)
			})
		}
	})
}

func (o *rawOrigin) set(answer func(net.Conn, *http.Request)) {
	o.mu.Lock()
	o.answer = answer
	o.mu.Unlock()
}

// down closes the listener: connections are refused until up.
func (o *rawOrigin) down() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ln.Close()
}

// up listens again on the same address.
func (o *rawOrigin) up(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		t.Fatal(err)
	}
	o.mu.Lock()
	o.ln = ln
	o.mu.Unlock()
	o.serve(ln)
}

// head writes a status line and the fields of a cacheable response.
func head(c net.Conn, fields ...string) {
	var b strings.Builder
	b.WriteString("HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Type: text/plain\r\n")
	for i := 0; i+1 < len(fields); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", fields[i], fields[i+1])
	}
	b.WriteString("\r\n")
	io.WriteString(c, b.String())
}

// whole answers body with a correct Content-Length.
func whole(body string) func(net.Conn, *http.Request) {
	return func(c net.Conn, _ *http.Request) {
		head(c, "Content-Length", strconv.Itoa(len(body)), "Connection", "close")
		io.WriteString(c, body)
	}
}

// reset sends the fields and the first half of body, then resets the
// connection (RST, as a crashed or killed origin leaves it).
func reset(body string, fields ...string) func(net.Conn, *http.Request) {
	return func(c net.Conn, _ *http.Request) {
		head(c, fields...)
		io.WriteString(c, body[:len(body)/2])
		time.Sleep(20 * time.Millisecond) // let the half reach Caddy first
		c.(*net.TCPConn).SetLinger(0)
	}
}

// faultSite is a site with http_cache in front of reverse_proxy to addr,
// with every timeout of the proxy's transport short.
func faultSite(addr, options string) string {
	return `
http://localhost:{HTTP_PORT} {
	header >X-Result {http_cache.status}
	http_cache {
		` + options + `
	}
	reverse_proxy ` + addr + ` {
		transport http {
			dial_timeout 1s
			response_header_timeout 300ms
			read_timeout 300ms
		}
	}
}
`
}

// fetchBroken is get that reports a broken response body instead of failing:
// the status and header as received, the bytes read and the read error.
func fetchBroken(t *testing.T, s *caddytest.Server, path string) (result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return send(ctx, s, http.MethodGet, path)
}

// Issue 8: the origin refuses connections. The client gets 502 and nothing
// is stored; with a stored response that allows stale-if-error, the client
// gets it (stale) instead; once the origin is back, it gets fresh answers.
func TestFaultOriginDown(t *testing.T) {
	o := newRawOrigin(t, whole("fresh"))
	s := caddytest.Start(t, faultSite(o.addr, ""))
	o.down()

	for i := range 3 {
		r, err := fetchBroken(t, s, "/down")
		if err != nil || r.status != http.StatusBadGateway {
			t.Fatalf("request %d to a refusing origin: %d %v, want 502", i, r.status, err)
		}
		if strings.Contains(r.cs(), "stored") || strings.Contains(r.cs(), "hit") {
			t.Errorf("request %d: Cache-Status %q", i, r.cs())
		}
	}

	o.up(t)
	expect(t, "origin back", get(t, s, "/down"), 200, "fresh", "miss", "fwd=uri-miss", "stored")
	expect(t, "then a hit", get(t, s, "/down"), 200, "fresh", "hit", "hit")

	// A response that may be served stale when the origin fails.
	o.set(func(c net.Conn, _ *http.Request) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nCache-Control: max-age=0, stale-if-error=3600\r\nContent-Length: 5\r\nConnection: close\r\n\r\nstale")
	})
	expect(t, "stale-if-error fill", get(t, s, "/sie"), 200, "stale", "miss", "stored")
	o.down()
	r, err := fetchBroken(t, s, "/sie")
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "origin down, stale-if-error", r, 200, "stale", "stale", "fwd-status=502", "stale-if-error")
}

// Issue 8: the origin takes longer than reverse_proxy's timeouts, before
// the header (the client gets 504) or in the middle of the body (the client
// gets the header and a body that ends in an error, never a shorter body
// that looks whole). Nothing is stored: the next request goes to the origin
// and gets the whole body.
func TestFaultOriginSlow(t *testing.T) {
	body := strings.Repeat("s", 64<<10)
	stall := make(chan struct{})
	defer close(stall)
	o := newRawOrigin(t, func(c net.Conn, _ *http.Request) {
		select { // past response_header_timeout
		case <-stall:
		case <-time.After(3 * time.Second):
		}
	})
	s := caddytest.Start(t, faultSite(o.addr, ""))

	r, err := fetchBroken(t, s, "/slow")
	if err != nil || r.status != http.StatusGatewayTimeout {
		t.Errorf("origin silent past response_header_timeout: %d %v, want 504", r.status, err)
	}

	o.set(func(c net.Conn, _ *http.Request) {
		head(c, "Content-Length", strconv.Itoa(len(body)))
		io.WriteString(c, body[:len(body)/2])
		select { // past read_timeout
		case <-stall:
		case <-time.After(3 * time.Second):
		}
	})
	r, err = fetchBroken(t, s, "/slow")
	if err == nil {
		t.Errorf("body stalled past read_timeout: the client read %d of %d bytes and no error (status %d)", len(r.body), len(body), r.status)
	}

	o.set(whole(body))
	r = get(t, s, "/slow")
	expect(t, "origin fast again", r, 200, "*", "miss", "fwd=uri-miss", "stored")
	if r.body != body {
		t.Errorf("after the stalls: a body of %d bytes, want %d", len(r.body), len(body))
	}
	if n := o.n.Load(); n != 3 {
		t.Errorf("origin got %d requests, want 3 (nothing was served from a failed fetch)", n)
	}
}

// Issue 8: the origin breaks off the body: it resets the connection, or
// closes it before the Content-Length it announced (a lie, or a crash).
// The client gets the header and a body that ends in an error; nothing is
// stored, so the next client is not served the truncated body.
func TestFaultOriginTruncatedBody(t *testing.T) {
	for _, size := range []int{1 << 10, 1 << 20} {
		body := strings.Repeat("t", size)
		cl := strconv.Itoa(size)
		for _, tt := range []struct {
			name   string
			answer func(net.Conn, *http.Request)
		}{
			{"reset", reset(body, "Content-Length", cl)},
			{"reset chunked", reset(body)},
			{"short Content-Length", func(c net.Conn, _ *http.Request) {
				head(c, "Content-Length", cl)
				io.WriteString(c, body[:size/2])
			}},
			{"chunked without the last chunk", func(c net.Conn, _ *http.Request) {
				head(c, "Transfer-Encoding", "chunked")
				fmt.Fprintf(c, "%x\r\n%s\r\n", size/2, body[:size/2])
			}},
		} {
			t.Run(fmt.Sprintf("%s %d", tt.name, size), func(t *testing.T) {
				o := newRawOrigin(t, tt.answer)
				s := caddytest.Start(t, faultSite(o.addr, ""))
				r, err := fetchBroken(t, s, "/t")
				if err == nil && r.body != body {
					t.Errorf("truncated by the origin: the client got %d %q... (%d of %d bytes) with no error", r.status, r.body[:min(len(r.body), 16)], len(r.body), size)
				}
				o.set(whole(body))
				r = get(t, s, "/t")
				expect(t, "origin whole again", r, 200, "*", "miss", "fwd=uri-miss", "stored")
				if r.body != body {
					t.Errorf("after a truncated fetch: %d bytes, want %d", len(r.body), size)
				}
				expect(t, "then a hit", get(t, s, "/t"), 200, "*", "hit", "hit")
				if n := o.n.Load(); n != 2 {
					t.Errorf("origin got %d requests, want 2", n)
				}
			})
		}
	}
}

// Issue 8: a body delimited by the close of the connection (HTTP/1.1
// without Content-Length or chunked coding, RFC 9112 §6.3 rule 8) is a
// whole body: the client gets all of it, and so does the next client,
// from the store.
func TestFaultOriginCloseDelimitedBody(t *testing.T) {
	body := strings.Repeat("c", 300<<10)
	o := newRawOrigin(t, func(c net.Conn, _ *http.Request) {
		head(c, "Connection", "close")
		for i := 0; i < len(body); i += 64 << 10 {
			io.WriteString(c, body[i:min(i+64<<10, len(body))])
		}
	})
	s := caddytest.Start(t, faultSite(o.addr, ""))
	r := get(t, s, "/c")
	expect(t, "close-delimited", r, 200, "*", "miss", "fwd=uri-miss", "stored")
	if r.body != body {
		t.Errorf("close-delimited: %d bytes, want %d", len(r.body), len(body))
	}
	r = get(t, s, "/c")
	expect(t, "close-delimited, again", r, 200, "*", "hit", "hit")
	if r.body != body {
		t.Errorf("close-delimited from the store: %d bytes, want %d", len(r.body), len(body))
	}
	if n := o.n.Load(); n != 1 {
		t.Errorf("origin got %d requests, want 1", n)
	}
}

// Issue 8 (Guarantees): the key is the URL (and what Vary names); headers
// outside it that an origin honours, such as X-Original-URL, could make a
// client's request store another page under the URL. The two remedies the
// README gives hold: strip the header before the origin (request_header),
// or have the origin name it in Vary. Either way an attacker's header
// never changes what the next client of the URL gets.
func TestFaultUnkeyedHeaderStrippedOrVaried(t *testing.T) {
	for _, tt := range []struct {
		name, site string
		vary       bool
	}{
		{"request_header strips it", "request_header -X-Original-URL", false},
		{"origin varies on it", "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				page := r.URL.Path
				if u := r.Header.Get("X-Original-URL"); u != "" {
					page = u // as IIS and some frameworks do
				}
				w.Header().Set("Cache-Control", "max-age=600")
				if tt.vary {
					w.Header().Set("Vary", "X-Original-URL")
				}
				io.WriteString(w, "page "+page)
			})
			s := caddytest.Start(t, `
http://localhost:{HTTP_PORT} {
	header >X-Result {http_cache.status}
	`+tt.site+`
	http_cache
	reverse_proxy `+o.addr()+`
}
`)
			attack := get(t, s, "/home", "X-Original-URL", "/admin")
			if tt.vary {
				expect(t, "attacker", attack, 200, "page /admin", "miss")
			} else {
				expect(t, "attacker", attack, 200, "page /home", "miss")
			}
			expect(t, "next client", get(t, s, "/home"), 200, "page /home", "")
			expect(t, "next client again", get(t, s, "/home"), 200, "page /home", "hit")
		})
	}
}

// Issue 8 (Guarantees): http_cache runs after basic_auth, so a stored
// response is never served to a client that fails authentication: it gets
// 401, with or without the entry in the store.
func TestFaultHitNeedsAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	o := newOrigin(t, serve("members only", "Cache-Control", "public, max-age=600"))
	s := caddytest.Start(t, `
http://localhost:{HTTP_PORT} {
	header >X-Result {http_cache.status}
	basic_auth {
		alice `+string(hash)+`
	}
	http_cache
	reverse_proxy `+o.addr()+`
}
`)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:secret"))
	wrong := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:guess"))
	expect(t, "member", get(t, s, "/m", "Authorization", auth), 200, "members only", "miss", "stored")
	expect(t, "member again", get(t, s, "/m", "Authorization", auth), 200, "members only", "hit")
	for _, r := range []result{get(t, s, "/m"), get(t, s, "/m", "Authorization", wrong)} {
		if r.status != http.StatusUnauthorized || strings.Contains(r.body, "members only") {
			t.Errorf("without valid credentials: %d %q, want 401", r.status, r.body)
		}
	}
	if n := o.n.Load(); n != 1 {
		t.Errorf("origin got %d requests, want 1", n)
	}
}

// Issue 8: requests that wait for a fill (collapsed on its key) while the
// origin breaks that fill off mid-body never get the broken body as a whole
// one: each gets the whole body (from a fetch of its own) or an error.
func TestFaultCollapsedWaitersOnABrokenFill(t *testing.T) {
	body := strings.Repeat("w", 256<<10)
	first := make(chan struct{})
	var once sync.Once
	var fetches atomic.Int64
	o := newRawOrigin(t, nil)
	o.set(func(c net.Conn, r *http.Request) {
		fetches.Add(1)
		broken := false
		once.Do(func() { broken = true })
		if !broken {
			whole(body)(c, r)
			return
		}
		head(c, "Content-Length", strconv.Itoa(len(body)))
		io.WriteString(c, body[:len(body)/2])
		close(first)
		time.Sleep(150 * time.Millisecond) // the waiters queue up
		c.(*net.TCPConn).SetLinger(0)      // then a reset
	})
	s := caddytest.Start(t, faultSite(o.addr, ""))

	type got struct {
		r   result
		err error
	}
	results := make(chan got, 6)
	go func() {
		r, err := fetchBroken(t, s, "/w")
		results <- got{r, err}
	}()
	<-first
	for range 5 {
		go func() {
			r, err := fetchBroken(t, s, "/w")
			results <- got{r, err}
		}()
	}
	var outcomes []string
	for i := range 6 {
		g := <-results
		whole := g.err == nil && g.r.status == 200 && g.r.body == body
		failed := g.err != nil || g.r.status >= 500
		outcomes = append(outcomes, fmt.Sprintf("%d %t %q", g.r.status, whole, g.r.cs()))
		if !whole && !failed {
			t.Errorf("request %d: %d, %d of %d bytes, no error (Cache-Status %q)", i, g.r.status, len(g.r.body), len(body), g.r.cs())
		}
	}
	t.Logf("status, whole, Cache-Status: %s", strings.Join(outcomes, "; "))
	r := get(t, s, "/w")
	if r.status != 200 || r.body != body {
		t.Errorf("after the broken fill: %d, %d bytes (Cache-Status %q)", r.status, len(r.body), r.cs())
	}
	// The waiters collapsed again behind one of them: one more fetch.
	if n := fetches.Load(); n != 2 {
		t.Errorf("origin fetches = %d, want 2 (the broken fill and one for the 5 waiters)", n)
	}
}
