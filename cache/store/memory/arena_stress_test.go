package memory

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache/store"
)

// TestArenaStress: every store operation at once on a small store
// that evicts, expires and compacts, while readers check that each hit's
// metadata and body belong to its key and to one version.
func TestArenaStress(t *testing.T) {
	ctx := context.Background()
	var nowNano atomic.Int64
	nowNano.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, nowNano.Load()) }
	c := newCache(t, Config{MaxSize: 2 << 20, Now: now})
	const keys = 1500
	sizeOf := func(i, v int) int { return 1 + (i*131+v*977)%9000 }
	entry := func(i int, size int64, cl bool, ttl time.Duration) *store.Entry {
		h := http.Header{
			"Content-Type": {"text/html; charset=utf-8"},
			"X-Key":        {strconv.Itoa(i)},
		}
		if cl {
			h.Set("Content-Length", strconv.FormatInt(size, 10))
		}
		n := now()
		return &store.Entry{
			Status: 200, Header: store.FieldsOf(h), RequestTime: n, ResponseTime: n,
			Expires: n.Add(ttl), Size: size, Tags: []string{"t" + strconv.Itoa(i%7), "all"},
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var hits, bad atomic.Int64
	for r := range 2 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := rng.IntN(keys)
				e, b, err := c.Get(ctx, "k"+strconv.Itoa(i))
				if err != nil {
					continue
				}
				got := b.(store.BytesBody).Bytes()
				got = append([]byte(nil), got...)
				b.Close()
				hits.Add(1)
				if e.Header.Get("X-Key") != strconv.Itoa(i) || e.Size != int64(len(got)) {
					bad.Add(1)
					t.Errorf("k%d: metadata X-Key %q size %d, body %d", i, e.Header.Get("X-Key"), e.Size, len(got))
					continue
				}
				if len(got) == 0 {
					continue
				}
				v := -1
				if j := strings.IndexByte(string(got), '/'); j >= 0 {
					rest := string(got[j+1:])
					if k := strings.IndexByte(rest, ';'); k >= 0 {
						rest = rest[:k]
					}
					v, _ = strconv.Atoi(rest)
				}
				if string(bodyOf(i, v, len(got))) != string(got) {
					bad.Add(1)
					t.Errorf("k%d: body %.60q", i, got)
				}
			}
		})
	}
	var ver atomic.Int64
	writer := func(seed uint64) {
		rng := rand.New(rand.NewPCG(seed, 2))
		for {
			select {
			case <-stop:
				return
			default:
			}
			i := rng.IntN(keys)
			key := "k" + strconv.Itoa(i)
			v := int(ver.Add(1))
			n := sizeOf(i, v)
			ttl := time.Hour
			if rng.IntN(4) == 0 {
				ttl = time.Duration(rng.IntN(50)) * time.Millisecond
			}
			switch op := rng.IntN(20); {
			case op < 8: // announced exact length, maybe with Content-Length
				w, err := c.Put(ctx, key, entry(i, int64(n), rng.IntN(2) == 0, ttl))
				if err != nil {
					t.Error(err)
					return
				}
				body := bodyOf(i, v, n)
				for len(body) > 0 {
					k := min(len(body), 1+rng.IntN(3000))
					w.Write(body[:k])
					body = body[k:]
				}
				if rng.IntN(10) == 0 {
					w.Abort()
				} else if err := w.Commit(); err != nil {
					t.Error(err)
				}
			case op < 11: // a hint, shorter or longer
				hint := int64(max(1, n+rng.IntN(2000)-1000))
				w, _ := c.Put(ctx, key, entry(i, hint, false, ttl))
				w.Write(bodyOf(i, v, n))
				w.Commit()
			case op < 13: // unknown length
				w, _ := c.Put(ctx, key, entry(i, -1, false, ttl))
				w.Write(bodyOf(i, v, n))
				w.Commit()
			case op < 14: // Content-Length that the body does not match
				w, _ := c.Put(ctx, key, entry(i, int64(n), true, ttl))
				w.Write(bodyOf(i, v, n+rng.IntN(3)-1))
				w.Commit()
				w.Abort()
			case op < 16:
				e := entry(i, int64(rng.IntN(9000)), rng.IntN(2) == 0, ttl)
				c.Update(ctx, key, e)
			case op < 17:
				c.PurgePrefix(ctx, key, true)
			case op < 18:
				c.PurgeTag(ctx, "t"+strconv.Itoa(i%7), rng.IntN(3) != 0)
			default:
				c.Delete(ctx, key)
			}
		}
	}
	for s := range 2 {
		wg.Go(func() { writer(uint64(s + 10)) })
	}
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			nowNano.Add(int64(10 * time.Millisecond))
			c.sweep()
			if c.arena.compacting.CompareAndSwap(false, true) {
				c.compact()
			}
		}
	})
	run := 8 * time.Second
	if testing.Short() {
		run = 2 * time.Second
	}
	time.Sleep(run)
	close(stop)
	wg.Wait()
	c.c.CleanUp()
	settle(t, c)
	checkArena(t, c)
	var entries, bytes int64
	for k, it := range c.c.All() {
		entries++
		bytes += weight(k, it)
	}
	if c.entries.Load() != entries || c.bytes.Load() != bytes {
		t.Errorf("counted %d entries of %d bytes, the store has %d of %d", c.entries.Load(), c.bytes.Load(), entries, bytes)
	}
	// Every writer committed or aborted, by every path: none holds a
	// buffer or a segment against the fill bound any more.
	if f := c.filling.Load(); f != 0 {
		t.Errorf("%d bytes still counted as filling once every writer ended", f)
	}
	t.Logf("%d hits, %d bad, moved %d, arena %d bytes, live %d", hits.Load(), bad.Load(), c.arena.moved.Load(), c.arena.bytes.Load(), c.arena.live.Load())
}
