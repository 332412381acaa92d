package memory

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/caddy-edge/edge/cache/store"
	"github.com/caddy-edge/edge/cache/store/internal/codec"
)

// keyed is Derived data that names its deriver's key, as the handler's
// does.
type keyed struct{ key, etag string }

func (k *keyed) DeriveKey() string { return k.key }

func putDerived(t testing.TB, c *Cache, key, etag string, derived any) {
	t.Helper()
	e := entry()
	e.Header = store.Fields{"Content-Type", "text/plain", "Etag", etag}
	e.Derived = derived
	w, err := c.Put(context.Background(), key, e)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("body of " + key))
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestMetaRoundTrip(t *testing.T) {
	now := time.Now()
	e := &store.Entry{
		Status:       203,
		Header:       store.Fields{"A", "1", "B", "2", "B", "3", "C", "", "Cache-Control", "max-age=1", "Vary", "A", "Vary", "B"},
		RequestTime:  now.Add(-time.Second),
		ResponseTime: now,
		Tags:         []string{"t1", "t2"},
		SoftPurged:   true,
	}
	got, ok := decodeMeta(encodeMeta(e, nil), 0, nil)
	if !ok {
		t.Fatal("decodeMeta failed")
	}
	if got.Status != 203 || !slices.Equal(got.Header, e.Header) || !got.RequestTime.Equal(e.RequestTime) ||
		!got.ResponseTime.Equal(now) || !got.Expires.IsZero() || !slices.Equal(got.Tags, e.Tags) || !got.SoftPurged {
		t.Errorf("decoded %+v, want %+v", got, e)
	}
	e.SoftPurged = false
	meta := encodeMeta(e, nil)
	if softPurged(meta) || !softPurged(setSoftPurged(meta)) || softPurged(meta) {
		t.Error("setSoftPurged does not mark a copy, or changed the original")
	}
	if tags := metaTags(meta); !slices.Equal(tags, e.Tags) {
		t.Errorf("metaTags = %q", tags)
	}
}

// Times round trip exactly, whichever way they are kept: as differences
// (the usual case), or in full when one is missing, a response time comes
// before its request's, or a time is beyond what nanoseconds hold.
func TestMetaTimes(t *testing.T) {
	now := time.Unix(1764571234, 567_890_123) // nanoseconds that take 5 bytes in full
	far := time.Date(3000, 1, 2, 3, 4, 5, 6, time.UTC)
	cases := []struct {
		name           string
		req, resp, exp time.Time
	}{
		{"usual", now.Add(-3 * time.Millisecond), now, now.Add(time.Hour)},
		{"expires not whole seconds later", now, now, now.Add(time.Hour + time.Millisecond)},
		{"expires whole seconds earlier", now, now, now.Add(-time.Hour)},
		{"expired already", now, now.Add(time.Millisecond), now.Add(-time.Minute)},
		{"response before request", now, now.Add(-time.Second), now.Add(time.Second)},
		{"no request time", time.Time{}, now, now.Add(time.Hour)},
		{"no times", time.Time{}, time.Time{}, time.Time{}},
		{"no expiry", now, now, time.Time{}},
		{"far future", now, far, far.Add(time.Hour)},
		{"far past", time.Date(1600, 1, 1, 0, 0, 0, 1, time.UTC), now, now},
	}
	for _, tc := range cases {
		e := &store.Entry{Status: 200, RequestTime: tc.req, ResponseTime: tc.resp, Expires: tc.exp}
		got, ok := decodeMeta(encodeMeta(e, nil), 0, nil)
		if !ok {
			t.Errorf("%s: did not decode", tc.name)
			continue
		}
		for _, p := range []struct{ got, want time.Time }{{got.RequestTime, tc.req}, {got.ResponseTime, tc.resp}, {got.Expires, tc.exp}} {
			if !p.got.Equal(p.want) || p.got.IsZero() != p.want.IsZero() {
				t.Errorf("%s: decoded %v, want %v", tc.name, p.got, p.want)
			}
		}
	}
	// Against the three times in full, as the disk store keeps them.
	usual := &store.Entry{Status: 200, RequestTime: cases[0].req, ResponseTime: cases[0].resp, Expires: cases[0].exp}
	full := 0
	for _, tm := range []time.Time{usual.RequestTime, usual.ResponseTime, usual.Expires} {
		full += len(codec.AppendTime(nil, tm))
	}
	if n := len(encodeMeta(usual, nil)) - 3; n > full-10 { // less flags, tags' and fields' counts
		t.Errorf("times kept as differences take %d bytes, in full %d", n, full)
	}
}

// A Date in IMF-fixdate form and a Content-Length equal to the entry's
// size take a byte or two each, and decode to the very same strings; any
// other Date or Content-Length is kept as sent.
func TestMetaDateAndLength(t *testing.T) {
	now := time.Now()
	date := now.Add(-2 * time.Second).UTC().Format(http.TimeFormat)
	e := &store.Entry{
		Status: 200, RequestTime: now, ResponseTime: now, Size: 1024,
		Header: store.Fields{"Content-Length", "1024", "Date", date, "X-A", "1"},
	}
	meta := encodeMeta(e, nil)
	if strings.Contains(meta, "1024") || strings.Contains(meta, date[5:16]) {
		t.Errorf("the Date or Content-Length was encoded as text: %q", meta)
	}
	got, ok := decodeMeta(meta, 1024, nil)
	if !ok || !slices.Equal(got.Header, e.Header) {
		t.Fatalf("decoded %q, %v; want %q", got.Header, ok, e.Header)
	}
	for _, h := range []store.Fields{
		{"Date", "Tue, 1 Nov 2023 22:13:20 GMT"},             // not a fixdate: one-digit day
		{"Date", "Tue, 14 Nov 2023 22:13:20 UTC"},            // not GMT
		{"Date", "Mon, 14 Nov 2023 22:13:20 GMT"},            // the wrong weekday
		{"Date", date, "Date", date},                         // two values
		{"Content-Length", "01024"},                          // not as formatted
		{"Content-Length", "1023"},                           // not the size
		{"Content-Length", "1024", "Content-Length", "1024"}, // two values
	} {
		e := &store.Entry{Status: 200, ResponseTime: now, Size: 1024, Header: h}
		meta := encodeMeta(e, nil)
		if !strings.Contains(meta, h[1]) {
			t.Errorf("%q was not kept as sent", h)
		}
		if got, ok := decodeMeta(meta, 1024, nil); !ok || !slices.Equal(got.Header, h) {
			t.Errorf("%q decoded as %q, %v", h, got.Header, ok)
		}
	}
	// The size must be known when the entry is put.
	e.Size = -1
	if meta := encodeMeta(e, nil); !strings.Contains(meta, "1024") || meta[0]&flagBodyLength != 0 {
		t.Errorf("a Content-Length was encoded as the length of a body of unknown size")
	}
}

// A writer refuses a body of another length than the Content-Length its
// entry was put with: that header would be decoded as the body's length.
// An Update whose entry's size is not the stored body's keeps its
// Content-Length as sent.
func TestBodyLengthMustMatch(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, Config{})
	put := func(size int64, body string) error {
		e := entry()
		e.Size = size
		e.Header = store.Fields{"Content-Length", strconv.FormatInt(size, 10)}
		w, err := c.Put(ctx, "k", e)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(body))
		return w.Commit()
	}
	if err := put(4, "abc"); err == nil {
		t.Error("a 3-byte body with Content-Length: 4 was stored")
	}
	if _, _, err := c.Get(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after the refused commit = %v", err)
	}
	if err := put(3, "abc"); err != nil {
		t.Fatal(err)
	}
	e, body, err := c.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	body.Close()
	if got := e.Header.Get("Content-Length"); got != "3" {
		t.Errorf("Content-Length = %q, want 3", got)
	}
	up := *e
	up.Header = store.Fields{"Content-Length", "7"}
	up.Size = 7
	if err := c.Update(ctx, "k", &up); err != nil {
		t.Fatal(err)
	}
	for _, when := range []string{"kept by the Update", "decoded again"} {
		if when == "decoded again" {
			c.kept.Clear()
		}
		e, body, err = c.Get(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		body.Close()
		if got := e.Header.Get("Content-Length"); got != "7" || e.Size != 3 {
			t.Errorf("after an Update, %s: Content-Length %q, size %d; want 7 as sent, 3", when, got, e.Size)
		}
	}
}

// The common names are canonical, as stored fields' names are (or no
// field would ever be encoded by its number), and each is listed once.
func TestCommonNames(t *testing.T) {
	if len(commonNames)|codeSingle >= codeDate {
		t.Fatalf("%d common names do not fit in a byte with codeSingle and below the codes", len(commonNames))
	}
	seen := map[string]bool{}
	for _, n := range commonNames {
		if textproto.CanonicalMIMEHeaderKey(n) != n || seen[n] {
			t.Errorf("common name %q is not canonical, or listed twice", n)
		}
		seen[n] = true
	}
	meta := encodeMeta(&store.Entry{Header: store.Fields{"Cache-Control", "max-age=1"}}, nil)
	if strings.Contains(meta, "Cache-Control") {
		t.Error("a common name was encoded in full")
	}
	// A name number past the list is corrupt metadata, not a name.
	bad := []byte(meta)
	at := strings.Index(meta, "max-age=1") - 2 // the name (one value: no count), the value's length
	if bad[at] != nameCodes["Cache-Control"]|codeSingle {
		t.Fatalf("byte %d is %d, not the name's number marked single", at, bad[at])
	}
	bad[at] = byte(len(commonNames)+1) | codeSingle
	if _, ok := decodeMeta(string(bad), 0, nil); ok {
		t.Error("a name number past the list decoded")
	}
}

// The first hit on an entry decodes its metadata and derives its data
// with the function of its key, once; the next hits get the same decoded
// entry: nothing decoded or derived again. An Update keeps the Derived
// data it is given.
func TestHitsUseTheKeptEntry(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, Config{})
	derives := 0
	c.SetDerive("a", func(e *store.Entry) any { derives++; return &keyed{key: "a", etag: e.Header.Get("Etag")} })
	putDerived(t, c, "k", `"1"`, &keyed{key: "a"})
	if n := c.kept.Len(); n != 0 {
		t.Errorf("%d entries kept decoded before any hit", n)
	}
	e1, _, err := c.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	e2, _, _ := c.Get(ctx, "k")
	d, _ := e1.Derived.(*keyed)
	if e1 != e2 || d == nil || d.etag != `"1"` || derives != 1 {
		t.Errorf("two hits got entries %p and %p, Derived %+v, derived %d times; want one kept entry derived once", e1, e2, d, derives)
	}
	if e1.Size != int64(len("body of k")) || e1.Header.Get("Etag") != `"1"` {
		t.Errorf("kept entry %+v", e1)
	}
	given := &keyed{key: "a", etag: "given"}
	ne := entry()
	ne.Derived = given
	if err := c.Update(ctx, "k", ne); err != nil {
		t.Fatal(err)
	}
	if e, _, _ := c.Get(ctx, "k"); e.Derived != given || derives != 1 {
		t.Errorf("after an Update: Derived %+v, derived %d times; want the Derived given", e.Derived, derives)
	}
}

// In a store whose budget keeps few entries decoded, hits on the others
// decode them and derive their data with the function of their own key:
// sites with other options that share a store each derive their entries.
// Entries of no known key, and of a key released by its last holder (a
// reload changed the options), are derived with the function set last.
func TestColdEntriesDeriveWithTheirOwnFunction(t *testing.T) {
	c := newCache(t, Config{MaxSize: 1 << 20})
	release := map[string]func(){}
	for _, k := range []string{"a", "b"} {
		release[k] = c.SetDerive(k, func(e *store.Entry) any { return &keyed{key: k, etag: e.Header.Get("Etag")} })
	}
	const n = 2000
	for i := range n {
		var derived any
		switch i % 3 {
		case 0:
			derived = &keyed{key: "a"}
		case 1:
			derived = &keyed{key: "b"}
		default:
			derived = &keyed{key: "never set"}
		}
		putDerived(t, c, strconv.Itoa(i), strconv.Itoa(i), derived)
	}
	check := func(want [3]string) {
		t.Helper()
		decoded := 0
		for i := range n {
			e, _, err := c.Get(context.Background(), strconv.Itoa(i))
			if errors.Is(err, store.ErrNotFound) {
				continue // evicted
			}
			if err != nil {
				t.Fatal(err)
			}
			decoded++
			if d, _ := e.Derived.(*keyed); d == nil || d.key != want[i%3] || d.etag != strconv.Itoa(i) {
				t.Fatalf("entry %d has Derived %+v, want key %q and its own Etag", i, d, want[i%3])
			}
		}
		if used, bound := c.kept.Used(), c.MaxSize()/keptShare; used > bound {
			t.Errorf("%d bytes of decoded metadata kept, over its bound %d", used, bound)
		}
		if decoded < n/2 {
			t.Errorf("only %d of %d entries found: the test checks too little", decoded, n)
		}
	}
	check([3]string{"a", "b", "b"})
	release["a"]()
	release["a"]() // a second call does nothing
	check([3]string{"b", "b", "b"})
}

// A soft purge or an Update makes a new item: the entry kept for the old
// one is not served any more.
func TestChangesDropTheKeptEntry(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, Config{})
	putDerived(t, c, "k", `"1"`, &keyed{key: "a"})
	old, _, _ := c.Get(ctx, "k")
	if n, _ := c.PurgePrefix(ctx, "k", true); n != 1 {
		t.Fatalf("soft purge marked %d entries", n)
	}
	e, _, err := c.Get(ctx, "k")
	if err != nil || e == old || !e.SoftPurged {
		t.Fatalf("after a soft purge: %+v, %v; want a new entry, soft purged", e, err)
	}
	ne := entry()
	ne.Header = store.Fields{"Etag", `"2"`}
	if err := c.Update(ctx, "k", ne); err != nil {
		t.Fatal(err)
	}
	e, _, _ = c.Get(ctx, "k")
	if e.SoftPurged || e.Header.Get("Etag") != `"2"` {
		t.Errorf("after an Update: %+v", e)
	}
	if used := c.kept.Used(); used != keptCost(e) {
		t.Errorf("%d bytes of decoded metadata kept for one entry, want %d", used, keptCost(e))
	}
}

// TestLeftEntriesKeepNothing: an entry that left the store keeps no
// decoded entry after, whether a hit made its slot before it left (a
// kept entry is released) or not (none is made after), and whatever its
// body's size. A reader that found the item just before it left decodes
// it but keeps nothing.
func TestLeftEntriesKeepNothing(t *testing.T) {
	ctx := context.Background()
	for _, size := range []int{10, 100 << 10} {
		for _, hit := range []bool{false, true} {
			t.Run(fmt.Sprintf("size=%d/hit=%v", size, hit), func(t *testing.T) {
				c := newCache(t, Config{})
				putFilled(t, c, "k", size, 'k')
				if hit {
					if _, _, err := c.Get(ctx, "k"); err != nil {
						t.Fatal(err)
					}
					if c.kept.Len() != 1 {
						t.Fatalf("%d entries kept after a hit, want 1", c.kept.Len())
					}
				}
				it, _ := c.c.GetIfPresent("k")
				c.Delete(ctx, "k")
				if e := c.decodeAndKeep(it, nil); e == nil || e.Size != int64(size) {
					t.Fatalf("decoding the item that left = %+v, want its entry", e)
				}
				if n, used := c.kept.Len(), c.kept.Used(); n != 0 || used != 0 {
					t.Errorf("%d entries (%d bytes) kept for an entry that left the store, want none", n, used)
				}
			})
		}
	}
}

// TestItemSize: an item is one 48-byte size class of the allocator. One
// field more takes it to 64 bytes, 16 more for every entry of the store
// (BenchmarkEntryHeap, the README's per-entry overhead).
func TestItemSize(t *testing.T) {
	if n := unsafe.Sizeof(item{}); n != 48 {
		t.Errorf("an item takes %d bytes, want 48", n)
	}
}

// Metadata that does not decode (memory corrupted) is a miss and a store
// error, never a wrong entry.
func TestCorruptMetadataIsAMiss(t *testing.T) {
	c := newCache(t, Config{})
	putDerived(t, c, "k", `"1"`, nil)
	it, _ := c.c.GetIfPresent("k")
	c.dropKept(it)
	it.meta = it.meta[:len(it.meta)-1]
	if _, _, err := c.Get(context.Background(), "k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of corrupt metadata = %v, want ErrNotFound", err)
	}
	if st := c.Stats(); st.Errors != 1 {
		t.Errorf("Stats.Errors = %d, want 1", st.Errors)
	}
}

// BenchmarkEntryHeap stores 1 KiB responses with the header fields a Go
// origin sends behind reverse_proxy (as BenchmarkEntryCost in package
// cache) and reports the heap each takes beyond its key and body: with its
// decoded metadata kept (an entry hits use) and without (the others), and
// the length of its encoded metadata and of its fields' names and values.
func BenchmarkEntryHeap(b *testing.B) {
	const n = 20000
	body := make([]byte, 1024)
	// fill stores n entries in a new store and returns the heap they
	// take each beyond key and body; keep: with their metadata kept
	// decoded, as it is for the entries hits use.
	fill := func(keep bool) float64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		c, err := New(Config{MaxSize: 1 << 30})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		keys := 0
		for i := range n {
			key := "example.com/entry/" + strconv.Itoa(i)
			keys += len(key)
			e := originEntry()
			e.Derived = &keyed{key: "a"}
			w, _ := c.Put(context.Background(), key, e)
			w.Write(body)
			if err := w.Commit(); err != nil {
				b.Fatal(err)
			}
		}
		if keep { // a hit keeps an entry's metadata decoded
			for i := range n {
				if _, _, err := c.Get(context.Background(), "example.com/entry/"+strconv.Itoa(i)); err != nil {
					b.Fatal(err)
				}
			}
		}
		if got := int64(c.kept.Len()); keep != (got == n) || got > 0 && !keep {
			b.Fatalf("%d entries kept decoded", got)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(c)
		return float64(int64(after.HeapAlloc-before.HeapAlloc)-int64(keys)-int64(n*len(body))) / n
	}
	for b.Loop() {
		b.ReportMetric(fill(true), "kept-B/entry")
		b.ReportMetric(fill(false), "cold-B/entry")
		e := originEntry()
		fields := 0
		for k, v := range e.Header.All() {
			fields += len(k) + len(v)
		}
		b.ReportMetric(float64(len(encodeMeta(e, nil))), "meta-B")
		// Once a store's value table numbered its values (seen twice).
		table := newValueTable(1 << 30)
		encodeMeta(e, table)
		encodeMeta(e, table)
		b.ReportMetric(float64(len(encodeMeta(e, table))), "shared-meta-B")
		// A page of a site that sends the usual security headers.
		site := siteEntry()
		b.ReportMetric(float64(len(encodeMeta(site, nil))), "site-meta-B")
		encodeMeta(site, table)
		encodeMeta(site, table)
		b.ReportMetric(float64(len(encodeMeta(site, table))), "site-shared-meta-B")
		b.ReportMetric(float64(fields), "fields-B")
	}
}

// originEntry is a 1 KiB response as a Go origin sends it behind
// reverse_proxy.
func originEntry() *store.Entry {
	return entryNow(1024, http.Header{
		"Cache-Control":  {"public, max-age=3600"},
		"Content-Type":   {"text/plain; charset=utf-8"},
		"Content-Length": {"1024"},
		"Date":           {time.Now().UTC().Format(http.TimeFormat)},
	})
}

// siteEntry is a page as a site behind a CDN-minded configuration sends
// it: the security headers, a validator, a Vary.
func siteEntry() *store.Entry {
	return entryNow(1024, http.Header{
		"Cache-Control":             {"public, max-age=600, stale-while-revalidate=60"},
		"Content-Type":              {"text/html; charset=utf-8"},
		"Content-Length":            {"1024"},
		"Content-Security-Policy":   {"default-src 'self'; img-src 'self' data: https://images.example.com; script-src 'self' https://cdn.example.com; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"},
		"Date":                      {time.Now().UTC().Format(http.TimeFormat)},
		"Etag":                      {`"5f1c-18d2a7c3b40"`},
		"Last-Modified":             {"Tue, 14 Nov 2023 22:13:20 GMT"},
		"Referrer-Policy":           {"strict-origin-when-cross-origin"},
		"Server":                    {"nginx"},
		"Strict-Transport-Security": {"max-age=63072000; includeSubDomains; preload"},
		"Vary":                      {"Accept-Encoding"},
		"X-Content-Type-Options":    {"nosniff"},
		"X-Frame-Options":           {"DENY"},
	})
}

// BenchmarkGetDecoded is BenchmarkGetHit on an entry whose metadata is not
// kept decoded: each hit decodes it and derives its data (here a small
// struct, as the handler's), the cost of a hit on a cold entry.
func BenchmarkGetDecoded(b *testing.B) {
	ctx := context.Background()
	c := newCache(b, Config{})
	c.kept.SetMax(0, 0)
	c.SetDerive("a", func(e *store.Entry) any { return &keyed{key: "a", etag: e.Header.Get("Etag")} })
	e := originEntry()
	e.Derived = &keyed{key: "a"}
	w, _ := c.Put(ctx, "k", e)
	w.Write(make([]byte, 1024))
	if err := w.Commit(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		e, body, err := c.Get(ctx, "k")
		if err != nil || e.Derived == nil {
			b.Fatal(err)
		}
		body.Close()
	}
}

// appendFixdate writes what time.Format does, for every day, time of day
// and year the metadata's times reach.
func TestAppendFixdate(t *testing.T) {
	ts := []time.Time{time.Unix(0, 0), time.Date(1824, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(2116, 2, 29, 0, 0, 0, 0, time.UTC)}
	for s := int64(-4_600_000_000); s < 4_600_000_000; s += 86_400*17 + 3_607 {
		ts = append(ts, time.Unix(s, 0))
	}
	for _, tm := range ts {
		if got, want := string(appendFixdate(nil, tm)), tm.UTC().Format(http.TimeFormat); got != want {
			t.Fatalf("appendFixdate(%d) = %q, want %q", tm.Unix(), got, want)
		}
	}
}

// fixdate takes exactly the values time.Parse takes as IMF-fixdates and
// that format back to themselves.
func TestFixdate(t *testing.T) {
	for _, v := range []string{
		"Tue, 14 Nov 2023 22:13:20 GMT", "Sun, 06 Nov 1994 08:49:37 GMT", "Thu, 29 Feb 2024 00:00:00 GMT",
		"Fri, 01 Jan 2100 23:59:59 GMT", // valid, formatted back
		"Tue, 1 Nov 2023 22:13:20 GMT", "Mon, 14 Nov 2023 22:13:20 GMT", "Tue, 14 Nov 2023 22:13:20 UTC",
		"Tue, 31 Nov 2023 22:13:20 GMT", "Fri, 30 Feb 2024 00:00:00 GMT", "Tue, 14 Nov 2023 24:13:20 GMT",
		"Tue, 14 Nov 2023 22:60:20 GMT", "Tue, 14 Nov 2023 22:13:61 GMT", "Tue, 14 Xyz 2023 22:13:20 GMT",
		"Tue, 14 nov 2023 22:13:20 GMT", "Tue,14 Nov  2023 22:13:20 GMT", "Tue, 14 Nov 2023 22-13-20 GMT",
		"Tue, +4 Nov 2023 22:13:20 GMT", "Tue, 14 Nov 2023 22:13:20 GMT ", "Sat, 01 Jan 0000 00:00:00 GMT",
		"Wed, 01 Jan 3000 00:00:00 GMT", "Tuesday, 14-Nov-23 22:13:20 GMT", "",
	} {
		want := false
		tm, err := time.Parse(http.TimeFormat, v)
		if err == nil && tm.Format(http.TimeFormat) == v && inNanoRange(tm) {
			want = true
		}
		got, ok := fixdate(v)
		if ok != want || (ok && !got.Equal(tm)) {
			t.Errorf("fixdate(%q) = %v, %v; want %v, %v", v, got, ok, tm, want)
		}
	}
}
