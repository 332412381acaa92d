package memory

import (
	"context"
	"encoding/json"
	"runtime/debug"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

func TestGovernorLimit(t *testing.T) {
	const MiB = 1 << 20
	for _, tt := range []struct {
		name                          string
		budgets, stored, live, before int64
		want                          int64
	}{
		{"empty store: budget and its sixteenth, Caddy's heap and its half",
			256 * MiB, 0, 20 * MiB, 1 << 40, 272*MiB + 30*MiB + governorSlack},
		{"full store: its bytes get no GC headroom beyond the sixteenth",
			256 * MiB, 256 * MiB, 276 * MiB, 1 << 40, 272*MiB + 30*MiB + governorSlack},
		{"bodies in flight raise the limit",
			256 * MiB, 256 * MiB, 476 * MiB, 1 << 40, 272*MiB + 330*MiB + governorSlack},
		{"never above the limit in force before",
			256 * MiB, 0, 20 * MiB, 200 * MiB, 200 * MiB},
		{"a store that counts more than the live heap",
			64 * MiB, 64 * MiB, 60 * MiB, 1 << 40, 68*MiB + governorSlack},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := governorLimit(tt.budgets, tt.stored, tt.live, tt.before); got != tt.want {
				t.Errorf("governorLimit = %d MiB, want %d MiB", got/MiB, tt.want/MiB)
			}
		})
	}
}

// TestGovernorFollowsLoadedStores loads a memory store as Caddy does and
// checks that the process's soft memory limit comes down to what the store
// needs while it is loaded, and is given back when it is unloaded.
func TestGovernorFollowsLoadedStores(t *testing.T) {
	register()
	t.Setenv("GOMEMLIMIT", "")
	before := debug.SetMemoryLimit(-1)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	if _, err := ctx.LoadModuleByID("http.cache.stores.memory", json.RawMessage(`{"name":"governed","max_size":67108864}`)); err != nil {
		cancel()
		t.Fatal(err)
	}
	loaded := debug.SetMemoryLimit(-1)
	cancel()
	after := debug.SetMemoryLimit(-1)
	if loaded >= before || loaded < 68<<20 {
		t.Errorf("with a 64 MiB store loaded the limit is %d MiB (before: %d MiB); want at least 68 MiB and below the one before", loaded>>20, before>>20)
	}
	if after != before {
		t.Errorf("after the store was unloaded the limit is %d MiB, want the %d MiB in force before", after>>20, before>>20)
	}
}

// TestGovernorLeavesGOMEMLIMIT checks that an operator's GOMEMLIMIT wins.
func TestGovernorLeavesGOMEMLIMIT(t *testing.T) {
	register()
	t.Setenv("GOMEMLIMIT", "off")
	before := debug.SetMemoryLimit(-1)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if _, err := ctx.LoadModuleByID("http.cache.stores.memory", json.RawMessage(`{"name":"ungoverned","max_size":67108864}`)); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("with GOMEMLIMIT set the limit changed from %d to %d", before, got)
	}
}
