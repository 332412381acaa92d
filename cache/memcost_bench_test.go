package cache_test

import (
	"math/rand"
	"net/http"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-edge/edge/cache"
)

// BenchmarkEntryCost stores b.N... no: it stores a fixed number of 1 KiB
// responses through the handler (the header a Go origin behind
// reverse_proxy sends) and reports what one entry really costs on the Go
// heap next to what the store counts against its budget. The two should
// agree: the budget a user sets is the memory the entries take.
func BenchmarkEntryCost(b *testing.B) {
	const n = 20000
	for b.Loop() {
		h := new(cache.Handler)
		provisioned(b, h)
		origin := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			hdr := w.Header()
			hdr.Set("Cache-Control", "public, max-age=3600")
			hdr.Set("Content-Type", "text/plain; charset=utf-8")
			hdr.Set("Content-Length", "1024")
			hdr.Set("Date", time.Now().UTC().Format(http.TimeFormat))
			_, err := w.Write(body1K)
			return err
		})
		w := &discardWriter{h: make(http.Header)}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range n {
			clear(w.h)
			r := benchRequest(b, "http://example.com/entry/"+strconv.Itoa(i)+"?q=1")
			if err := h.ServeHTTP(w, r, origin); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		st := h.Store.Stats()
		if st.Entries != n {
			b.Fatalf("stored %d entries, want %d", st.Entries, n)
		}
		heap := float64(after.HeapAlloc-before.HeapAlloc) / n
		b.ReportMetric(heap, "heap-B/entry")
		b.ReportMetric(float64(st.Bytes)/n, "counted-B/entry")
		runtime.KeepAlive(h)
	}
}

// BenchmarkHitZipf serves hits from a memory store of one million entries,
// the keys drawn from a Zipf distribution (s=1.1, as web traffic), next to
// hits on one hot key: a large store should serve nearly as fast as a hot
// key (target: Zipf within 0.9x of hot; compare the two sub-benchmarks of
// one run). Not run under -short: filling the store takes a while.
func BenchmarkHitZipf(b *testing.B) {
	if testing.Short() {
		b.Skip("fills a store of one million entries")
	}
	const n = 1_000_000
	h := &cache.Handler{StoreRaw: []byte(`{"module":"memory","name":"zipf","max_size":4294967296}`)}
	provisioned(b, h)
	small := []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	origin := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("Content-Type", "text/plain")
		_, err := w.Write(small)
		return err
	})
	paths := make([]string, n)
	w := &discardWriter{h: make(http.Header)}
	fill := benchRequest(b, "http://example.com/")
	for i := range paths {
		paths[i] = "/z/" + strconv.Itoa(i)
		setPath(fill, paths[i])
		clear(w.h)
		if err := h.ServeHTTP(w, fill, origin); err != nil {
			b.Fatal(err)
		}
	}
	if got := h.Store.Stats().Entries; got != n {
		b.Fatalf("the store holds %d entries, want %d", got, n)
	}
	miss := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		b.Fatal("a hit went to the origin")
		return nil
	})
	// One request whose path changes, as the server's fresh request for
	// each client request would be: the only difference between the two
	// runs is which stored entry the key finds.
	r := benchRequest(b, "http://example.com/z/0")
	run := func(b *testing.B, path func() string) {
		b.ReportAllocs()
		for b.Loop() {
			setPath(r, path())
			clear(w.h)
			if err := h.ServeHTTP(w, r, miss); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("hot", func(b *testing.B) {
		run(b, func() string { return paths[0] })
	})
	b.Run("zipf", func(b *testing.B) {
		// The draws are made before the clock starts.
		z := rand.NewZipf(rand.New(rand.NewSource(1)), 1.1, 1, n-1)
		seq := make([]string, 1<<20)
		for i := range seq {
			seq[i] = paths[z.Uint64()]
		}
		i := 0
		run(b, func() string { i++; return seq[i&(1<<20-1)] })
	})
}
