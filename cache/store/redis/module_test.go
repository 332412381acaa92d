package redis

import (
	"context"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-edge/edge/internal/redistest"
)

func provision(t *testing.T, s *Store) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := s.Provision(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestPoolLifecycle: configs with the same options share one Client (a
// reload keeps the connection), changed options make a new one, and the
// last Cleanup closes it.
func TestPoolLifecycle(t *testing.T) {
	srv := redistest.Start(t)
	old := &Store{Address: []string{srv.Addr}, Prefix: "life:"}
	provision(t, old)
	if !old.c.Connected() {
		t.Error("Provision returned before the first connection to a running redis")
	}
	same := &Store{Address: []string{srv.Addr}, Prefix: "life:"}
	provision(t, same)
	if same.c != old.c {
		t.Error("a reload with the same options got a new Client")
	}
	changed := &Store{Address: []string{srv.Addr}, Prefix: "life2:"}
	provision(t, changed)
	if changed.c == old.c {
		t.Error("a changed prefix kept the old Client")
	}

	old.Cleanup() // the old config unloads: same still uses the Client
	if old.c.ctx.Err() != nil {
		t.Fatal("the Client was closed while a config still uses it")
	}
	same.Cleanup()
	if same.c.ctx.Err() == nil {
		t.Error("the last Cleanup left the Client open")
	}
	changed.Cleanup()
	if changed.c.ctx.Err() == nil {
		t.Error("the last Cleanup left the changed Client open")
	}
	if n := len(poolKeys()); n != 0 {
		t.Errorf("%d Clients left in the pool", n)
	}
}

func poolKeys() []any {
	var ks []any
	pool.Range(func(k, _ any) bool { ks = append(ks, k); return true })
	return ks
}
