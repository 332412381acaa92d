package derive

import (
	"testing"

	"github.com/caddy-edge/edge/cache/store"
)

type keyed string

func (k keyed) DeriveKey() string { return string(k) }

func returns(v string) func(*store.Entry) any {
	return func(*store.Entry) any { return v }
}

func TestRegistry(t *testing.T) {
	var r Registry
	if r.Func(0) != nil || r.Of(keyed("a")) != 0 {
		t.Fatal("an empty registry knows a function")
	}
	gen := r.Gen()
	releaseA := r.Set("a", returns("a1"))
	releaseB := r.Set("b", returns("b"))
	if r.Gen() == gen {
		t.Error("new keys did not change the generation")
	}
	a, b := r.Of(keyed("a")), r.Of(keyed("b"))
	if a == 0 || b == 0 || a == b {
		t.Fatalf("numbers %d and %d", a, b)
	}
	if r.Of(nil) != 0 || r.Of(keyed("unknown")) != 0 || r.Of("no DeriveKey") != 0 {
		t.Error("nil, an unknown key or the unset key \"\" has a number")
	}
	call := func(i uint16) any { return r.Func(i)(nil) }
	if call(a) != "a1" || call(b) != "b" || call(0) != "b" {
		t.Errorf("functions a %v, b %v, none %v; want a1, b and the last set", call(a), call(b), call(0))
	}

	// A reload with the same options: the new handler's function replaces
	// the old one under the same key; nothing changes for the entries.
	gen = r.Gen()
	releaseA2 := r.Set("a", returns("a2"))
	releaseA()
	if r.Gen() != gen || call(a) != "a2" {
		t.Errorf("same key set again: generation changed %v, function %v", r.Gen() != gen, call(a))
	}
	// The last holder of a key releases it: its entries take the function
	// set last of a key still held, and decoded ones must be derived again.
	releaseA2()
	releaseA2() // a second call does nothing
	if r.Gen() == gen || call(a) != "b" {
		t.Errorf("after a's last release: generation changed %v, function %v; want the last set of a key held (b)", r.Gen() != gen, call(a))
	}
	r.Set("c", returns("c"))
	if call(a) != "c" || call(b) != "b" {
		t.Errorf("a released: a %v, b %v; want c (set last) and b", call(a), call(b))
	}
	releaseB()
	if call(b) != "c" {
		t.Errorf("b released: %v, want c", call(b))
	}
}

// Keys beyond Max are not numbered: their entries take the function set
// last.
func TestRegistryBound(t *testing.T) {
	var r Registry
	for i := range Max + 10 {
		r.Set(string(rune('a'+i%26))+string(rune(i)), returns("x"))
	}
	if n := len(r.slots); n > Max {
		t.Errorf("%d numbers, over %d", n, Max)
	}
}

// A reload that fails sets its handlers' functions last and releases
// them: the entries of keys no handler holds are derived with the
// running config's function again, not the failed config's, which would
// make the running handlers derive every such hit again (see
// cache.Handler.entryDerived).
func TestRegistryFailedReload(t *testing.T) {
	var r Registry
	releaseOld := r.Set("old", returns("old"))
	old := r.Of(keyed("old"))
	r.Set("running", returns("running")) // a reload that changed the options...
	releaseOld()                         // ...replaced the old config
	if got := r.Func(old)(nil); got != "running" {
		t.Fatalf("old entries derived with %v, want running", got)
	}
	releaseFailed := r.Set("failed", returns("failed")) // a reload that fails
	releaseFailed()
	if got := r.Func(old)(nil); got != "running" {
		t.Errorf("after a failed reload, old entries derived with %v, want running", got)
	}
	if got := r.Func(0)(nil); got != "running" {
		t.Errorf("after a failed reload, entries of no key derived with %v, want running", got)
	}
}
