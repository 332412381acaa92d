package tiered

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/caddy-edge/edge/cache/store"
	"github.com/caddy-edge/edge/cache/store/disk"
	"github.com/caddy-edge/edge/cache/store/memory"
)

// Tiered stores in front of one back store share one memory tier (the
// module's pool): two sites of a config, or the old and the new config of
// a reload. A purge through one of them must stop a promotion that another
// one has in flight (a hit streaming a large body from the back store
// into the memory tier), as it stops its own: otherwise the purged body
// lands in the shared memory tier after the purge, and both sites serve
// it from there.
func TestTiersSharingAFrontSeeEachOthersPurges(t *testing.T) {
	front, err := memory.New(memory.Config{MaxSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(front.Close)
	back, err := disk.Open(disk.Config{Dir: t.TempDir(), MaxSize: 128 << 20, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(back.Close)
	<-back.Ready()
	site1, site2 := New(front, back), New(front, back)
	t.Cleanup(site1.Close)
	t.Cleanup(site2.Close)
	ctx := context.Background()
	body := bytes.Repeat([]byte("L"), 2<<20) // read from its file, not from memory: the tee fills the front

	for _, purge := range []struct {
		name string
		do   func() error
	}{
		{"delete", func() error { return site1.Delete(ctx, "k") }},
		{"prefix", func() error { _, err := site1.PurgePrefix(ctx, "k", false); return err }},
		{"tag", func() error { _, err := site1.PurgeTag(ctx, "tag", false); return err }},
	} {
		put(t, site1, "k", body)
		_, b, err := site2.Get(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := b.(*teeBody); !ok {
			t.Fatalf("%s: the back store's hit is a %T, not filling the front", purge.name, b)
		}
		if _, err := b.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		if err := purge.do(); err != nil { // through the other site
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, b); err != nil { // the promotion ends
			t.Fatal(err)
		}
		b.Close()
		if _, err := get(t, site1, "k"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: the purged entry is served (from the memory tier: %v)", purge.name, inFront(site1, "k"))
		}
		front.Delete(ctx, "k")
	}
}
