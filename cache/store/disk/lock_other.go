//go:build !unix

package disk

import (
	"os"
	"path/filepath"
)

// lockDir does not lock where flock is not available, but still creates
// the lock file: it marks the directory as a cache directory, without
// which the next Open refuses it (checkCacheDir).
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		// A read-only directory: nothing is written, nothing to mark.
		return func() {}, nil
	}
	f.Close()
	return func() {}, nil
}
