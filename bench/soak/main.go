// Command soak runs bin/caddy with the plugin for a few minutes under a
// mixed load on loopback (hits, misses that fill and evict, range
// requests, concurrent requests for new keys whose bodies arrive slowly,
// with or without a length, that collapse and follow the body, purges,
// config reloads and geofilter denials) and reports the errors, and Caddy's resident memory and goroutines (from its admin
// /metrics) at the start, every 30 s and at the end.
//
//	go run ./bench/soak -caddy bin/caddy -duration 3m
//
// `make soak` builds bin/caddy first. Every server listens on 127.0.0.1;
// the load is bounded by -workers and -duration. The exit status is 1 when
// a request got a wrong answer.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-edge/edge/internal/mmdbtest"
)

func main() { os.Exit(run()) }

// run runs the soak and returns the exit code, once its deferred calls
// (Caddy stopped) have run: os.Exit in their place left Caddy running on
// the soak's ports, and the next soak talked to it.
func run() int {
	caddyBin := flag.String("caddy", "bin/caddy", "the Caddy binary with the plugin")
	duration := flag.Duration("duration", 3*time.Minute, "how long the load runs")
	workers := flag.Int("workers", 8, "concurrent clients")
	sitePort := flag.Int("port", 18401, "Caddy's site port on 127.0.0.1")
	adminPort := flag.Int("admin", 18419, "Caddy's admin port on 127.0.0.1")
	reloadEvery := flag.Duration("reload", 5*time.Second, "interval between config reloads")
	purgeEvery := flag.Duration("purge", time.Second, "interval between purges")
	flag.Parse()
	log.SetFlags(0)

	dir, err := os.MkdirTemp("", "soak")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// The origin: every body is its path repeated to the size asked for.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	var originRequests atomic.Int64
	origin := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		originRequests.Add(1)
		size, _ := strconv.Atoi(r.URL.Query().Get("size"))
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("Content-Type", "text/plain")
		if r.URL.Query().Get("slow") != "" && r.Header.Get("Range") == "" {
			// Half the body, then the rest 30 ms later: the requests that
			// wait for it follow it as it arrives. Without a length when
			// chunked is set.
			body := bodyFor(r.URL.Path, size)
			w.Header().Set("ETag", etagOf(r.URL.Path))
			if r.URL.Query().Get("chunked") == "" {
				w.Header().Set("Content-Length", strconv.Itoa(size))
			}
			w.Write(body[:size/2])
			w.(http.Flusher).Flush()
			time.Sleep(30 * time.Millisecond)
			w.Write(body[size/2:])
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(bodyFor(r.URL.Path, size))) // honours Range
	})}
	go origin.Serve(ln)
	defer origin.Close()

	country := filepath.Join(dir, "country.mmdb")
	if err := os.WriteFile(country, mmdbtest.BuildCountry(map[string]string{"198.51.100.0/24": "CN", "127.0.0.0/8": "DE"}), 0o644); err != nil {
		log.Fatal(err)
	}
	site := fmt.Sprintf("127.0.0.1:%d", *sitePort)
	adminAddr := fmt.Sprintf("127.0.0.1:%d", *adminPort)
	config := func(gen int) string {
		return fmt.Sprintf(`{
	admin %s
	auto_https off
	persist_config off
	servers {
		trusted_proxies static 127.0.0.1/32
	}
}
http://%s {
	header X-Gen %d
	geofilter {
		db %s
		deny country CN
	}
	http_cache {
		store memory {
			max_size 64MiB
		}
	}
	# Caddy's reverse_proxy keeps the idle origin connections of a
	# replaced config until this idle timeout (default 2m): 10s, so that
	# the end sample, taken 15 s after the load, shows what stays.
	reverse_proxy %s {
		transport http {
			keepalive 10s
		}
	}
}
`, adminAddr, site, gen, country, ln.Addr())
	}
	cfgPath := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(config(0)), 0o644); err != nil {
		log.Fatal(err)
	}
	for _, addr := range []string{site, adminAddr} {
		// A Caddy left on the soak's ports would answer in place of the
		// one started here.
		l, err := net.Listen("tcp", addr)
		if err != nil {
			log.Fatalf("%s is taken (a Caddy left running by an earlier soak?): %v", addr, err)
		}
		l.Close()
	}
	cmd := exec.Command(*caddyBin, "run", "--config", cfgPath, "--adapter", "caddyfile")
	caddyLog, err := os.Create(filepath.Join(dir, "caddy.log"))
	if err != nil {
		log.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = caddyLog, caddyLog
	if err := cmd.Start(); err != nil {
		log.Fatalf("starting %s: %v", *caddyBin, err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	}()

	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: *workers * 2}}
	adminClient := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := client.Get("http://" + site + "/hot/0?size=4096"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Since(start) > 30*time.Second {
			log.Printf("Caddy did not answer within 30 s; its log is %s", caddyLog.Name())
			return 1
		}
	}
	sample := func(when string) {
		g, rss := metrics(adminClient, adminAddr)
		log.Printf("%-8s Caddy: %4.0f goroutines, RSS %6.1f MiB; origin requests so far %d", when, g, rss/(1<<20), originRequests.Load())
	}
	// Warm-up: the hot keys and the big objects are stored.
	for i := range 100 {
		get(client, fmt.Sprintf("http://%s/hot/%d?size=4096", site, i), "")
	}
	for i := range 8 {
		get(client, fmt.Sprintf("http://%s/big/%d?size=%d", site, i, 1<<20), "")
	}
	sample("start")

	var (
		counts   [kinds]atomic.Int64
		wrong    [kinds]atomic.Int64
		connErrs atomic.Int64 // no response at all (a connection dropped during a config swap)
		cuts     atomic.Int64 // collapsed responses cut short, of a body that outgrew the store
		cutsKept atomic.Int64 // ... of one it could hold (a bound on bodies being written)
		followed atomic.Int64 // collapsed responses served from another request's fetch
		collSeq  atomic.Int64
		mu       sync.Mutex
		examples []string
		missSeq  atomic.Int64
	)
	report := func(k int, format string, args ...any) {
		wrong[k].Add(1)
		mu.Lock()
		if len(examples) < 20 {
			examples = append(examples, kindNames[k]+": "+fmt.Sprintf(format, args...))
		}
		mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	var wg sync.WaitGroup
	for w := range *workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 42))
			for ctx.Err() == nil {
				k := pick(r)
				counts[k].Add(1)
				var (
					path, rng, xff, inm string
					wantCode            = 200
				)
				switch k {
				case hit:
					path = fmt.Sprintf("/hot/%d?size=4096", r.IntN(100))
				case miss:
					path = fmt.Sprintf("/miss/%d?size=%d", missSeq.Add(1), 1024+r.IntN(16<<10))
				case rangeReq:
					path = fmt.Sprintf("/big/%d?size=%d", r.IntN(16), 1<<20) // half of them not stored yet
					a := r.IntN(1 << 20)
					rng = fmt.Sprintf("bytes=%d-%d", a, min(a+r.IntN(64<<10), 1<<20-1))
					wantCode = 206
				case collapsed:
					n := collSeq.Add(1)
					path = collapsedPath(n)
					// In each group, one request is conditional on the
					// origin's ETag (a 304, whether it leads the fetch,
					// follows it or hits), and one on another.
					switch n % 6 {
					case 1:
						inm, wantCode = etagOf(path), 304
					case 4:
						inm = `"other"`
					}
				case denied:
					path = "/hot/1?size=4096"
					xff = "198.51.100.7"
					wantCode = 403
				}
				req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+site+path, nil)
				if rng != "" {
					req.Header.Set("Range", rng)
				}
				if xff != "" {
					req.Header.Set("X-Forwarded-For", xff)
				}
				if inm != "" {
					req.Header.Set("If-None-Match", inm)
				}
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						connErrs.Add(1)
					}
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil && k == collapsed && resp.StatusCode == 200 && ctx.Err() == nil {
					// A follower of a body that outgrew the store (or
					// that the store gave up) is cut: an incomplete
					// response, never a complete wrong one.
					if sizeOf(path) > 8<<20 {
						cuts.Add(1)
					} else {
						cutsKept.Add(1)
					}
					if full := bodyFor(strings.SplitN(path, "?", 2)[0], sizeOf(path)); !bytes.HasPrefix(full, body) {
						report(k, "%s: a cut body of %d bytes that is not the start of the origin's", path, len(body))
					}
					continue
				}
				if err != nil {
					if ctx.Err() == nil {
						report(k, "%s: reading the body: %v", path, err)
					}
					continue
				}
				if resp.StatusCode != wantCode {
					report(k, "%s (Range %q): status %d, want %d (Cache-Status %q)", path, rng, resp.StatusCode, wantCode, resp.Header.Get("Cache-Status"))
					continue
				}
				if wantCode == 403 {
					continue
				}
				if wantCode == 304 {
					if len(body) != 0 {
						report(k, "%s: a 304 with a body of %d bytes", path, len(body))
					}
					continue
				}
				if k == collapsed && strings.Contains(resp.Header.Get("Cache-Status"), "; collapsed") && !strings.Contains(resp.Header.Get("Cache-Status"), "collapsed=?0") {
					followed.Add(1)
				}
				full := bodyFor(strings.SplitN(path, "?", 2)[0], sizeOf(path))
				want := full
				if rng != "" {
					var a, b int
					fmt.Sscanf(rng, "bytes=%d-%d", &a, &b)
					want = full[a : b+1]
				}
				if !bytes.Equal(body, want) {
					report(k, "%s (Range %q): a body of %d bytes that is not the origin's (%d)", path, rng, len(body), len(want))
				}
			}
		})
	}
	// Purges and reloads, and a sample every 30 s.
	wg.Go(func() {
		purgeT := time.NewTicker(*purgeEvery)
		reloadT := time.NewTicker(*reloadEvery)
		sampleT := time.NewTicker(30 * time.Second)
		defer purgeT.Stop()
		defer reloadT.Stop()
		defer sampleT.Stop()
		gen := 0
		for {
			select {
			case <-ctx.Done():
				return
			case <-purgeT.C:
				counts[purge].Add(1)
				body := fmt.Sprintf(`{"url": "http://%s/hot/%d?size=4096"}`, site, rand.IntN(100))
				if code, msg, err := post(adminClient, "http://"+adminAddr+"/http_cache/purge", "application/json", body); err != nil || code != 200 {
					report(purge, "%d %s %v", code, msg, err)
				}
			case <-reloadT.C:
				gen++
				counts[reload].Add(1)
				code, msg, err := post(adminClient, "http://"+adminAddr+"/load", "text/caddyfile", config(gen))
				for try := 0; err != nil && try < 3; try++ { // the replaced admin server's socket
					code, msg, err = post(adminClient, "http://"+adminAddr+"/load", "text/caddyfile", config(gen))
				}
				if err != nil || code != 200 {
					report(reload, "%d %s %v", code, msg, err)
				}
			case <-sampleT.C:
				sample("")
			}
		}
	})
	wg.Wait()
	sample("load end")
	time.Sleep(15 * time.Second) // the old configs' idle connections close
	sample("end")

	total, bad := int64(0), int64(0)
	var parts []string
	for k := range kinds {
		total += counts[k].Load()
		bad += wrong[k].Load()
		parts = append(parts, fmt.Sprintf("%s %d (wrong %d)", kindNames[k], counts[k].Load(), wrong[k].Load()))
	}
	log.Printf("%d requests in %v with %d workers: %s", total, *duration, *workers, strings.Join(parts, ", "))
	log.Printf("connections dropped unanswered (config swaps): %d; origin requests: %d", connErrs.Load(), originRequests.Load())
	log.Printf("collapsed: %d served from another request's fetch; cut short: %d of bodies that outgrew the store, %d of others", followed.Load(), cuts.Load(), cutsKept.Load())
	for _, e := range examples {
		log.Print("  ", e)
	}
	if bad > 0 {
		log.Printf("FAIL: %d wrong answers", bad)
		return 1
	}
	log.Print("PASS: no wrong answer")
	return 0
}

const (
	hit = iota
	miss
	rangeReq
	collapsed
	denied
	purge
	reload
	kinds
)

var kindNames = [kinds]string{"hits", "misses", "ranges", "collapsed", "denied", "purges", "reloads"}

// pick draws a request kind: 65 % hits, 15 % misses, 10 % ranges, 5 %
// collapsed, 5 % denied.
func pick(r *rand.Rand) int {
	switch n := r.IntN(100); {
	case n < 65:
		return hit
	case n < 85:
		return miss
	case n < 90:
		return rangeReq
	case n < 95:
		return collapsed
	default:
		return denied
	}
}

// collapsedPath is the path of the n-th collapsed request: six in a row
// share a new key, whose body arrives slowly (with an ETag). Its size is 64 to 512 KiB,
// one key in two has no Content-Length, and one in 32 has 9 MiB without
// a length: more than the 64 MiB store takes (8 MiB), so that it outgrows
// the store while requests follow it.
func collapsedPath(n int64) string {
	group := n / 6
	size, chunked := int(64<<10*(1+group%8)), group%2 == 1
	if group%32 == 31 {
		size = 9 << 20
	}
	path := fmt.Sprintf("/coll/%d?size=%d&slow=1", group, size)
	if chunked {
		path += "&chunked=1"
	}
	return path
}

// etagOf is the origin's ETag for path (a path with its query, or not).
func etagOf(path string) string {
	p, _, _ := strings.Cut(path, "?")
	return `"` + p + `"`
}

// bodyFor is the origin's body for path: the path repeated to size bytes.
func bodyFor(path string, size int) []byte {
	if size <= 0 {
		return nil
	}
	return bytes.Repeat([]byte(path+"|"), size/(len(path)+1)+1)[:size]
}

func sizeOf(path string) int {
	_, q, _ := strings.Cut(path, "size=")
	q, _, _ = strings.Cut(q, "&")
	n, _ := strconv.Atoi(q)
	return n
}

func get(c *http.Client, url, rng string) {
	req, _ := http.NewRequest("GET", url, nil)
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	if resp, err := c.Do(req); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func post(c *http.Client, url, ctype, body string) (int, string, error) {
	resp, err := c.Post(url, ctype, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}

// metrics reads go_goroutines and process_resident_memory_bytes from
// Caddy's admin /metrics.
func metrics(c *http.Client, admin string) (goroutines, rss float64) {
	resp, err := c.Get("http://" + admin + "/metrics")
	if err != nil {
		log.Printf("reading /metrics: %v", err)
		return -1, -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			continue
		}
		switch name {
		case "go_goroutines":
			goroutines = f
		case "process_resident_memory_bytes":
			rss = f
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		log.Printf("reading /metrics: %v", err)
	}
	return goroutines, rss
}
