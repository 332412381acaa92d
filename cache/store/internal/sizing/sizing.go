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
	mu sync.Mutex // protects owner and warned
	// owner is the context of the config that last set the size: every
	// module of one config is provisioned with the same ctx.Context, and
	// each config load (a reload) has its own.
	owner  context.Context
	warned map[int64]bool // max_size values of owner's config warned about
}

// Configure applies to st the max_size that a config provisioned with ctx
// asks for. In the config that set the size the first store wins, and
// warn reports each other size once; a newer config (a reload) resizes
// the store to its size, and resized reports whether that changed it.
func (o *Owner) Configure(ctx context.Context, st Resizer, maxSize int64) (resized, warn bool, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.owner != ctx {
		o.owner, o.warned = ctx, nil
		if maxSize == st.MaxSize() {
			return false, false, nil
		}
		return true, false, st.Resize(maxSize)
	}
	if maxSize == st.MaxSize() || o.warned[maxSize] {
		return false, false, nil
	}
	if o.warned == nil {
		o.warned = make(map[int64]bool)
	}
	o.warned[maxSize] = true
	return false, true, nil
}
