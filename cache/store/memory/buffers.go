package memory

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// Large bodies are recycled: the buffer of an entry that leaves the store
// (evicted for space, expired or replaced) goes back to a pool once
// nobody reads it any more, and the next large body is written into it.
// A new large buffer costs the allocator a span of its own, and the
// runtime clears all of it before the body is copied in: at 256 KiB that
// clearing and the cache misses it causes were about a third of a stored
// miss's CPU time (bench/harness.sh, `miss` against `proxy-new`).
//
// Smaller bodies are left to the allocator, whose per-size caches serve
// them cheaply, and are never counted or pooled.

// minClassShift makes recycleMin, the smallest buffer capacity that is
// recycled: 32 KiB, the size above which Go gives an object a span of its
// own.
const (
	minClassShift = 15
	recycleMin    = 1 << minClassShift
)

// classSteps is the number of capacity classes per doubling: a recycled
// buffer is at most 1/8 larger than the body it was taken for, the slack
// that Commit already leaves in place.
const classSteps = 8

// maxClassShift bounds the classes: buffers up to 1 GiB are recycled.
const maxClassShift = 30

// bufPools holds the recycled buffers of each class. Class i has the
// capacity 2^k * (1 + j/classSteps), for k = minClassShift + i/classSteps and
// j = i%classSteps: 32 KiB, 36 KiB, ... 60 KiB, 64 KiB, 72 KiB, ... 1 GiB.
var bufPools [(maxClassShift-minClassShift)*classSteps + 1]sync.Pool

// bufClass returns the index and the capacity of the smallest class that
// holds n bytes; ok is false when n is outside the recycled sizes.
func bufClass(n int) (idx, capacity int, ok bool) {
	if n < recycleMin || n > 1<<maxClassShift {
		return 0, 0, false
	}
	k := bits.Len(uint(n)) - 1 // 2^k <= n < 2^(k+1)
	step := 1 << (k - 3)       // 2^k / classSteps
	j := (n - 1<<k + step - 1) / step
	if j == classSteps {
		k, j, step = k+1, 0, step*2
	}
	return (k-minClassShift)*classSteps + j, 1<<k + j*step, true
}

// bufferCap returns the capacity newBuffer(n) gives: its class's for a
// recycled size, else n.
func bufferCap(n int) int {
	if _, capacity, ok := bufClass(n); ok {
		return capacity
	}
	return n
}

// newBuffer returns an empty buffer with room for n bytes. A recycled
// size comes from the pool when it has one, with its class's capacity.
func newBuffer(n int) []byte {
	idx, capacity, ok := bufClass(n)
	if !ok {
		return make([]byte, 0, n)
	}
	if p, _ := bufPools[idx].Get().(*[]byte); p != nil {
		return (*p)[:0]
	}
	return make([]byte, 0, capacity)
}

// recyclable reports whether b's capacity is a class's, and its class.
func recyclable(b []byte) (idx int, ok bool) {
	idx, capacity, ok := bufClass(cap(b))
	return idx, ok && capacity == cap(b)
}

// recycle gives b back to the pool, for a buffer whose capacity is a
// class's: the caller must be its only user, now and later.
func recycle(b []byte) {
	if idx, ok := recyclable(b); ok {
		b = b[:0]
		bufPools[idx].Put(&b)
	}
}

// sharedBuf is a recycled body buffer that stored items and readers hold:
// one reference per item in the store that has the body (an Update or a
// soft purge makes a new item with the same body) and one per open
// reader. The last to let go recycles it.
type sharedBuf struct {
	b    []byte
	refs atomic.Int32
}

// hold takes a reference for a reader, unless the buffer was already
// given up: an item read from the store may have left it, and its buffer
// been recycled, before the reader got here.
func (s *sharedBuf) hold() bool {
	for {
		n := s.refs.Load()
		if n <= 0 {
			return false
		}
		if s.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// share takes a reference for a new item with the same body (an Update,
// a soft purge). It is called while the old item is still in the store,
// so the buffer cannot have been given up. A nil buffer (a small body)
// stays nil.
func (s *sharedBuf) share() *sharedBuf {
	if s != nil {
		s.refs.Add(1)
	}
	return s
}

// release drops a reference; the last one recycles the buffer.
func (s *sharedBuf) release() {
	if s.refs.Add(-1) == 0 {
		recycle(s.b)
	}
}
