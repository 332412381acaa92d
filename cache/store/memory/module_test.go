package memory

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-edge/edge/cache/store"
)

// newConfig returns the context of a new config load.
func newConfig(t *testing.T) caddy.Context {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	return ctx
}

// provision provisions s as a module of the config of ctx, or of a new
// config when ctx is omitted.
func provision(t *testing.T, s *Store, ctx ...caddy.Context) {
	t.Helper()
	c := newConfig(t)
	if len(ctx) > 0 {
		c = ctx[0]
	}
	if err := s.Provision(c); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func putString(t *testing.T, s store.Store, key, body string) {
	t.Helper()
	w, err := s.Put(context.Background(), key, entry())
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(body))
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func getString(t *testing.T, s store.Store, key string) (string, error) {
	t.Helper()
	_, b, err := s.Get(context.Background(), key)
	if err != nil {
		return "", err
	}
	defer b.Close()
	return string(b.(store.BytesBody).Bytes()), nil
}

func TestPoolSharesByName(t *testing.T) {
	// Two sites of one config; the second asks for another size, and the
	// first wins.
	cfg := newConfig(t)
	a := &Store{Name: "pool-share", MaxSize: 2 << 20}
	b := &Store{Name: "pool-share", MaxSize: 4 << 20}
	other := &Store{Name: "pool-share-other"}
	provision(t, a, cfg)
	provision(t, b, cfg)
	provision(t, other, cfg)
	t.Cleanup(func() { other.Cleanup() })

	putString(t, a, "k", "from a")
	if got, err := getString(t, b, "k"); err != nil || got != "from a" {
		t.Fatalf("store b with the same name: Get = %q, %v; want a's entry", got, err)
	}
	if _, err := getString(t, other, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("store with another name sees a's entry: %v", err)
	}
	if a.MaxEntrySize() != (2<<20)/MaxEntryFraction || b.MaxEntrySize() != a.MaxEntrySize() {
		t.Errorf("MaxEntrySize = %d, %d; want %d for both", a.MaxEntrySize(), b.MaxEntrySize(), (2<<20)/MaxEntryFraction)
	}
	if c := b.Stats().Capacity; c != 2<<20 {
		t.Errorf("shared store's Capacity = %d, want the first config's %d", c, 2<<20)
	}
	if l, ok := Lookup("pool-share"); !ok || l.Stats().Entries != 1 {
		t.Errorf("Lookup(pool-share) = %v, %v; want the live store with 1 entry", l, ok)
	}
	if names := Names(); !contains(names, "pool-share") || !contains(names, "pool-share-other") {
		t.Errorf("Names() = %q, want both live stores", names)
	}

	// A reload: the old config's Cleanup runs after the new one is
	// provisioned, and the entries stay.
	if err := a.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := a.Cleanup(); err != nil { // twice is harmless
		t.Fatal(err)
	}
	if got, err := getString(t, b, "k"); err != nil || got != "from a" {
		t.Fatalf("after the first Cleanup: Get = %q, %v; want the entry kept", got, err)
	}
	if _, ok := Lookup("pool-share"); !ok {
		t.Error("Lookup fails while a config still uses the store")
	}

	// The last Cleanup frees the store: a new config starts empty.
	if err := b.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, ok := Lookup("pool-share"); ok {
		t.Error("Lookup finds a store that no config uses")
	}
	c := &Store{Name: "pool-share"}
	provision(t, c)
	t.Cleanup(func() { c.Cleanup() })
	if _, err := getString(t, c, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("store re-created after the last Cleanup still has old entries: %v", err)
	}
	if c.Stats().Capacity != DefaultMaxSize {
		t.Errorf("re-created store's Capacity = %d, want the default %d", c.Stats().Capacity, DefaultMaxSize)
	}
}

func TestProvisionDefaultsAndErrors(t *testing.T) {
	s := &Store{}
	provision(t, s)
	t.Cleanup(func() { s.Cleanup() })
	if s.Name != DefaultName || s.Stats().Capacity != DefaultMaxSize {
		t.Errorf("defaults: name %q, capacity %d; want %q, %d", s.Name, s.Stats().Capacity, DefaultName, DefaultMaxSize)
	}

	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	small := &Store{Name: "too-small", MaxSize: 1000}
	if err := small.Provision(ctx); err == nil || !strings.Contains(err.Error(), "max_size") {
		t.Errorf("Provision with max_size 1000 = %v, want an error naming max_size", err)
	}
	if _, ok := Lookup("too-small"); ok {
		t.Error("a failed Provision left a store in the pool")
	}
	if err := small.Cleanup(); err != nil {
		t.Errorf("Cleanup after a failed Provision: %v", err)
	}
	if err := (&Store{MaxSize: -1}).Validate(); err == nil {
		t.Error("Validate accepted a negative max_size")
	}
}

// TestReloadResizes checks that a reload applies a changed max_size to the
// store it keeps, growing or shrinking it, once the config it replaces is
// unloaded, while within one config the first size wins and every other
// size is warned about once; a reload that fails changes nothing.
func TestReloadResizes(t *testing.T) {
	ctx := context.Background()
	// reload provisions s as a module of a new config, then unloads the
	// running config, as Caddy does once the new one has started.
	running, unload := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(func() { unload() })
	reload := func(s *Store) caddy.Context {
		t.Helper()
		cfg, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		t.Cleanup(cancel)
		provision(t, s, cfg)
		unload()
		running, unload = cfg, cancel
		for i := 0; s.c.MaxSize() != s.MaxSize; i++ {
			if i == 1000 {
				t.Fatalf("max_size %d not applied once the old config was unloaded: %d", s.MaxSize, s.c.MaxSize())
			}
			time.Sleep(time.Millisecond)
		}
		return cfg
	}
	old := &Store{Name: "resize", MaxSize: 2 << 20}
	provision(t, old, running)
	defer old.Cleanup()
	for i := range 100 { // 100 entries of 16 KiB: 1.6 MiB and more
		w, _ := old.Put(ctx, "k"+strconv.Itoa(i), entry())
		w.Write(make([]byte, 16<<10))
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	before := old.Stats()

	// A reload that fails (its config is unloaded before the running
	// one) leaves the size and the entries as they are.
	failed, cancelFailed := caddy.NewContext(caddy.Context{Context: context.Background()})
	doomed := &Store{Name: "resize", MaxSize: 1 << 20}
	provision(t, doomed, failed)
	doomed.Cleanup()
	cancelFailed()
	if st := old.Stats(); st.Capacity != 2<<20 || st.Entries != before.Entries {
		t.Errorf("after a failed reload to 1 MiB: Stats = %+v, want capacity %d and the %d entries kept", st, 2<<20, before.Entries)
	}

	// Reload with a larger size: the entries stay, the budget grows.
	grown := &Store{Name: "resize", MaxSize: 8 << 20}
	cfg := reload(grown)
	defer grown.Cleanup()
	if st := grown.Stats(); st.Capacity != 8<<20 || st.Entries != before.Entries {
		t.Errorf("after a reload to 8 MiB: Stats = %+v, want capacity %d and the %d entries kept", st, 8<<20, before.Entries)
	}
	if grown.MaxEntrySize() != (8<<20)/MaxEntryFraction {
		t.Errorf("MaxEntrySize = %d after the resize, want %d", grown.MaxEntrySize(), (8<<20)/MaxEntryFraction)
	}

	// Another site of the same config with another size: no change.
	sibling := &Store{Name: "resize", MaxSize: 1 << 20}
	provision(t, sibling, cfg)
	defer sibling.Cleanup()
	if c := sibling.Stats().Capacity; c != 8<<20 {
		t.Errorf("a second site of the same config resized the store to %d", c)
	}
	resized := false
	if warn, _ := sibling.c.configure(cfg.Context, 1<<20, func(int64) { resized = true }); resized || warn {
		t.Errorf("the same differing size again: resized %v, warned %v; want neither", resized, warn)
	}
	if warn, _ := sibling.c.configure(cfg.Context, 3<<20, nil); !warn {
		t.Error("another differing size in the same config was not warned about")
	}

	// Reload with a smaller size: entries are evicted down to it.
	shrunk := &Store{Name: "resize", MaxSize: 1 << 20}
	reload(shrunk)
	defer shrunk.Cleanup()
	shrunk.c.CleanUp()
	if st := shrunk.Stats(); st.Capacity != 1<<20 || st.Bytes > 1<<20 || st.Entries == 0 {
		t.Errorf("after a reload to 1 MiB: Stats = %+v, want at most 1 MiB of entries", st)
	}
}

func TestJSON(t *testing.T) {
	var s Store
	if err := json.Unmarshal([]byte(`{"name":"shared","max_size":536870912}`), &s); err != nil {
		t.Fatal(err)
	}
	if s.Name != "shared" || s.MaxSize != 512<<20 {
		t.Errorf("decoded %+v", s)
	}
	out, err := json.Marshal(Store{})
	if err != nil || string(out) != "{}" {
		t.Errorf("empty Store marshals to %s, %v; want {}", out, err)
	}
}

func TestUnmarshalCaddyfile(t *testing.T) {
	for _, tt := range []struct {
		name, input string
		want        Store
		err         string // substring of the error; "" for none
		line        string // the position the error must name
	}{
		{name: "one line", input: `memory`},
		{name: "empty block", input: "memory {\n}"},
		{
			name:  "full",
			input: "memory {\n\tmax_size 512MiB\n\tname shared\n}",
			want:  Store{Name: "shared", MaxSize: 512 << 20},
		},
		{name: "decimal unit", input: "memory {\n max_size 2GB\n}", want: Store{MaxSize: 2_000_000_000}},
		{name: "plain bytes", input: "memory {\n max_size 1048576\n}", want: Store{MaxSize: 1 << 20}},
		{name: "argument", input: `memory big`, err: "wrong argument count", line: "at Testfile:1"},
		{name: "unknown option", input: "memory {\n\tmax_entries 10\n}", err: "unrecognized memory store option 'max_entries'", line: "at Testfile:2"},
		{name: "max_size missing", input: "memory {\n max_size\n}", err: "wrong argument count", line: "at Testfile:2"},
		{name: "max_size two", input: "memory {\n max_size 1GiB 2GiB\n}", err: "wrong argument count", line: "at Testfile:2"},
		{name: "max_size bad", input: "memory {\n max_size lots\n}", err: "bad max_size 'lots': not a size such as 512MiB or 2GB", line: "at Testfile:2"},
		{name: "max_size small", input: "memory {\n max_size 100KiB\n}", err: "bad max_size '100KiB': the minimum is 1MiB"},
		{name: "max_size zero", input: "memory {\n max_size 0\n}", err: "bad max_size '0': the minimum is 1MiB"},
		{name: "max_size negative", input: "memory {\n max_size -5MiB\n}", err: "bad max_size '-5MiB'"},
		{name: "max_size overflow", input: "memory {\n max_size 9EiB\n}", err: "bad max_size '9EiB': too large"},
		{name: "name missing", input: "memory {\n name\n}", err: "wrong argument count", line: "at Testfile:2"},
		{name: "name two", input: "memory {\n name a b\n}", err: "wrong argument count"},
		{name: "duplicate name", input: "memory {\n name a\n name b\n}", err: "duplicate memory store option 'name'", line: "at Testfile:3"},
		{name: "duplicate max_size", input: "memory {\n max_size 1GiB\n max_size 1GiB\n}", err: "duplicate memory store option 'max_size'"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var s Store
			err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), tt.line) {
					t.Fatalf("error = %v, want one containing %q and %q", err, tt.err, tt.line)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Name != tt.want.Name || s.MaxSize != tt.want.MaxSize {
				t.Errorf("got name %q max_size %d, want %q %d", s.Name, s.MaxSize, tt.want.Name, tt.want.MaxSize)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
