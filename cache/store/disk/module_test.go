package disk

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// A path that its placeholders make empty ({env.CACHE_DIR} with the
// variable unset) is refused: filepath.Abs would make it Caddy's working
// directory, often / for a service.
func TestProvisionRefusesEmptyPath(t *testing.T) {
	t.Chdir(t.TempDir())
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	s := &Store{Path: "{env.CADDY_EDGE_TEST_UNSET_DIR}"}
	err := s.Provision(ctx)
	if err == nil {
		s.Cleanup()
	}
	if err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("Provision with a path that is empty once replaced: %v, want an error", err)
	}
	if left, _ := os.ReadDir("."); len(left) != 0 {
		t.Errorf("the working directory was made a cache directory: %d files", len(left))
	}
}

// A config that names the directory of a store through a symbolic link
// (or a directory inside a linked one, not made yet) gets the Cache
// already open on it, as a second config naming the directory itself
// does, not an error that another process holds it.
func TestProvisionSharesADirectoryNamedThroughALink(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	for _, sub := range []string{"", "new"} {
		first := &Store{Path: filepath.Join(real, sub)}
		if err := first.Provision(ctx); err != nil {
			t.Fatalf("%s: %v", first.Path, err)
		}
		second := &Store{Path: filepath.Join(link, sub)}
		err := second.Provision(ctx)
		if err != nil {
			first.Cleanup()
			t.Fatalf("%s, after %s: %v", second.Path, first.Path, err)
		}
		if second.c != first.c {
			t.Errorf("%s and %s opened the directory twice", first.Path, second.Path)
		}
		second.Cleanup()
		first.Cleanup()
	}
}

// A directory another process holds is an error for a store provisioned
// without a config (by a program that embeds it), not a panic.
func TestProvisionInUseWithoutAConfig(t *testing.T) {
	dir := t.TempDir()
	held, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { held.Close() })
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	s := &Store{Path: dir}
	err = s.Provision(ctx)
	if err == nil {
		s.Cleanup()
	}
	if !errors.Is(err, ErrInUse) {
		t.Errorf("Provision of a directory in use: %v, want %v", err, ErrInUse)
	}
}
