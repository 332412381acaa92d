//go:build unix

package disk

import (
	"os"
	"syscall"
)

// openRead opens an entry file for reading (pread, and sendfile to a
// socket). os.Open would also try to register the file with the network
// poller, which refuses regular files, and switch O_NONBLOCK on and back
// off around the attempt: five system calls more per hit (four fcntl, one
// failed epoll_ctl) beside the open itself. os.NewFile on the descriptor
// skips them, as a regular file is never pollable.
func openRead(path string) (*os.File, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}
