// Command origin is the load script's origin server: it serves a body of a
// chosen size with a chosen Cache-Control, can be slowed down, and counts the
// requests it receives per path, so that the script can check how many
// reached it.
//
//	GET /any/path?size=1024&cc=max-age%3D60&delay=200ms
//	GET /_count?path=/any/path   -> the number of requests seen for that path
//	GET /_count?prefix=/any/     -> ... for all paths that start with prefix
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18100", "listen address")
	flag.Parse()

	chunk := bytes.Repeat([]byte("x"), 64<<10)
	var (
		mu     sync.Mutex
		counts = map[string]int{} // protected by mu
	)
	http.HandleFunc("/_count", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		mu.Lock()
		n := counts[q.Get("path")]
		if prefix := q.Get("prefix"); prefix != "" {
			n = 0
			for p, c := range counts {
				if strings.HasPrefix(p, prefix) {
					n += c
				}
			}
		}
		mu.Unlock()
		fmt.Fprintln(w, n)
	})
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		counts[r.URL.Path]++
		mu.Unlock()
		q := r.URL.Query()
		if d, err := time.ParseDuration(q.Get("delay")); err == nil {
			time.Sleep(d)
		}
		size := 1024
		if s, err := strconv.Atoi(q.Get("size")); err == nil && s >= 0 {
			size = s
		}
		cc := q.Get("cc")
		if cc == "" {
			cc = "public, max-age=3600"
		}
		w.Header().Set("Cache-Control", cc)
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		// Bodies up to 64 KiB in one Write; larger ones in 64 KiB pieces,
		// so that a 1 GiB body costs the origin no 1 GiB buffer.
		for size > 0 {
			n := min(size, len(chunk))
			if _, err := w.Write(chunk[:n]); err != nil {
				return
			}
			size -= n
		}
	})
	log.Printf("origin listening on %s", *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}
