package disk

import (
	"context"
	"os"
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
