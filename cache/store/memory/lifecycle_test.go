package memory

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-edge/edge/cache/store"
)

var registerOnce sync.Once

// register registers the module for this test binary only; in Caddy the
// root package's module.go does it.
func register() {
	registerOnce.Do(func() { caddy.RegisterModule(Store{}) })
}

// TestLoadedByCaddy loads the module the way Caddy does for a config (by
// ID, from JSON) in two contexts standing for the config before and after
// a reload, and unloads them the way Caddy does (cancelling the context
// runs Cleanup).
func TestLoadedByCaddy(t *testing.T) {
	register()
	load := func(raw string) (store.Store, context.CancelFunc) {
		t.Helper()
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		mod, err := ctx.LoadModuleByID("http.cache.stores.memory", json.RawMessage(raw))
		if err != nil {
			cancel()
			t.Fatalf("loading %s: %v", raw, err)
		}
		return mod.(store.Store), cancel
	}

	oldStore, unloadOld := load(`{"name":"lifecycle","max_size":2097152}`)
	putString(t, oldStore, "k", "v")
	newStore, unloadNew := load(`{"name":"lifecycle","max_size":2097152}`)
	unloadOld()
	if got, err := getString(t, newStore, "k"); err != nil || got != "v" {
		t.Fatalf("after the old config was unloaded: Get = %q, %v; want the entry kept", got, err)
	}
	unloadNew()
	if _, ok := Lookup("lifecycle"); ok {
		t.Error("the store outlived the last config that used it")
	}

	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if _, err := ctx.LoadModuleByID("http.cache.stores.memory", json.RawMessage(`{"max_size":-1}`)); err == nil {
		t.Error("a negative max_size loaded")
	}
}

// TestInsideHTTPCacheBlock parses the store the way the http_cache parser
// does, with caddyfile.UnmarshalModule on the token "memory", and checks
// that the options after the store's block are left to http_cache.
func TestInsideHTTPCacheBlock(t *testing.T) {
	register()
	for _, tt := range []struct {
		name, input string
		want        Store
	}{
		{"block", "http_cache {\n\tstore memory {\n\t\tmax_size 512MiB\n\t\tname shared\n\t}\n\tdefault_ttl 5m\n}", Store{Name: "shared", MaxSize: 512 << 20}},
		{"one line", "http_cache {\n\tstore memory\n\tdefault_ttl 5m\n}", Store{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := caddyfile.NewTestDispenser(tt.input)
			d.Next() // http_cache
			var got *Store
			var after []string
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				switch d.Val() {
				case "store":
					if !d.NextArg() || d.Val() != "memory" {
						t.Fatalf("store argument = %q", d.Val())
					}
					unm, err := caddyfile.UnmarshalModule(d, "http.cache.stores.memory")
					if err != nil {
						t.Fatal(err)
					}
					got = unm.(*Store)
				default:
					after = append(after, d.Val())
					d.RemainingArgs()
				}
			}
			if got == nil || got.Name != tt.want.Name || got.MaxSize != tt.want.MaxSize {
				t.Errorf("store = %+v, want %+v", got, tt.want)
			}
			if len(after) != 1 || after[0] != "default_ttl" {
				t.Errorf("options left to http_cache = %q, want [default_ttl]", after)
			}
		})
	}

	d := caddyfile.NewTestDispenser("http_cache {\n\tstore memory {\n\t\tsize 1GiB\n\t}\n}")
	d.Next()
	d.NextBlock(0)
	d.NextArg()
	_, err := caddyfile.UnmarshalModule(d, "http.cache.stores.memory")
	if err == nil || !strings.Contains(err.Error(), "unrecognized memory store option 'size', at Testfile:3") {
		t.Errorf("error = %v, want the unknown option named with its line", err)
	}
}
