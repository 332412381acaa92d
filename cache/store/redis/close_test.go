package redis

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache/store"
	"github.com/caddy-edge/edge/internal/redistest"
)

// Close comes with the unload of the last config that uses the Client
// (pooled.Destruct), which Caddy runs while that config's requests are
// still being served: a reload does not wait for them. A hit streaming a
// chunked body and a miss streaming one into the store must end whole:
// the connection stays open until the last body and writer are done, and
// closes then.
func TestCloseWaitsForBodiesAndWriters(t *testing.T) {
	srv := redistest.Start(t)
	opts := Options{ChunkSize: 1024, Prefix: "close:", Timeout: 2 * time.Second}
	opts.Client.InitAddress = []string{srv.Addr}
	c := NewClient(opts)
	waitUp(t, c)
	other := newTestClient(t, opts, srv.Addr) // another node, to look
	ctx := context.Background()

	body := bytes.Repeat([]byte("0123456789abcdef"), 4*1024/16) // four chunks
	put(t, c, "hit", entry(time.Hour), body)
	_, b, err := c.Get(ctx, "hit")
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 1024)
	if _, err := io.ReadFull(b, first); err != nil {
		t.Fatal(err)
	}
	w, err := c.Put(ctx, "miss", entry(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(body[:2500]); err != nil { // two chunks sent
		t.Fatal(err)
	}

	c.Close() // the config is unloaded; its requests go on

	rest, err := io.ReadAll(b)
	if err != nil || !bytes.Equal(append(first, rest...), body) {
		t.Errorf("the hit's body after Close: %d bytes, %v; want all %d", len(first)+len(rest), err, len(body))
	}
	if _, err := w.Write(body[2500:]); err != nil {
		t.Errorf("the miss's write after Close: %v", err)
	}
	if err := w.Commit(); err != nil {
		t.Errorf("the miss's commit after Close: %v", err)
	}
	if _, ob, err := other.Get(ctx, "miss"); err != nil {
		t.Errorf("the miss committed after Close is not stored: %v", err)
	} else {
		got, err := io.ReadAll(ob)
		ob.Close()
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("the miss committed after Close: %d bytes, %v; want %d", len(got), err, len(body))
		}
	}

	// The last body closed, the connection is closed.
	b.Close()
	if _, _, err := c.Get(ctx, "hit"); err == nil {
		t.Error("Get works once the Client is closed and its last body too: the connection was left open")
	}
	if _, err := c.Put(ctx, "late", entry(time.Hour)); !errors.Is(err, store.ErrBusy) {
		t.Errorf("Put on a closed Client: %v, want store.ErrBusy (not stored, nothing to log)", err)
	}
}
