// Package sizing decides which max_size a store shared by several modules
// (a memory store by name, a disk store by directory) takes when config
// loads disagree.
package sizing

import (
	"context"
	"sync"
)

// Resizer is a store whose byte budget can change while it is in use.
type Resizer interface {
	MaxSize() int64
	Resize(maxSize int64) error
}

// Owner records which config last set a shared store's size. The zero
// value is ready to use.
type Owner struct {
	mu sync.Mutex // protects every field
	// owner is the context of the config that last set the size: every
	// module of one config is provisioned with the same ctx.Context, and
	// each config load (a reload) has its own.
	owner context.Context
	// next is a newer config (a reload) provisioned while owner still
	// runs, and nextSize the size it asks for. Caddy unloads owner only
	// once next has started, so the size is applied then; if next is
	// unloaded first (the reload failed), the running config keeps its
	// size, and the entries that a smaller size would have evicted.
	next     context.Context
	nextSize int64
	stop     func()         // stops the waits on owner and next
	warned   map[int64]bool // max_size values warned about in the config being provisioned
}

// Configure applies to st the max_size that a config provisioned with ctx
// asks for. In one config the first store wins, and warn reports each
// other size once. The first config resizes the store at once; a newer
// config (a reload) once the config it replaces is unloaded, and not at
// all if it fails to load. resized, if not nil, is called when the size
// changes, with the size before: for a reload, later, from another
// goroutine.
func (o *Owner) Configure(ctx context.Context, st Resizer, maxSize int64, resized func(prev int64)) (warn bool, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case ctx == o.owner:
		return o.warn(maxSize, st.MaxSize()), nil
	case ctx == o.next:
		return o.warn(maxSize, o.nextSize), nil
	case o.owner == nil || o.owner.Err() != nil:
		// The first config, or the one that set the size is gone.
		o.drop()
		o.owner, o.warned = ctx, nil
		return false, resize(st, maxSize, resized)
	}
	o.drop()
	o.next, o.nextSize, o.warned = ctx, maxSize, nil
	stopOwner := context.AfterFunc(o.owner, func() { o.promote(ctx, st, resized) })
	stopNext := context.AfterFunc(ctx, func() { o.abandon(ctx) })
	o.stop = func() { stopOwner(); stopNext() }
	return false, nil
}

// resize sets st's size to maxSize, calling resized when that changes it.
func resize(st Resizer, maxSize int64, resized func(prev int64)) error {
	prev := st.MaxSize()
	if maxSize == prev {
		return nil
	}
	if err := st.Resize(maxSize); err != nil {
		return err
	}
	if resized != nil {
		resized(prev)
	}
	return nil
}

// warn tells whether maxSize, in the config being provisioned whose size
// is size, is to be warned about: another size, not yet warned about.
// Called with o.mu held.
func (o *Owner) warn(maxSize, size int64) bool {
	if maxSize == size || o.warned[maxSize] {
		return false
	}
	if o.warned == nil {
		o.warned = make(map[int64]bool)
	}
	o.warned[maxSize] = true
	return true
}

// promote makes next, whose reload succeeded (the config it replaced is
// unloaded), the owner, and applies its size.
func (o *Owner) promote(next context.Context, st Resizer, resized func(prev int64)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.next != next {
		return
	}
	size := o.nextSize
	o.drop()
	o.owner = next
	if next.Err() == nil {
		// Cannot fail: Provision refuses sizes below 1 MiB.
		_ = resize(st, size, resized)
	}
}

// abandon forgets next, unloaded before the config it was to replace: the
// reload failed.
func (o *Owner) abandon(next context.Context) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.next == next {
		o.drop()
		o.warned = nil
	}
}

// drop forgets the pending reload, if any. Called with o.mu held.
func (o *Owner) drop() {
	if o.stop != nil {
		o.stop()
	}
	o.next, o.nextSize, o.stop = nil, 0, nil
}
