//go:build !unix

package geofilter

import "os"

func fileID(os.FileInfo) (dev, ino uint64) { return 0, 0 }
