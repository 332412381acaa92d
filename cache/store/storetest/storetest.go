// Package storetest is the acceptance suite that every store.Store backend
// runs: what the http_cache handler relies on from a store, as tests.
//
// A backend's test calls Run, or RunWithClock when it can take its time
// from an injected clock (then expiry is also tested as time passes,
// without sleeping):
//
//	func TestAcceptance(t *testing.T) {
//		storetest.RunWithClock(t, func(t *testing.T, now func() time.Time) store.Store {
//			s, err := memory.New(memory.Config{Now: now})
//			...
//		})
//	}
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache/store"
)

// Clock is a manual clock for tests.
type Clock struct {
	mu sync.Mutex // protects t
	t  time.Time
}

// NewClock returns a Clock that reads t until advanced.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Run runs the acceptance suite against the stores that newStore returns,
// a fresh, empty one for each subtest. The stores must accept entries of at
// least 9 MiB.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()
	clockFree := func(t *testing.T, _ *Clock) store.Store { return newStore(t) }
	run(t, clockFree, time.Now)
}

// RunWithClock runs Run's suite, plus the tests of expiry as time passes,
// with stores whose time comes from now.
func RunWithClock(t *testing.T, newStore func(t *testing.T, now func() time.Time) store.Store) {
	t.Helper()
	withClock := func(t *testing.T, c *Clock) store.Store { return newStore(t, c.Now) }
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	run(t, withClock, func() time.Time { return start })

	t.Run("ExpiresAsTimePasses", func(t *testing.T) { testExpiresAsTimePasses(t, withClock, start) })
	t.Run("UpdateMovesExpiry", func(t *testing.T) { testUpdateMovesExpiry(t, withClock, start) })
}

// testExpiresAsTimePasses: an entry leaves the store when its Expires
// passes, for Get, Update and PurgeTag alike.
func testExpiresAsTimePasses(t *testing.T, withClock func(t *testing.T, c *Clock) store.Store, start time.Time) {
	c := NewClock(start)
	s := withClock(t, c)
	ctx := context.Background()
	e := testEntry(c.Now())
	e.Expires = c.Now().Add(time.Minute)
	e.Tags = []string{"t"}
	put(t, s, "k", e, []byte("body"))
	mustGet(t, s, "k")

	c.Advance(59 * time.Second)
	mustGet(t, s, "k")

	c.Advance(time.Second)
	wantNotFound(t, s, "k")
	if err := s.Update(ctx, "k", testEntry(c.Now())); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Update of an expired entry: got %v, want ErrNotFound", err)
	}
	if n, err := s.PurgeTag(ctx, "t", false); err != nil || n != 0 {
		t.Errorf("PurgeTag of an expired entry = %d, %v; want 0, nil", n, err)
	}
}

// testUpdateMovesExpiry: Update gives an entry its new Expires.
func testUpdateMovesExpiry(t *testing.T, withClock func(t *testing.T, c *Clock) store.Store, start time.Time) {
	c := NewClock(start)
	s := withClock(t, c)
	e := testEntry(c.Now())
	e.Expires = c.Now().Add(time.Minute)
	put(t, s, "k", e, []byte("body"))

	c.Advance(30 * time.Second)
	fresh := testEntry(c.Now())
	fresh.Expires = c.Now().Add(time.Hour)
	if err := s.Update(context.Background(), "k", fresh); err != nil {
		t.Fatal(err)
	}
	c.Advance(10 * time.Minute)
	got, b := mustGet(t, s, "k")
	if !got.Expires.Equal(fresh.Expires) {
		t.Errorf("Expires = %v, want %v", got.Expires, fresh.Expires)
	}
	if body := readAll(t, b); string(body) != "body" {
		t.Errorf("body after Update = %q, want %q", body, "body")
	}
}

// suite holds what the acceptance tests common to Run and RunWithClock
// need: a way to make a fresh, empty store, and the time the stores see,
// for entries that must be fresh or expired.
type suite struct {
	newStore func(t *testing.T, c *Clock) store.Store
	now      func() time.Time
}

// fresh returns a new, empty store whose clock reads su.now().
func (su suite) fresh(t *testing.T) store.Store { return su.newStore(t, NewClock(su.now())) }

// run runs the tests common to Run and RunWithClock, each as a subtest.
func run(t *testing.T, newStore func(t *testing.T, c *Clock) store.Store, now func() time.Time) {
	su := suite{newStore: newStore, now: now}
	for _, tt := range []struct {
		name string
		test func(suite, *testing.T)
	}{
		{"GetMissing", suite.testGetMissing},
		{"RoundTrip", suite.testRoundTrip},
		{"EmptyBody", suite.testEmptyBody},
		{"PutClonesEntry", suite.testPutClonesEntry},
		{"NothingVisibleBeforeCommit", suite.testNothingVisibleBeforeCommit},
		{"Abort", suite.testAbort},
		{"CommitReplacesWhileOldBodyIsRead", suite.testCommitReplacesWhileOldBodyIsRead},
		{"Update", suite.testUpdate},
		{"Delete", suite.testDelete},
		{"PurgePrefix", suite.testPurgePrefix},
		{"PurgeTag", suite.testPurgeTag},
		{"SoftPurgePrefix", suite.testSoftPurgePrefix},
		{"SoftPurgeTag", suite.testSoftPurgeTag},
		{"EntriesPagination", suite.testEntriesPagination},
		{"Stats", suite.testStats},
		{"ExpiredEntryNotReturned", suite.testExpiredEntryNotReturned},
		{"LargeBody", suite.testLargeBody},
		{"Concurrent", suite.testConcurrent},
		{"Follow", suite.testFollow},
		{"FollowConcurrently", suite.testFollowConcurrently},
		{"FollowRoom", suite.testFollowRoom},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.test(su, t) })
	}
}

// testGetMissing: a key never stored is not found.
func (su suite) testGetMissing(t *testing.T) {
	s := su.fresh(t)
	wantNotFound(t, s, "missing")
}

// testRoundTrip: an entry and its body come back as written, whatever the size hint.
func (su suite) testRoundTrip(t *testing.T) {
	ctx := context.Background()
	body := pattern(10_000)
	for _, hint := range []int64{-1, 0, int64(len(body)), 100} {
		t.Run(fmt.Sprintf("hint=%d", hint), func(t *testing.T) {
			s := su.fresh(t)
			t0 := su.now()
			e := testEntry(t0)
			e.Size = hint
			w, err := s.Put(ctx, "https://example.com/a?b=c", e)
			if err != nil {
				t.Fatal(err)
			}
			// Written in uneven pieces, as a proxy receives them.
			for rest := body; len(rest) > 0; {
				n := min(len(rest), 777)
				if m, err := w.Write(rest[:n]); err != nil || m != n {
					t.Fatalf("Write = %d, %v; want %d, nil", m, err, n)
				}
				rest = rest[n:]
			}
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
			want := testEntry(t0)
			want.Size = int64(len(body))
			got, b := mustGet(t, s, "https://example.com/a?b=c")
			CheckEntry(t, got, want)
			checkBody(t, b, body)
		})
	}
}

// testEmptyBody: an entry with no body is stored and read back with size 0.
func (su suite) testEmptyBody(t *testing.T) {
	s := su.fresh(t)
	e := testEntry(su.now())
	e.Status = http.StatusNoContent
	put(t, s, "k", e, nil)
	got, b := mustGet(t, s, "k")
	if got.Size != 0 || b.Size() != 0 {
		t.Errorf("Size = %d, body Size = %d; want 0", got.Size, b.Size())
	}
	checkBody(t, b, nil)
}

// testPutClonesEntry: the store keeps a copy of the entry: the caller may change its own after Put.
func (su suite) testPutClonesEntry(t *testing.T) {
	ctx := context.Background()
	s := su.fresh(t)
	e := testEntry(su.now())
	w, err := s.Put(ctx, "k", e)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(e.Header); i += 2 {
		if e.Header[i] == "Content-Type" {
			e.Header[i+1] = "changed/by-caller"
		}
	}
	e.Tags[0] = "changed"
	write(t, w, []byte("x"))
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	got, _ := mustGet(t, s, "k")
	if ct := got.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("stored Content-Type = %q: the store kept the caller's Entry instead of a copy", ct)
	}
	if got.Tags[0] != "product:1" {
		t.Errorf("stored tag = %q: the store kept the caller's Tags instead of a copy", got.Tags[0])
	}
}

// testNothingVisibleBeforeCommit: a body being written is invisible until Commit, and an older entry under the key keeps being served meanwhile.
func (su suite) testNothingVisibleBeforeCommit(t *testing.T) {
	ctx := context.Background()
	s := su.fresh(t)
	w, err := s.Put(ctx, "new", testEntry(su.now()))
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, []byte("partial"))
	wantNotFound(t, s, "new")

	put(t, s, "old", testEntry(su.now()), []byte("v1"))
	w2, err := s.Put(ctx, "old", testEntry(su.now()))
	if err != nil {
		t.Fatal(err)
	}
	write(t, w2, []byte("v2"))
	_, b := mustGet(t, s, "old")
	checkBody(t, b, []byte("v1"))

	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := w2.Commit(); err != nil {
		t.Fatal(err)
	}
	_, b = mustGet(t, s, "new")
	checkBody(t, b, []byte("partial"))
	_, b = mustGet(t, s, "old")
	checkBody(t, b, []byte("v2"))
}

// testAbort: an aborted write stores nothing and leaves an older entry in place; Abort after Commit does nothing.
func (su suite) testAbort(t *testing.T) {
	ctx := context.Background()
	s := su.fresh(t)
	w, err := s.Put(ctx, "k", testEntry(su.now()))
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, []byte("discarded"))
	w.Abort()
	w.Abort() // twice is fine
	wantNotFound(t, s, "k")
	if err := w.Commit(); err == nil {
		t.Error("Commit after Abort succeeded")
	}
	wantNotFound(t, s, "k")

	// An aborted replacement leaves the old entry in place.
	put(t, s, "k", testEntry(su.now()), []byte("kept"))
	w, err = s.Put(ctx, "k", testEntry(su.now()))
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, []byte("dropped"))
	w.Abort()
	_, b := mustGet(t, s, "k")
	checkBody(t, b, []byte("kept"))

	// Abort after Commit does nothing.
	w, err = s.Put(ctx, "k2", testEntry(su.now()))
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, []byte("committed"))
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	_, b = mustGet(t, s, "k2")
	checkBody(t, b, []byte("committed"))
}

// following returns w as a store.Following, or skips the test for a
// store whose writers cannot be followed.
func following(t *testing.T, w store.Writer) store.Following {
	t.Helper()
	fw, ok := w.(store.Following)
	if !ok {
		w.Abort()
		t.Skip("the store's writers cannot be followed")
	}
	return fw
}

// follow starts a follower of w.
func follow(t *testing.T, w store.Following) store.Follower {
	t.Helper()
	f, ok := w.Follow()
	if !ok {
		t.Fatal("Follow of a body being written refused")
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// readFollower reads what f has at off, and checks the error.
func readFollower(t *testing.T, f store.Follower, off int64, wantErr error) string {
	t.Helper()
	p := make([]byte, 64)
	n, err := f.ReadAt(p, off)
	if !errors.Is(err, wantErr) {
		t.Fatalf("ReadAt(%d) = %d, %v; want error %v", off, n, err, wantErr)
	}
	return string(p[:n])
}

// testFollow: a body being written can be read from its first byte while
// it is written, by followers that start at any point; once committed it
// stays readable to them whatever happens to the entry; an aborted body
// tells them it was not stored; nothing can be followed once committed or
// aborted.
func (su suite) testFollow(t *testing.T) {
	ctx := context.Background()
	s := su.fresh(t)
	for _, size := range []int64{-1, 10} {
		e := testEntry(su.now())
		e.Size = size
		w, err := s.Put(ctx, "k", e)
		if err != nil {
			t.Fatal(err)
		}
		fw := following(t, w)
		first := follow(t, fw)
		if got := readFollower(t, first, 0, nil); got != "" {
			t.Fatalf("size %d: follower read %q before any write", size, got)
		}
		write(t, w, []byte("part1"))
		if got := readFollower(t, first, 0, nil); got != "part1" {
			t.Fatalf("size %d: follower read %q, want part1", size, got)
		}
		if got := readFollower(t, first, 5, nil); got != "" {
			t.Fatalf("size %d: follower read %q past what was written", size, got)
		}
		late := follow(t, fw)
		write(t, w, []byte("part2"))
		if got := readFollower(t, late, 0, nil); got != "part1part2" {
			t.Fatalf("size %d: late follower read %q, want part1part2", size, got)
		}
		if got := readFollower(t, first, 5, nil); got != "part2" {
			t.Fatalf("size %d: follower read %q at 5, want part2", size, got)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		if _, ok := fw.Follow(); ok {
			t.Fatalf("size %d: Follow after Commit accepted", size)
		}
		// The entry replaced and deleted: the followers still read the
		// body they followed.
		put(t, s, "k", testEntry(su.now()), []byte("other body"))
		if err := s.Delete(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if got := readFollower(t, late, 3, nil); got != "t1part2" {
			t.Fatalf("size %d: follower read %q after Commit, want t1part2", size, got)
		}
		readFollower(t, late, 10, io.EOF)
		readFollower(t, first, 10, io.EOF)
		first.Close()
		late.Close()
	}

	w, err := s.Put(ctx, "aborted", testEntry(su.now()))
	if err != nil {
		t.Fatal(err)
	}
	fw := following(t, w)
	f := follow(t, fw)
	write(t, w, []byte("dropped"))
	w.Abort()
	readFollower(t, f, 0, store.ErrNotStored)
	if _, ok := fw.Follow(); ok {
		t.Fatal("Follow after Abort accepted")
	}
	wantNotFound(t, s, "aborted")
}

// testFollowRoom: Room tells how much more of a body of unknown length
// the writer stores. It shrinks by what is written; a body that fills it
// exactly is still followed whole; one byte more ends the followers'
// reading with ErrNotStored.
func (su suite) testFollowRoom(t *testing.T) {
	s := su.fresh(t)
	e := testEntry(su.now())
	e.Size = -1
	w, err := s.Put(context.Background(), "k", e)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	fw := following(t, w)
	f := follow(t, fw)
	room := fw.Room()
	if room < 9<<20 {
		t.Fatalf("Room() = %d for a new entry; the store takes entries of 9 MiB", room)
	}
	write(t, w, []byte("part1"))
	if got := fw.Room(); got != room-5 {
		t.Fatalf("Room() = %d after 5 bytes, want %d", got, room-5)
	}
	write(t, w, make([]byte, room-5))
	if got := fw.Room(); got != 0 {
		t.Fatalf("Room() = %d once filled, want 0", got)
	}
	if got := readFollower(t, f, 0, nil); got != "part1"+strings.Repeat("\x00", 59) {
		t.Fatalf("follower of a body that fills Room read %q", got)
	}
	if got := readFollower(t, f, room, nil); got != "" {
		t.Fatalf("follower read %q past the body's end", got)
	}
	write(t, w, []byte("x"))
	readFollower(t, f, 0, store.ErrNotStored)
	if got := fw.Room(); got != 0 {
		t.Fatalf("Room() = %d once the body was given up, want 0", got)
	}
}

// testFollowConcurrently: followers reading while a large body is written
// in pieces (each at its own pace, one starting late) read it exactly.
func (su suite) testFollowConcurrently(t *testing.T) {
	s := su.fresh(t)
	body := pattern(1<<20 + 123)
	e := testEntry(su.now())
	e.Size = int64(len(body))
	w, err := s.Put(context.Background(), "big", e)
	if err != nil {
		t.Fatal(err)
	}
	fw := following(t, w)
	var wg sync.WaitGroup
	results := make([][]byte, 4)
	errs := make([]error, 4)
	start := func(i int) {
		f := follow(t, fw)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer f.Close()
			p := make([]byte, 1000+i*7919)
			for {
				n, err := f.ReadAt(p, int64(len(results[i])))
				results[i] = append(results[i], p[:n]...)
				if err == io.EOF {
					return
				}
				if err != nil {
					errs[i] = err
					return
				}
				if n == 0 {
					time.Sleep(50 * time.Microsecond)
				}
			}
		}()
	}
	for i := range 3 {
		start(i)
	}
	for off := 0; off < len(body); off += 4096 {
		write(t, w, body[off:min(off+4096, len(body))])
		if off < len(body)/2 && off+4096 >= len(body)/2 {
			start(3)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i := range results {
		if errs[i] != nil {
			t.Fatalf("follower %d: %v", i, errs[i])
		}
		if !bytes.Equal(results[i], body) {
			t.Fatalf("follower %d read %d bytes, not the body of %d", i, len(results[i]), len(body))
		}
	}
	_, b := mustGet(t, s, "big")
	checkBody(t, b, body)
}

// testCommitReplacesWhileOldBodyIsRead: replacing or deleting an entry does not change a body already being read.
func (su suite) testCommitReplacesWhileOldBodyIsRead(t *testing.T) {
	ctx := context.Background()
	s := su.fresh(t)
	v1 := bytes.Repeat([]byte("1"), 4096)
	v2 := bytes.Repeat([]byte("2"), 100)
	put(t, s, "k", testEntry(su.now()), v1)
	oldEntry, oldBody := mustGet(t, s, "k")
	head := make([]byte, 10)
	if _, err := io.ReadFull(oldBody, head); err != nil {
		t.Fatal(err)
	}

	e2 := testEntry(su.now())
	e2.Status = http.StatusNotFound
	put(t, s, "k", e2, v2)
	s.Delete(ctx, "k")
	put(t, s, "k", e2, v2)

	rest, err := io.ReadAll(oldBody)
	if err != nil {
		t.Fatal(err)
	}
	if got := append(head, rest...); !bytes.Equal(got, v1) {
		t.Errorf("old body changed while being read: %d bytes, starting %q", len(got), got[:min(len(got), 16)])
	}
	if oldEntry.Status != http.StatusOK || oldEntry.Size != int64(len(v1)) {
		t.Errorf("old entry changed: status %d size %d", oldEntry.Status, oldEntry.Size)
	}
	got, b := mustGet(t, s, "k")
	if got.Status != http.StatusNotFound {
		t.Errorf("Status = %d, want the replacement's %d", got.Status, http.StatusNotFound)
	}
	checkBody(t, b, v2)
}

// testUpdate: Update replaces the entry's fields and tags and keeps its body; it never creates an entry.
func (su suite) testUpdate(t *testing.T) {
	ctx := context.Background()
	s := su.fresh(t)
	body := pattern(3000)
	e := testEntry(su.now())
	put(t, s, "k", e, body)
	_, oldBody := mustGet(t, s, "k")

	u := testEntry(su.now())
	u.Status = http.StatusPartialContent
	u.Header = store.FieldsOf(http.Header{"Etag": {`"v2"`}, "Cache-Control": {"max-age=60"}})
	u.RequestTime = su.now().Add(time.Minute)
	u.ResponseTime = su.now().Add(time.Minute + time.Second)
	u.Expires = su.now().Add(2 * time.Hour)
	u.Tags = []string{"new-tag"}
	u.Size = 1 // ignored: the body is kept
	if err := s.Update(ctx, "k", u); err != nil {
		t.Fatal(err)
	}
	want := u.Clone()
	want.Size = int64(len(body))
	got, b := mustGet(t, s, "k")
	CheckEntry(t, got, want)
	checkBody(t, b, body)
	checkBody(t, oldBody, body)

	// The tags follow the update.
	if n, _ := s.PurgeTag(ctx, "product:1", false); n != 0 {
		t.Errorf("PurgeTag(old tag) = %d after Update replaced the tags, want 0", n)
	}
	mustGet(t, s, "k")
	if n, _ := s.PurgeTag(ctx, "new-tag", false); n != 1 {
		t.Errorf("PurgeTag(new tag) = %d, want 1", n)
	}
	wantNotFound(t, s, "k")

	if err := s.Update(ctx, "missing", u); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Update(missing) = %v, want ErrNotFound", err)
	}
	wantNotFound(t, s, "missing")
}

// testDelete: Delete removes exactly the keys it is given.
func (su suite) testDelete(t *testing.T) {
	ctx := context.Background()
	s := su.fresh(t)
	for _, k := range []string{"a", "b", "c", "d"} {
		put(t, s, k, testEntry(su.now()), []byte(k))
	}
	if err := s.Delete(ctx, "a", "c", "never-stored"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, s, "a")
	wantNotFound(t, s, "c")
	_, b := mustGet(t, s, "b")
	checkBody(t, b, []byte("b"))
	_, b = mustGet(t, s, "d")
	checkBody(t, b, []byte("d"))
}

// testPurgePrefix: PurgePrefix removes every key with the prefix and counts them; the empty prefix removes everything.
func (su suite) testPurgePrefix(t *testing.T) {
	ctx := context.Background()
	s := su.fresh(t)
	keys := []string{
		"GET https://a.example/img/1.png",
		"GET https://a.example/img/2.png",
		"GET https://a.example/img/sub/3.png",
		"GET https://a.example/imgx",
		"GET https://a.example/",
		"GET https://b.example/img/1.png",
	}
	for _, k := range keys {
		put(t, s, k, testEntry(su.now()), []byte(k))
	}
	n, err := s.PurgePrefix(ctx, "GET https://a.example/img/", false)
	if err != nil || n != 3 {
		t.Fatalf("PurgePrefix = %d, %v; want 3, nil", n, err)
	}
	for _, k := range keys[:3] {
		wantNotFound(t, s, k)
	}
	for _, k := range keys[3:] {
		mustGet(t, s, k)
	}
	if n, _ := s.PurgePrefix(ctx, "GET https://a.example/img/", false); n != 0 {
		t.Errorf("second PurgePrefix = %d, want 0", n)
	}
	if n, _ := s.PurgePrefix(ctx, "", false); n != 3 {
		t.Errorf("PurgePrefix(\"\") = %d, want 3 (everything left)", n)
	}
	if st := s.Stats(); st.Entries != 0 {
		t.Errorf("Stats().Entries = %d after purging everything, want 0", st.Entries)
	}
}

// testPurgeTag: PurgeTag removes the entries whose current tags hold the tag, and counts them.
func (su suite) testPurgeTag(t *testing.T) {
	ctx := context.Background()
	s := su.fresh(t)
	tagged := map[string][]string{
		"p1":     {"product:1", "list"},
		"p2":     {"product:2", "list"},
		"p1-img": {"product:1"},
		"home":   {"home"},
		"none":   nil,
	}
	for k, tags := range tagged {
		e := testEntry(su.now())
		e.Tags = tags
		put(t, s, k, e, []byte(k))
	}
	n, err := s.PurgeTag(ctx, "product:1", false)
	if err != nil || n != 2 {
		t.Fatalf("PurgeTag(product:1) = %d, %v; want 2, nil", n, err)
	}
	wantNotFound(t, s, "p1")
	wantNotFound(t, s, "p1-img")
	for _, k := range []string{"p2", "home", "none"} {
		mustGet(t, s, k)
	}
	if n, _ := s.PurgeTag(ctx, "list", false); n != 1 {
		t.Errorf("PurgeTag(list) = %d, want 1 (p1 is already gone)", n)
	}
	if n, _ := s.PurgeTag(ctx, "unknown", false); n != 0 {
		t.Errorf("PurgeTag(unknown) = %d, want 0", n)
	}
	if n, _ := s.PurgeTag(ctx, "", false); n != 0 {
		t.Errorf("PurgeTag(\"\") = %d, want 0", n)
	}

	// A replacement that keeps a tag is purged by it.
	e := testEntry(su.now())
	e.Tags = []string{"keep", "v1-only"}
	put(t, s, "kept", e, []byte("v1"))
	e.Tags = []string{"keep"}
	put(t, s, "kept", e, []byte("v2"))
	if err := s.Update(ctx, "kept", e); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.PurgeTag(ctx, "keep", false); n != 1 {
		t.Errorf("PurgeTag(keep) = %d after replacements that kept the tag, want 1", n)
	}
	wantNotFound(t, s, "kept")

	// A replacement that drops the tag is not purged by it.
	e = testEntry(su.now())
	e.Tags = []string{"home", "extra"}
	put(t, s, "home", e, []byte("v2"))
	e.Tags = []string{"other"}
	put(t, s, "home", e, []byte("v3"))
	if n, _ := s.PurgeTag(ctx, "home", false); n != 0 {
		t.Errorf("PurgeTag(home) = %d after the entry was replaced without the tag, want 0", n)
	}
	_, b := mustGet(t, s, "home")
	checkBody(t, b, []byte("v3"))
	if n, _ := s.PurgeTag(ctx, "other", false); n != 1 {
		t.Errorf("PurgeTag(other) = %d, want 1", n)
	}
}

// testSoftPurgePrefix: a soft PurgePrefix marks the entries SoftPurged and keeps them whole; a freshening Update clears the mark, a hard purge still removes them.
func (su suite) testSoftPurgePrefix(t *testing.T) {
	ctx := context.Background()
	s := su.fresh(t)
	keys := []string{"GET https://a.example/img/1", "GET https://a.example/img/2", "GET https://a.example/other"}
	t0 := su.now()
	for _, k := range keys {
		put(t, s, k, testEntry(t0), []byte(k))
	}
	n, err := s.PurgePrefix(ctx, "GET https://a.example/img/", true)
	if err != nil || n != 2 {
		t.Fatalf("soft PurgePrefix = %d, %v; want 2, nil", n, err)
	}
	// Soft-purged entries stay, with their body and everything else,
	// and carry the mark.
	for _, k := range keys[:2] {
		got, b := mustGet(t, s, k)
		if !got.SoftPurged {
			t.Errorf("%s: SoftPurged = false after a soft purge", k)
		}
		want := testEntry(t0)
		want.Size = int64(len(k))
		CheckEntry(t, got, want)
		checkBody(t, b, []byte(k))
	}
	if got, _ := mustGet(t, s, keys[2]); got.SoftPurged {
		t.Errorf("%s: SoftPurged set on an entry outside the prefix", keys[2])
	}
	if st := s.Stats(); st.Entries != 3 {
		t.Errorf("Stats().Entries = %d after a soft purge, want 3 (nothing removed)", st.Entries)
	}
	// A freshening Update clears the mark.
	if err := s.Update(ctx, keys[0], testEntry(su.now())); err != nil {
		t.Fatal(err)
	}
	if got, _ := mustGet(t, s, keys[0]); got.SoftPurged {
		t.Error("SoftPurged still set after an Update with an entry without it")
	}
	// A hard purge still removes soft-purged entries.
	if n, err := s.PurgePrefix(ctx, "GET https://a.example/img/", false); err != nil || n != 2 {
		t.Errorf("hard PurgePrefix after a soft one = %d, %v; want 2, nil", n, err)
	}
	wantNotFound(t, s, keys[1])
}

// testSoftPurgeTag: a soft PurgeTag marks the tagged entries SoftPurged and keeps them indexed by their tags; a replacement is not marked.
func (su suite) testSoftPurgeTag(t *testing.T) {
	ctx := context.Background()
	s := su.fresh(t)
	for k, tags := range map[string][]string{"p1": {"product:1"}, "p2": {"product:2"}, "both": {"product:1", "product:2"}} {
		e := testEntry(su.now())
		e.Tags = tags
		put(t, s, k, e, []byte(k))
	}
	n, err := s.PurgeTag(ctx, "product:1", true)
	if err != nil || n != 2 {
		t.Fatalf("soft PurgeTag = %d, %v; want 2, nil", n, err)
	}
	for k, want := range map[string]bool{"p1": true, "both": true, "p2": false} {
		got, b := mustGet(t, s, k)
		if got.SoftPurged != want {
			t.Errorf("%s: SoftPurged = %v, want %v", k, got.SoftPurged, want)
		}
		checkBody(t, b, []byte(k))
	}
	// The tags still index the entry: a second soft purge finds it,
	// and a hard purge by tag removes it.
	if n, _ := s.PurgeTag(ctx, "product:1", true); n != 2 {
		t.Errorf("second soft PurgeTag = %d, want 2", n)
	}
	if n, _ := s.PurgeTag(ctx, "product:2", false); n != 2 {
		t.Errorf("hard PurgeTag(product:2) = %d, want 2", n)
	}
	wantNotFound(t, s, "both")
	mustGet(t, s, "p1")
	// A replacement is a new response: not soft-purged.
	put(t, s, "p1", testEntry(su.now()), []byte("v2"))
	if got, _ := mustGet(t, s, "p1"); got.SoftPurged {
		t.Error("a replacement committed after a soft purge is SoftPurged")
	}
}

// testEntriesPagination: Entries lists the keys under a prefix in key order, page by page, with their metadata.
func (su suite) testEntriesPagination(t *testing.T) {
	ctx := context.Background()
	s := su.fresh(t)
	if l, err := s.Entries(ctx, "", "", 10); err != nil || len(l) != 0 {
		t.Fatalf("Entries of an empty store = %d, %v; want none", len(l), err)
	}
	// Stored out of order; listed in key order.
	var want []string
	for i := range 25 {
		want = append(want, fmt.Sprintf("GET https://a.example/%02d", i))
	}
	for i := range want {
		k := want[(i*7)%len(want)]
		e := testEntry(su.now())
		e.Tags = []string{"t" + k[len(k)-2:]}
		put(t, s, k, e, []byte(k+"!"))
	}
	put(t, s, "GET https://b.example/", testEntry(su.now()), []byte("b"))

	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("Entries never ran out")
		}
		l, err := s.Entries(ctx, "GET https://a.example/", after, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(l) > 10 {
			t.Fatalf("Entries returned %d, more than the limit 10", len(l))
		}
		if len(l) == 0 {
			break
		}
		for _, le := range l {
			got = append(got, le.Key)
			if le.Entry == nil || le.Entry.Size != int64(len(le.Key)+1) || le.Entry.Status != http.StatusOK {
				t.Errorf("%s: listed entry %+v, want status 200 and Size %d", le.Key, le.Entry, len(le.Key)+1)
			} else if len(le.Entry.Tags) != 1 || le.Entry.Tags[0] != "t"+le.Key[len(le.Key)-2:] {
				t.Errorf("%s: listed tags %q", le.Key, le.Entry.Tags)
			}
		}
		after = l[len(l)-1].Key
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("paginated keys =\n%q\nwant\n%q", got, want)
	}
	if l, _ := s.Entries(ctx, "", "", 1000); len(l) != 26 {
		t.Errorf("Entries of everything = %d, want 26", len(l))
	}
	if l, _ := s.Entries(ctx, "", "GET https://a.example/24", 1000); len(l) != 1 || l[0].Key != "GET https://b.example/" {
		t.Errorf("Entries after the last a.example key = %v, want only b.example", l)
	}
	if l, _ := s.Entries(ctx, "GET https://c", "", 10); len(l) != 0 {
		t.Errorf("Entries of an unknown prefix = %d, want 0", len(l))
	}
	// Deleted entries are not listed.
	s.Delete(ctx, want[0])
	if l, _ := s.Entries(ctx, "GET https://a.example/", "", 1); len(l) != 1 || l[0].Key != want[1] {
		t.Errorf("first entry after deleting %s = %v, want %s", want[0], l, want[1])
	}
}

// testStats: Stats counts entries (a replacement is not a new one) and their bytes.
func (su suite) testStats(t *testing.T) {
	ctx := context.Background()
	s := su.fresh(t)
	if st := s.Stats(); st.Entries != 0 || st.Bytes != 0 {
		t.Errorf("empty store: Stats = %+v, want no entries and no bytes", st)
	}
	put(t, s, "a", testEntry(su.now()), pattern(1000))
	put(t, s, "b", testEntry(su.now()), pattern(2000))
	put(t, s, "c", testEntry(su.now()), pattern(3000))
	put(t, s, "c", testEntry(su.now()), pattern(3000)) // replacement, not a new entry
	st := s.Stats()
	if st.Entries != 3 {
		t.Errorf("Stats().Entries = %d, want 3", st.Entries)
	}
	if st.Bytes < 6000 {
		t.Errorf("Stats().Bytes = %d, want at least the 6000 body bytes", st.Bytes)
	}
	if st.Capacity != 0 && st.Capacity < st.Bytes {
		t.Errorf("Stats().Capacity = %d is below Bytes = %d", st.Capacity, st.Bytes)
	}
	if err := s.Delete(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	st2 := s.Stats()
	if st2.Entries != 2 || st2.Bytes >= st.Bytes || st2.Bytes < 3000 {
		t.Errorf("after Delete: Stats = %+v, want 2 entries and fewer bytes than %d", st2, st.Bytes)
	}
}

// testExpiredEntryNotReturned: an entry past its Expires is never returned; a zero Expires means no expiry.
func (su suite) testExpiredEntryNotReturned(t *testing.T) {
	ctx := context.Background()
	s := su.fresh(t)
	e := testEntry(su.now())
	e.Expires = su.now().Add(-time.Second)
	if w, err := s.Put(ctx, "past", e); err == nil {
		write(t, w, []byte("x"))
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	wantNotFound(t, s, "past")

	e.Expires = su.now().Add(time.Hour)
	put(t, s, "future", e, []byte("x"))
	mustGet(t, s, "future")

	e.Expires = time.Time{}
	put(t, s, "never", e, []byte("x"))
	mustGet(t, s, "never")

	// Times whose Unix nanoseconds overflow or are 0.
	e.Expires = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	put(t, s, "year-9999", e, []byte("x"))
	mustGet(t, s, "year-9999")
	for name, exp := range map[string]time.Time{
		"epoch":     time.Unix(0, 0),
		"year-1":    time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
		"year-1600": time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		e.Expires = exp
		if w, err := s.Put(ctx, name, e); err == nil {
			write(t, w, []byte("x"))
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		wantNotFound(t, s, name)
	}
}

// testLargeBody: a body of several MiB written in chunks reads back intact.
func (su suite) testLargeBody(t *testing.T) {
	ctx := context.Background()
	s := su.fresh(t)
	const size, chunk = 8 << 20, 32 << 10
	e := testEntry(su.now())
	e.Size = -1
	w, err := s.Put(ctx, "large", e)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	buf := make([]byte, chunk)
	for i := 0; i < size/chunk; i++ {
		for j := range buf {
			buf[j] = byte(i*31 + j*7)
		}
		h.Write(buf)
		write(t, w, buf)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	want := h.Sum(nil)

	got, b := mustGet(t, s, "large")
	if got.Size != size || b.Size() != size {
		t.Fatalf("Size = %d, body Size = %d; want %d", got.Size, b.Size(), size)
	}
	h.Reset()
	if n, err := io.CopyBuffer(h, b, make([]byte, chunk)); err != nil || n != size {
		t.Fatalf("reading the body: %d bytes, %v", n, err)
	}
	if !bytes.Equal(h.Sum(nil), want) {
		t.Error("large body read back differs from what was written")
	}
	b.Close()
}

// testConcurrent: concurrent writes, reads, deletes and purges never show a torn entry and keep the bookkeeping right.
func (su suite) testConcurrent(t *testing.T) {
	ctx := context.Background()
	s := su.fresh(t)
	const workers, ops, keys = 8, 200, 8
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for g := range workers {
		wg.Go(func() {
			for i := range ops {
				key := "k" + strconv.Itoa((g+i)%keys)
				switch i % 4 {
				case 0, 1:
					if err := concurrentPut(s, key, g*ops+i, su.now()); err != nil {
						errc <- err
						return
					}
				case 2:
					if err := concurrentGet(s, key); err != nil {
						errc <- err
						return
					}
				case 3:
					if i%16 == 3 {
						s.Delete(ctx, key)
					} else if i%16 == 7 {
						s.PurgeTag(ctx, "tag-"+key, false)
					} else if err := concurrentGet(s, key); err != nil {
						errc <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	// The bookkeeping survived: purging everything empties the store.
	s.PurgePrefix(ctx, "", false)
	if st := s.Stats(); st.Entries != 0 {
		t.Errorf("Stats().Entries = %d after purging everything, want 0", st.Entries)
	}
}

// concurrentPut stores a body whose every byte and whose X-Version header
// tell the version, so that a reader can tell a torn entry.
func concurrentPut(s store.Store, key string, version int, now time.Time) error {
	e := testEntry(now)
	v := strconv.Itoa(version)
	e.Header = store.Fields{"X-Version", v}
	e.Tags = []string{"tag-" + key}
	w, err := s.Put(context.Background(), key, e)
	if err != nil {
		return err
	}
	body := bytes.Repeat([]byte(v+","), 50+version%50)
	for rest := body; len(rest) > 0; {
		n := min(len(rest), 64)
		if _, err := w.Write(rest[:n]); err != nil {
			return err
		}
		rest = rest[n:]
	}
	return w.Commit()
}

func concurrentGet(s store.Store, key string) error {
	e, b, err := s.Get(context.Background(), key)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer b.Close()
	body, err := io.ReadAll(b)
	if err != nil {
		return err
	}
	v := e.Header.Get("X-Version")
	if len(body) == 0 || !bytes.Equal(body, bytes.Repeat([]byte(v+","), len(body)/(len(v)+1))) ||
		int64(len(body)) != e.Size {
		return fmt.Errorf("%s: torn entry: version %s, size %d, body %.40q", key, v, e.Size, body)
	}
	return nil
}

// testEntry returns a typical stored response.
func testEntry(now time.Time) *store.Entry {
	return &store.Entry{
		Status: http.StatusOK,
		Header: store.FieldsOf(http.Header{
			"Content-Type":  {"text/plain; charset=utf-8"},
			"Cache-Control": {"max-age=3600", "stale-while-revalidate=30"},
			"Etag":          {`"abc"`},
			"Vary":          {"Accept-Encoding"},
		}),
		RequestTime:  now.Add(-2 * time.Second),
		ResponseTime: now.Add(-time.Second),
		Expires:      now.Add(time.Hour),
		Tags:         []string{"product:1", "catalog"},
		Size:         -1,
	}
}

// pattern returns n bytes that differ from offset to offset, so that a
// read at a wrong offset shows.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func put(t *testing.T, s store.Store, key string, e *store.Entry, body []byte) {
	t.Helper()
	w, err := s.Put(context.Background(), key, e)
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	write(t, w, body)
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit(%q): %v", key, err)
	}
}

func write(t *testing.T, w store.Writer, p []byte) {
	t.Helper()
	if n, err := w.Write(p); err != nil || n != len(p) {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(p))
	}
}

func mustGet(t *testing.T, s store.Store, key string) (*store.Entry, store.Body) {
	t.Helper()
	e, b, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	t.Cleanup(func() { b.Close() })
	return e, b
}

func wantNotFound(t *testing.T, s store.Store, key string) {
	t.Helper()
	e, b, err := s.Get(context.Background(), key)
	if !errors.Is(err, store.ErrNotFound) {
		if b != nil {
			b.Close()
		}
		t.Fatalf("Get(%q) = %+v, %v; want ErrNotFound", key, e, err)
	}
}

func readAll(t *testing.T, b store.Body) []byte {
	t.Helper()
	if _, err := b.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	p, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// CheckEntry reports, as test errors, where got differs from want: its
// status, header fields, times, tags or size.
func CheckEntry(t testing.TB, got, want *store.Entry) {
	t.Helper()
	if got.Status != want.Status {
		t.Errorf("Status = %d, want %d", got.Status, want.Status)
	}
	if fmt.Sprint(got.Header.Header()) != fmt.Sprint(want.Header.Header()) {
		t.Errorf("Header = %v, want %v", got.Header, want.Header)
	}
	for _, tm := range []struct {
		name      string
		got, want time.Time
	}{
		{"RequestTime", got.RequestTime, want.RequestTime},
		{"ResponseTime", got.ResponseTime, want.ResponseTime},
		{"Expires", got.Expires, want.Expires},
	} {
		if !tm.got.Equal(tm.want) {
			t.Errorf("%s = %v, want %v", tm.name, tm.got, tm.want)
		}
	}
	if fmt.Sprint(got.Tags) != fmt.Sprint(want.Tags) {
		t.Errorf("Tags = %q, want %q", got.Tags, want.Tags)
	}
	if got.Size != want.Size {
		t.Errorf("Size = %d, want %d", got.Size, want.Size)
	}
}

// checkBody reads b every way a handler may: Read from the start, Seek and
// Read, ReadAt, Size and (for in-memory bodies) Bytes.
func checkBody(t *testing.T, b store.Body, want []byte) {
	t.Helper()
	n := int64(len(want))
	if b.Size() != n {
		t.Errorf("body Size() = %d, want %d", b.Size(), n)
	}
	if got := readAll(t, b); !bytes.Equal(got, want) {
		t.Fatalf("body = %d bytes %.32q..., want %d bytes %.32q...", len(got), got, n, want)
	}
	if m, err := b.Read(make([]byte, 8)); m != 0 || err != io.EOF {
		t.Errorf("Read at the end = %d, %v; want 0, io.EOF", m, err)
	}
	if bb, ok := b.(store.BytesBody); ok && !bytes.Equal(bb.Bytes(), want) {
		t.Errorf("Bytes() = %d bytes, want the %d bytes of the body", len(bb.Bytes()), n)
	}
	if n == 0 {
		if m, err := b.ReadAt(make([]byte, 1), 0); m != 0 || err != io.EOF {
			t.Errorf("ReadAt(empty) = %d, %v; want 0, io.EOF", m, err)
		}
		return
	}
	checkBodySeek(t, b, want)
	checkBodyReadAt(t, b, want)
}

// checkBodySeek checks Seek from each origin, then Read, and a seek to a
// negative position, on a body holding want (not empty).
func checkBodySeek(t *testing.T, b store.Body, want []byte) {
	t.Helper()
	n := int64(len(want))
	// Seek from each origin, then Read.
	mid := n / 2
	for _, sk := range []struct {
		offset int64
		whence int
	}{{mid, io.SeekStart}, {mid - n, io.SeekEnd}} {
		pos, err := b.Seek(sk.offset, sk.whence)
		if err != nil || pos != mid {
			t.Fatalf("Seek(%d, %d) = %d, %v; want %d", sk.offset, sk.whence, pos, err, mid)
		}
		got, err := io.ReadAll(b)
		if err != nil || !bytes.Equal(got, want[mid:]) {
			t.Errorf("Read after Seek(%d, %d) = %d bytes, %v; want the %d bytes from %d",
				sk.offset, sk.whence, len(got), err, n-mid, mid)
		}
	}
	if _, err := b.Seek(1, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if pos, err := b.Seek(mid-1, io.SeekCurrent); err != nil || pos != mid {
		t.Errorf("Seek(%d, SeekCurrent) = %d, %v; want %d", mid-1, pos, err, mid)
	}
	if _, err := b.Seek(-1, io.SeekStart); err == nil {
		t.Error("Seek to a negative position succeeded")
	}

}

// checkBodyReadAt checks that ReadAt reads at its offset, reports io.EOF at
// the end, and neither depends on nor moves the body's offset.
func checkBodyReadAt(t *testing.T, b store.Body, want []byte) {
	t.Helper()
	n := int64(len(want))
	mid := n / 2
	// ReadAt does not depend on or move the offset.
	if _, err := b.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, min(n-mid, 100))
	if m, err := b.ReadAt(p, mid); m != len(p) || (err != nil && err != io.EOF) || !bytes.Equal(p, want[mid:mid+int64(len(p))]) {
		t.Errorf("ReadAt(%d bytes, %d) = %d, %v, or wrong bytes", len(p), mid, m, err)
	}
	p = make([]byte, 10)
	tail := min(n, 3)
	if m, err := b.ReadAt(p, n-tail); int64(m) != tail || err != io.EOF || !bytes.Equal(p[:tail], want[n-tail:]) {
		t.Errorf("ReadAt past the end = %d, %v; want %d, io.EOF and the last bytes", m, err, tail)
	}
	if m, err := b.ReadAt(p, n); m != 0 || err != io.EOF {
		t.Errorf("ReadAt(at the end) = %d, %v; want 0, io.EOF", m, err)
	}
	first := make([]byte, 1)
	if _, err := io.ReadFull(b, first); err != nil || first[0] != want[0] {
		t.Errorf("ReadAt moved the offset: Read from 0 got %v, %v", first, err)
	}
}
