package cache_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-edge/edge/internal/caddytest"
	"github.com/caddy-edge/edge/internal/redistest"
)

// The body size and the concurrent clients of BenchmarkCollapsedLargeBody.
const collapsedSize, collapsedClients = 4 << 20, 100

// BenchmarkCollapsedLargeBody sends 100 concurrent GETs of one new key
// whose 4 MiB body the origin sends in two halves, the second 300 ms after
// the first, through a real Caddy over loopback, and reports what the
// waiting requests cost and waited: origin requests per key
// (origin-reqs/op), and the median and slowest time to the first byte of
// the 100 responses (ttfb-p50-ms, ttfb-max-ms) and to their last
// (last-byte-max-ms). With collapse_timeout above the body's time
// (10s, the default) the waiting requests once waited for the whole body;
// below it (100ms) each went to the origin on its own. The body comes with
// a Content-Length (body=sized) or chunked (body=chunked), which waiting
// requests did not follow before the fifteenth session, into the memory
// store or a Redis store (store=redis), whose bodies they did not follow
// before the eighteenth.
//
//	go test -run '^$' -bench CollapsedLargeBody -benchtime 5x ./cache/
func BenchmarkCollapsedLargeBody(b *testing.B) {
	if testing.Short() {
		b.Skip("loopback load benchmark")
	}
	var originReqs atomic.Int64
	half := make([]byte, collapsedSize/2)
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		originReqs.Add(1)
		w.Header().Set("Cache-Control", "max-age=600")
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", strconv.Itoa(collapsedSize))
		}
		w.Write(half)
		w.(http.Flusher).Flush()
		select {
		case <-time.After(300 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		w.Write(half)
	}))
	b.Cleanup(o.Close)
	for _, st := range []string{"memory", "redis"} {
		for _, bt := range []struct{ body, query string }{{"sized", ""}, {"chunked", "?chunked=1"}} {
			for _, timeout := range []string{"10s", "100ms"} {
				b.Run("store="+st+"/body="+bt.body+"/collapse_timeout="+timeout, func(b *testing.B) {
					storeCfg := ""
					if st == "redis" {
						storeCfg = "store redis {\n\t\t\taddress " + redistest.Start(b).Addr + "\n\t\t}"
					}
					benchCollapsed(b, o.Listener.Addr().String(), timeout, storeCfg, bt.query, &originReqs)
				})
			}
		}
	}
}

func benchCollapsed(b *testing.B, origin, timeout, storeCfg, query string, originReqs *atomic.Int64) {
	b.Helper()
	s := caddytest.Start(b, `
http://localhost:{HTTP_PORT} {
	http_cache {
		collapse_timeout `+timeout+`
		`+storeCfg+`
	}
	reverse_proxy `+origin+` {
		flush_interval -1
	}
}
`)
	tr := &http.Transport{MaxIdleConnsPerHost: collapsedClients, MaxConnsPerHost: collapsedClients}
	b.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}
	var firsts, lasts []time.Duration
	originReqs.Store(0)
	for i := range b.N {
		url := s.URL(fmt.Sprintf("/big-%s-%d%s", timeout, i, query))
		var wg sync.WaitGroup
		var mu sync.Mutex
		start := time.Now()
		for range collapsedClients {
			wg.Go(func() {
				resp, err := c.Get(url)
				if err != nil {
					b.Error(err)
					return
				}
				defer resp.Body.Close()
				var p [1]byte
				if _, err := io.ReadFull(resp.Body, p[:]); err != nil {
					b.Error(err)
					return
				}
				first := time.Since(start)
				n, err := io.Copy(io.Discard, resp.Body)
				if err != nil || n != collapsedSize-1 {
					b.Errorf("body of %d bytes (%v), want %d", n+1, err, collapsedSize)
				}
				mu.Lock()
				firsts, lasts = append(firsts, first), append(lasts, time.Since(start))
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	sort.Slice(firsts, func(i, j int) bool { return firsts[i] < firsts[j] })
	sort.Slice(lasts, func(i, j int) bool { return lasts[i] < lasts[j] })
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(float64(originReqs.Load())/float64(b.N), "origin-reqs/op")
	b.ReportMetric(ms(firsts[len(firsts)/2]), "ttfb-p50-ms")
	b.ReportMetric(ms(firsts[len(firsts)-1]), "ttfb-max-ms")
	b.ReportMetric(ms(lasts[len(lasts)-1]), "last-byte-max-ms")
}
