package disk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-edge/edge/cache/store"
	"github.com/caddy-edge/edge/cache/store/storetest"
)

func open(t testing.TB, cfg Config) *Cache {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	c, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	<-c.Ready()
	return c
}

func TestAcceptance(t *testing.T) {
	storetest.RunWithClock(t, func(t *testing.T, now func() time.Time) store.Store {
		return open(t, Config{MaxSize: 128 << 20, Now: now})
	})
}

// The suite again with every body read from its file (no verification
// before serving, no in-memory copy): the fileBody path.
func TestAcceptanceFileBodies(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, Config{MaxSize: 128 << 20, VerifyMax: -1, NoSync: true})
	})
}

func entry(now time.Time) *store.Entry {
	return &store.Entry{
		Status:       http.StatusOK,
		Header:       store.FieldsOf(http.Header{"Content-Type": {"text/plain"}, "Etag": {`"1"`}}),
		RequestTime:  now.Add(-2 * time.Second),
		ResponseTime: now.Add(-time.Second),
		Expires:      now.Add(time.Hour),
		Tags:         []string{"t"},
		Size:         -1,
	}
}

func put(t testing.TB, c *Cache, key string, e *store.Entry, body []byte) {
	t.Helper()
	w, err := c.Put(context.Background(), key, e)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(body)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func get(t testing.TB, c *Cache, key string) (*store.Entry, []byte, error) {
	t.Helper()
	e, b, err := c.Get(context.Background(), key)
	if err != nil {
		return nil, nil, err
	}
	defer b.Close()
	body, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	return e, body, nil
}

// Entries survive closing and opening the directory again, with their
// times (for Age), tags and soft-purge mark; the index is rebuilt.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().Truncate(time.Second)
	c, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	<-c.Ready()
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<17) // 2 MiB: a file body
	put(t, c, "small", entry(now), []byte("hello"))
	put(t, c, "big", entry(now), big)
	if n, _ := c.PurgeTag(context.Background(), "t", true); n != 2 {
		t.Fatalf("soft purge = %d, want 2", n)
	}
	e := entry(now)
	e.Tags = []string{"other"}
	put(t, c, "plain", e, nil)
	st := c.Stats()
	c.Close()

	c2 := open(t, Config{Dir: dir})
	if st2 := c2.Stats(); st2.Entries != 3 || st2.Bytes != st.Bytes {
		t.Errorf("after reopening: Stats %+v, want %+v", st2, st)
	}
	got, body, err := get(t, c2, "small")
	if err != nil || string(body) != "hello" || !got.SoftPurged ||
		!got.RequestTime.Equal(now.Add(-2*time.Second)) || !got.ResponseTime.Equal(now.Add(-time.Second)) || !got.Expires.Equal(now.Add(time.Hour)) {
		t.Errorf("small after reopening: %+v %q %v", got, body, err)
	}
	if _, body, err := get(t, c2, "big"); err != nil || !bytes.Equal(body, big) {
		t.Errorf("big after reopening: %d bytes, %v", len(body), err)
	}
	if n, _ := c2.PurgeTag(context.Background(), "other", false); n != 1 {
		t.Errorf("tag index after reopening: PurgeTag(other) = %d, want 1", n)
	}
}

// A corrupt or truncated file is a miss, is removed, counted and logged
// once.
func TestCorruptAndTruncatedFiles(t *testing.T) {
	for _, tc := range []struct {
		name   string
		size   int
		damage func(t *testing.T, path string)
	}{
		{"flipped body byte (small)", 1000, flip(-10)},
		{"flipped header byte", 1000, flip(40)},
		{"flipped prefix byte", 1000, flip(17)},
		{"truncated (small)", 1000, truncate(-1)},
		{"truncated to the prefix", 1000, truncate(prefixLen)},
		{"extended", 1000, appendBytes},
		{"empty file", 1000, truncate(0)},
		{"truncated (large)", 3 << 20, truncate(-1)},
		{"flipped header byte (large)", 3 << 20, flip(40)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.WarnLevel)
			c := open(t, Config{Logger: zap.New(core), NoSync: true})
			put(t, c, "k", entry(time.Now()), bytes.Repeat([]byte("x"), tc.size))
			tc.damage(t, c.path("k"))
			for range 3 {
				if _, _, err := get(t, c, "k"); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("Get of a damaged entry: %v, want ErrNotFound", err)
				}
			}
			if _, err := os.Stat(c.path("k")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("damaged file still there: %v", err)
			}
			if st := c.Stats(); st.Errors != 1 || st.Entries != 0 {
				t.Errorf("Stats = %+v, want 1 error and no entries", st)
			}
			if n := logs.FilterMessageSnippet("corrupt").Len(); n != 1 {
				t.Errorf("%d corrupt-entry log lines, want 1", n)
			}
		})
	}
}

// A large body that is corrupt is served by length (it cannot be verified
// before sendfile) but found by the scrub, which removes it.
func TestScrubFindsCorruptLargeBody(t *testing.T) {
	c := open(t, Config{NoSync: true, VerifyMax: 1024, ScrubRate: 1 << 30})
	body := bytes.Repeat([]byte("y"), 100_000)
	put(t, c, "good", entry(time.Now()), body)
	put(t, c, "bad", entry(time.Now()), body)
	flip(-5)(t, c.path("bad"))
	c.scrubOne("good")
	c.scrubOne("bad")
	if _, _, err := get(t, c, "bad"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after the scrub of a corrupt body: %v, want ErrNotFound", err)
	}
	if _, got, err := get(t, c, "good"); err != nil || !bytes.Equal(got, body) {
		t.Errorf("good entry after the scrub: %d bytes, %v", len(got), err)
	}
	if st := c.Stats(); st.Errors != 1 || st.Entries != 1 {
		t.Errorf("Stats = %+v, want 1 error, 1 entry", st)
	}
}

// A scrub pass verifies the large bodies not verified within
// scrubInterval, and only those: a body the scrub verified a moment ago is
// not read again, one never verified is.
func TestScrubPassVerifiesOnlyDueBodies(t *testing.T) {
	// No background scrub (a negative rate): the one a store runs once
	// its index is ready would verify both bodies before they are damaged.
	c := open(t, Config{NoSync: true, VerifyMax: 1024, ScrubRate: -1})
	body := bytes.Repeat([]byte("y"), 100_000)
	put(t, c, "recent", entry(time.Now()), body)
	put(t, c, "due", entry(time.Now()), body)
	c.scrubOne("recent")
	flip(-5)(t, c.path("recent"))
	flip(-5)(t, c.path("due"))
	c.scrub()
	if _, err := os.Stat(c.path("due")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a corrupt body never verified is still there after a scrub pass: %v", err)
	}
	if _, err := os.Stat(c.path("recent")); err != nil {
		t.Errorf("a body verified a moment ago was read again by the scrub pass: %v", err)
	}
}

func flip(at int) func(*testing.T, string) {
	return func(t *testing.T, path string) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		i := at
		if i < 0 {
			i += len(b)
		}
		b[i] ^= 0x40
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func truncate(size int64) func(*testing.T, string) {
	return func(t *testing.T, path string) {
		if size < 0 {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			size += fi.Size()
		}
		if err := os.Truncate(path, size); err != nil {
			t.Fatal(err)
		}
	}
}

func appendBytes(t *testing.T, path string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("more"))
	f.Close()
}

// A file left in tmp by a crash, and a half-written entry file under an
// entry's name (as a crash between write and sync could leave with a
// careless writer), are never served.
func TestCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	c, err := Open(Config{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	<-c.Ready()
	put(t, c, "whole", entry(time.Now()), []byte("complete body"))
	put(t, c, "half", entry(time.Now()), bytes.Repeat([]byte("z"), 5000))
	w, err := c.Put(context.Background(), "pending", entry(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("never committed"))
	// Crash: the pending writer's temporary file stays; an entry file is
	// cut short.
	c.Close()
	truncate(-2000)(t, c.path("half"))

	c2 := open(t, Config{Dir: dir})
	if _, got, err := get(t, c2, "whole"); err != nil || string(got) != "complete body" {
		t.Errorf("whole: %q, %v", got, err)
	}
	for _, k := range []string{"half", "pending"} {
		if _, _, err := get(t, c2, k); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", k, err)
		}
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(left) != 0 {
		t.Errorf("%d temporary files left after reopening", len(left))
	}
	if st := c2.Stats(); st.Entries != 1 {
		t.Errorf("Stats().Entries = %d, want 1 (the truncated file removed at load)", st.Entries)
	}
}

// failingFile fails every write after the first limit bytes with ENOSPC,
// as a full disk does.
type failingFile struct {
	*os.File
	left *atomic.Int64
}

func (f failingFile) Write(p []byte) (int, error) {
	if f.left.Add(-int64(len(p))) < 0 {
		return 0, syscall.ENOSPC
	}
	return f.File.Write(p)
}

// A full disk: writes fail, are counted and logged without a flood, the
// entries being written are not stored, and what was stored before is
// still served.
func TestFullDisk(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	c := open(t, Config{Logger: zap.New(core), NoSync: true})
	put(t, c, "before", entry(time.Now()), []byte("stored before the disk filled"))
	left := new(atomic.Int64)
	left.Store(1 << 20)
	c.createTemp = func(dir string) (tempFile, error) {
		f, err := os.CreateTemp(dir, "put-*")
		if err != nil {
			return nil, err
		}
		return failingFile{f, left}, nil
	}
	failed := 0
	for i := range 100 {
		w, err := c.Put(context.Background(), fmt.Sprint("k", i), entry(time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		for range 8 {
			if n, err := w.Write(bytes.Repeat([]byte("w"), 8<<10)); n != 8<<10 || err != nil {
				t.Fatalf("Write = %d, %v: a store write failure must not fail the response", n, err)
			}
		}
		if err := w.Commit(); err != nil {
			failed++
			if !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("Commit: %v, want ENOSPC", err)
			}
			if _, _, err := get(t, c, fmt.Sprint("k", i)); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("a failed entry is visible: %v", err)
			}
		}
	}
	if failed < 80 {
		t.Errorf("%d of 100 writes failed, want most once the disk is full", failed)
	}
	if st := c.Stats(); st.Errors != int64(failed) {
		t.Errorf("Stats().Errors = %d, want %d", st.Errors, failed)
	}
	if n := logs.FilterMessageSnippet("writing failed").Len(); n != 1 {
		t.Errorf("%d log lines for %d failed writes, want 1 (no flood)", n, failed)
	}
	if _, got, err := get(t, c, "before"); err != nil || string(got) != "stored before the disk filled" {
		t.Errorf("entry stored before: %q, %v", got, err)
	}
	if left, _ := os.ReadDir(c.tmpDir); len(left) != 0 {
		t.Errorf("%d temporary files left by failed writes", len(left))
	}
}

// A directory that cannot be written: Put fails (counted), Get works.
func TestReadOnlyDirectory(t *testing.T) {
	c := open(t, Config{NoSync: true})
	put(t, c, "k", entry(time.Now()), []byte("v"))
	c.createTemp = func(string) (tempFile, error) { return nil, syscall.EROFS }
	if _, err := c.Put(context.Background(), "k2", entry(time.Now())); err == nil {
		t.Fatal("Put on a read-only file system succeeded")
	}
	if _, got, err := get(t, c, "k"); err != nil || string(got) != "v" {
		t.Errorf("Get: %q, %v", got, err)
	}
	if st := c.Stats(); st.Errors != 1 {
		t.Errorf("Stats().Errors = %d, want 1", st.Errors)
	}
}

// At the budget, the least recently used entries go, and the store never
// holds more than its budget.
func TestEvictionAtTheBudget(t *testing.T) {
	const budget = 1 << 20
	c := open(t, Config{MaxSize: budget, NoSync: true})
	body := bytes.Repeat([]byte("b"), 10_000)
	// A popular entry read between the writes stays.
	put(t, c, "popular", entry(time.Now()), body)
	for i := range 300 {
		put(t, c, fmt.Sprint("k", i), entry(time.Now()), body)
		if _, _, err := get(t, c, "popular"); err != nil {
			t.Fatalf("popular entry evicted after %d writes: %v", i, err)
		}
		if st := c.Stats(); st.Bytes > budget {
			t.Fatalf("Stats().Bytes = %d over the budget %d", st.Bytes, budget)
		}
	}
	st := c.Stats()
	if st.Evictions < 200 || st.Entries+st.Evictions != 301 {
		t.Errorf("Stats = %+v: want about 200 evictions and entries + evictions = 301", st)
	}
	// The files follow the index.
	n := 0
	filepath.WalkDir(c.dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && len(d.Name()) == 32 {
			n++
		}
		return nil
	})
	if int64(n) != st.Entries {
		t.Errorf("%d entry files for %d entries", n, st.Entries)
	}
	// Shrinking evicts at once.
	if err := c.Resize(budget / 4); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Bytes > budget/4 {
		t.Errorf("after Resize: %d bytes, over %d", st.Bytes, budget/4)
	}
}

// max_entries bounds the entries, and so the index's RAM, whatever their
// size (nginx's keys_zone): small entries far under max_size are evicted
// beyond it, the recently read one stays, a lower bound evicts at once,
// and a restart with a bound loads no more than it.
func TestMaxEntries(t *testing.T) {
	dir := t.TempDir()
	c, err := Open(Config{Dir: dir, MaxSize: 1 << 30, MaxEntries: 50, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("small")
	put(t, c, "popular", entry(time.Now()), body)
	for i := range 200 {
		put(t, c, fmt.Sprint("k", i), entry(time.Now()), body)
		if _, _, err := get(t, c, "popular"); err != nil {
			t.Fatalf("popular entry evicted after %d writes: %v", i, err)
		}
		if st := c.Stats(); st.Entries > 50 {
			t.Fatalf("after %d writes: %d entries, over max_entries 50", i+1, st.Entries)
		}
	}
	if st := c.Stats(); st.Entries != 50 || st.Evictions != 151 {
		t.Errorf("Stats = %+v: want 50 entries and 151 evictions", st)
	}
	c.SetMaxEntries(10)
	if st := c.Stats(); st.Entries != 10 {
		t.Errorf("after SetMaxEntries(10): %d entries", st.Entries)
	}
	c.SetMaxEntries(0) // no bound
	for i := range 30 {
		put(t, c, fmt.Sprint("u", i), entry(time.Now()), body)
	}
	if st := c.Stats(); st.Entries != 40 {
		t.Errorf("without a bound: %d entries, want 40", st.Entries)
	}
	c.Close()
	c2, err := Open(Config{Dir: dir, MaxSize: 1 << 30, MaxEntries: 25, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c2.Close)
	<-c2.Ready()
	if st := c2.Stats(); st.Entries != 25 {
		t.Errorf("reopened with max_entries 25: %d entries", st.Entries)
	}
}

// Writing a directory full of entries, then opening it: serving starts
// before the index is rebuilt (Get answers from the files), and once it
// is, every entry is indexed.
func TestStartupWithManyEntries(t *testing.T) {
	n := 10_000
	if !testing.Short() {
		n = 100_000
	}
	dir := t.TempDir()
	c, err := Open(Config{Dir: dir, NoSync: true, MaxSize: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	<-c.Ready()
	now := time.Now()
	for i := range n {
		e := entry(now)
		e.Tags = []string{fmt.Sprint("g", i%10)}
		put(t, c, fmt.Sprintf("https://example.com/%06d", i), e, []byte(fmt.Sprint(i)))
	}
	c.Close()

	opened := time.Now()
	c2, err := Open(Config{Dir: dir, NoSync: true, MaxSize: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c2.Close)
	// Right away, whether or not the index is ready: the last entries
	// (loaded last, if at all yet) are correct hits, and unknown keys
	// misses.
	for i := n - 1; i >= n-50; i-- {
		_, got, err := get(t, c2, fmt.Sprintf("https://example.com/%06d", i))
		if err != nil || string(got) != fmt.Sprint(i) {
			t.Fatalf("entry %d before the index is ready: %q, %v", i, got, err)
		}
	}
	if _, _, err := get(t, c2, "https://example.com/unknown"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown key: %v", err)
	}
	select {
	case <-c2.Ready():
	case <-time.After(5 * time.Minute):
		t.Fatal("index not ready after 5 minutes")
	}
	t.Logf("%d entries indexed %v after Open", n, time.Since(opened))
	if st := c2.Stats(); st.Entries != int64(n) {
		t.Errorf("Stats().Entries = %d, want %d", st.Entries, n)
	}
	if got, _ := c2.PurgeTag(context.Background(), "g3", false); got != n/10 {
		t.Errorf("PurgeTag(g3) = %d, want %d", got, n/10)
	}
}

// Deletes and writes while the index is being rebuilt are not undone by
// the loader.
func TestChangesWhileLoading(t *testing.T) {
	dir := t.TempDir()
	c, err := Open(Config{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	<-c.Ready()
	for i := range 2000 {
		put(t, c, fmt.Sprint("k", i), entry(time.Now()), []byte("v1"))
	}
	c.Close()
	c2, err := Open(Config{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c2.Close)
	ctx := context.Background()
	for i := 0; i < 2000; i += 2 {
		c2.Delete(ctx, fmt.Sprint("k", i))
		put(t, c2, fmt.Sprint("k", i+1), entry(time.Now()), []byte("v2"))
	}
	<-c2.Ready()
	if st := c2.Stats(); st.Entries != 1000 {
		t.Errorf("Stats().Entries = %d, want 1000", st.Entries)
	}
	for i := range 2000 {
		_, got, err := get(t, c2, fmt.Sprint("k", i))
		if i%2 == 0 && !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("k%d deleted while loading: %q, %v", i, got, err)
		}
		if i%2 == 1 && (err != nil || string(got) != "v2") {
			t.Fatalf("k%d rewritten while loading: %q, %v", i, got, err)
		}
	}
}

// A second Open of a directory in use fails: two processes would each
// evict without seeing the other's entries.
func TestDirectoryLocked(t *testing.T) {
	c := open(t, Config{})
	if _, err := Open(Config{Dir: c.dir}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second Open: %v, want an in-use error", err)
	}
}

// A large body is read from the file: the Body is backed by an *os.File
// that io.Copy hands to the writer's ReadFrom (sendfile on a socket), and
// reading a range reads only it.
func TestLargeBodyFromFile(t *testing.T) {
	c := open(t, Config{NoSync: true})
	body := bytes.Repeat([]byte("0123456789"), 300_000)
	put(t, c, "k", entry(time.Now()), body)
	_, b, err := c.Get(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	fb, ok := b.(*fileBody)
	if !ok {
		t.Fatalf("body of %d bytes is %T, want a file body", len(body), b)
	}
	var rf readFromRecorder
	if n, err := io.Copy(&rf, b); err != nil || n != int64(len(body)) || !bytes.Equal(rf.buf.Bytes(), body) {
		t.Fatalf("io.Copy = %d, %v", n, err)
	}
	// The *os.File itself (its WriteTo hands w.ReadFrom a wrapper that
	// only hides WriteTo), never an io.LimitedReader: Caddy adds one, and
	// net.TCPConn sends with sendfile only a file inside at most one.
	if _, ok := rf.src.(interface{ Fd() uintptr }); ok {
		// the *os.File itself
	} else if _, ok := rf.src.(*io.LimitedReader); ok || !strings.Contains(fmt.Sprintf("%T", rf.src), "os.") {
		t.Errorf("ReadFrom got %T, want the *os.File (or os's wrapper of it)", rf.src)
	}
	p := make([]byte, 10)
	if n, err := fb.ReadAt(p, 2_000_005); n != 10 || err != nil || string(p) != "5678901234" {
		t.Errorf("ReadAt = %d, %v, %q", n, err, p)
	}
}

type readFromRecorder struct {
	buf bytes.Buffer
	src io.Reader
}

func (r *readFromRecorder) Write(p []byte) (int, error) { return r.buf.Write(p) }
func (r *readFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	r.src = src
	return r.buf.ReadFrom(src)
}

// A body between 8 KiB and 1 MiB from a file this process did not write
// is verified before it is first served (a corrupt one is a miss); once
// verified, it is sent from the file.
func TestMidSizeBodyVerifiedOnce(t *testing.T) {
	dir := t.TempDir()
	c, err := Open(Config{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	<-c.Ready()
	body := bytes.Repeat([]byte("m"), 200_000)
	put(t, c, "good", entry(time.Now()), body)
	put(t, c, "bad", entry(time.Now()), body)
	c.Close()
	flip(-100)(t, c.path("bad"))

	c2 := open(t, Config{Dir: dir, NoSync: true})
	if _, _, err := get(t, c2, "bad"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("corrupt mid-size body after reopening: %v, want ErrNotFound", err)
	}
	for i, want := range []string{"*store.BytesReader", "*disk.fileBody"} {
		_, b, err := c2.Get(context.Background(), "good")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(b)
		b.Close()
		if fmt.Sprintf("%T", b) != want || !bytes.Equal(got, body) {
			t.Errorf("read %d: %T with %d bytes, want %s with the body", i, b, len(got), want)
		}
	}
}

// Close ends every goroutine of the Cache, also while the index is still
// loading, and releases the directory.
func TestCloseLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	c, err := Open(Config{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	<-c.Ready()
	for i := range 3000 {
		put(t, c, fmt.Sprint("k", i), entry(time.Now()), []byte("v"))
	}
	c.Close()
	before := runtime.NumGoroutine()
	for range 5 {
		c, err := Open(Config{Dir: dir, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		c.Close() // most likely before the index is complete
	}
	// Goroutines of earlier tests (the race detector's, timers') may come
	// and go meanwhile: a leak is a count that stays above before.
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(5 * time.Second); n > before && time.Now().Before(deadline); n = runtime.NumGoroutine() {
		time.Sleep(20 * time.Millisecond)
	}
	if n > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after Open and Close, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
	c2 := open(t, Config{Dir: dir, NoSync: true})
	if st := c2.Stats(); st.Entries != 3000 {
		t.Errorf("Stats().Entries = %d after interrupted loads, want 3000", st.Entries)
	}
}

// A path that names a directory holding other files (a typo, a parent
// of the intended directory) is refused: Open would otherwise remove its
// tmp subdirectory and the files of its two-hex-digit subdirectories
// ("de", "fa", ...), none of them entries.
func TestOpenRefusesForeignDirectory(t *testing.T) {
	dir := t.TempDir()
	files := []string{filepath.Join(dir, "tmp", "notes.txt"), filepath.Join(dir, "de", "index.html")}
	for _, f := range files {
		if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte("not a cache entry"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Open(Config{Dir: dir, NoSync: true})
	if err == nil {
		<-c.Ready()
		c.Close()
		t.Error("Open accepted a directory that holds no cache")
	}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("Open removed %s: %v", f, err)
		}
	}
	// An empty directory, one that holds only lost+found (a file system
	// of its own), and one the store used before, open.
	mounted := t.TempDir()
	if err := os.Mkdir(filepath.Join(mounted, "lost+found"), 0o700); err != nil {
		t.Fatal(err)
	}
	open(t, Config{Dir: mounted, NoSync: true}).Close()
	empty := t.TempDir()
	c = open(t, Config{Dir: empty, NoSync: true})
	put(t, c, "k", entry(time.Now()), []byte("v"))
	c.Close()
	c = open(t, Config{Dir: empty, NoSync: true})
	if _, got, err := get(t, c, "k"); err != nil || string(got) != "v" {
		t.Errorf("reopened cache directory: %q, %v", got, err)
	}
}

// Responses still being stored (slow origins, slow clients: a fill
// writes at the client's pace) are temporary files outside the index.
// Many of them at once, each up to the largest entry, must not take the
// disk far beyond max_size: past an allowance of max_size, writes stop
// storing (the response still streams) and Commit fails; what is
// committed or aborted gives its allowance back.
func TestFilesBeingWrittenAreBounded(t *testing.T) {
	const budget = 8 << 20
	c := open(t, Config{MaxSize: budget, NoSync: true})
	chunk := bytes.Repeat([]byte("w"), 64<<10)
	var ws []store.Writer
	refused := 0
	for i := range 64 {
		w, err := c.Put(context.Background(), fmt.Sprint("slow", i), entry(time.Now()))
		if errors.Is(err, store.ErrBusy) {
			refused++ // at once: the allowance holds not even its header
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for range 15 { // 960 KiB each, within the largest entry (1 MiB)
			if n, err := w.Write(chunk); n != len(chunk) || err != nil {
				t.Fatalf("Write = %d, %v: must not fail the response", n, err)
			}
		}
		ws = append(ws, w)
	}
	var tmp int64
	filepath.WalkDir(c.tmpDir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				tmp += fi.Size()
			}
		}
		return nil
	})
	if tmp > budget+writeBuffer*int64(len(ws)) {
		t.Errorf("%d MiB in temporary files for a budget of %d MiB", tmp>>20, budget>>20)
	}
	committed := 0
	for _, w := range ws {
		switch err := w.Commit(); {
		case err == nil:
			committed++
		case !errors.Is(err, store.ErrBusy):
			t.Errorf("Commit beyond the allowance = %v, want ErrBusy", err)
		}
	}
	if committed == 0 || committed == 64 {
		t.Errorf("%d of 64 entries committed (%d refused at Put), want those within the allowance only", committed, refused)
	}
	if n := c.pending.Load(); n != 0 {
		t.Errorf("%d bytes still counted as being written after every Commit", n)
	}
	// The allowance is back: a new entry is stored.
	put(t, c, "after", entry(time.Now()), chunk)
	if st := c.Stats(); st.Bytes > budget {
		t.Errorf("Stats().Bytes = %d over the budget", st.Bytes)
	}
}

// A subdirectory whose name is a byte in upper-case hex ("AB") is not
// one of the store's ("ab"), whose paths its keys' files are looked up
// at: its files are not indexed (they would count against the budget,
// never be served, and survive their eviction).
func TestLoadSkipsUpperCaseSubdirectory(t *testing.T) {
	dir := t.TempDir()
	c := open(t, Config{Dir: dir, NoSync: true})
	key := ""
	for i := 0; ; i++ {
		key = fmt.Sprint("k", i)
		if sub := filepath.Base(filepath.Dir(c.path(key))); strings.ToUpper(sub) != sub {
			break
		}
	}
	put(t, c, key, entry(time.Now()), []byte("v"))
	c.Close()
	sub := filepath.Dir(c.path(key))
	if err := os.Rename(sub, filepath.Join(dir, strings.ToUpper(filepath.Base(sub)))); err != nil {
		t.Fatal(err)
	}
	c = open(t, Config{Dir: dir, NoSync: true})
	if _, _, err := get(t, c, key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get: %v, want ErrNotFound", err)
	}
	if st := c.Stats(); st.Entries != 0 || st.Bytes != 0 {
		t.Errorf("Stats = %+v: a file outside the store's subdirectories was indexed", st)
	}
}

// Open leaves a lock file in the directory on every platform, flock or
// not: it is what tells the next Open (after a restart) that the
// directory is a cache directory (checkCacheDir), which it would refuse
// otherwise.
func TestOpenMarksCacheDirectory(t *testing.T) {
	dir := t.TempDir()
	c := open(t, Config{Dir: dir, NoSync: true})
	put(t, c, "k", entry(time.Now()), []byte("v"))
	c.Close()
	if _, err := os.Stat(filepath.Join(dir, "lock")); err != nil {
		t.Fatalf("no lock file after Open: %v", err)
	}
	c = open(t, Config{Dir: dir, NoSync: true})
	if _, got, err := get(t, c, "k"); err != nil || string(got) != "v" {
		t.Errorf("reopened cache directory: %q, %v", got, err)
	}
}

// fsSize reads the size of the file system that holds a directory, which
// Provision compares with max_size (twice over, with the responses being
// stored) to warn of a store that would fill the disk first.
func TestFSSize(t *testing.T) {
	size, ok := fsSize(t.TempDir())
	if runtime.GOOS == "linux" && (!ok || size <= 0) {
		t.Errorf("fsSize = %d, %v on linux; want the file system's size", size, ok)
	}
	if _, ok := fsSize(filepath.Join(t.TempDir(), "missing")); ok {
		t.Error("fsSize of a missing directory succeeded")
	}
}
