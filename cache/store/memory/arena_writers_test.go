package memory

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache/store"
)

// TestArenaStalledWritersWithinFillBound: bodies of announced length that
// are still arriving (a slow origin, or a tiered store's promotion that a
// slow client reads) each keep the segment of their record alive, whatever
// else leaves it: a writer's record is no entry, so neither the budget nor
// a compaction lets it go. The segments they hold beyond their records are
// bodies in flight, which must stay within the store's fill bound, as a
// body buffered apart does.
func TestArenaStalledWritersWithinFillBound(t *testing.T) {
	c := newCache(t, Config{MaxSize: 16 << 20})
	c.fillMax.Store(4 << 20) // a quarter of its floor, for a quicker test
	seg := c.arena.size
	fillMax := c.fillMax.Load()
	open := int(2*fillMax) / seg // twice what the bound allows, were each writer to hold a segment
	i := 0
	put := func() {
		putBody(t, c, "k"+strconv.Itoa(i), func() *store.Entry { return entryNow(1024, benchHeader()) }, bodyOf(i, 0, 1024))
		i++
	}
	var writers []store.Writer
	for range open {
		w, err := c.Put(context.Background(), "slow"+strconv.Itoa(len(writers)), entryNow(1024, benchHeader()))
		if err != nil {
			t.Fatal(err)
		}
		w.Write(bodyOf(-1, 0, 100)) // the first bytes, then the origin stalls
		writers = append(writers, w)
		for range seg / 1024 { // the next writer in another segment
			put()
		}
	}
	for range 32 << 10 { // 32 MiB through the store: every other record leaves
		put()
		if i%64 == 0 {
			settle(t, c)
		}
	}
	settle(t, c)
	a := c.arena
	// What the arena holds beyond the records of its entries: its holes,
	// up to 1/compactAt of it (a compaction starts above), the ends of
	// sealed segments that no record fitted (less than a record of about
	// 1 KiB, 1/64 of a segment), the current segment's room, and the
	// bodies still arriving.
	beyond := a.overhead()
	allowed := a.bytes.Load()/compactAt + a.bytes.Load()/32 + int64(seg) + fillMax
	t.Logf("%d stalled writers: segments %d KiB, held by entries %d KiB, beyond %d KiB, allowed %d KiB, filling %d KiB",
		open, a.bytes.Load()>>10, a.live.Load()>>10, beyond>>10, allowed>>10, c.filling.Load()>>10)
	if beyond > allowed {
		t.Errorf("the arena holds %d KiB beyond its entries' records with %d stalled writers, over %d KiB (holes, ends, current segment, fill bound of %d KiB)",
			beyond>>10, open, allowed>>10, fillMax>>10)
	}
	if f := c.filling.Load(); f > fillMax {
		t.Errorf("filling %d over the fill bound %d", f, fillMax)
	}
	for j, w := range writers {
		w.Write(bodyOf(-1, 0, 1024)[100:])
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		got, ok := getBody(t, c, "slow"+strconv.Itoa(j))
		if ok && string(got) != string(bodyOf(-1, 0, 1024)) {
			t.Errorf("slow%d: body %.40q", j, got)
		}
	}
	if f := c.filling.Load(); f != 0 {
		t.Errorf("filling %d once every writer committed, want 0", f)
	}
	c.c.CleanUp() // otter's evictions, which its own goroutine may still be making
	checkArena(t, c)
}

// TestArenaSlowWritersAcrossCompactions: bodies of announced length that
// arrive in pieces while other writers fill, seal and compact the
// segments, and followers that read them as they arrive, each end with
// their own bytes: in the follower, and in the entry once committed.
func TestArenaSlowWritersAcrossCompactions(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, Config{MaxSize: 2 << 20})
	const slow = 64
	type open struct {
		w    store.Writer
		f    store.Follower
		body []byte
		off  int
	}
	var ws []*open
	for j := range slow {
		body := bodyOf(1000+j, 0, 1+(j*997)%8000)
		w, err := c.Put(ctx, "slow"+strconv.Itoa(j), entryNow(int64(len(body)), benchHeader()))
		if err != nil {
			t.Fatal(err)
		}
		var f store.Follower
		if fw, ok := w.(store.Following); ok && j%2 == 0 {
			f, _ = fw.Follow()
		}
		ws = append(ws, &open{w: w, f: f, body: body})
	}
	i := 0
	for round := 0; ; round++ {
		progress := false
		for _, o := range ws {
			if o.off == len(o.body) {
				continue
			}
			progress = true
			n := min(len(o.body)-o.off, 97)
			o.w.Write(o.body[o.off : o.off+n])
			o.off += n
		}
		for range 40 { // churn: evictions, seals, compactions
			putBody(t, c, "k"+strconv.Itoa(i), func() *store.Entry { return entryNow(2000, benchHeader()) }, bodyOf(i, 0, 2000))
			if i%3 == 0 {
				c.Delete(ctx, "k"+strconv.Itoa(i-1))
			}
			i++
		}
		if !progress {
			break
		}
	}
	for j, o := range ws {
		if err := o.w.Commit(); err != nil {
			t.Fatalf("slow%d: %v", j, err)
		}
		if o.f != nil {
			got := make([]byte, len(o.body)+1)
			n, _ := o.f.ReadAt(got, 0)
			if string(got[:n]) != string(o.body) {
				t.Errorf("slow%d: follower read %.40q", j, got[:n])
			}
			o.f.Close()
		}
		if got, ok := getBody(t, c, "slow"+strconv.Itoa(j)); ok && string(got) != string(o.body) {
			t.Errorf("slow%d: stored %.40q", j, got)
		}
	}
	if f := c.filling.Load(); f != 0 {
		t.Errorf("filling %d once every writer committed", f)
	}
	c.c.CleanUp() // otter's evictions, which its own goroutine may still be making
	checkArena(t, c)
	if c.arena.compactions.Load() == 0 {
		t.Errorf("no compaction ran")
	}
}

// TestArenaReclaimsWithoutNewRecords: entries that leave the store in
// bulk (a purge of most entries, their expiry, a reload with a smaller
// max_size) leave holes in every segment; they are reclaimed though no
// new record is written after, as on a site that has gone quiet.
func TestArenaReclaimsWithoutNewRecords(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name  string
		leave func(c *Cache, later *atomic.Bool)
	}{
		{"resize", func(c *Cache, _ *atomic.Bool) {
			if err := c.Resize(4 << 20); err != nil {
				t.Fatal(err)
			}
		}},
		{"expiry", func(c *Cache, later *atomic.Bool) { later.Store(true) }},
		{"purge", func(c *Cache, _ *atomic.Bool) {
			for i := range 40000 {
				if i%10 != 0 {
					c.Delete(ctx, "k"+strconv.Itoa(i))
				}
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			var later atomic.Bool // two hours later: the entries but every tenth have expired
			now := func() time.Time {
				if later.Load() {
					return start.Add(2 * time.Hour)
				}
				return start
			}
			c := newCache(t, Config{MaxSize: 64 << 20, Now: now})
			for i := range 40000 {
				putBody(t, c, "k"+strconv.Itoa(i), func() *store.Entry {
					e := entryNow(1024, benchHeader())
					e.Expires = start.Add(time.Hour)
					if i%10 == 0 {
						e.Expires = start.Add(3 * time.Hour)
					}
					return e
				}, bodyOf(i, 0, 1024))
			}
			settle(t, c)
			tt.leave(c, &later)
			c.CleanUp()
			settle(t, c)
			c.c.CleanUp() // otter's evictions, which its own goroutine may still be making
			a := c.arena
			holes := a.used.Load() - a.live.Load()
			t.Logf("%d entries: segments %d KiB, held %d KiB, holes %d KiB", c.entries.Load(), a.bytes.Load()>>10, a.live.Load()>>10, holes>>10)
			if allowed := a.bytes.Load() / compactAt; holes > allowed {
				t.Errorf("%d KiB of holes in the arena's %d KiB, over %d KiB", holes>>10, a.bytes.Load()>>10, allowed>>10)
			}
			// The holes, then the current segment's room and the ends of
			// sealed segments that no record fitted (less than a record of
			// about 1 KiB, 1/64 of a segment).
			if free, allowed := a.overhead(), a.bytes.Load()/compactAt+a.bytes.Load()/32+int64(a.size); free > allowed {
				t.Errorf("%d KiB of the arena's %d KiB are free, over %d KiB", free>>10, a.bytes.Load()>>10, allowed>>10)
			}
			checkArena(t, c)
		})
	}
}
