// Package disk is the disk store of http_cache: responses kept as files in
// one directory, bounded by a byte budget, that survive a restart.
//
// Each entry is one file, named by a hash of its key, holding a checksummed
// prefix, the entry's metadata and its body (see format.go). A file is
// written under a temporary name, synced and renamed into place, so a
// crash never leaves half an entry under a key; a file that fails its
// checks when read is removed and reported as a miss.
//
// An in-memory index (key, size, expiry, tags, last access) drives
// eviction, purges and listing. It is rebuilt from the files in the
// background when a Cache opens a directory; until it is complete, Get
// reads the files directly (a correct hit or a miss), purges and listings
// wait for it, but for the purge of a group (purgeGroupLoading).
//
// Eviction is an approximate LRU: when the budget is exceeded, the least
// recently used of a few entries sampled at random is removed (an expired
// one first), as Redis does.
//
// The Caddy module http.cache.stores.disk (type Store) shares one Cache per
// directory between sites and across config reloads; see Store.
package disk

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-edge/edge/cache/internal/ratelog"
	"github.com/caddy-edge/edge/cache/store"
	"github.com/caddy-edge/edge/cache/store/internal/derive"
	"github.com/caddy-edge/edge/cache/store/internal/keep"
	"github.com/caddy-edge/edge/cache/store/internal/unixtime"
)

// Defaults and bounds.
const (
	// DefaultMaxSize is the byte budget of a store that sets none: 1 GiB.
	DefaultMaxSize int64 = 1 << 30
	// MaxEntryFraction is the share of the budget one entry may take at
	// most, as in the memory store.
	MaxEntryFraction = 8
	// DefaultVerifyMax is the largest body verified against its checksum
	// before a byte of it is returned: 1 MiB. Larger bodies are checked for
	// length and metadata integrity before they are sent and verified by
	// the background scrub.
	DefaultVerifyMax int64 = 1 << 20
	// inlineMax is the largest body always read whole, verified and
	// returned from memory. A larger body up to VerifyMax is verified the
	// first time it is read; once verified (or written by this process),
	// it is sent from the file like a large one, and the scrub verifies
	// it again every scrubInterval.
	inlineMax = 8 << 10
	// DefaultScrubRate bounds the background scrub: 64 MiB/s.
	DefaultScrubRate int64 = 64 << 20
	// maintenanceInterval is how often expired entries are removed and a
	// scrub pass starts.
	maintenanceInterval = time.Minute
	// scrubInterval is how often the scrub verifies each large body.
	scrubInterval = time.Hour
	// evictionSamples is how many entries eviction compares.
	evictionSamples = 8
	// fileOverhead estimates what a file costs beyond its bytes (inode,
	// directory entry, partial block): counted against the budget.
	fileOverhead = 512
	// writeBuffer is the buffer between a Writer and its file.
	writeBuffer = 32 << 10
	// errorLogInterval is how often the same kind of failure is logged.
	errorLogInterval = 10 * time.Second
)

// Config configures a Cache.
type Config struct {
	// Dir is the directory of the entry files; created if missing.
	Dir string
	// MaxSize is the byte budget (file sizes plus a per-file estimate).
	// Zero means DefaultMaxSize.
	MaxSize int64
	// MaxEntries bounds the number of entries, and so the RAM of the
	// index; zero means no bound but MaxSize.
	MaxEntries int64
	// VerifyMax is the largest body verified before it is returned. Zero
	// means DefaultVerifyMax; negative means none.
	VerifyMax int64
	// ScrubRate bounds the reads of the background scrub, in bytes per
	// second. Zero means DefaultScrubRate; negative disables the scrub.
	ScrubRate int64
	// NoSync skips the fsync of each entry file before it becomes visible.
	// Entries then still never show half-written (the checksums tell), but
	// a power cut may lose recent ones. For tests.
	NoSync bool
	// Now returns the current time, which decides expiry. Nil means
	// time.Now.
	Now func() time.Time
	// Logger receives warnings; nil means none.
	Logger *zap.Logger
}

// ient is the index entry of one file.
type ient struct {
	fileSize int64 // bytes of the file
	bodyLen  int64
	expires  int64    // Unix nanoseconds; 0 = never
	tags     []string // not modified once indexed
	atime    atomic.Int64
	scrubbed int64 // Unix nanoseconds when the scrub last verified the body (large bodies), 0 never; under mu
	// verified tells that this process wrote the file or checked its
	// body against its checksum.
	verified atomic.Bool
	// meta keeps the entry decoded from the file, for a body served from
	// the file (see meta.go), while Cache.metas lets it.
	meta keep.Slot[cachedMeta]
	// deriver numbers the function the entry's Derived data came from
	// (Cache.derivers); 0 for an entry loaded from the directory.
	deriver uint16
	// rewrites counts the in-place rewrites of the file (soft purges),
	// so that a hit that read the file before one does not keep what it
	// read. Changed under Cache.mu.
	rewrites atomic.Uint32
}

func (ie *ient) cost() int64 { return ie.fileSize + fileOverhead }

// Cache is a store.Store in a directory. Create one with Open and Close it
// when done.
type Cache struct {
	dir, tmpDir string
	cfg         Config
	now         func() time.Time
	logger      *zap.Logger
	maxSize     atomic.Int64
	maxEntries  atomic.Int64 // 0: no bound
	// pending counts the bytes written to the temporary files of open
	// Writers: at most maxSize (see writer.reserve).
	pending atomic.Int64

	mu    sync.RWMutex
	index map[string]*ient
	tags  map[string]map[string]struct{}
	// groups indexes the keys that hold a NUL by their part before it
	// (a variant's primary key), so that PurgePrefix of that part and a
	// NUL, which every unsafe request's invalidation makes, looks up
	// those keys instead of walking the index.
	groups  map[string]map[string]struct{}
	bytes   int64               // sum of the index entries' cost
	loading bool                // the index is being rebuilt
	tomb    map[string]struct{} // keys deleted while loading
	// purgedGroups holds the groups purged while loading, by groupID:
	// the files of their keys that are not indexed yet are no entries any
	// more (the loader removes them).
	purgedGroups map[[16]byte]struct{}

	ready     chan struct{} // closed when the index is complete
	tick      atomic.Int64  // logical clock of accesses, for LRU
	evictions atomic.Int64
	errors    atomic.Int64
	subdirs   [256]atomic.Bool

	writeLog, readLog ratelog.Limiter

	metas    *keep.Clock[cachedMeta] // which entries keep decoded metadata
	derivers derive.Registry         // the handlers' derive functions, by key

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	unlock func()

	// createTemp creates a temporary entry file; tests replace it to
	// make writes fail.
	createTemp func(dir string) (tempFile, error)
	// writePrefix writes a soft purge's prefix b over an entry file's;
	// tests replace it to read the file meanwhile.
	writePrefix func(f *os.File, b []byte) error
}

// tempFile is what a Writer writes to: an *os.File, or in tests a file
// that fails.
type tempFile interface {
	io.Writer
	io.WriterAt
	Sync() error
	Close() error
	Name() string
}

func createTemp(dir string) (tempFile, error) { return os.CreateTemp(dir, "put-*") }

func writePrefix(f *os.File, b []byte) error {
	_, err := f.WriteAt(b, 0)
	return err
}

// ErrInUse is returned by Open when another process (or another Open in
// this one) holds the directory's lock.
var ErrInUse = errors.New("the directory is in use by another process")

// Open opens (creating it if needed) the cache directory cfg.Dir. The
// index is rebuilt in the background; Get works meanwhile.
func Open(cfg Config) (*Cache, error) {
	if cfg.Dir == "" {
		return nil, errors.New("disk store: no directory")
	}
	if cfg.MaxSize < 0 {
		return nil, errors.New("disk store: max_size must not be negative")
	}
	if cfg.MaxSize == 0 {
		cfg.MaxSize = DefaultMaxSize
	}
	if cfg.VerifyMax == 0 {
		cfg.VerifyMax = DefaultVerifyMax
	}
	if cfg.ScrubRate == 0 {
		cfg.ScrubRate = DefaultScrubRate
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	c := &Cache{
		dir:         dir,
		tmpDir:      filepath.Join(dir, "tmp"),
		cfg:         cfg,
		now:         cfg.Now,
		logger:      cfg.Logger,
		index:       make(map[string]*ient),
		tags:        make(map[string]map[string]struct{}),
		groups:      make(map[string]map[string]struct{}),
		loading:     true,
		tomb:        make(map[string]struct{}),
		ready:       make(chan struct{}),
		createTemp:  createTemp,
		writePrefix: writePrefix,
		metas:       keep.NewClock[cachedMeta](metaKeptMax, metaMaxCost),
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.logger == nil {
		c.logger = zap.NewNop()
	}
	c.maxSize.Store(cfg.MaxSize)
	c.maxEntries.Store(max(cfg.MaxEntries, 0))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("disk store: %w", err)
	}
	if err := checkCacheDir(dir); err != nil {
		return nil, err
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("disk store %s: %w", dir, err)
	}
	c.unlock = unlock
	// Temporary files left by a crash are never entries: start afresh.
	if err := os.RemoveAll(c.tmpDir); err != nil {
		c.logger.Warn("disk store: removing leftover temporary files", zap.Error(err))
	}
	if err := os.MkdirAll(c.tmpDir, 0o700); err != nil {
		// A read-only directory still serves what it has.
		c.logger.Warn("disk store: cannot create the temporary directory; nothing will be stored", zap.String("dir", c.tmpDir), zap.Error(err))
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.wg.Add(2)
	go c.load()
	go c.maintain()
	return c, nil
}

// checkCacheDir refuses a directory that holds files but no lock file:
// not a cache directory (each has one from its first Open on), and one
// whose tmp subdirectory Open would empty and whose two-hex-digit
// subdirectories ("de", "fa", ...) the loader would clear of every file
// that is no entry.
func checkCacheDir(dir string) error {
	des, err := os.ReadDir(dir)
	if err != nil || len(des) == 0 {
		return nil // unreadable: the loader reports it
	}
	for _, de := range des {
		if de.Name() == "lock" {
			return nil
		}
	}
	if len(des) == 1 && des[0].Name() == "lost+found" {
		return nil // a file system of its own, made by mkfs
	}
	return fmt.Errorf("disk store %s: the directory is not empty and is no cache directory (it has no lock file); use an empty or new directory", dir)
}

// Close stops the background work (index loading, expiry, scrub) and
// waits for it. The Cache keeps answering, so that requests in flight
// finish; bodies already returned stay readable until closed.
func (c *Cache) Close() {
	c.cancel()
	c.wg.Wait()
	if c.unlock != nil {
		c.unlock()
		c.unlock = nil
	}
}

// Dir returns the absolute path of the cache directory.
func (c *Cache) Dir() string { return c.dir }

// MaxSize returns the byte budget.
func (c *Cache) MaxSize() int64 { return c.maxSize.Load() }

// MaxEntrySize returns the largest file one entry may take.
func (c *Cache) MaxEntrySize() int64 { return c.maxSize.Load() / MaxEntryFraction }

// Resize sets a new byte budget, evicting entries until the store fits.
func (c *Cache) Resize(maxSize int64) error {
	if maxSize <= 0 {
		return errors.New("max_size must be positive")
	}
	c.maxSize.Store(maxSize)
	c.mu.Lock()
	c.evictLocked()
	c.mu.Unlock()
	return nil
}

// MaxEntries returns the bound on the number of entries; 0 is none.
func (c *Cache) MaxEntries() int64 { return c.maxEntries.Load() }

// SetMaxEntries sets the bound on the number of entries (0: none),
// evicting entries until the store holds no more.
func (c *Cache) SetMaxEntries(n int64) {
	c.maxEntries.Store(max(n, 0))
	c.mu.Lock()
	c.evictLocked()
	c.mu.Unlock()
}

// overLocked tells whether the store holds more than its budgets allow.
// Called with c.mu held.
func (c *Cache) overLocked() bool {
	if len(c.index) == 0 {
		return false
	}
	n := c.maxEntries.Load()
	return c.bytes > c.maxSize.Load() || (n > 0 && int64(len(c.index)) > n)
}

// Ready returns a channel closed once the index is rebuilt.
func (c *Cache) Ready() <-chan struct{} { return c.ready }

// waitReady waits for the index, or for ctx.
func (c *Cache) waitReady(ctx context.Context) error {
	select {
	case <-c.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("disk store index not ready yet: %w", ctx.Err())
	}
}

// name returns the file name of key, relative to the directory: a
// subdirectory of the first byte of its hash, and the hash.
func name(key string) (sub int, file string) {
	h := sha256.Sum256([]byte(key))
	return int(h[0]), hex.EncodeToString(h[:16])
}

func (c *Cache) path(key string) string {
	sub, file := name(key)
	return filepath.Join(c.dir, hex.EncodeToString([]byte{byte(sub)}), file)
}

func (c *Cache) expiredAt(expires int64) bool {
	return expires != 0 && c.now().UnixNano() >= expires
}

// Get returns the entry under key. A body of up to VerifyMax bytes is read
// and verified, and returned from memory; a larger one is read from the
// file (an *os.File behind it, so that io.Copy to a socket uses sendfile)
// after its length and metadata are checked. A missing, expired, corrupt
// or unreadable entry is store.ErrNotFound; corrupt files are removed.
func (c *Cache) Get(_ context.Context, key string) (*store.Entry, store.Body, error) {
	c.mu.RLock()
	ie := c.index[key]
	loading := c.loading && (ie != nil || !c.groupPurgedLocked(key))
	c.mu.RUnlock()
	if ie == nil && !loading {
		return nil, nil, store.ErrNotFound
	}
	if ie != nil {
		if c.expiredAt(ie.expires) {
			return nil, nil, store.ErrNotFound
		}
		ie.atime.Store(c.tick.Add(1))
	}
	path := c.path(key)
	var rewrites uint32
	if ie != nil {
		if e, body, ok := c.getCached(key, path, ie); ok {
			return e, body, nil
		}
		rewrites = ie.rewrites.Load()
	}
	f, err := openRead(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.readFailed(err)
		}
		return nil, nil, store.ErrNotFound
	}
	want := int64(prefixBufSize)
	trusted := ie != nil && ie.verified.Load()
	if ie != nil && c.inline(ie.bodyLen, trusted) {
		want = ie.fileSize + 1 // the whole file, and proof of its end
	}
	e, body, err := c.read(f, key, want, true, trusted)
	if err != nil {
		if errors.Is(err, errCorrupt) {
			c.corrupt(key, f, err)
		} else if !errors.Is(err, store.ErrNotFound) {
			c.readFailed(err)
		}
		f.Close()
		return nil, nil, store.ErrNotFound
	}
	switch b := body.(type) {
	case *store.BytesReader:
		f.Close()
		if ie != nil {
			ie.verified.Store(true)
		}
	case *fileBody:
		if ie != nil {
			c.cacheMeta(key, ie, e, b.base, rewrites)
		}
	}
	return e, body, nil
}

// inline tells whether a body of n bytes is read whole and verified:
// always up to inlineMax, up to VerifyMax until it was verified once.
func (c *Cache) inline(n int64, verified bool) bool {
	return n <= c.cfg.VerifyMax && (n <= inlineMax || !verified)
}

// read reads and checks the entry file f of key, reading want bytes first.
// With withBody, it returns the body: verified and in memory when small
// (see inline; trusted tells a body verified before), else on f (which the
// body then owns).
func (c *Cache) read(f *os.File, key string, want int64, withBody, trusted bool) (*store.Entry, store.Body, error) {
	var scratch *[]byte
	if want == prefixBufSize { // not a read of a whole small file
		scratch = prefixBufs.Get().(*[]byte)
	}
	buf, p, atEOF, err := readPrefix(f, want, scratch)
	if err != nil {
		if scratch != nil {
			prefixBufs.Put(scratch)
		}
		return nil, nil, err
	}
	fsz := p.fileSize()
	small := withBody && c.inline(p.bodyLen, trusted)
	if scratch != nil && !small {
		// Only the header is read from buf, and decoded into strings of
		// its own: the buffer goes back once read returns. (A small
		// body is a slice of buf, which then stays the body's.)
		defer prefixBufs.Put(scratch)
	}
	need := prefixLen + int64(p.headerLen)
	if small {
		need = fsz
	}
	if int64(len(buf)) < need || (small && !atEOF) {
		// Read what is missing, and one byte more to prove the end.
		more := make([]byte, need+1)
		n, rerr := f.ReadAt(more, 0)
		if rerr != nil && rerr != io.EOF {
			return nil, nil, rerr
		}
		buf = more[:n]
	}
	if int64(len(buf)) < need {
		return nil, nil, fmt.Errorf("%w: truncated: %d bytes, want %d", errCorrupt, len(buf), need)
	}
	if small && int64(len(buf)) != fsz {
		return nil, nil, fmt.Errorf("%w: %d bytes, want %d", errCorrupt, len(buf), fsz)
	}
	if !small {
		fi, err := f.Stat()
		if err != nil {
			return nil, nil, err
		}
		if fi.Size() != fsz {
			return nil, nil, fmt.Errorf("%w: %d bytes, want %d", errCorrupt, fi.Size(), fsz)
		}
	}
	hdr := buf[prefixLen : prefixLen+int64(p.headerLen)]
	if crc32.Checksum(hdr, castagnoli) != p.headerCRC {
		return nil, nil, fmt.Errorf("%w: header checksum", errCorrupt)
	}
	k, e, err := decodeHeader(hdr, true)
	if err != nil {
		return nil, nil, err
	}
	if k != key {
		return nil, nil, store.ErrNotFound // another key with the same hash
	}
	if c.expiredAt(unixtime.Nano(e.Expires)) {
		return nil, nil, store.ErrNotFound
	}
	e.Size = p.bodyLen
	e.SoftPurged = p.flags&flagSoftPurged != 0
	if !withBody {
		return e, nil, nil
	}
	if small {
		b := buf[need-p.bodyLen : need]
		if crc32.Checksum(b, castagnoli) != p.bodyCRC {
			return nil, nil, fmt.Errorf("%w: body checksum", errCorrupt)
		}
		return e, store.NewBytesReader(b), nil
	}
	return e, &fileBody{f: f, base: need, size: p.bodyLen}, nil
}

// prefixBufs holds the buffers that read reads entry files' first bytes
// into (a hit on a body served from its file would otherwise allocate and
// clear one each time).
var prefixBufs = sync.Pool{New: func() any { b := make([]byte, prefixBufSize); return &b }}

// prefixBufSize is the size of prefixBufs' buffers: what Get reads first
// of an entry file whose body is served from the file.
const prefixBufSize = 4096

// readPrefix reads up to want bytes from the start of f and decodes the
// prefix; atEOF tells that the bytes read are the whole file. A prefix
// that fails its checksum is read once more: a soft purge may have been
// rewriting it. It reads into scratch when scratch is not nil (and holds
// want bytes).
func readPrefix(f *os.File, want int64, scratch *[]byte) (buf []byte, p prefix, atEOF bool, err error) {
	for try := 0; ; try++ {
		if scratch != nil {
			buf = (*scratch)[:max(want, prefixLen)]
		} else {
			buf = make([]byte, max(want, prefixLen))
		}
		n, rerr := f.ReadAt(buf, 0)
		if rerr != nil && rerr != io.EOF {
			return nil, prefix{}, false, rerr
		}
		atEOF = n < len(buf)
		buf = buf[:n]
		if n < prefixLen {
			return nil, prefix{}, atEOF, fmt.Errorf("%w: truncated prefix", errCorrupt)
		}
		p, err = decodePrefix(buf)
		if err == nil || try == 1 {
			return buf, p, atEOF, err
		}
	}
}

// corrupt removes the corrupt entry file of key, which f had open, unless
// it was replaced since, and logs it (once: the file is gone after).
func (c *Cache) corrupt(key string, f *os.File, cause error) {
	path := c.path(key)
	c.mu.Lock()
	removed := same(path, f)
	if removed {
		os.Remove(path)
		c.dropLocked(key)
	}
	c.mu.Unlock()
	if removed { // by this reader: counted and logged once
		c.errors.Add(1)
		c.logger.Warn("disk store: removed a corrupt entry file; served as a miss", zap.String("file", path), zap.Error(cause))
	}
}

// same tells whether path still names the file f has open.
func same(path string, f *os.File) bool {
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	pi, err := os.Stat(path)
	return err == nil && os.SameFile(fi, pi)
}

// dropLocked removes key from the index (not its file).
func (c *Cache) dropLocked(key string) {
	ie := c.index[key]
	if ie == nil {
		return
	}
	c.metas.Drop(&ie.meta)
	delete(c.index, key)
	c.bytes -= ie.cost()
	if g, ok := store.GroupOf(key); ok {
		if m := c.groups[g]; m != nil {
			delete(m, key)
			if len(m) == 0 {
				delete(c.groups, g)
			}
		}
	}
	for _, t := range ie.tags {
		if m := c.tags[t]; m != nil {
			delete(m, key)
			if len(m) == 0 {
				delete(c.tags, t)
			}
		}
	}
}

// addLocked indexes key, replacing any entry there.
func (c *Cache) addLocked(key string, ie *ient) {
	c.dropLocked(key)
	c.index[key] = ie
	c.bytes += ie.cost()
	if g, ok := store.GroupOf(key); ok {
		m := c.groups[g]
		if m == nil {
			m = make(map[string]struct{})
			c.groups[strings.Clone(g)] = m
		}
		m[key] = struct{}{}
	}
	for _, t := range ie.tags {
		m := c.tags[t]
		if m == nil {
			m = make(map[string]struct{})
			c.tags[t] = m
		}
		m[key] = struct{}{}
	}
}

// deleteLocked removes the entry under key, file and index, and reports
// whether the index had a live one.
func (c *Cache) deleteLocked(key string) bool {
	ie := c.index[key]
	err := os.Remove(c.path(key))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.writeFailed(err)
	}
	c.dropLocked(key)
	if c.loading && !errors.Is(err, fs.ErrNotExist) {
		// Not when there was no file: the loader cannot meet one, and
		// every unsafe request deletes its URL's key, stored or not.
		c.tomb[key] = struct{}{}
	}
	return ie != nil && !c.expiredAt(ie.expires)
}

// evictLocked removes entries until the store fits its budgets (bytes
// and, when bounded, entries): of a few sampled entries, an expired one,
// else the least recently used.
func (c *Cache) evictLocked() {
	for c.overLocked() {
		var victim string
		var oldest int64 = math.MaxInt64
		expired := false
		n := 0
		for k, ie := range c.index {
			if c.expiredAt(ie.expires) {
				victim, expired = k, true
				break
			}
			if a := ie.atime.Load(); a < oldest {
				victim, oldest = k, a
			}
			if n++; n == evictionSamples {
				break
			}
		}
		c.deleteLocked(victim)
		if !expired {
			c.evictions.Add(1)
		}
	}
}

// Put starts storing an entry under key, in a temporary file.
func (c *Cache) Put(_ context.Context, key string, e *store.Entry) (store.Writer, error) {
	hdr := make([]byte, prefixLen, prefixLen+256)
	hdr = encodeHeader(hdr, key, e)
	limit := c.MaxEntrySize()
	if int64(len(hdr))+max(e.Size, 0) > limit || len(hdr)-prefixLen > maxHeaderLen {
		return nil, store.ErrTooLarge
	}
	if !c.reserve(int64(len(hdr))) {
		return nil, errPendingFull
	}
	f, err := c.createTemp(c.tmpDir)
	if err != nil {
		c.pending.Add(-int64(len(hdr)))
		c.writeFailed(err)
		return nil, fmt.Errorf("disk store: %w", err)
	}
	w := &writer{c: c, key: key, f: f, limit: limit, deriver: c.derivers.Of(e.Derived), reserved: int64(len(hdr))}
	w.p.headerLen = uint32(len(hdr) - prefixLen)
	w.p.headerCRC = crc32.Checksum(hdr[prefixLen:], castagnoli)
	if e.SoftPurged {
		w.p.flags |= flagSoftPurged
	}
	w.expires = unixtime.Nano(e.Expires)
	w.tags = slices.Clone(e.Tags)
	w.bw = bufio.NewWriterSize(f, writeBuffer)
	// The prefix is written for real at Commit: until then it is zeros,
	// which no reader accepts.
	clear(hdr[:prefixLen])
	if _, err := w.bw.Write(hdr); err != nil {
		w.err = err
	}
	return w, nil
}

// errPendingFull refuses the Put, or fails the Commit, of an entry that
// does not fit in the allowance of the files being written: the store is
// busy, which says nothing of the response.
var errPendingFull = fmt.Errorf("disk store: the entries being written take max_size already: %w", store.ErrBusy)

// writer writes one entry file.
type writer struct {
	c       *Cache
	key     string
	f       tempFile
	bw      *bufio.Writer
	p       prefix
	expires int64
	tags    []string
	deriver uint16 // the number of the function the entry's Derived came from
	limit   int64  // the largest file
	n       int64  // body bytes written
	crc     uint32
	err     error // the first write error
	tooBig  bool
	done    bool
	// reserved is what the file counts in Cache.pending.
	reserved int64

	// mu guards the fields above against the followers (Follow), which
	// read the file from other goroutines, and the three below.
	mu        sync.Mutex
	followers int   // open followers
	visible   int64 // body bytes in the file, not in bw: what followers read
	committed bool  // Commit wrote the whole body to the file
}

func (w *writer) write(p []byte) {
	w.crc = crc32.Update(w.crc, castagnoli, p)
	if _, err := w.bw.Write(p); err != nil {
		w.err = err
	}
}

// Write adds p to the body. It never fails: a body too large or a failing
// disk makes Commit fail, so that the response keeps streaming to the
// client.
func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return 0, errors.New("write to a committed or aborted cache entry")
	}
	w.n += int64(len(p))
	if w.tooBig || w.err != nil {
		return len(p), nil
	}
	if prefixLen+int64(w.p.headerLen)+w.n > w.limit {
		w.tooBig = true
		return len(p), nil
	}
	if !w.c.reserve(int64(len(p))) {
		w.err = errPendingFull
		return len(p), nil
	}
	w.reserved += int64(len(p))
	w.write(p)
	if w.followers > 0 && w.err == nil {
		// Followers read the file: the body goes there as it comes.
		if err := w.bw.Flush(); err != nil {
			w.err = err
		}
		w.visible = w.n
	}
	return len(p), nil
}

// Follow implements store.Following: the follower reads the temporary
// file through a descriptor of its own, which keeps reading the body
// once the file is renamed into place, replaced or removed.
func (w *writer) Follow() (store.Follower, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done || w.tooBig || w.err != nil {
		return nil, false
	}
	if err := w.bw.Flush(); err != nil {
		w.err = err
		return nil, false
	}
	w.visible = w.n
	f, err := openRead(w.f.Name())
	if err != nil {
		return nil, false
	}
	w.followers++
	return &follower{w: w, f: f, base: prefixLen + int64(w.p.headerLen)}, true
}

// Room implements store.Following.
func (w *writer) Room() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done || w.tooBig || w.err != nil {
		return 0
	}
	return max(w.limit-prefixLen-int64(w.p.headerLen)-w.n, 0)
}

// follower reads a writer's body from the file (store.Follower).
type follower struct {
	w    *writer
	f    *os.File
	base int64 // where the body starts in the file
}

func (fl *follower) ReadAt(p []byte, off int64) (int, error) {
	w := fl.w
	w.mu.Lock()
	end, committed := w.visible, w.committed
	failed := !committed && (w.done || w.tooBig || w.err != nil)
	w.mu.Unlock()
	switch {
	case fl.f == nil:
		return 0, errors.New("read from a closed follower")
	case failed:
		return 0, store.ErrNotStored
	case off >= end && committed:
		return 0, io.EOF
	case off >= end:
		return 0, nil
	}
	n, err := fl.f.ReadAt(p[:min(int64(len(p)), end-off)], fl.base+off)
	if err == io.EOF {
		err = fmt.Errorf("disk store: file of a followed body shorter than written (%d bytes at %d)", n, off)
	}
	return n, err
}

func (fl *follower) Close() error {
	if fl.f == nil {
		return nil
	}
	w := fl.w
	w.mu.Lock()
	w.followers--
	w.mu.Unlock()
	err := fl.f.Close()
	fl.f = nil
	return err
}

// reserve counts n more bytes of temporary files in pending, and reports
// whether they fit: the temporary files of responses being stored (as
// slowly as their clients read them, and as many at once as there are
// clients) take at most max_size beside the entries, not the whole disk.
// When they do not fit, nothing is counted.
func (c *Cache) reserve(n int64) bool {
	if c.pending.Add(n) > c.maxSize.Load() {
		c.pending.Add(-n)
		return false
	}
	return true
}

// release gives back what the file counted in Cache.pending: it is gone,
// or an entry counted in the index.
func (w *writer) release() {
	w.c.pending.Add(-w.reserved)
	w.reserved = 0
}

// Commit completes the file (prefix, fsync) and renames it into place.
func (w *writer) Commit() error {
	w.mu.Lock()
	if w.done {
		w.mu.Unlock()
		return errors.New("cache entry already committed or aborted")
	}
	w.done = true
	c := w.c
	defer w.release()
	if w.tooBig {
		w.mu.Unlock()
		w.discard()
		return store.ErrTooLarge
	}
	if errors.Is(w.err, store.ErrBusy) {
		w.mu.Unlock()
		w.discard()
		return w.err // not a write failure
	}
	err := w.err
	if err == nil {
		err = w.bw.Flush()
	}
	if err == nil {
		// The whole body is in the file, which the followers read
		// whatever becomes of it.
		w.committed, w.visible = true, w.n
	}
	// The followers need nothing more: the prefix, fsync and rename
	// run without holding their reads.
	w.mu.Unlock()
	w.p.bodyLen, w.p.bodyCRC = w.n, w.crc
	if err == nil {
		var b [prefixLen]byte
		w.p.encode(b[:])
		_, err = w.f.WriteAt(b[:], 0)
	}
	if err == nil && !c.cfg.NoSync {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(w.f.Name())
		c.writeFailed(err)
		return fmt.Errorf("disk store: %w", err)
	}
	ie := &ient{fileSize: w.p.fileSize(), bodyLen: w.n, expires: w.expires, tags: w.tags, deriver: w.deriver}
	ie.verified.Store(true) // its checksum is of the bytes written
	return c.install(w.key, w.f.Name(), ie, nil)
}

// install renames the complete file tmp into place as the entry of key.
// With old set (an Update), it does so only if the entry there is still
// the file old; otherwise a newer entry won and tmp is dropped.
func (c *Cache) install(key, tmp string, ie *ient, old *os.File) error {
	sub, file := name(key)
	subdir := filepath.Join(c.dir, hex.EncodeToString([]byte{byte(sub)}))
	path := filepath.Join(subdir, file)
	ie.atime.Store(c.tick.Add(1))
	c.mu.Lock()
	defer c.mu.Unlock()
	if old != nil && (!same(path, old) || (c.index[key] == nil && c.groupPurgedLocked(key))) {
		os.Remove(tmp)
		return nil
	}
	if c.expiredAt(ie.expires) {
		// Already past its Expires: it replaces the entry there, and is
		// gone at once.
		os.Remove(tmp)
		c.deleteLocked(key)
		return nil
	}
	if !c.subdirs[sub].Load() {
		if err := os.MkdirAll(subdir, 0o700); err != nil {
			os.Remove(tmp)
			c.writeFailed(err)
			return fmt.Errorf("disk store: %w", err)
		}
		c.subdirs[sub].Store(true)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		c.writeFailed(err)
		return fmt.Errorf("disk store: %w", err)
	}
	c.addLocked(key, ie)
	if c.loading {
		delete(c.tomb, key)
	}
	c.evictLocked()
	return nil
}

// discard closes and removes the temporary file.
func (w *writer) discard() {
	w.f.Close()
	os.Remove(w.f.Name())
	w.release()
}

// Abort discards the entry being written.
func (w *writer) Abort() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return
	}
	w.done = true
	w.discard()
}

// Update replaces the metadata of the entry under key and keeps its body:
// the file is written anew with the body copied (copy_file_range where the
// file system has it).
func (c *Cache) Update(_ context.Context, key string, e *store.Entry) error {
	c.mu.RLock()
	ie := c.index[key]
	loading := c.loading && (ie != nil || !c.groupPurgedLocked(key))
	c.mu.RUnlock()
	if ie == nil && !loading {
		return store.ErrNotFound
	}
	f, err := openRead(c.path(key))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return store.ErrNotFound
		}
		c.readFailed(err)
		return err
	}
	defer f.Close()
	buf, p, _, err := readPrefix(f, 4096, nil)
	if err == nil {
		_, _, err = c.read(f, key, int64(len(buf)), false, false)
	}
	if err != nil {
		if errors.Is(err, errCorrupt) {
			c.corrupt(key, f, err)
			return store.ErrNotFound
		}
		return err
	}
	hdr := encodeHeader(make([]byte, prefixLen, prefixLen+256), key, e)
	np := prefix{headerLen: uint32(len(hdr) - prefixLen), bodyLen: p.bodyLen, bodyCRC: p.bodyCRC}
	np.headerCRC = crc32.Checksum(hdr[prefixLen:], castagnoli)
	if e.SoftPurged {
		np.flags |= flagSoftPurged
	}
	np.encode(hdr[:prefixLen])
	t, err := c.createTemp(c.tmpDir)
	if err != nil {
		c.writeFailed(err)
		return fmt.Errorf("disk store: %w", err)
	}
	fail := func(err error) error {
		t.Close()
		os.Remove(t.Name())
		c.writeFailed(err)
		return fmt.Errorf("disk store: %w", err)
	}
	if _, err := t.Write(hdr); err != nil {
		return fail(err)
	}
	if _, err := f.Seek(prefixLen+int64(p.headerLen), io.SeekStart); err != nil {
		return fail(err)
	}
	if n, err := io.Copy(t, &io.LimitedReader{R: f, N: p.bodyLen}); err != nil || n != p.bodyLen {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return fail(err)
	}
	if !c.cfg.NoSync {
		if err := t.Sync(); err != nil {
			return fail(err)
		}
	}
	if err := t.Close(); err != nil {
		os.Remove(t.Name())
		c.writeFailed(err)
		return err
	}
	nie := &ient{
		fileSize: np.fileSize(), bodyLen: p.bodyLen, expires: unixtime.Nano(e.Expires), tags: slices.Clone(e.Tags),
		deriver: c.derivers.Of(e.Derived),
	}
	// The body is the old file's: as verified as it was.
	nie.verified.Store(ie != nil && ie.verified.Load())
	return c.install(key, t.Name(), nie, f)
}

// Delete removes the entries under the keys.
func (c *Cache) Delete(_ context.Context, keys ...string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		c.deleteLocked(k)
	}
	return nil
}

// PurgePrefix removes (or with soft marks) every entry whose key starts
// with prefix. A prefix whose only NUL ends it (a primary key's variants)
// is looked up in the group index; any other scans the index: O(n). It
// waits for the index to be rebuilt, but for a group's removal.
func (c *Cache) PurgePrefix(ctx context.Context, prefix string, soft bool) (int, error) {
	if g, ok := store.PrefixGroup(prefix); ok && !soft {
		if n, ok := c.purgeGroupLoading(g); ok {
			return n, nil
		}
	}
	if err := c.waitReady(ctx); err != nil {
		return 0, err
	}
	c.mu.RLock()
	var keys []string
	if g, ok := store.PrefixGroup(prefix); ok {
		// A group's prefix: the keys that start with it are the group's.
		for k := range c.groups[g] {
			keys = append(keys, k)
		}
	} else {
		for k := range c.index {
			if strings.HasPrefix(k, prefix) {
				keys = append(keys, k)
			}
		}
	}
	c.mu.RUnlock()
	return c.purge(keys, "", soft), nil
}

// purgeGroupLoading removes the entries of group g while the index is
// being rebuilt, without waiting for it: an unsafe request's
// invalidation asks for this with a context nothing cancels, and its
// response would wait for the whole directory to be read. The indexed
// entries are removed now and counted; the files not indexed yet are
// served as misses and removed by the loader. ok is false once the
// index is complete.
func (c *Cache) purgeGroupLoading(g string) (n int, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.loading {
		return 0, false
	}
	if c.purgedGroups == nil {
		c.purgedGroups = make(map[[16]byte]struct{})
	}
	c.purgedGroups[groupID(g)] = struct{}{}
	for k := range c.groups[g] {
		if c.deleteLocked(k) {
			n++
		}
	}
	return n, true
}

// groupPurgedLocked tells whether key is in a group purged while the
// index is being rebuilt. c.mu must be held.
func (c *Cache) groupPurgedLocked(key string) bool {
	if !c.loading {
		return false
	}
	g, ok := store.GroupOf(key)
	if !ok {
		return false
	}
	_, purged := c.purgedGroups[groupID(g)]
	return purged
}

// groupID identifies a group in purgedGroups by a hash of fixed size:
// every unsafe request purges its URL's group, and the URL may be long.
// (Two groups with one hash would make a file of the other a miss.)
func groupID(g string) [16]byte {
	h := sha256.Sum256([]byte(g))
	return [16]byte(h[:16])
}

// PurgeTag removes (or with soft marks) every entry that carries tag,
// found in the tag index. It waits for the index to be rebuilt.
func (c *Cache) PurgeTag(ctx context.Context, tag string, soft bool) (int, error) {
	if err := c.waitReady(ctx); err != nil {
		return 0, err
	}
	c.mu.RLock()
	keys := make([]string, 0, len(c.tags[tag]))
	for k := range c.tags[tag] {
		keys = append(keys, k)
	}
	c.mu.RUnlock()
	return c.purge(keys, tag, soft), nil
}

// purge removes or soft-purges the live entries under keys that (when tag
// is set) still carry tag, and counts them.
func (c *Cache) purge(keys []string, tag string, soft bool) int {
	n := 0
	for _, k := range keys {
		if soft {
			if c.softPurge(k, tag) {
				n++
			}
			continue
		}
		c.mu.Lock()
		if ie := c.index[k]; ie != nil && (tag == "" || slices.Contains(ie.tags, tag)) && c.deleteLocked(k) {
			n++
		}
		c.mu.Unlock()
	}
	return n
}

// softPurge sets the soft-purged flag of the live entry under key (which,
// when tag is set, carries tag) by rewriting its prefix in place.
func (c *Cache) softPurge(key, tag string) bool {
	path := c.path(key)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	ie := c.index[key]
	if ie == nil || c.expiredAt(ie.expires) || (tag != "" && !slices.Contains(ie.tags, tag)) || !same(path, f) {
		return false
	}
	var b [prefixLen]byte
	if _, err := f.ReadAt(b[:], 0); err != nil {
		return false
	}
	p, err := decodePrefix(b[:])
	if err != nil {
		return false
	}
	if p.flags&flagSoftPurged != 0 {
		return true
	}
	p.flags |= flagSoftPurged
	p.encode(b[:])
	err = c.writePrefix(f, b[:])
	// The decoded metadata no longer holds, and a hit reading the file
	// meanwhile must not keep what it read. Counted once the bytes are
	// written: a hit that takes the count before reads them, one that
	// took it earlier finds it changed.
	ie.rewrites.Add(1)
	c.metas.Forget(&ie.meta)
	if err != nil {
		c.writeFailed(err)
		return false
	}
	return true
}

// Entries lists the live entries whose key starts with prefix and is
// greater than after, in key order, at most limit, reading each listed
// entry's metadata from its file. It waits for the index.
func (c *Cache) Entries(ctx context.Context, prefix, after string, limit int) ([]store.Listed, error) {
	if limit <= 0 {
		return nil, nil
	}
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}
	c.mu.RLock()
	var keys []string
	for k, ie := range c.index {
		if strings.HasPrefix(k, prefix) && k > after && !c.expiredAt(ie.expires) {
			keys = append(keys, k)
		}
	}
	c.mu.RUnlock()
	slices.Sort(keys)
	var out []store.Listed
	for _, k := range keys {
		if len(out) == limit {
			break
		}
		if e, err := c.meta(k); err == nil {
			out = append(out, store.Listed{Key: k, Entry: e})
		}
	}
	return out, nil
}

// meta reads the metadata of the entry under key.
func (c *Cache) meta(key string) (*store.Entry, error) {
	f, err := openRead(c.path(key))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	e, _, err := c.read(f, key, 4096, false, false)
	return e, err
}

// Stats reports the entries, their bytes (files plus an estimate of 512
// bytes each), the budget, and the eviction and error counters.
func (c *Cache) Stats() store.Stats {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return store.Stats{
		Entries:   int64(len(c.index)),
		Bytes:     c.bytes,
		Capacity:  c.maxSize.Load(),
		Evictions: c.evictions.Load(),
		Errors:    c.errors.Load(),
	}
}

// writeFailed counts and logs (at most every 10 s) a failed write.
func (c *Cache) writeFailed(err error) {
	c.errors.Add(1)
	c.writeLog.Error(c.logger, errorLogInterval, "disk store: writing failed; responses are served from the origin without being stored", err)
}

// readFailed counts and logs (at most every 10 s) a failed read.
func (c *Cache) readFailed(err error) {
	c.errors.Add(1)
	c.readLog.Error(c.logger, errorLogInterval, "disk store: reading failed; served as a miss", err)
}

// Interface guards
var (
	_ store.Store     = (*Cache)(nil)
	_ store.Writer    = (*writer)(nil)
	_ store.Following = (*writer)(nil)
	_ store.Follower  = (*follower)(nil)
)
