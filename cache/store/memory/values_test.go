package memory

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache/store"
)

// newValueTable returns a value table as a store of budget maxSize has.
func newValueTable(maxSize int64) *valueTable {
	t := new(valueTable)
	t.init()
	t.setMax(maxSize)
	return t
}

// len returns how many values t numbered.
func (t *valueTable) len() int { return len(t.cur.Load().vals) }

// sharedEntry is a response as one site sends many: values that repeat
// (Content-Type, Cache-Control, a security header) and values that are
// its own (Etag, Last-Modified).
func sharedEntry(n int) *store.Entry {
	now := time.Now()
	return &store.Entry{
		Status: 200, RequestTime: now, ResponseTime: now, Expires: now.Add(time.Hour), Size: 4,
		Header: store.Fields{
			"Cache-Control", "public, max-age=3600",
			"Content-Type", "text/html; charset=utf-8",
			"Etag", `"same-etag"`,
			"Last-Modified", "Tue, 14 Nov 2023 22:13:20 GMT",
			"Strict-Transport-Security", "max-age=63072000; includeSubDomains; preload",
			"X-Custom", "same for all",
			"Vary", "Accept-Encoding", "Vary", fmt.Sprint("X-", n),
		},
	}
}

// A value of a shared field is kept as bytes the first time, and as a
// number once a second entry carried it; every entry decodes to the very
// fields it was put with. Values of the fields that are each response's
// own (Etag, Last-Modified) and of names not in the common list are never
// numbered, however often they repeat.
func TestValuesSharedBetweenEntries(t *testing.T) {
	table := newValueTable(DefaultMaxSize)
	var metas []string
	for i := range 4 {
		e := sharedEntry(i)
		meta := encodeMeta(e, table)
		metas = append(metas, meta)
		got, ok := decodeMeta(meta, 4, table)
		if !ok || !slices.Equal(got.Header, e.Header) {
			t.Fatalf("entry %d decoded as %q, %v; want %q", i, got.Header, ok, e.Header)
		}
	}
	for _, v := range []string{"text/html; charset=utf-8", "public, max-age=3600", "includeSubDomains", "Accept-Encoding"} {
		if !strings.Contains(metas[0], v) || strings.Contains(metas[2], v) {
			t.Errorf("%q: in the first entry's metadata %v, in the third's %v; want kept as bytes once, then numbered",
				v, strings.Contains(metas[0], v), strings.Contains(metas[2], v))
		}
	}
	for _, v := range []string{`"same-etag"`, "Nov 2023", "same for all", "X-3"} {
		if !strings.Contains(metas[3], v) {
			t.Errorf("%q was numbered", v)
		}
	}
	if saved := len(metas[0]) - len(metas[2]); saved < 90 {
		t.Errorf("numbering saved %d bytes of %d, want the shared values' 90 and more", saved, len(metas[0]))
	}
	if n := table.len(); n != 4 {
		t.Errorf("%d values numbered, want 4", n)
	}
}

// Every shared name is a common name: one that is not would be numbered
// never, silently.
func TestSharedNamesAreCommon(t *testing.T) {
	for _, n := range sharedNameList {
		if c, ok := nameCodes[n]; !ok || !sharedNames[c] {
			t.Errorf("shared name %q is not a common name", n)
		}
	}
	if sharedNames[0] || sharedNames[nameCodes["Etag"]] || sharedNames[nameCodes["Access-Control-Allow-Origin"]] {
		t.Error("the values of other names, Etag or Access-Control-Allow-Origin are numbered")
	}
}

// The table is bounded: it numbers maxValues values at most, within its
// byte bound, and none longer than maxValueLen; later values are kept as
// bytes, and every entry still decodes to its fields. A store's table
// takes at most 1/valueShare of a small budget.
func TestValueTableBounded(t *testing.T) {
	for _, tc := range []struct {
		name    string
		maxSize int64
		long    bool
	}{{"many values", DefaultMaxSize, false}, {"long values", DefaultMaxSize, true}, {"small budget", 1 << 20, false}} {
		t.Run(tc.name, func(t *testing.T) {
			table := newValueTable(tc.maxSize)
			for i := range 3 * maxValues {
				v := fmt.Sprint("text/x-", i)
				if tc.long {
					v += strings.Repeat("x", 400)
				}
				e := &store.Entry{Status: 200, Size: -1, Header: store.Fields{"Content-Type", v}}
				for range 2 {
					meta := encodeMeta(e, table)
					if got, ok := decodeMeta(meta, -1, table); !ok || !slices.Equal(got.Header, e.Header) {
						t.Fatalf("value %d decoded as %q, %v", i, got.Header, ok)
					}
				}
			}
			limit := valueTableMax(tc.maxSize)
			if n := table.len(); n > maxValues || table.tableCost > limit || table.seenCost > limit || n == 0 {
				t.Errorf("%d values numbered costing %d, %d seen costing %d; want at most %d values, %d bytes each",
					n, table.tableCost, len(table.seen), table.seenCost, maxValues, limit)
			}
			if n, full := table.stats(); n != int64(table.len()) || !full {
				t.Errorf("stats: %d values, full %v; want %d and full", n, full, table.len())
			}
			long := strings.Repeat("y", maxValueLen+1)
			e := &store.Entry{Status: 200, Size: -1, Header: store.Fields{"Content-Type", long}}
			encodeMeta(e, table)
			if !strings.Contains(encodeMeta(e, table), long) {
				t.Errorf("a value longer than %d bytes was numbered", maxValueLen)
			}
		})
	}
	if valueTableMax(1<<20) != 16<<10 || valueTableMax(DefaultMaxSize) != maxValueBytes {
		t.Errorf("table bounds %d and %d", valueTableMax(1<<20), valueTableMax(DefaultMaxSize))
	}
	if got, want := entriesShare(1<<20), int64(1<<20-1<<16-2*16<<10); got != want {
		t.Errorf("entries' share of 1 MiB = %d, want %d: the kept entries' and the table's kept out", got, want)
	}
}

// The store's Stats report the values it numbered, and whether its table
// refused one for lack of room, which only an origin sending many values
// in the shared fields makes it do.
func TestStatsSharedValues(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, Config{MaxSize: 1 << 20})
	put := func(key, contentType string) {
		t.Helper()
		e := entryNow(4, http.Header{"Content-Type": {contentType}})
		w, err := c.Put(ctx, key, e)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("body"))
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		put(fmt.Sprint("https://example.com/", i), "text/html")
	}
	if st := c.Stats(); st.SharedValues != 1 || st.SharedValuesFull {
		t.Fatalf("after one value shared: %d values, full %v; want 1, not full", st.SharedValues, st.SharedValuesFull)
	}
	// Each value twice: a 1 MiB store's table has room for 16 KiB of
	// values, about 200 of these.
	for i := range 400 {
		for j := range 2 {
			put(fmt.Sprint("https://example.com/x/", i, "/", j), fmt.Sprint("text/x-", i))
		}
	}
	st := c.Stats()
	if st.SharedValues < 100 || st.SharedValues > 400 || !st.SharedValuesFull {
		t.Errorf("after 400 values each shared twice: %d values, full %v; want 100-400 and full", st.SharedValues, st.SharedValuesFull)
	}
	for i := range 3 {
		if _, body, err := c.Get(ctx, fmt.Sprint("https://example.com/", i)); err != nil {
			t.Errorf("entry %d: %v", i, err)
		} else {
			body.Close()
		}
	}
}

// A number the table never gave is corrupt metadata: it fails to decode,
// as does a numbered value decoded without the table.
func TestValueNumberOutOfTable(t *testing.T) {
	table := newValueTable(DefaultMaxSize)
	e := &store.Entry{Status: 200, Size: -1, Header: store.Fields{"Content-Type", "text/plain"}}
	encodeMeta(e, table)
	meta := encodeMeta(e, table)
	if strings.Contains(meta, "text/plain") {
		t.Fatal("the value was not numbered")
	}
	if _, ok := decodeMeta(meta, -1, nil); ok {
		t.Error("a numbered value decoded without a table")
	}
	bad := []byte(meta)
	if bad[len(bad)-1] != 1 { // number 0, odd
		t.Fatalf("the value's number is %d, want 1", bad[len(bad)-1])
	}
	bad[len(bad)-1] = 3 // number 1: not given
	if _, ok := decodeMeta(string(bad), -1, table); ok {
		t.Error("a number past the table decoded")
	}
}

// Concurrent writers number values while readers decode entries: each
// entry decodes to its own fields (run with -race).
func TestValueTableConcurrent(t *testing.T) {
	c := newCache(t, Config{})
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				key := fmt.Sprint("k", g, "-", i)
				e := sharedEntry(i % 40)
				e.Header = append(e.Header, "Content-Language", fmt.Sprint("l", i%50))
				w, err := c.Put(ctx, key, e)
				if err != nil {
					t.Error(err)
					return
				}
				w.Write([]byte("body"))
				if err := w.Commit(); err != nil {
					t.Error(err)
					return
				}
				got, body, err := c.Get(ctx, key)
				if err != nil {
					t.Error(err)
					return
				}
				body.Close()
				if !slices.Equal(got.Header, e.Header) {
					t.Errorf("%s decoded as %q, want %q", key, got.Header, e.Header)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := c.values.len(); n < 40 {
		t.Errorf("%d values numbered, want the repeated ones (more than 40)", n)
	}
}
