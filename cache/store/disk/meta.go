package disk

import (
	"github.com/caddy-edge/edge/cache/store"
)

// A hit on a body served from its file (over inlineMax, verified) needs
// the entry's metadata, which is at the start of the file. Reading and
// decoding it, and deriving its freshness, was about 7 % of a 16 KiB disk
// hit's CPU. The store keeps it decoded on the index entry, within
// metaKeptMax bytes, chosen by a CLOCK (Cache.metas), and a hit then only
// opens the file and checks its length.
//
// Kept metadata is never served after the file changed: a replacement or
// Update installs a new index entry (the old one's meta is dropped, and
// takes no metadata any more); a soft purge forgets it and counts a
// rewrite, so that a hit that read the file before does not keep what it
// read; and a hit checks under c.mu, after opening the file, that the
// index entry it used is still the one under the key.

// cachedMeta is an entry file's decoded metadata: the entry (shared by the
// hits, never modified), where the body starts in the file, and the derive
// generation its Derived was computed with.
type cachedMeta struct {
	e    *store.Entry
	base int64
	gen  uint64
}

// metaKeptMax bounds the memory the kept metadata takes (estimated by
// metaCost), and metaMaxCost the metadata of one entry: about 1 KB each
// for usual headers, so about 8,000 entries keep theirs. An entry with
// more metadata is read from its file at each hit.
const (
	metaKeptMax = 8 << 20
	metaMaxCost = 4 << 10
)

// metaCost estimates the memory the decoded metadata of an entry takes:
// its encoded bytes (base: the file's prefix and metadata), the string
// headers of its fields, and the entry and derived structs.
func metaCost(base int64, e *store.Entry) int64 {
	return base + 32*int64(e.Header.Len()+len(e.Tags)) + 512
}

// SetDerive sets the function that computes Entry.Derived for the
// metadata kept decoded, under the key of the options it derives with, so
// that a hit parses no header field either: an entry stored by this
// process is derived with the function of its own key, one loaded from
// the directory (whose files do not record it) or of a key no handler
// holds any more with the function set last. Metadata derived before a
// key was set for the first time or released is derived again at its
// next hit.
func (c *Cache) SetDerive(key string, fn func(*store.Entry) any) (release func()) {
	return c.derivers.Set(key, fn)
}

// getCached serves a hit on a body served from its file with the
// metadata an earlier hit decoded: the file is opened and its length
// checked, its metadata neither read nor decoded. ok is false when there
// is none to use; the caller then reads the file.
func (c *Cache) getCached(key, path string, ie *ient) (e *store.Entry, body store.Body, ok bool) {
	m := ie.meta.Load(c.metas)
	if m == nil || m.gen != c.derivers.Gen() || c.inline(ie.bodyLen, ie.verified.Load()) {
		return nil, nil, false
	}
	f, err := openRead(path)
	if err != nil {
		return nil, nil, false
	}
	fi, err := f.Stat()
	// The file is the one m was decoded from unless a write replaced it
	// since ie was looked up: writes replace the file and the index
	// entry together, under c.mu.
	c.mu.RLock()
	current := c.index[key] == ie
	c.mu.RUnlock()
	if err != nil || fi.Size() != ie.fileSize || !current {
		f.Close()
		return nil, nil, false
	}
	return m.e, &fileBody{f: f, base: m.base, size: ie.bodyLen}, true
}

// cacheMeta keeps e, just decoded from the file of ie (whose in-place
// rewrites numbered rewrites when the read began), for the next hits, if
// ie is still the entry under key and was not rewritten since. It sets
// e.Derived first: e is shared from then on.
func (c *Cache) cacheMeta(key string, ie *ient, e *store.Entry, base int64, rewrites uint32) {
	if metaCost(base, e) > metaMaxCost {
		return
	}
	gen := c.derivers.Gen()
	if fn := c.derivers.Func(ie.deriver); fn != nil {
		e.Derived = fn(e)
	}
	m := &cachedMeta{e: e, base: base, gen: gen}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.index[key] != ie || ie.rewrites.Load() != rewrites {
		return
	}
	if old := ie.meta.Load(c.metas); old != nil {
		c.metas.Forget(&ie.meta) // derived by an earlier function
	}
	c.metas.Put(&ie.meta, m, metaCost(base, e))
}
