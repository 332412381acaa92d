package disk

import (
	"errors"
	"io"
	"os"

	"github.com/caddy-edge/edge/cache/store"
)

// fileBody reads a body from its entry file, which it has open: it stays
// readable when the entry is replaced or removed.
type fileBody struct {
	f          *os.File
	base, size int64 // where the body starts in f, its length
	off        int64
}

func (b *fileBody) Read(p []byte) (int, error) {
	if b.off >= b.size {
		return 0, io.EOF
	}
	n, err := b.ReadAt(p[:min(int64(len(p)), b.size-b.off)], b.off)
	b.off += int64(n)
	if err == io.EOF {
		err = nil
		if n == 0 {
			err = io.ErrUnexpectedEOF // the file shrank under us
		}
	}
	return n, err
}

func (b *fileBody) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("disk store body: negative offset")
	}
	if off >= b.size {
		return 0, io.EOF
	}
	short := int64(len(p)) > b.size-off
	if short {
		p = p[:b.size-off]
	}
	n, err := b.f.ReadAt(p, b.base+off)
	if err == nil && short {
		err = io.EOF
	}
	return n, err
}

// WriteTo copies the rest of the body to w straight from the file: with
// w a socket (directly or through writers that implement io.ReaderFrom),
// the kernel sends it with sendfile and the body never enters user space.
//
// The body runs to the end of its file (Get checked the file's length),
// so the file itself is the source, not an io.LimitedReader of it: Caddy's
// IdleTimeoutWriter wraps the source in an io.LimitReader of its own, and
// net.TCPConn uses sendfile only for a file inside at most one of those.
func (b *fileBody) WriteTo(w io.Writer) (int64, error) {
	if b.off >= b.size {
		return 0, nil
	}
	if _, err := b.f.Seek(b.base+b.off, io.SeekStart); err != nil {
		return 0, err
	}
	n, err := io.Copy(w, b.f)
	b.off += n
	if err == nil && b.off < b.size {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *fileBody) Seek(offset int64, whence int) (int64, error) {
	abs, err := store.SeekOffset(b.off, b.size, offset, whence)
	if err == nil {
		b.off = abs
	}
	return abs, err
}

func (b *fileBody) Size() int64  { return b.size }
func (b *fileBody) Close() error { return b.f.Close() }

// Interface guards
var (
	_ store.Body  = (*fileBody)(nil)
	_ io.WriterTo = (*fileBody)(nil)
)
