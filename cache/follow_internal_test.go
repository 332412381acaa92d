package cache

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/caddy-edge/edge/cache/store"
	"github.com/caddy-edge/edge/cache/store/memory"
)

// A followed body of announced length is complete once that length is
// read, whatever becomes of the store write after: a fetch whose client
// left aborts it after its last byte, and a follower that has every byte
// must not see that as a body cut short (its connection would be closed
// under a complete response).
func TestFollowBodyCompleteAtItsLength(t *testing.T) {
	s, err := memory.New(memory.Config{MaxSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 100<<10)
	w, err := s.Put(context.Background(), "k", &store.Entry{Status: 200, Size: int64(len(body))})
	if err != nil {
		t.Fatal(err)
	}
	rd, ok := w.(store.Following).Follow()
	if !ok {
		t.Fatal("Follow refused")
	}
	fl := &flight{done: make(chan struct{})}
	fl.src.followers.Add(1)
	b := &followBody{fl: fl, rd: rd, size: int64(len(body))}
	w.Write(body)
	got := make([]byte, len(body))
	if _, err := io.ReadFull(b, got); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("read %v", err)
	}
	w.Abort()
	if n, err := b.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("read past the announced length after the write was aborted: %d, %v; want 0, EOF", n, err)
	}
	if b.err != nil {
		t.Fatalf("body counted as cut: %v", b.err)
	}
	b.Close()
}
