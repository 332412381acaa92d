package memory

import (
	"context"
	"encoding/json"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
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
		{"empty store: budget and its headroom, Caddy's heap and its half",
			256 * MiB, 0, 20 * MiB, 1 << 40, 296*MiB + 30*MiB + governorSlack},
		{"full store: its bytes get no GC headroom beyond their share",
			256 * MiB, 256 * MiB, 276 * MiB, 1 << 40, 296*MiB + 30*MiB + governorSlack},
		{"bodies in flight raise the limit",
			256 * MiB, 256 * MiB, 476 * MiB, 1 << 40, 296*MiB + 330*MiB + governorSlack},
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

func TestStoredHeadroom(t *testing.T) {
	const MiB = 1 << 20
	for _, tt := range []struct {
		budgets, want int64
	}{
		{1 * MiB, MiB / 16},
		{16 * MiB, 1 * MiB},
		{64 * MiB, 4 * MiB}, // where 1/16 and 3/16 less 8 MiB meet
		{128 * MiB, 16 * MiB},
		{256 * MiB, 40 * MiB},
		{1024 * MiB, 184 * MiB},
	} {
		if got := storedHeadroom(tt.budgets); got != tt.want {
			t.Errorf("storedHeadroom(%d MiB) = %d KiB, want %d KiB", tt.budgets/MiB, got>>10, tt.want>>10)
		}
	}
}

func TestGovernorGC(t *testing.T) {
	const MiB = 1 << 20
	for _, tt := range []struct {
		name   string
		roots  int64
		before int
		want   int
	}{
		{"Caddy's own few MiB: the heap may grow by 32 MiB between cycles", 8 * MiB, 100, 400},
		{"before the first cycle the roots count as 4 MiB", 0, 100, 800},
		{"32 MiB or more of heap, stacks and globals keeps GOGC=100", 32 * MiB, 100, 100},
		{"a full store keeps GOGC=100 (the limit bounds it)", 300 * MiB, 100, 100},
		{"never below a GOGC the program set", 300 * MiB, 200, 200},
		{"off stays off", 8 * MiB, -1, -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := governorGC(tt.roots, tt.before); got != tt.want {
				t.Errorf("governorGC(%d MiB, %d) = %d, want %d", tt.roots/MiB, tt.before, got, tt.want)
			}
		})
	}
}

// liveHeap returns the live heap after a collection.
func liveHeap() int64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// TestGovernorFollowsLoadedStores loads a memory store as Caddy does and
// checks that the process's soft memory limit comes down to what the store
// needs while it is loaded, that GOGC lets a small heap grow by 32 MiB
// between cycles, and that both are given back when the store is unloaded.
func TestGovernorFollowsLoadedStores(t *testing.T) {
	register()
	t.Setenv("GOMEMLIMIT", "")
	t.Setenv("GOGC", "")
	if live := liveHeap(); live > gcHeadroom/4 {
		t.Fatalf("the test's live heap is %d MiB: too large to see GOGC raised", live>>20)
	}
	beforeGC := gcPercent()
	before := debug.SetMemoryLimit(-1)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	if _, err := ctx.LoadModuleByID("http.cache.stores.memory", json.RawMessage(`{"name":"governed","max_size":67108864}`)); err != nil {
		cancel()
		t.Fatal(err)
	}
	loaded, loadedGC := debug.SetMemoryLimit(-1), gcPercent()
	cancel()
	after, afterGC := debug.SetMemoryLimit(-1), gcPercent()
	if loadedGC < 2*beforeGC {
		t.Errorf("with a store loaded and a small heap GOGC is %d (before: %d); want it raised to at least %d", loadedGC, beforeGC, 2*beforeGC)
	}
	if afterGC != beforeGC {
		t.Errorf("after the store was unloaded GOGC is %d, want the %d in force before", afterGC, beforeGC)
	}
	if loaded >= before || loaded < 68<<20 {
		t.Errorf("with a 64 MiB store loaded the limit is %d MiB (before: %d MiB); want at least 68 MiB and below the one before", loaded>>20, before>>20)
	}
	if after != before {
		t.Errorf("after the store was unloaded the limit is %d MiB, want the %d MiB in force before", after>>20, before>>20)
	}
}

// TestGovernorLeavesOperatorsSettings checks that an operator's GOMEMLIMIT
// or GOGC wins: the governor then touches neither.
func TestGovernorLeavesOperatorsSettings(t *testing.T) {
	register()
	for _, env := range []string{"GOMEMLIMIT", "GOGC"} {
		t.Run(env, func(t *testing.T) {
			t.Setenv("GOMEMLIMIT", "")
			t.Setenv("GOGC", "")
			t.Setenv(env, "off")
			before, beforeGC := debug.SetMemoryLimit(-1), gcPercent()
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			if _, err := ctx.LoadModuleByID("http.cache.stores.memory", json.RawMessage(`{"name":"ungoverned","max_size":67108864}`)); err != nil {
				t.Fatal(err)
			}
			if got := debug.SetMemoryLimit(-1); got != before {
				t.Errorf("with %s set the limit changed from %d to %d", env, before, got)
			}
			if got := gcPercent(); got != beforeGC {
				t.Errorf("with %s set GOGC changed from %d to %d", env, beforeGC, got)
			}
		})
	}
}

// TestGovernorTickAfterLastRemove: a tick of the loop that waited for
// the governor's lock while the last store was removed comes after the
// limit and GOGC were restored, before the loop sees it is stopped. It
// must leave them restored, not set a limit for no store at all (1.5 ×
// the live heap + 8 MiB) that nobody restores.
func TestGovernorTickAfterLastRemove(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	t.Setenv("GOGC", "")
	before, beforeGC := debug.SetMemoryLimit(-1), gcPercent()
	defer func() {
		debug.SetMemoryLimit(before)
		debug.SetGCPercent(beforeGC)
	}()
	g := &memGovernor{caches: make(map[*Cache]struct{})}
	c := newCache(t, Config{MaxSize: 64 << 20})
	g.add(c)
	stop := g.stop
	g.remove(c)
	g.tick(stop) // the loop's tick, which had waited for g.mu
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("after the last store was removed and a late tick the limit is %d MiB, want the %d MiB in force before", got>>20, before>>20)
	}
	if got := gcPercent(); got != beforeGC {
		t.Errorf("after the last store was removed and a late tick GOGC is %d, want the %d in force before", got, beforeGC)
	}
}
