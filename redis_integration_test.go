package edge_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-edge/edge/internal/caddytest"
	"github.com/caddy-edge/edge/internal/redistest"
)

// Only one Caddy runs per process, so the second node of these tests is
// this test binary run again as TestRedisNodeProcess, which starts Caddy
// from the Caddyfile in EDGE_NODE_CADDYFILE, prints its ports and runs
// until its stdin closes.
const nodeEnv = "EDGE_NODE_CADDYFILE"

func TestRedisNodeProcess(t *testing.T) {
	cf := os.Getenv(nodeEnv)
	if cf == "" {
		t.Skip("the second Caddy node of the Redis tests, run by them")
	}
	s := caddytest.Start(t, cf)
	fmt.Printf("NODE-READY %d %s\n", s.HTTPPort, s.AdminAddr)
	io.Copy(io.Discard, os.Stdin)
}

// node is a Caddy, in this process or another.
type node struct {
	httpPort  int
	adminAddr string
	client    *http.Client
}

// startNodeProcess starts the second node and stops it when the test ends.
func startNodeProcess(t *testing.T, caddyfile string) *node {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRedisNodeProcess$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), nodeEnv+"="+caddyfile)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	ready := make(chan *node, 1)
	var out strings.Builder
	var omu sync.Mutex
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			omu.Lock()
			out.WriteString(line + "\n")
			omu.Unlock()
			var n node
			if _, err := fmt.Sscanf(line, "NODE-READY %d %s", &n.httpPort, &n.adminAddr); err == nil {
				ready <- &n
			}
		}
		cmd.Wait()
	}()
	select {
	case n := <-ready:
		n.client = &http.Client{Timeout: 30 * time.Second}
		return n
	case <-exited:
	case <-time.After(60 * time.Second):
	}
	omu.Lock()
	defer omu.Unlock()
	t.Fatalf("the second Caddy node did not start:\n%s", out.String())
	return nil
}

// get requests path on n with the shared Host, and returns the status,
// body and Cache-Status.
func (n *node) get(t *testing.T, path string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", n.httpPort, path), nil)
	req.Host = "shared.example"
	resp, err := n.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", path, err)
	}
	return resp.StatusCode, string(b), resp.Header.Get("Cache-Status")
}

// afterInvalidation GETs path on n until n no longer serves the purged body
// old from its memory tier, for at most invalidationBound, and returns the
// first other answer. Another node's purge reaches n's memory tier
// asynchronously, one network delay after the purge returns (Redis pushes
// the invalidation); until then n may serve old as a hit, without asking
// the origin.
func (n *node) afterInvalidation(t *testing.T, path, old string) (string, string) {
	t.Helper()
	deadline := time.Now().Add(invalidationBound)
	for {
		_, body, cs := n.get(t, path)
		if body != old || time.Now().After(deadline) {
			return body, cs
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// invalidationBound is how long a purge may take to reach another node's
// memory tier in these tests: measured 0.4-20 ms on a loaded machine.
const invalidationBound = time.Second

func (n *node) purge(t *testing.T, body string) {
	t.Helper()
	resp, err := n.client.Post("http://"+n.adminAddr+"/http_cache/purge", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("purge %s: %d %s", body, resp.StatusCode, b)
	}
}

func isHit(cacheStatus string) bool { return strings.Contains(cacheStatus, "; hit") }

// countingOrigin answers every path with its name and how many times it
// was asked for it, cacheable for ten minutes, tagged "grp".
func countingOrigin(t *testing.T) (*httptest.Server, func(path string) int64) {
	var mu sync.Mutex
	counts := map[string]*atomic.Int64{}
	counter := func(p string) *atomic.Int64 {
		mu.Lock()
		defer mu.Unlock()
		if counts[p] == nil {
			counts[p] = new(atomic.Int64)
		}
		return counts[p]
	}
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := counter(r.URL.Path).Add(1)
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Surrogate-Key", "grp")
		fmt.Fprintf(w, "%s #%d", r.URL.Path, n)
	}))
	t.Cleanup(origin.Close)
	return origin, func(p string) int64 { return counter(p).Load() }
}

func sharedCaddyfile(origin string, addrs []string, prefix string) string {
	return `
http://:{HTTP_PORT} {
	http_cache {
		store tiered {
			memory {
				max_size 16MiB
			}
			redis {
				address ` + strings.Join(addrs, " ") + `
				prefix ` + prefix + `
				timeout 100ms
			}
		}
	}
	reverse_proxy ` + strings.TrimPrefix(origin, "http://") + `
}
`
}

// TestRedisSharedByTwoNodes runs two Caddy nodes with a memory tier in
// front of one Redis: what one stores the other hits, what one purges is
// gone on the other (memory tier included), and a Redis outage only sends
// requests to the origin, until Redis is back.
func TestRedisSharedByTwoNodes(t *testing.T) {
	srv := redistest.Start(t)
	twoNodes(t, []string{srv.Addr}, srv)
}

// TestRedisClusterSharedByTwoNodes is the same against a three-node Redis
// Cluster.
func TestRedisClusterSharedByTwoNodes(t *testing.T) {
	nodes := redistest.Cluster(t, 3)
	twoNodes(t, []string{nodes[0].Addr, nodes[1].Addr, nodes[2].Addr}, nil)
}

func twoNodes(t *testing.T, addrs []string, srv *redistest.Server) {
	origin, count := countingOrigin(t)
	cf := sharedCaddyfile(origin.URL, addrs, "two:")
	sa := caddytest.Start(t, cf)
	a := &node{httpPort: sa.HTTPPort, adminAddr: sa.AdminAddr, client: sa.Client}
	b := startNodeProcess(t, cf)

	// Stored through A, a hit on B.
	if st, body, cs := a.get(t, "/a"); st != 200 || body != "/a #1" || isHit(cs) {
		t.Fatalf("A: first GET /a = %d %q (%s); want a miss from the origin", st, body, cs)
	}
	st, body, cs := b.get(t, "/a")
	if st != 200 || body != "/a #1" || !isHit(cs) {
		t.Fatalf("B: GET /a = %d %q (%s); want a hit on what A stored", st, body, cs)
	}
	// A's memory tier fills with its hits.
	for range 3 {
		if _, body, cs := a.get(t, "/a"); body != "/a #1" || !isHit(cs) {
			t.Fatalf("A: GET /a = %q (%s); want a hit", body, cs)
		}
	}

	// Purged through B: a miss on A, its memory tier included, once the
	// invalidation has crossed Redis (README: one network delay; 1 s here).
	b.purge(t, `{"url": "http://shared.example/a"}`)
	if body, cs := a.afterInvalidation(t, "/a", "/a #1"); body != "/a #2" || isHit(cs) {
		t.Fatalf("A: GET /a after B's purge = %q (%s); want a miss, the origin's second answer", body, cs)
	}
	// And by tag, through A this time: gone on B.
	b.get(t, "/a")
	b.get(t, "/a")
	a.purge(t, `{"tag": "grp"}`)
	if body, cs := b.afterInvalidation(t, "/a", "/a #2"); body != "/a #3" || isHit(cs) {
		t.Fatalf("B: GET /a after A's tag purge = %q (%s); want the origin's third answer", body, cs)
	}
	if count("/a") != 3 {
		t.Errorf("origin saw /a %d times, want 3", count("/a"))
	}
	if srv == nil {
		return
	}

	// Redis stops during traffic: every request is answered from the
	// origin, none waits long; then Redis comes back and the cache works
	// again, without a restart of Caddy.
	var (
		wg      sync.WaitGroup
		stop    atomic.Bool
		worst   atomic.Int64
		served  atomic.Int64
		failure atomic.Value
	)
	for w := range 4 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				path := fmt.Sprintf("/outage/%d/%d", w, i%20)
				start := time.Now()
				st, body, _ := a.get(t, path)
				d := time.Since(start)
				if d.Nanoseconds() > worst.Load() {
					worst.Store(d.Nanoseconds())
				}
				if st != 200 || !strings.HasPrefix(body, path+" #") {
					failure.Store(fmt.Sprintf("GET %s = %d %q", path, st, body))
					return
				}
				served.Add(1)
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	srv.Stop()
	time.Sleep(1500 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if f := failure.Load(); f != nil {
		t.Fatalf("during the outage: %s", f)
	}
	t.Logf("%d requests served around the outage; the slowest took %v (store timeout 100ms)",
		served.Load(), time.Duration(worst.Load()))
	// The store gives up after 100ms; a request makes at most a few store
	// calls. A second allows for a loaded test machine, and still catches
	// a dial or retry loop (rueidis's default dial timeout is 5s).
	if w := time.Duration(worst.Load()); w > time.Second {
		t.Errorf("a request took %v while redis was down", w)
	}

	srv.Restart()
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; ; i++ {
		path := fmt.Sprintf("/after/%d", i)
		a.get(t, path)
		if _, _, cs := b.get(t, path); isHit(cs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no hit within 15s of redis coming back")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// BenchmarkRedisLargeBodyRSS sends a 1 GiB response through a real Caddy
// with the redis store (a miss, streamed to the client and into Redis),
// then again (a hit, streamed from Redis chunk by chunk), and reports by
// how much the process's RSS grew above what it was before (rss-growth-MiB,
// the largest of samples every 20 ms; the process also holds the origin
// and the client, which stream with small buffers):
//
//	go test -run '^$' -bench RedisLargeBodyRSS -benchtime 1x .
func BenchmarkRedisLargeBodyRSS(b *testing.B) {
	srv := redistest.Start(b)
	largeBodyRSS(b, `store redis {
			address `+srv.Addr+`
			max_object_size 2GiB
			timeout 2s
		}`)
}
