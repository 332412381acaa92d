//go:build linux

package disk

import "syscall"

// fsSize returns the size in bytes of the file system that holds dir,
// and whether it could be read.
func fsSize(dir string) (int64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return int64(st.Blocks) * st.Bsize, true
}
