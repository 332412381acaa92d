package store

import (
	"errors"
	"io"
)

// BytesReader is a Body held in memory in one piece: the memory store's
// bodies, and the small bodies the disk and Redis stores read whole. It
// implements Body and BytesBody.
type BytesReader struct {
	b   []byte
	off int64
}

// NewBytesReader returns a Body that reads b. b must not be modified
// while the body is in use.
func NewBytesReader(b []byte) *BytesReader { return &BytesReader{b: b} }

// Read reads from the current offset.
func (r *BytesReader) Read(p []byte) (int, error) {
	if r.off >= int64(len(r.b)) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += int64(n)
	return n, nil
}

// ReadAt reads len(p) bytes at off, or fewer and io.EOF at the end. It
// neither depends on nor moves the offset of Read.
func (r *BytesReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("store body: negative offset")
	}
	if off >= int64(len(r.b)) {
		return 0, io.EOF
	}
	n := copy(p, r.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Seek sets the offset for the next Read.
func (r *BytesReader) Seek(offset int64, whence int) (int64, error) {
	abs, err := SeekOffset(r.off, int64(len(r.b)), offset, whence)
	if err == nil {
		r.off = abs
	}
	return abs, err
}

// Size returns the body's length.
func (r *BytesReader) Size() int64 { return int64(len(r.b)) }

// Bytes returns the whole body. The slice must not be modified.
func (r *BytesReader) Bytes() []byte { return r.b }

// Close does nothing; the body stays readable.
func (r *BytesReader) Close() error { return nil }

// SeekOffset computes the position an io.Seeker's Seek(offset, whence)
// moves to, for a body of size bytes now at cur. It refuses an unknown
// whence and a negative position (returning 0); a position past the end
// is allowed, and the next Read returns io.EOF.
func SeekOffset(cur, size, offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = cur + offset
	case io.SeekEnd:
		abs = size + offset
	default:
		return 0, errors.New("store body: invalid whence")
	}
	if abs < 0 {
		return 0, errors.New("store body: negative position")
	}
	return abs, nil
}

// Interface guards
var (
	_ Body      = (*BytesReader)(nil)
	_ BytesBody = (*BytesReader)(nil)
)
