package cache_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-edge/edge/internal/caddytest"
)

// adminPurge posts a purge request and returns how many entries it
// purged.
func adminPurge(t *testing.T, s *caddytest.Server, body string) int {
	t.Helper()
	resp, err := http.Post(s.AdminURL("/http_cache/purge"), "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var pr struct {
		Purged int `json:"purged"`
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("purge %s: %d %s", body, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&pr); err != nil {
		t.Fatal(err)
	}
	return pr.Purged
}

// A soft purge keeps the entries but makes them stale: the next request
// revalidates with the stored validators (a 304 keeps the body), and while
// the origin fails the entry is still served under stale-if-error.
func TestAdminSoftPurge(t *testing.T) {
	const good = "v1 body"
	failing := false
	o := newOrigin(t, nil)
	o.set(func(w http.ResponseWriter, r *http.Request) {
		if failing {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Header().Set("Cache-Control", "max-age=600, stale-while-revalidate=600, stale-if-error=600")
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Cache-Tag", "t"+strings.TrimPrefix(r.URL.Path, "/"))
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, good)
	})
	s := startCache(t, o, "")
	for _, p := range []string{"/a", "/b", "/c"} {
		get(t, s, p)
		expect(t, "filled "+p, get(t, s, p), 200, good, "hit")
	}

	// By tag: the next request goes to the origin with If-None-Match,
	// gets 304 and is served the stored body; the one after is a hit.
	if n := adminPurge(t, s, `{"tag": "ta", "soft": true}`); n != 1 {
		t.Errorf("soft purge by tag: purged %d, want 1", n)
	}
	before := o.n.Load()
	expect(t, "soft-purged /a", get(t, s, "/a"), 200, good, "revalidated")
	if o.n.Load() != before+1 || o.last().Header.Get("If-None-Match") != `"v1"` {
		t.Errorf("soft-purged /a: origin got %d requests, the last with If-None-Match %q; want one conditional request",
			o.n.Load()-before, o.last().Header.Get("If-None-Match"))
	}
	expect(t, "/a after revalidation", get(t, s, "/a"), 200, good, "hit")

	// By prefix, with the origin failing: stale-if-error still serves it.
	if n := adminPurge(t, s, `{"prefix": "`+s.URL("/b")+`", "soft": true}`); n != 1 {
		t.Errorf("soft purge by prefix: purged %d, want 1", n)
	}
	o.set(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	expect(t, "soft-purged /b, origin failing", get(t, s, "/b"), 200, good, "stale", "fwd=stale", "fwd-status=500")
	expect(t, "/c is untouched", get(t, s, "/c"), 200, good, "hit")

	// By URL.
	if n := adminPurge(t, s, `{"url": "`+s.URL("/c")+`", "soft": true}`); n != 1 {
		t.Errorf("soft purge by url: purged %d, want 1", n)
	}
	expect(t, "soft-purged /c, origin failing", get(t, s, "/c"), 200, good, "stale", "fwd=stale")

	// A hard purge still removes them.
	if n := adminPurge(t, s, `{"prefix": "`+s.URL("/")+`"}`); n != 3 {
		t.Errorf("hard purge after soft ones: purged %d, want 3", n)
	}
}

type entriesPage struct {
	Entries []struct {
		Key        string   `json:"key"`
		Status     int      `json:"status"`
		Size       int64    `json:"size"`
		Age        int64    `json:"age"`
		TTL        int64    `json:"ttl"`
		Tags       []string `json:"tags"`
		SoftPurged bool     `json:"soft_purged"`
		Store      string   `json:"store"`
	} `json:"entries"`
	Next string `json:"next"`
}

func listEntries(t *testing.T, s *caddytest.Server, query string) (int, entriesPage) {
	t.Helper()
	resp, err := http.Get(s.AdminURL("/http_cache/entries?" + query))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p entriesPage
	if resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, p
}

// GET /http_cache/entries lists the stored entries in key order, page by
// page, with their status, size, age, ttl, tags and store.
func TestAdminEntries(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=100")
		w.Header().Set("Age", "10")
		w.Header().Set("Cache-Tag", "p"+strings.TrimPrefix(r.URL.Path, "/e/"))
		io.WriteString(w, r.URL.Path)
	})
	s := startCache(t, o, "")
	var want []string
	for i := 7; i >= 0; i-- {
		p := fmt.Sprintf("/e/%d", i)
		get(t, s, p)
		want = append([]string{s.URL(p)}, want...)
	}
	get(t, s, "/other")

	var got []string
	after := ""
	for pages := 1; ; pages++ {
		q := url.Values{"prefix": {s.URL("/e/")}, "limit": {"3"}, "after": {after}}
		status, p := listEntries(t, s, q.Encode())
		if status != 200 {
			t.Fatalf("entries: status %d", status)
		}
		if len(p.Entries) > 3 {
			t.Fatalf("page of %d entries, limit 3", len(p.Entries))
		}
		for _, e := range p.Entries {
			got = append(got, e.Key)
			n := strings.TrimPrefix(e.Key, s.URL("/e/"))
			if e.Status != 200 || e.Size != int64(len("/e/"+n)) || e.Store != "memory/default" ||
				len(e.Tags) != 1 || e.Tags[0] != "p"+n || e.Age < 10 || e.Age > 40 || e.TTL > 90 || e.TTL < 60 {
				t.Errorf("entry %+v", e)
			}
		}
		if p.Next == "" {
			if pages != 3 {
				t.Errorf("%d pages, want 3", pages)
			}
			break
		}
		if pages > 3 {
			t.Fatal("too many pages")
		}
		after = p.Next
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("listed keys\n%q\nwant\n%q", got, want)
	}

	// A soft purge shows, with a negative ttl.
	adminPurge(t, s, `{"tag": "p3", "soft": true}`)
	_, p := listEntries(t, s, url.Values{"prefix": {s.URL("/e/3")}}.Encode())
	if len(p.Entries) != 1 || !p.Entries[0].SoftPurged || p.Entries[0].TTL > 0 {
		t.Errorf("soft-purged entry listed as %+v", p.Entries)
	}

	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "store=nope"} {
		if status, _ := listEntries(t, s, q); status/100 != 4 {
			t.Errorf("entries?%s: status %d, want a 4xx", q, status)
		}
	}
	if status, p := listEntries(t, s, "limit=1000"); status != 200 || len(p.Entries) != 9 || p.Next != "" {
		t.Errorf("all entries: status %d, %d entries, next %q; want 9 and no next", status, len(p.Entries), p.Next)
	}
}
