package cache_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache"
	"github.com/caddy-edge/edge/internal/caddytest"
)

// A complete stored entry answers Range with 206 or 416, and
// If-Range against its ETag. A Range request on a miss goes to the origin
// untouched and starts one background fill of the whole response, so that
// a client that only ever sends Range (a video player) gets hits.
func TestRangeRequests(t *testing.T) {
	const body = "0123456789abcdefghij"
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", `"r1"`)
		w.Header().Set("Content-Type", "text/plain")
		http.ServeContent(w, r, "", timeZero, strings.NewReader(body))
	})
	s := startCache(t, o, "")

	r := get(t, s, "/r", "Range", "bytes=0-3", "If-Range", `"r1"`)
	expect(t, "range miss", r, 206, "0123", "uncacheable", "fwd=uri-miss; fwd-status=206", "detail=range-fill")
	if cr := r.header.Get("Content-Range"); cr != "bytes 0-3/20" {
		t.Errorf("range miss Content-Range %q", cr)
	}
	waitFor(t, "the range fill", func() bool { return o.n.Load() == 2 && cache.Flights() == 0 })
	var ranged, full int
	for _, req := range o.requests() {
		switch {
		case req.Method == http.MethodGet && req.Header.Get("Range") == "bytes=0-3" && req.Header.Get("If-Range") == `"r1"`:
			ranged++ // the client's request, untouched
		case req.Method == http.MethodGet && req.Header.Get("Range") == "" && req.Header.Get("If-Range") == "":
			full++ // the fill
		default:
			t.Errorf("origin got %s with Range %q If-Range %q", req.Method, req.Header.Get("Range"), req.Header.Get("If-Range"))
		}
	}
	if ranged != 1 || full != 1 {
		t.Errorf("origin got %d range and %d full GETs, want 1 and 1", ranged, full)
	}

	r = get(t, s, "/r", "Range", "bytes=2-5")
	expect(t, "range hit", r, 206, "2345", "hit", "hit")
	if cr := r.header.Get("Content-Range"); cr != "bytes 2-5/20" {
		t.Errorf("Content-Range %q", cr)
	}
	if r.header.Get("ETag") != `"r1"` || r.header.Get("Age") == "" {
		t.Errorf("206 lost the stored fields: %v", r.header)
	}
	expect(t, "suffix range", get(t, s, "/r", "Range", "bytes=-3"), 206, "hij", "hit", "hit")
	expect(t, "unsatisfiable", get(t, s, "/r", "Range", "bytes=100-200"), 416, "*", "hit", "hit")
	expect(t, "If-Range match", get(t, s, "/r", "Range", "bytes=0-1", "If-Range", `"r1"`), 206, "01", "hit", "hit")
	expect(t, "If-Range mismatch", get(t, s, "/r", "Range", "bytes=0-1", "If-Range", `"old"`), 200, body, "hit", "hit")
	expect(t, "whole", get(t, s, "/r"), 200, body, "hit", "hit")
	if n := o.n.Load(); n != 2 {
		t.Errorf("origin got %d requests, want 2", n)
	}
}

// A Range miss whose response turns out not storable does not start a
// fill again and again: the key is remembered as hit-for-miss, and the
// next ranges go to the origin alone. Nor does a Range request that says
// no-store start one.
func TestRangeMissUncacheableDoesNotLoopFills(t *testing.T) {
	const body = "0123456789abcdefghij"
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		http.ServeContent(w, r, "", timeZero, strings.NewReader(body))
	})
	s := startCache(t, o, "hit_for_miss_ttl 1h")

	expect(t, "first range", get(t, s, "/u", "Range", "bytes=0-3"), 206, "0123", "uncacheable", "detail=range-fill")
	waitFor(t, "the range fill", func() bool { return o.n.Load() == 2 && cache.Flights() == 0 })
	for i := range 3 {
		r := get(t, s, "/u", "Range", "bytes=4-7")
		expect(t, fmt.Sprint("range ", i), r, 206, "4567", "uncacheable", "fwd=uri-miss; fwd-status=206")
		if strings.Contains(r.cs(), "range-fill") {
			t.Errorf("range %d started another fill: %q", i, r.cs())
		}
	}
	if n := o.n.Load(); n != 5 {
		t.Errorf("origin got %d requests, want 5 (2 for the first range, then 1 each)", n)
	}

	r := get(t, s, "/n", "Range", "bytes=0-3", "Cache-Control", "no-store")
	expect(t, "no-store range", r, 206, "0123", "uncacheable", "detail=range")
	if strings.Contains(r.cs(), "range-fill") {
		t.Errorf("a no-store range started a fill: %q", r.cs())
	}
	if n := o.n.Load(); n != 6 || cache.Flights() != 0 {
		t.Errorf("origin got %d requests, %d in flight, want 6 and 0", n, cache.Flights())
	}
}

// A range fill stores its response under the variant of the request that
// started it (Vary), as a miss would: the same variant's next ranges are
// hits, another variant's range misses and fills its own.
func TestRangeFillFollowsVary(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		http.ServeContent(w, r, "", timeZero, strings.NewReader("lang="+r.Header.Get("Accept-Language")+"-0123456789"))
	})
	s := startCache(t, o, "")
	fill := func(lang string, origin int64) {
		t.Helper()
		expect(t, lang+" range miss", get(t, s, "/v", "Range", "bytes=0-6", "Accept-Language", lang), 206, "lang="+lang, "uncacheable", "detail=range-fill")
		waitFor(t, "the "+lang+" fill", func() bool { return o.n.Load() == origin && cache.Flights() == 0 })
	}
	fill("en", 2)
	expect(t, "en range hit", get(t, s, "/v", "Range", "bytes=8-10", "Accept-Language", "en"), 206, "012", "hit", "hit")
	fill("fr", 4)
	expect(t, "fr range hit", get(t, s, "/v", "Range", "bytes=0-6", "Accept-Language", "fr"), 206, "lang=fr", "hit", "hit")
	expect(t, "en whole", get(t, s, "/v", "Accept-Language", "en"), 200, "lang=en-0123456789", "hit", "hit")
	if n := o.n.Load(); n != 4 {
		t.Errorf("origin got %d requests, want 4", n)
	}
}

// A range fill stops at max_object_size: it does not download a body it
// will not store, and the key becomes hit-for-miss.
func TestRangeFillBoundedByMaxObjectSize(t *testing.T) {
	fillStopped := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if r.Header.Get("Range") != "" {
			w.Header().Set("Content-Range", "bytes 0-3/1073741824")
			w.WriteHeader(http.StatusPartialContent)
			io.WriteString(w, "xxxx")
			return
		}
		// The fill: an endless chunked body, until the cache hangs up.
		chunk := strings.Repeat("x", 1024)
		for i := 0; i < 1<<20; i++ {
			if _, err := io.WriteString(w, chunk); err != nil {
				break
			}
			w.(http.Flusher).Flush()
			if r.Context().Err() != nil {
				break
			}
		}
		close(fillStopped)
	})
	s := startCache(t, o, "max_object_size 16KiB\nhit_for_miss_ttl 1h")
	expect(t, "range miss", get(t, s, "/big", "Range", "bytes=0-3"), 206, "xxxx", "uncacheable", "detail=range-fill")
	select {
	case <-fillStopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the fill was not stopped past max_object_size")
	}
	waitFor(t, "the range fill to land", func() bool { return cache.Flights() == 0 })
	expect(t, "next range", get(t, s, "/big", "Range", "bytes=0-3"), 206, "xxxx", "uncacheable", "detail=range")
	if n := o.n.Load(); n != 3 {
		t.Errorf("origin got %d requests, want 3", n)
	}
}

// The admin API purges by URL (every variant), prefix and tag, and reports
// the stores; purges are counted in the metrics.
func TestAdminPurgeAndStats(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if strings.HasPrefix(r.URL.Path, "/v") {
			w.Header().Set("Vary", "Accept-Language")
		}
		w.Header().Set("Cache-Tag", "all, p"+strings.TrimPrefix(r.URL.Path, "/"))
		w.Header().Set("Surrogate-Key", "sk")
		io.WriteString(w, r.URL.Path)
	})
	s := startCache(t, o, "")
	fill := func(paths ...string) {
		for _, p := range paths {
			get(t, s, p, "Accept-Language", "en")
			get(t, s, p, "Accept-Language", "fr")
			expect(t, "filled "+p, get(t, s, p, "Accept-Language", "en"), 200, p, "hit", "hit")
		}
	}
	purge := func(body string, want int) {
		t.Helper()
		resp, err := http.Post(s.AdminURL("/http_cache/purge"), "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(b), fmt.Sprintf(`"purged":%d`, want)) {
			t.Errorf("purge %s: %d %s, want purged %d", body, resp.StatusCode, b, want)
		}
	}
	miss := func(p string) {
		t.Helper()
		expect(t, "purged "+p, get(t, s, p, "Accept-Language", "en"), 200, p, "miss", "fwd=uri-miss")
	}

	fill("/v1", "/img/a", "/img/b", "/t")
	before := cache.Purged("url")
	purge(`{"url": "`+s.URL("/v1")+`"}`, 3) // the vary marker and two variants
	if d := cache.Purged("url") - before; d != 3 {
		t.Errorf("caddy_http_cache_purged_total{kind=url} grew by %v, want 3", d)
	}
	miss("/v1")
	purge(`{"prefix": "`+s.URL("/img/")+`"}`, 2)
	miss("/img/a")
	miss("/img/b")
	purge(`{"tag": "pt"}`, 1)
	miss("/t")
	purge(`{"tag": "sk"}`, 4)

	resp, err := http.Get(s.AdminURL("/http_cache/stats"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"name":"memory/default"`) || !strings.Contains(string(b), `"capacity":268435456`) {
		t.Errorf("stats: %d %s", resp.StatusCode, b)
	}

	for _, tt := range []struct {
		method, path, body string
		status             int
	}{
		{"GET", "/http_cache/purge", "", 405},
		{"POST", "/http_cache/stats", "", 405},
		{"POST", "/http_cache/purge", `{"url": `, 400},
		{"POST", "/http_cache/purge", `{}`, 400},
		{"POST", "/http_cache/purge", `{"url": "/relative"}`, 400},
		{"POST", "/http_cache/purge", `{"url": "http://a/", "tag": "x"}`, 400},
		{"POST", "/http_cache/purge", `{"bogus": "x"}`, 400},
	} {
		req, _ := http.NewRequest(tt.method, s.AdminURL(tt.path), strings.NewReader(tt.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s %s %s: %d, want %d", tt.method, tt.path, tt.body, resp.StatusCode, tt.status)
		}
	}
}

// Purging is not possible through the site: PURGE is just another unsafe
// method passed to the origin (and invalidates like any unsafe method
// only if the origin says it succeeded).
func TestNoPurgeThroughTheSite(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(w, "no", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "kept")
	})
	s := startCache(t, o, "")
	get(t, s, "/k")
	expect(t, "PURGE", do(t, s, "PURGE", "/k"), 405, "*", "bypass", "fwd=method")
	expect(t, "still stored", get(t, s, "/k"), 200, "kept", "hit", "hit")
}

// Entries survive a config reload, and the request counters keep counting.
func TestEntriesSurviveReload(t *testing.T) {
	o := newOrigin(t, serve("durable", "Cache-Control", "max-age=600"))
	s := startCache(t, o, "")
	hits := cache.Requests("hit")
	expect(t, "fill", get(t, s, "/d"), 200, "durable", "miss", "stored")
	expect(t, "hit before", get(t, s, "/d"), 200, "durable", "hit", "hit")
	// The new config marks its responses, so that the hit is known to
	// come from it and not from the old server still shutting down.
	reload(t, s, strings.Replace(siteConfig(o, "default_ttl 1m\nsort_query"), "\thttp_cache", "\theader X-Config new\n\thttp_cache", 1))
	var r result
	waitFor(t, "the new config", func() bool {
		r = get(t, s, "/d")
		return r.header.Get("X-Config") == "new"
	})
	expect(t, "hit after reload", r, 200, "durable", "hit", "hit")
	if d := cache.Requests("hit") - hits; d < 2 {
		t.Errorf("caddy_http_cache_requests_total{result=hit} grew by %v, want at least 2", d)
	}
	if n := o.n.Load(); n != 1 {
		t.Errorf("origin got %d requests, want 1", n)
	}
	// /metrics of the admin API has our collectors.
	b := scrapeMetrics(t, s)
	for _, want := range []string{`caddy_http_cache_requests_total{result="hit"}`, `caddy_http_cache_entries{store="memory/default"} 1`, "caddy_http_cache_origin_requests_total",
		`caddy_http_cache_store_lookups_total{result="hit",store="memory/default"}`, `caddy_http_cache_evictions_total{store="memory/default"} 0`,
		`caddy_http_cache_store_errors_total{store="memory/default"} 0`} {
		if !strings.Contains(b, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// Two sites that name the same store share its entries.
func TestSitesShareANamedStore(t *testing.T) {
	o := newOrigin(t, serve("shared", "Cache-Control", "max-age=600"))
	s := startCache(t, o, "")
	reload(t, s, `
http://localhost:{HTTP_PORT} {
	http_cache {
		store memory {
			name shared
		}
		key /same{http.request.uri.path}
	}
	reverse_proxy `+o.addr()+`
}
http://127.0.0.1:{HTTP_PORT} {
	http_cache {
		store memory {
			name shared
		}
		key /same{http.request.uri.path}
	}
	reverse_proxy `+o.addr()+`
}
`)
	// A response stored through site 1 is a hit on site 2. A new path per
	// try: right after the reload the old config may still answer.
	site2 := func(p string) string { return strings.Replace(s.URL(p), "localhost", "127.0.0.1", 1) }
	i := 0
	waitFor(t, "a hit on site 2 of what site 1 stored", func() bool {
		i++
		p := fmt.Sprintf("/x%d", i)
		if r := get(t, s, p); !strings.Contains(r.cs(), "stored") {
			return false
		}
		r, err := s.Client.Get(site2(p))
		if err != nil {
			return false
		}
		r.Body.Close()
		return strings.Contains(r.Header.Get("Cache-Status"), "; hit")
	})
}

// Bad input from the origin: a body shorter than its Content-Length, and a
// connection reset mid-body, are never stored; the next request is a miss
// that gets the full body.
func TestBrokenOriginBodiesAreNeverStored(t *testing.T) {
	for _, mode := range []string{"short-content-length", "reset-mid-chunked"} {
		t.Run(mode, func(t *testing.T) {
			var broken atomic.Bool
			broken.Store(true)
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				if !broken.Load() {
					w.Header().Set("Cache-Control", "max-age=60")
					io.WriteString(w, "the full body")
					return
				}
				conn, buf, err := http.NewResponseController(w).Hijack()
				if err != nil {
					t.Error(err)
					return
				}
				defer conn.Close()
				if mode == "short-content-length" {
					fmt.Fprint(buf, "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 100\r\n\r\nthe fu")
				} else {
					fmt.Fprint(buf, "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nthe fu\r\n")
				}
				buf.Flush()
				if tc, ok := conn.(*net.TCPConn); ok {
					tc.SetLinger(0) // reset, not a clean close
				}
			})
			s := startCache(t, o, "")
			resp, err := s.Client.Get(s.URL("/broken"))
			if err == nil {
				b, rerr := io.ReadAll(resp.Body)
				resp.Body.Close()
				if rerr == nil && string(b) == "the full body" {
					t.Fatalf("broken origin body arrived whole?")
				}
			}
			broken.Store(false)
			expect(t, "after broken body", get(t, s, "/broken"), 200, "the full body", "miss", "fwd=uri-miss", "stored")
			expect(t, "then a hit", get(t, s, "/broken"), 200, "the full body", "hit", "hit")
		})
	}
}

// Bad input from the origin: malformed and duplicated Cache-Control,
// invalid dates, huge headers: never a crash, never a wrong hit.
func TestMalformedOriginHeaders(t *testing.T) {
	huge := strings.Repeat("x", 60<<10)
	for _, tt := range []struct {
		name   string
		fields []string
		stored bool
	}{
		{"garbage cache-control", []string{"Cache-Control", `max-age="60, ,,=,no-cache="`}, false},
		{"negative max-age", []string{"Cache-Control", "max-age=-5"}, false},
		{"huge max-age", []string{"Cache-Control", "max-age=99999999999999999999999"}, true},
		{"duplicated max-age", []string{"Cache-Control", "max-age=60", "Cache-Control", "max-age=0"}, false},
		{"invalid Expires", []string{"Expires", "tomorrow-ish"}, false},
		{"invalid Date and Last-Modified", []string{"Date", "nope", "Last-Modified", "also nope", "Cache-Control", "max-age=60"}, true},
		{"huge header", []string{"Cache-Control", "max-age=60", "X-Huge", huge}, true},
		{"many fields", manyFields(500), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := newOrigin(t, serve("ok", tt.fields...))
			s := startCache(t, o, "hit_for_miss_ttl 1ms")
			get(t, s, "/m")
			r := get(t, s, "/m")
			if r.status != 200 || r.body != "ok" {
				t.Fatalf("got %d %q", r.status, r.body)
			}
			if hit := strings.Contains(r.cs(), "; hit"); hit != tt.stored {
				t.Errorf("second request Cache-Status %q, want stored=%v", r.cs(), tt.stored)
			}
		})
	}
}

func manyFields(n int) []string {
	f := []string{"Cache-Control", "max-age=60"}
	for i := range n {
		f = append(f, fmt.Sprintf("X-F%d", i), "v")
	}
	return f
}

// A request with Upgrade, and requests a bypass matcher matches, are not
// looked up nor stored.
func TestBypass(t *testing.T) {
	o := newOrigin(t, serve("b", "Cache-Control", "max-age=60"))
	s := startCache(t, o, "bypass path /admin/*\nbypass {\n\theader X-No-Cache 1\n}")
	for i := range 2 {
		expect(t, fmt.Sprint("path ", i), get(t, s, "/admin/x"), 200, "b", "bypass", "fwd=bypass")
		expect(t, fmt.Sprint("header ", i), get(t, s, "/y", "X-No-Cache", "1"), 200, "b", "bypass", "fwd=bypass")
	}
	expect(t, "not bypassed", get(t, s, "/y"), 200, "b", "miss", "stored")
	expect(t, "hit", get(t, s, "/y"), 200, "b", "hit", "hit")
	if n := o.n.Load(); n != 5 {
		t.Errorf("origin got %d requests, want 5", n)
	}
}

// The key options: sort_query and ignore_query_params make spellings of one
// URL share an entry.
func TestKeyOptions(t *testing.T) {
	o := newOrigin(t, serve("k", "Cache-Control", "max-age=60"))
	s := startCache(t, o, "sort_query\nignore_query_params utm_* fbclid")
	expect(t, "fill", get(t, s, "/k?b=2&a=1&utm_source=x"), 200, "k", "miss", "stored")
	expect(t, "sorted", get(t, s, "/k?a=1&b=2"), 200, "k", "hit", "hit")
	expect(t, "ignored", get(t, s, "/k?fbclid=z&a=1&utm_medium=m&b=2"), 200, "k", "hit", "hit")
	expect(t, "different", get(t, s, "/k?a=1&b=3"), 200, "k", "miss", "stored")
	if q := o.last().URL.RawQuery; q != "a=1&b=3" {
		t.Errorf("origin got query %q", q)
	}
}

var timeZero = time.Time{}

// The access log has the field http_cache_status.
func TestAccessLogField(t *testing.T) {
	o := newOrigin(t, serve("logged", "Cache-Control", "max-age=60"))
	logFile := t.TempDir() + "/access.log"
	s := caddytest.Start(t, `
http://localhost:{HTTP_PORT} {
	log {
		output file `+logFile+`
		format json
	}
	http_cache
	reverse_proxy `+o.addr()+`
}
`)
	get(t, s, "/l")
	get(t, s, "/l")
	var b []byte
	waitFor(t, "two access log lines", func() bool {
		b, _ = os.ReadFile(logFile)
		return strings.Count(string(b), "\n") >= 2
	})
	for _, want := range []string{`"http_cache_status":"miss"`, `"http_cache_status":"hit"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("access log lacks %s:\n%s", want, b)
		}
	}
}

// Range fills are bounded: while a few fills are in flight, a Range miss
// on another object just passes through (detail=range) instead of starting
// one more download of a whole object.
func TestRangeFillsInFlightAreBounded(t *testing.T) {
	const objects = 8
	release := make(chan struct{})
	var fills atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if r.Header.Get("Range") != "" {
			w.Header().Set("Content-Range", "bytes 0-0/10")
			w.WriteHeader(http.StatusPartialContent)
			io.WriteString(w, "0")
			return
		}
		fills.Add(1)
		select { // the fills hang until every Range miss was sent
		case <-release:
		case <-time.After(10 * time.Second):
		}
		io.WriteString(w, "0123456789")
	})
	s := startCache(t, o, "")
	waitFor(t, "earlier fetches to end", func() bool { return cache.Flights() == 0 })
	started := 0
	for i := range objects {
		r := get(t, s, fmt.Sprintf("/f%d", i), "Range", "bytes=0-0")
		expect(t, fmt.Sprint("range miss ", i), r, 206, "0", "uncacheable")
		if strings.Contains(r.cs(), "detail=range-fill") {
			started++
		} else if !strings.Contains(r.cs(), "detail=range") {
			t.Errorf("range miss %d: Cache-Status %q, want detail=range-fill or detail=range", i, r.cs())
		}
	}
	waitFor(t, "the fills to reach the origin", func() bool { return fills.Load() == int64(started) })
	if started != cache.MaxRangeFills {
		t.Errorf("%d of %d Range misses started a fill, want the bound, %d", started, objects, cache.MaxRangeFills)
	}
	close(release)
	waitFor(t, "the fills to end", func() bool { return cache.Flights() == 0 })
	expect(t, "a filled object", get(t, s, "/f0", "Range", "bytes=2-3"), 206, "23", "hit", "hit")
}

// A range fill whose Content-Length is above max_object_size is stopped at
// its header: the origin does not get to send the object.
func TestRangeFillSkipsObjectLargerThanMaxObjectSize(t *testing.T) {
	const size = 1 << 30
	var sent atomic.Int64
	fillStopped := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if r.Header.Get("Range") != "" {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-3/%d", size))
			w.WriteHeader(http.StatusPartialContent)
			io.WriteString(w, "xxxx")
			return
		}
		defer close(fillStopped)
		w.Header().Set("Content-Length", fmt.Sprint(size))
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		chunk := strings.Repeat("x", 64<<10)
		for sent.Load() < size && r.Context().Err() == nil {
			n, err := io.WriteString(w, chunk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	s := startCache(t, o, "max_object_size 1MiB")
	expect(t, "range miss", get(t, s, "/huge", "Range", "bytes=0-3"), 206, "xxxx", "uncacheable", "detail=range-fill")
	select {
	case <-fillStopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the fill of an object above max_object_size was not stopped")
	}
	if n := sent.Load(); n >= size/4 {
		t.Errorf("the origin sent %d bytes of a %d-byte object the cache would not store", n, size)
	}
	waitFor(t, "the range fill to land", func() bool { return cache.Flights() == 0 })
	expect(t, "next range", get(t, s, "/huge", "Range", "bytes=0-3"), 206, "xxxx", "uncacheable", "detail=range")
}
