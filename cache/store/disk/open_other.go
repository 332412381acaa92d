//go:build !unix

package disk

import "os"

// openRead opens an entry file for reading.
func openRead(path string) (*os.File, error) { return os.Open(path) }
