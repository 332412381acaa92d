package store_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/caddy-edge/edge/cache/store"
)

func TestFields(t *testing.T) {
	h := http.Header{
		"Content-Type":  {"text/plain"},
		"Cache-Control": {"max-age=60", "stale-if-error=30"},
		"Etag":          {`"a"`},
		"X-Empty":       {},
	}
	f := store.FieldsOf(h)
	if want := (store.Fields{"Cache-Control", "max-age=60", "Cache-Control", "stale-if-error=30", "Content-Type", "text/plain", "Etag", `"a"`}); !slices.Equal(f, want) {
		t.Fatalf("FieldsOf = %q, want %q (names sorted, values in order, an empty field left out)", f, want)
	}
	if f.Len() != 4 || f.Names() != 3 {
		t.Errorf("Len, Names = %d, %d; want 4, 3", f.Len(), f.Names())
	}
	// Lookups canonicalise the name, as http.Header's do.
	for _, name := range []string{"ETag", "etag", "Etag"} {
		if got := f.Get(name); got != `"a"` {
			t.Errorf("Get(%q) = %q", name, got)
		}
	}
	if got := f.Values("cache-control"); !slices.Equal(got, []string{"max-age=60", "stale-if-error=30"}) {
		t.Errorf("Values(cache-control) = %q", got)
	}
	if got := f.Values("etag"); !slices.Equal(got, []string{`"a"`}) {
		t.Errorf("Values(etag) = %q", got)
	}
	kept := store.FieldsOfFunc(h, func(name string) bool { return name != "Cache-Control" })
	if want := (store.Fields{"Content-Type", "text/plain", "Etag", `"a"`}); !slices.Equal(kept, want) {
		t.Errorf("FieldsOfFunc without Cache-Control = %q, want %q", kept, want)
	}
	if f.Get("Age") != "" || f.Values("Age") != nil || f.Has("Age") || !f.Has("content-type") {
		t.Error("an absent field read as present, or a present one as absent")
	}
	// Back to a map: the same fields, and a reader's append never writes
	// into another field's values.
	back := f.Header()
	if fmt.Sprint(back) != fmt.Sprint(http.Header{"Content-Type": {"text/plain"}, "Cache-Control": {"max-age=60", "stale-if-error=30"}, "Etag": {`"a"`}}) {
		t.Errorf("Header() = %v", back)
	}
	_ = append(back["Cache-Control"], "x")
	if back["Content-Type"][0] != "text/plain" {
		t.Error("appending to one field's values overwrote another's")
	}
	var groups []string
	for name, pairs := range f.Groups() {
		groups = append(groups, fmt.Sprint(name, pairs.Len()))
	}
	if want := []string{"Cache-Control2", "Content-Type1", "Etag1"}; !slices.Equal(groups, want) {
		t.Errorf("Groups = %q, want %q", groups, want)
	}
	c := f.Clone()
	c[1] = "changed"
	if f[1] != "max-age=60" {
		t.Error("Clone shares its array with the original")
	}
	if store.FieldsOf(nil) != nil || store.Fields(nil).Header() == nil {
		t.Error("no fields: FieldsOf should be nil and Header an empty map")
	}
}
