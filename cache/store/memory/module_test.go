package memory

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-edge/edge/cache/store"
)

func provision(t *testing.T, s *Store) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := s.Provision(ctx); err != nil {
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
	a := &Store{Name: "pool-share", MaxSize: 2 << 20}
	b := &Store{Name: "pool-share", MaxSize: 4 << 20} // differs: the first wins
	other := &Store{Name: "pool-share-other"}
	provision(t, a)
	provision(t, b)
	provision(t, other)
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

func TestWarnOnce(t *testing.T) {
	s := &shared{}
	if !s.warnOnce(1 << 20) {
		t.Error("first differing size not reported")
	}
	if s.warnOnce(1 << 20) {
		t.Error("same differing size reported twice")
	}
	if !s.warnOnce(2 << 20) {
		t.Error("another differing size not reported")
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
