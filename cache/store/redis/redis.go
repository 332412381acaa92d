// Package redis is http_cache's shared store: responses kept in a Redis
// (or Valkey, or a Redis Cluster) that several Caddy nodes share.
//
// An entry is one meta key (the stored metadata, and the body itself when
// it is small) and, for larger bodies, chunk keys of at most ChunkSize
// bytes, so that no Redis value is large and a hit streams chunk by chunk.
// Chunk keys carry a random generation, written before the meta value that
// names it: a reader never pairs a header with another version's body. An
// entry's keys share a hash tag, so they live in one Cluster slot. Every
// key expires (PX) with the entry, so Redis frees the space by itself; a
// chunk missing when a hit starts (evicted under maxmemory) makes a miss,
// never a short body.
//
// Prefix purges and the entry listing use a sorted index, tag purges a set
// per tag, both written at store time; no operation uses KEYS.
package redis

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"go.uber.org/zap"

	"github.com/caddy-edge/edge/cache/store"
)

const (
	// ChunkSize is the largest body stored inline in the meta value, and
	// the size of the chunks of larger bodies: 256 KiB.
	ChunkSize = 256 << 10
	// DefaultTimeout bounds each store operation (one round trip or a
	// pipeline of them): 100 ms.
	DefaultTimeout = 100 * time.Millisecond
	// DefaultMaxObjectSize is the largest body stored: 64 MiB.
	DefaultMaxObjectSize int64 = 64 << 20
	// bodyTimeout is the least time a read of a body's chunk may take
	// (see readChunk): 10 s.
	bodyTimeout = 10 * time.Second
	// readGrace is how long the chunks of a replaced or deleted body stay
	// readable, for hits that are still streaming it.
	readGrace = 30 * time.Second
	// retryAfter is how long the store stays away from a Redis that failed
	// before it tries again; meanwhile reads are misses and writes are
	// dropped.
	retryAfter = time.Second
	// sweepEvery is how often the index is cleared of expired keys.
	sweepEvery = time.Minute
	// batch is the number of keys a purge handles per round trip.
	batch = 500
	// keptLimit bounds the memory a store's writers keep of the chunks
	// they sent to Redis, for the requests that follow their bodies, until
	// the body is stored and its followers are done: 64 MiB. Beyond it,
	// followers read those chunks from Redis. Only a write that Room
	// allowed, of a body Redis failed to store, takes it past the bound
	// (by the chunks that write fills) when other writers took the rest
	// meanwhile.
	keptLimit = 64 << 20
	// headLen is how much of a meta value a listing reads: metadata
	// longer than this is read whole.
	headLen = 16 << 10
	// maxTags is the most distinct tags an entry is stored with: each
	// costs three commands of the pipeline that stores it, which must
	// end within the timeout. An entry with more is not stored
	// (store.ErrTooLarge).
	maxTags = 1000
)

// ErrUnavailable is returned by purges and deletes while Redis cannot be
// reached.
var ErrUnavailable = errors.New("redis store unavailable")

// Options configure a Client.
type Options struct {
	// Client is the rueidis configuration: addresses, credentials, DB,
	// TLS. Options for tracking and timeouts are set by NewClient.
	Client rueidis.ClientOption
	// Prefix is put before every key.
	Prefix string
	// Timeout bounds each operation. Default: DefaultTimeout.
	Timeout time.Duration
	// MaxObjectSize is the largest body stored. Default:
	// DefaultMaxObjectSize.
	MaxObjectSize int64
	// ChunkSize overrides ChunkSize (for tests).
	ChunkSize int
	// Logger receives the outage reports. Default: none.
	Logger *zap.Logger
	// Now is the clock for the expiry checks. Default: time.Now.
	Now func() time.Time
}

// Client is a store.Store on a Redis. It connects in the background and
// reconnects by itself; while Redis is unreachable, Get misses, Put keeps
// nothing, and purges fail with ErrUnavailable.
type Client struct {
	opts   Options
	logger *zap.Logger
	now    func() time.Time
	chunk  int

	// Key names: metaPre+"{"+hash+"}"+key for an entry's meta value,
	// chunkPre+"{"+hash+"}"+gen+":"+n for its chunks,
	// tagPre+"{"+hash(tag)+"}"+tag for a tag's set, idx for the index keys.
	metaPre, chunkPre, tagPre string
	idx                       []string

	rc atomic.Pointer[rueidis.Client]
	// checked is closed once the server was checked (checkServer) after
	// the first connection.
	checked chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	// Close comes while requests still use the Client (Caddy unloads a
	// config without waiting for its requests), so the connection is
	// closed once the chunked bodies and the writers in use are done:
	// refs counts them, and closing tells that Close was called.
	refMu     sync.Mutex // protects refs, closing and closed
	refs      int
	closing   bool
	closed    bool // the connection is closed
	closeOnce sync.Once

	// The circuit: downUntil is the Unix nanosecond time before which
	// Redis is not tried; downSince when the outage began (0: up).
	downUntil, downSince atomic.Int64
	downErrs             atomic.Int64 // errors during the current outage

	errs, evictions atomic.Int64
	// kept is what the writers hold of the chunks they sent, for the
	// requests that follow their bodies (at most keptLimit).
	kept atomic.Int64

	lmu       sync.Mutex // protects listeners and nextL
	listeners map[int]func(keys []string)
	nextL     int
}

// NewClient returns a Client for opts and starts connecting.
func NewClient(opts Options) *Client {
	c := &Client{opts: opts, logger: opts.Logger, now: opts.Now, chunk: opts.ChunkSize}
	if c.logger == nil {
		c.logger = zap.NewNop()
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.chunk <= 0 {
		c.chunk = ChunkSize
	}
	if c.opts.Timeout <= 0 {
		c.opts.Timeout = DefaultTimeout
	}
	if c.opts.MaxObjectSize <= 0 {
		c.opts.MaxObjectSize = DefaultMaxObjectSize
	}
	p := opts.Prefix
	c.metaPre, c.chunkPre, c.tagPre = p+"e", p+"c", p+"t"
	c.idx = []string{p + "i{i}lex", p + "i{i}exp", p + "i{i}size", p + "i{i}bytes"}
	c.listeners = make(map[int]func([]string))

	co := opts.Client
	// Broadcast tracking of the meta keys: every change of an entry, by
	// any node, by expiry or by eviction, is pushed to every client, on
	// the connection that its reads use. A memory tier in front drops its
	// copy when it arrives (see Subscribe).
	co.ClientTrackingOptions = []string{"PREFIX", c.metaPre + "{", "BCAST"}
	co.OnInvalidations = c.invalidated
	co.CacheSizeEachConn = 1 << 20 // rueidis's own cache is not used
	if co.Dialer.Timeout == 0 {
		co.Dialer.Timeout = max(10*c.opts.Timeout, time.Second)
	}
	if co.ConnWriteTimeout == 0 {
		co.ConnWriteTimeout = max(10*c.opts.Timeout, 2*time.Second)
	}
	c.opts.Client = co
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.downSince.Store(time.Now().UnixNano())
	c.downUntil.Store(time.Now().Add(time.Hour).UnixNano()) // until connected
	c.checked = make(chan struct{})
	c.wg.Add(1)
	go c.run()
	return c
}

// run connects, retrying until it succeeds, then sweeps the index.
func (c *Client) run() {
	defer c.wg.Done()
	delay := 100 * time.Millisecond
	for {
		rc, err := rueidis.NewClient(c.opts.Client)
		if err == nil {
			c.rc.Store(&rc)
			c.up()
			c.checkServer(rc)
			close(c.checked)
			break
		}
		c.downErrs.Add(1)
		c.errs.Add(1)
		if c.downErrs.Load() == 1 {
			c.logger.Error("redis store: cannot connect; requests go to the origin until it can",
				zap.Strings("address", c.opts.Client.InitAddress), zap.Error(err))
		}
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			c.sweep()
		}
	}
}

// checkServer warns about a server this store cannot work with fully,
// once connected: a Redis older than 7.0, which refuses the PEXPIRE
// options every write uses, and a maxmemory-policy of allkeys-*, under
// which Redis may evict the tag sets and the prefix index (they have no
// expiry), so that purges by tag, prefix or URL miss entries. A server
// that does not answer (CONFIG renamed away, as managed services do) is
// not checked.
func (c *Client) checkServer(rc rueidis.Client) {
	ctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
	defer cancel()
	if info, err := rc.Do(ctx, rc.B().Info().Section("server").Build()).ToString(); err == nil {
		if v, ok := infoField(info, "redis_version"); ok {
			if major, _, _ := strings.Cut(v, "."); len(major) == 1 && major < "7" {
				c.logger.Error("redis store: Redis 7.0 or newer is needed; this server refuses the store's writes",
					zap.String("redis_version", v))
			}
		}
	}
	kv, err := rc.Do(ctx, rc.B().ConfigGet().Parameter("maxmemory-policy").Build()).AsStrMap()
	if err != nil {
		return
	}
	if p := kv["maxmemory-policy"]; strings.HasPrefix(p, "allkeys-") {
		c.logger.Warn("redis store: maxmemory-policy "+p+" may evict the tag sets and the prefix index, which have no expiry: purges by tag, prefix or URL would then miss entries; use volatile-lru, volatile-lfu or noeviction",
			zap.String("maxmemory_policy", p))
	}
}

// infoField returns the value of field in the text of an INFO reply.
func infoField(info, field string) (string, bool) {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// Close stops the background work and closes the connections, at once
// or, while chunked bodies or writers are in use, when the last of them is
// done: a config being unloaded still serves its requests.
func (c *Client) Close() {
	c.cancel()
	c.wg.Wait()
	c.refMu.Lock()
	c.closing = true
	last := c.refs == 0
	c.refMu.Unlock()
	if last {
		c.closeConn()
	}
}

// closeConn closes the connection, once.
func (c *Client) closeConn() {
	c.closeOnce.Do(func() {
		c.refMu.Lock()
		c.closed = true
		c.refMu.Unlock()
		if rc := c.rc.Load(); rc != nil {
			(*rc).Close()
		}
	})
}

// acquire holds the connection open for a body or writer until release;
// false once it is closed.
func (c *Client) acquire() bool {
	c.refMu.Lock()
	defer c.refMu.Unlock()
	if c.closed {
		return false
	}
	c.refs++
	return true
}

// release gives back what acquire took, closing the connection after
// Close when it was the last.
func (c *Client) release() {
	c.refMu.Lock()
	c.refs--
	last := c.closing && c.refs == 0
	c.refMu.Unlock()
	if last {
		c.closeConn()
	}
}

// client returns the connection, or ErrUnavailable while the circuit is
// open.
func (c *Client) client() (rueidis.Client, error) {
	if time.Now().UnixNano() < c.downUntil.Load() {
		c.errs.Add(1)
		c.downErrs.Add(1)
		return nil, ErrUnavailable
	}
	rc := c.rc.Load()
	if rc == nil {
		c.errs.Add(1)
		return nil, ErrUnavailable
	}
	return *rc, nil
}

// fail records a failed operation and opens the circuit: Redis is left
// alone for retryAfter. The first failure of an outage is logged.
func (c *Client) fail(op string, err error) error {
	if errors.Is(err, context.Canceled) {
		// The caller gave up (a client went away): no sign of trouble
		// with Redis.
		return fmt.Errorf("redis store: %s: %w", op, err)
	}
	c.errs.Add(1)
	if refused(err) {
		// Redis is up and its reads still serve hits.
		return fmt.Errorf("redis store: %s: %w", op, err)
	}
	c.downErrs.Add(1)
	c.downUntil.Store(time.Now().Add(retryAfter).UnixNano())
	if c.downSince.CompareAndSwap(0, time.Now().UnixNano()) {
		c.logger.Error("redis store: operation failed; requests go to the origin until redis answers again",
			zap.String("operation", op), zap.Error(err), zap.Duration("retry_after", retryAfter))
	}
	return fmt.Errorf("redis store: %s: %w", op, err)
}

// refused tells whether err is Redis refusing one command while it serves
// the others: a write at maxmemory under noeviction (OOM), a write to a
// replica (READONLY), a write while its snapshots fail (MISCONF, under
// stop-writes-on-bgsave-error) or without min-replicas-to-write replicas
// (NOREPLICAS), a key of another type under the store's names
// (WRONGTYPE). Other errors it answers, such as a password refused when
// a connection is made again, open the circuit as an outage does.
func refused(err error) bool {
	re, ok := rueidis.IsRedisErr(err)
	if !ok {
		return false
	}
	code, _, _ := strings.Cut(re.Error(), " ")
	switch code {
	case "OOM", "READONLY", "MISCONF", "NOREPLICAS", "WRONGTYPE":
		return true
	}
	return false
}

// up closes the circuit after a success, reporting the end of an outage.
func (c *Client) up() {
	if c.downSince.Load() == 0 {
		return
	}
	since := c.downSince.Swap(0)
	if since == 0 {
		return
	}
	c.downUntil.Store(0)
	if n := c.downErrs.Swap(0); n > 0 { // not the first connection
		c.logger.Info("redis store: reachable again",
			zap.Duration("outage", time.Since(time.Unix(0, since))), zap.Int64("failed_operations", n))
	}
}

// ok is called after an operation reached Redis.
func (c *Client) ok() {
	if c.downSince.Load() != 0 {
		c.up()
	}
}

// opCtx bounds one operation by the timeout.
func (c *Client) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.opts.Timeout)
}

// hashTag returns the hash tag of a key or tag name: 16 hex digits of its
// FNV-1a hash. Two names may share one; the key or tag is checked.
func hashTag(s string) string {
	h := fnv.New64a()
	io.WriteString(h, s)
	var b [16]byte
	return string(strconv.AppendUint(b[:0], h.Sum64(), 16))
}

func (c *Client) metaKey(key string) string {
	return c.metaPre + "{" + hashTag(key) + "}" + key
}

func (c *Client) chunkKeys(key string, gen uint64, n uint32) []string {
	pre := c.chunkPrefix(key, gen)
	ks := make([]string, n)
	for i := range ks {
		ks[i] = pre + strconv.Itoa(i)
	}
	return ks
}

// chunkKey names chunk i of the body of generation gen of key.
func (c *Client) chunkKey(key string, gen uint64, i uint32) string {
	return c.chunkPrefix(key, gen) + strconv.FormatUint(uint64(i), 10)
}

// chunkPrefix is what the names of the chunks of generation gen of key
// start with.
func (c *Client) chunkPrefix(key string, gen uint64) string {
	return c.chunkPre + "{" + hashTag(key) + "}" + strconv.FormatUint(gen, 16) + ":"
}

// tagKey names the set of tag: the tag itself after its hash, as the key
// after the meta key's, since two tags may share a hash.
func (c *Client) tagKey(tag string) string {
	return c.tagPre + "{" + hashTag(tag) + "}" + tag
}

// keyOfMeta returns the cache key of a meta key name.
func (c *Client) keyOfMeta(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, c.metaPre+"{")
	if !ok {
		return "", false
	}
	i := strings.IndexByte(rest, '}')
	if i < 0 {
		return "", false
	}
	return rest[i+1:], true
}

// ttl returns the time to live of an entry that expires at exp, in
// milliseconds (0: never), and whether it is still alive.
func (c *Client) ttl(exp time.Time) (int64, bool) {
	if exp.IsZero() {
		return 0, true
	}
	d := exp.Sub(c.now())
	if d <= 0 {
		return 0, false
	}
	return max(d.Milliseconds(), 1), true
}

func pxArg(ms int64) string { return strconv.FormatInt(ms, 10) }

// chunkTTL is the time to live of chunks: their entry's plus the read
// grace, so that a hit that starts just before the entry expires can end.
func chunkTTL(ms int64) int64 {
	if ms == 0 {
		return 0
	}
	return ms + readGrace.Milliseconds()
}

func newGen() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) | 1 // never 0
}

// Get implements store.Store. While Redis is unreachable, or when the entry
// is unreadable, it returns store.ErrNotFound: the request goes to the
// origin, and the failure is counted (and logged once per outage) here.
func (c *Client) Get(ctx context.Context, key string) (*store.Entry, store.Body, error) {
	m, rc, err := c.getMeta(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	e := m.entry
	if m.chunks == 0 {
		return e, store.NewBytesReader(m.inline), nil
	}
	// The body reads its chunks later: it holds the connection open
	// (taken before the check that the chunks exist, which then fails
	// on a connection already closed).
	if !c.acquire() {
		return nil, nil, store.ErrNotFound
	}
	ks := c.chunkKeys(key, m.gen, m.chunks)
	cctx, cancel := c.opCtx(ctx)
	n, err := rc.Do(cctx, rc.B().Exists().Key(ks...).Build()).AsInt64()
	cancel()
	if err != nil {
		c.release()
		c.fail("get", err)
		return nil, nil, store.ErrNotFound
	}
	if n != int64(len(ks)) {
		// A chunk was evicted (maxmemory): the entry is gone.
		c.release()
		c.evictions.Add(1)
		c.retire(key, m.gen, m.chunks)
		return nil, nil, store.ErrNotFound
	}
	return e, &chunkBody{c: c, keys: ks, size: e.Size, chunk: int64(c.chunk)}, nil
}

// getMeta reads and decodes the meta value of key.
func (c *Client) getMeta(ctx context.Context, key string) (*meta, rueidis.Client, error) {
	rc, err := c.client()
	if err != nil {
		return nil, nil, store.ErrNotFound
	}
	cctx, cancel := c.opCtx(ctx)
	defer cancel()
	v, err := rc.Do(cctx, rc.B().Get().Key(c.metaKey(key)).Build()).AsBytes()
	if rueidis.IsRedisNil(err) {
		c.ok()
		return nil, nil, store.ErrNotFound
	}
	if err != nil {
		c.fail("get", err)
		return nil, nil, store.ErrNotFound
	}
	c.ok()
	m, err := decodeMeta(v)
	if err != nil || m.key != key {
		// Not ours, or another version's format: a miss, replaced by
		// the next store.
		c.errs.Add(1)
		return nil, nil, store.ErrNotFound
	}
	if _, alive := c.ttl(m.entry.Expires); !alive {
		return nil, nil, store.ErrNotFound
	}
	if m.entry.Size > c.opts.MaxObjectSize ||
		m.chunks > 0 && m.chunks != uint32((m.entry.Size+int64(c.chunk)-1)/int64(c.chunk)) {
		// Larger than this store keeps (a foreign value claiming
		// billions of chunks must not make a key name for each), or
		// not cut in chunks of this store's size.
		c.errs.Add(1)
		return nil, nil, store.ErrNotFound
	}
	return m, rc, nil
}

// retire lets the chunks of a body that is no longer referenced expire
// after the read grace, in the background.
func (c *Client) retire(key string, gen uint64, n uint32) {
	if n == 0 {
		return
	}
	rc, err := c.client()
	if err != nil {
		return
	}
	ks := c.chunkKeys(key, gen, n)
	cmds := make(rueidis.Commands, 0, len(ks))
	for _, k := range ks {
		cmds = append(cmds, rc.B().Pexpire().Key(k).Milliseconds(readGrace.Milliseconds()).Lt().Build())
	}
	ctx, cancel := c.opCtx(context.Background())
	defer cancel()
	for _, r := range rc.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			c.fail("retiring chunks", err)
			return
		}
	}
}

// retireOld retires the body named by the fixed prefix of a replaced meta
// value.
func (c *Client) retireOld(key string, old []byte, keep uint64) {
	if gen, n, ok := decodeFixed(old); ok && gen != keep {
		c.retire(key, gen, n)
	}
}

// Put implements store.Store. Nothing is sent to Redis before the body
// reaches a chunk's size or Commit.
func (c *Client) Put(ctx context.Context, key string, e *store.Entry) (store.Writer, error) {
	if e.Size > c.opts.MaxObjectSize {
		return nil, store.ErrTooLarge
	}
	w := &writer{c: c, key: key, e: e.Clone(), gen: newGen()}
	w.e.Derived = nil
	var ok bool
	if w.e.Tags, ok = uniqueTags(w.e.Tags); !ok {
		return nil, store.ErrTooLarge
	}
	// The writer holds the connection open until Commit or Abort. Once it
	// is closed (a request of an unloaded config), the response is not
	// stored this time, as when too many bodies are being written: no
	// error to log for each such request.
	if !c.acquire() {
		return nil, store.ErrBusy
	}
	if e.Size > 0 {
		w.buf = make([]byte, 0, min(e.Size, int64(c.chunk)))
	}
	return w, nil
}

// writer stores a body chunk by chunk. Its methods are called from one
// goroutine (the fetch's); followers (Follow) read the body from others:
// the rest from buf, the chunks sent from kept, or from Redis as a hit
// does for those not kept (past keptLimit). Chunks are kept from the
// first, whether followed or not: the requests that wait for the body
// start following it once its header is in, and a chunk may be sent by
// then; a hundred of them reading it from Redis at once would time out.
//
// Write never fails, as the disk store's: a Redis that fails makes Commit
// fail, so that the response keeps streaming to its client. Its followers
// are not cut by such a failure either: the rest of the body goes into
// kept (within keptLimit), they read it to its end (the chunks not kept
// from Redis, which stored them before it failed), and nothing is stored.
type writer struct {
	c   *Client
	key string
	e   *store.Entry
	gen uint64

	// mu guards the fields below against the followers. The writer's own
	// goroutine reads them without it, and holds it to change them.
	mu   sync.Mutex
	buf  []byte // the bytes not sent yet: at most one chunk
	sent uint32 // chunks out of buf: in Redis, kept, or both
	size int64
	// stored counts the chunks in Redis: sent, until a failure.
	stored uint32
	err    error // the first failure to store; Commit returns it
	large  bool  // the body passed MaxObjectSize
	done   bool
	failed bool
	// gaveUp is set when followers cannot read the whole body (larger
	// than MaxObjectSize, Abort, a failure with a chunk it cannot keep):
	// they stop there.
	gaveUp bool
	// complete is set once the body is whole: stored (Commit), or, not
	// stored, every chunk kept or in Redis and the rest in buf (unstored).
	// Followers read it to its end.
	complete bool
	// kept[i] is chunk i (nil when not kept), kept while the writer runs
	// or a follower reads, counted in Client.kept by its capacity.
	kept      [][]byte
	nKept     uint32 // the chunks kept
	keptBytes int64
	readers   int // open followers
	// promised is where the body may end without being given up, as Room
	// last said, until the end of the next Write: the chunks up to it are
	// kept once Redis failed, past keptLimit if other writers took it
	// meanwhile.
	promised int64
}

// Write implements store.Writer.
func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return 0, errors.New("redis store: write after Commit or Abort")
	}
	defer func() { w.promised = 0 }() // Room's answer holds for one Write
	n := len(p)
	w.size += int64(n)
	if w.gaveUp {
		return n, nil
	}
	if w.size > w.c.opts.MaxObjectSize {
		w.large = true
		w.giveUpLocked()
		return n, nil
	}
	for len(p) > 0 {
		if len(w.buf) == w.c.chunk && !w.flushLocked() {
			// A full chunk and more to come: the body is chunked.
			w.giveUpLocked()
			return n, nil
		}
		if w.buf == nil {
			w.buf = make([]byte, 0, w.c.chunk)
		}
		k := min(len(p), w.c.chunk-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
	}
	return n, nil
}

// flushLocked moves the buffered bytes out of buf, as the next chunk:
// into Redis (until a failure), and into kept (within keptLimit), so that
// every chunk sent is kept or stored. It reports false when the chunk
// could go nowhere: Redis failed, and it cannot be kept. Called with w.mu
// held, which it lets go during the round trip: followers read the chunk
// from buf meanwhile. It also reports false for a body that expired
// unfollowed.
func (w *writer) flushLocked() bool {
	buf, i := w.buf, w.sent
	if _, alive := w.c.ttl(w.e.Expires); !alive && w.readers == 0 {
		// Expired while being stored, and nobody follows it: nothing
		// will be stored or read.
		return false
	}
	if w.err == nil {
		w.mu.Unlock()
		err := w.send(buf, i)
		w.mu.Lock()
		if err == nil {
			w.stored++
		} else {
			w.err = err
		}
	}
	n := int64(cap(buf)) // the memory it holds, however little of it is body
	promised := w.err != nil && int64(i)*int64(w.c.chunk)+int64(len(buf)) <= w.promised
	if promised {
		// Room said the body goes on: the fetch serves its client from
		// the followed writer on its word, whatever took the memory since.
		w.c.kept.Add(n)
	}
	if promised || w.c.keep(n) {
		for len(w.kept) < int(i) {
			w.kept = append(w.kept, nil)
		}
		w.kept = append(w.kept, buf)
		w.nKept++
		w.keptBytes += n
		w.sent++
		w.buf = nil // the next Write takes a new one: followers read this
		return true
	}
	if w.err != nil {
		return false
	}
	w.sent++
	w.buf = w.buf[:0]
	return true
}

// giveUpLocked ends the followers' reading (ErrNotStored) and frees what
// is kept for them. Called with w.mu held.
func (w *writer) giveUpLocked() {
	w.gaveUp, w.buf = true, nil
	if w.keptBytes > 0 {
		w.c.kept.Add(-w.keptBytes)
		w.kept, w.keptBytes = nil, 0
	}
}

// keep counts n more bytes of kept chunks, and reports whether they fit
// under keptLimit; when they do not, nothing is counted.
func (c *Client) keep(n int64) bool {
	if c.kept.Add(n) > keptLimit {
		c.kept.Add(-n)
		return false
	}
	return true
}

// dropKeptLocked gives the kept chunks up once nobody reads them: the
// writer is done and no follower is open. Called with w.mu held.
func (w *writer) dropKeptLocked() {
	if w.done && w.readers == 0 && w.keptBytes > 0 {
		w.c.kept.Add(-w.keptBytes)
		w.kept, w.keptBytes = nil, 0
	}
}

// send stores buf as chunk i.
func (w *writer) send(buf []byte, i uint32) error {
	c := w.c
	rc, err := c.client()
	if err != nil {
		return err
	}
	ms, alive := c.ttl(w.e.Expires)
	ttl := chunkTTL(ms)
	if !alive {
		// The entry expired while being stored: Commit stores nothing,
		// but its followers read the chunk until they are done.
		ttl = readGrace.Milliseconds()
	}
	k := c.chunkKey(w.key, w.gen, i)
	cmd := rc.B().Set().Key(k).Value(rueidis.BinaryString(buf))
	ctx, cancel := c.opCtx(context.Background())
	defer cancel()
	var res rueidis.RedisResult
	if ttl > 0 {
		res = rc.Do(ctx, cmd.Px(time.Duration(ttl)*time.Millisecond).Build())
	} else {
		res = rc.Do(ctx, cmd.Build())
	}
	if err := res.Error(); err != nil {
		return c.fail("storing a chunk", err)
	}
	return nil
}

// Commit implements store.Writer: the last chunk, the tag sets and the
// index are written, then the meta value that makes the entry visible.
// When it stores nothing, the followers still read the body to its end
// if it is whole in memory (unstored).
func (w *writer) Commit() error {
	if w.done {
		if w.failed {
			return errors.New("redis store: Commit after Abort")
		}
		return nil
	}
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
	c := w.c
	defer c.release()
	if w.large {
		w.abort()
		return store.ErrTooLarge
	}
	if w.gaveUp {
		w.abort()
		return w.err // Redis's failure; nil for a body that expired unfollowed
	}
	if w.err != nil {
		w.unstored()
		return w.err
	}
	ms, alive := c.ttl(w.e.Expires)
	if !alive {
		w.unstored() // it could never be served: nothing to store
		return nil
	}
	rc, err := c.client()
	if err != nil {
		// Redis is away: the response is not kept, which is no error of
		// the request (it was counted).
		w.unstored()
		return nil
	}
	var inline []byte
	if w.sent == 0 {
		inline = w.buf
	} else if len(w.buf) > 0 {
		w.mu.Lock()
		ok := w.flushLocked()
		w.mu.Unlock()
		if !ok || w.err != nil {
			w.unstored()
			return w.err
		}
	}
	e := w.e
	e.Size = w.size
	ctx, cancel := c.opCtx(context.Background())
	defer cancel()

	// The tag sets and the index first: an entry that is visible can
	// always be purged.
	cmds := c.indexCmds(rc, w.key, e, ms)
	for _, r := range rc.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			w.unstored()
			return c.fail("indexing an entry", err)
		}
	}
	val := encodeMeta(w.key, w.gen, w.sent, e, inline)
	old, err := rc.Do(ctx, evalCmd(rc, scriptSetMeta, []string{c.metaKey(w.key)}, []string{rueidis.BinaryString(val), pxArg(ms)})).AsBytes()
	if err != nil {
		w.unstored()
		return c.fail("storing an entry", err)
	}
	w.mu.Lock()
	w.complete = true
	w.dropKeptLocked()
	w.mu.Unlock()
	c.ok()
	c.retireOld(w.key, old, w.gen)
	return nil
}

// unstored ends a body that is not stored: its followers read it to its
// end, the chunks kept from memory, the others from Redis (every chunk
// sent is kept or stored, see flushLocked), and the rest from buf. The
// chunks stored are deleted, or, while followers may read them, left to
// expire after readGrace as those of a deleted body are. A follower that
// needs one Redis no longer has is cut (ErrNotStored or Redis's error),
// never given a short body.
func (w *writer) unstored() {
	w.mu.Lock()
	w.complete = true
	read := w.readers > 0 && w.nKept < w.sent
	w.dropKeptLocked()
	w.mu.Unlock()
	if read {
		w.c.retire(w.key, w.gen, w.stored)
	} else {
		w.unlink()
	}
}

// Follow implements store.Following: the follower reads the chunks sent
// that the writer kept from memory, the others from Redis as a hit does,
// and the rest from the writer's buffer.
func (w *writer) Follow() (store.Follower, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done || w.gaveUp {
		return nil, false
	}
	// The follower reads chunks until Close, after the writer released
	// the connection.
	if !w.c.acquire() {
		return nil, false
	}
	w.readers++
	return &follower{w: w, curI: -1}, true
}

// Room implements store.Following. Once Redis failed, the rest of a
// followed body must fit in kept: what keptLimit leaves now. Its answer
// holds for the next Write, whatever Redis and the other writers do
// meanwhile (promised).
func (w *writer) Room() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done || w.gaveUp {
		return 0
	}
	room := max(w.c.opts.MaxObjectSize-w.size, 0)
	if w.err != nil {
		// Every byte of buf is kept when it is flushed.
		room = min(room, max(keptLimit-w.c.kept.Load()-int64(len(w.buf)), 0))
	}
	w.promised = w.size + room
	return room
}

// follower reads a writer's body (store.Follower).
type follower struct {
	w *writer

	mu     sync.Mutex // protects the fields below
	cur    []byte     // the chunk last read from Redis
	curI   int        // its index, -1 for none
	closed bool
}

func (fl *follower) ReadAt(p []byte, off int64) (int, error) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.closed {
		return 0, errors.New("read from a closed follower")
	}
	w := fl.w
	chunk := int64(w.c.chunk)
	w.mu.Lock()
	if w.gaveUp {
		w.mu.Unlock()
		return 0, store.ErrNotStored
	}
	if off >= w.size {
		complete := w.complete
		w.mu.Unlock()
		if complete {
			return 0, io.EOF
		}
		return 0, nil
	}
	end := w.size
	if sent := int64(w.sent) * chunk; off >= sent {
		n := copy(p, w.buf[off-sent:])
		w.mu.Unlock()
		return n, nil
	}
	i := int(off / chunk)
	var kept []byte
	if i < len(w.kept) {
		kept = w.kept[i] // never written again
	}
	w.mu.Unlock()
	if kept != nil {
		return copy(p, kept[off-int64(i)*chunk:]), nil
	}
	if fl.curI != i {
		v, err := fl.fetch(i)
		if err != nil {
			return 0, err
		}
		// Every chunk but the last is whole; the last ends the body.
		if want := min(chunk, end-int64(i)*chunk); int64(len(v)) < want || int64(len(v)) > chunk {
			w.c.errs.Add(1)
			return 0, store.ErrNotStored
		}
		fl.cur, fl.curI = v, i
	}
	return copy(p, fl.cur[off-int64(i)*chunk:]), nil
}

// fetch reads chunk i from Redis. A chunk gone (evicted under maxmemory,
// or unlinked by an Abort that raced the read) ends the reading as a body
// given up does.
func (fl *follower) fetch(i int) ([]byte, error) {
	w := fl.w
	v, err := w.c.readChunk(w.c.chunkKey(w.key, w.gen, uint32(i)))
	if errors.Is(err, errChunkGone) {
		return nil, store.ErrNotStored
	}
	return v, err
}

func (fl *follower) Close() error {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if !fl.closed {
		fl.closed, fl.cur = true, nil
		w := fl.w
		w.mu.Lock()
		w.readers--
		w.dropKeptLocked()
		w.mu.Unlock()
		w.c.release()
	}
	return nil
}

// indexCmds returns the commands that index key with entry e and time to
// live ms: its tags, then the prefix index.
func (c *Client) indexCmds(rc rueidis.Client, key string, e *store.Entry, ms int64) rueidis.Commands {
	cmds := make(rueidis.Commands, 0, 3*len(e.Tags)+1)
	tagTTL := chunkTTL(ms)
	for _, t := range e.Tags {
		tk := c.tagKey(t)
		cmds = append(cmds, rc.B().Sadd().Key(tk).Member(key).Build())
		if tagTTL == 0 {
			cmds = append(cmds, rc.B().Persist().Key(tk).Build())
		} else {
			cmds = append(cmds,
				rc.B().Pexpire().Key(tk).Milliseconds(tagTTL).Nx().Build(),
				rc.B().Pexpire().Key(tk).Milliseconds(tagTTL).Gt().Build())
		}
	}
	cmds = append(cmds, evalCmd(rc, scriptIndexAdd, c.idx, []string{key, strconv.FormatInt(e.Size, 10), pxArg(ms)}))
	return cmds
}

// Abort implements store.Writer.
func (w *writer) Abort() {
	if w.done {
		return
	}
	w.mu.Lock()
	w.done, w.failed = true, true
	w.mu.Unlock()
	w.abort()
	w.c.release()
}

// abort ends the followers' reading (ErrNotStored) and deletes the chunks
// stored so far.
func (w *writer) abort() {
	w.mu.Lock()
	w.giveUpLocked()
	w.mu.Unlock()
	w.unlink()
}

// unlink deletes the chunks stored so far.
func (w *writer) unlink() {
	if w.stored == 0 {
		return
	}
	rc, err := w.c.client()
	if err != nil {
		return // they expire with the entry
	}
	ctx, cancel := w.c.opCtx(context.Background())
	defer cancel()
	rc.Do(ctx, rc.B().Unlink().Key(w.c.chunkKeys(w.key, w.gen, w.stored)...).Build())
}

// Update implements store.Store: the metadata is replaced if the body it
// was found with is still the entry's.
func (c *Client) Update(ctx context.Context, key string, e *store.Entry) error {
	ne := e.Clone()
	var ok bool
	if ne.Tags, ok = uniqueTags(ne.Tags); !ok {
		// It can no longer be stored: as a Put with these tags.
		if err := c.Delete(ctx, key); err != nil {
			return err
		}
		return store.ErrTooLarge
	}
	m, rc, err := c.getMeta(ctx, key)
	if err != nil {
		if c.isDown() {
			return ErrUnavailable
		}
		return err
	}
	ms, alive := c.ttl(e.Expires)
	ne.Size = m.entry.Size
	ne.Derived = nil
	if !alive {
		return c.Delete(ctx, key)
	}
	cctx, cancel := c.opCtx(ctx)
	defer cancel()
	for _, r := range rc.DoMulti(cctx, c.indexCmds(rc, key, ne, ms)...) {
		if err := r.Error(); err != nil {
			return c.fail("indexing an entry", err)
		}
	}
	var gen [8]byte
	binary.BigEndian.PutUint64(gen[:], m.gen)
	val := encodeMeta(key, m.gen, m.chunks, ne, m.inline)
	n, err := rc.Do(cctx, evalCmd(rc, scriptReplaceMeta, []string{c.metaKey(key)},
		[]string{rueidis.BinaryString(gen[:]), rueidis.BinaryString(val), pxArg(ms)})).AsInt64()
	if err != nil {
		return c.fail("updating an entry", err)
	}
	if n == 0 {
		return store.ErrNotFound // replaced or deleted meanwhile
	}
	if m.chunks > 0 {
		cmds := make(rueidis.Commands, 0, m.chunks)
		for _, k := range c.chunkKeys(key, m.gen, m.chunks) {
			if ttl := chunkTTL(ms); ttl > 0 {
				cmds = append(cmds, rc.B().Pexpire().Key(k).Milliseconds(ttl).Build())
			} else {
				cmds = append(cmds, rc.B().Persist().Key(k).Build())
			}
		}
		for _, r := range rc.DoMulti(cctx, cmds...) {
			if err := r.Error(); err != nil {
				return c.fail("updating an entry", err)
			}
		}
	}
	return nil
}

func (c *Client) isDown() bool { return c.downSince.Load() != 0 }

// Delete implements store.Store.
func (c *Client) Delete(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	_, err := c.deleteKeys(ctx, keys, "")
	return err
}

// deleteKeys deletes the entries of keys and returns how many existed;
// with a tag set tk, the keys leave it too. They leave the index (and tk)
// before their entries are deleted, in one pipeline: an entry stored
// again once deleted (a refill while a purge goes on) is indexed after
// this, and stays purgeable.
func (c *Client) deleteKeys(ctx context.Context, keys []string, tk string) (int, error) {
	rc, err := c.client()
	if err != nil {
		return 0, err
	}
	cctx, cancel := c.opCtx(ctx)
	defer cancel()
	cmds := make(rueidis.Commands, 0, len(keys)+2)
	if tk != "" {
		cmds = append(cmds, rc.B().Srem().Key(tk).Member(keys...).Build())
	}
	cmds = append(cmds, evalCmd(rc, scriptIndexDel, c.idx, keys))
	first := len(cmds)
	for _, k := range keys {
		cmds = append(cmds, evalCmd(rc, scriptDelMeta, []string{c.metaKey(k)}, nil))
	}
	res := rc.DoMulti(cctx, cmds...)
	n := 0
	for i, r := range res[first:] {
		old, err := r.AsBytes()
		if err != nil {
			return n, c.fail("deleting entries", err)
		}
		if len(old) > 0 {
			n++
			c.retireOld(keys[i], old, 0)
		}
	}
	for _, r := range res[:first] {
		if err := r.Error(); err != nil {
			return n, c.fail("deleting entries", err)
		}
	}
	c.ok()
	return n, nil
}

// PurgePrefix implements store.Store with the sorted index: O(log n + m)
// for m matching keys, in batches.
func (c *Client) PurgePrefix(ctx context.Context, prefix string, soft bool) (int, error) {
	total := 0
	after := ""
	for {
		keys, err := c.rangeKeys(ctx, prefix, after, batch)
		if err != nil {
			return total, err
		}
		if len(keys) == 0 {
			return total, nil
		}
		var n int
		if soft {
			n, err = c.softPurge(ctx, keys)
		} else {
			n, err = c.deleteKeys(ctx, keys, "")
		}
		total += n
		if err != nil {
			return total, err
		}
		after = keys[len(keys)-1]
	}
}

// softPurge marks the entries of keys SoftPurged, keeping their bodies and
// expiry, and returns how many it marked.
func (c *Client) softPurge(ctx context.Context, keys []string) (int, error) {
	n := 0
	for _, k := range keys {
		m, rc, err := c.getMeta(ctx, k)
		if err != nil {
			if c.isDown() {
				return n, ErrUnavailable
			}
			continue // gone meanwhile
		}
		ms, alive := c.ttl(m.entry.Expires)
		if !alive {
			continue
		}
		m.entry.SoftPurged = true
		var gen [8]byte
		binary.BigEndian.PutUint64(gen[:], m.gen)
		val := encodeMeta(k, m.gen, m.chunks, m.entry, m.inline)
		cctx, cancel := c.opCtx(ctx)
		r, err := rc.Do(cctx, evalCmd(rc, scriptReplaceMeta, []string{c.metaKey(k)},
			[]string{rueidis.BinaryString(gen[:]), rueidis.BinaryString(val), pxArg(ms)})).AsInt64()
		cancel()
		if err != nil {
			return n, c.fail("soft-purging an entry", err)
		}
		n += int(r)
	}
	return n, nil
}

// Entries implements store.Store with the sorted index; each page costs
// one index read and one read of the listed entries.
func (c *Client) Entries(ctx context.Context, prefix, after string, limit int) ([]store.Listed, error) {
	var out []store.Listed
	for len(out) < limit {
		keys, err := c.rangeKeys(ctx, prefix, after, min(limit-len(out), batch))
		if err != nil {
			return out, err
		}
		if len(keys) == 0 {
			break
		}
		after = keys[len(keys)-1]
		rc, err := c.client()
		if err != nil {
			return out, err
		}
		// The beginning of each meta value: its metadata, without most
		// of a body stored inline, which a page of entries of a few
		// hundred KB each would not bring within the timeout.
		cmds := make(rueidis.Commands, len(keys))
		for i, k := range keys {
			cmds[i] = rc.B().Getrange().Key(c.metaKey(k)).Start(0).End(headLen - 1).Build()
		}
		cctx, cancel := c.opCtx(ctx)
		res := rc.DoMulti(cctx, cmds...)
		cancel()
		for i, r := range res {
			v, err := r.AsBytes()
			if err != nil {
				return out, c.fail("listing entries", err)
			}
			if len(v) == 0 {
				continue // expired or evicted, not yet swept from the index
			}
			m, _, err := decodeHead(v)
			if err != nil && len(v) == headLen {
				// Metadata longer than the beginning read.
				m, _, err = c.getMeta(ctx, keys[i])
			}
			if err != nil || m.key != keys[i] {
				continue
			}
			if _, alive := c.ttl(m.entry.Expires); !alive {
				continue
			}
			out = append(out, store.Listed{Key: keys[i], Entry: m.entry})
		}
	}
	return out, nil
}

// rangeKeys returns up to limit indexed keys that start with prefix and
// sort after after, ascending.
func (c *Client) rangeKeys(ctx context.Context, prefix, after string, limit int) ([]string, error) {
	rc, err := c.client()
	if err != nil {
		return nil, err
	}
	lo := "-"
	switch {
	case after != "" && after >= prefix:
		lo = "(" + after
	case prefix != "":
		lo = "[" + prefix
	}
	hi := "+"
	if end, ok := prefixEnd(prefix); ok {
		hi = "(" + end
	}
	cctx, cancel := c.opCtx(ctx)
	defer cancel()
	keys, err := rc.Do(cctx, rc.B().Zrangebylex().Key(c.idx[0]).Min(lo).Max(hi).Limit(0, int64(limit)).Build()).AsStrSlice()
	if err != nil {
		return nil, c.fail("listing keys", err)
	}
	return keys, nil
}

// prefixEnd returns the smallest string greater than every string with
// prefix p, or false when there is none (p empty or all 0xff).
func prefixEnd(p string) (string, bool) {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}

// PurgeTag implements store.Store with the tag's set; an entry is removed
// if it still carries the tag (a replacement may have dropped it).
func (c *Client) PurgeTag(ctx context.Context, tag string, soft bool) (int, error) {
	if tag == "" {
		return 0, nil
	}
	rc, err := c.client()
	if err != nil {
		return 0, err
	}
	total := 0
	// The tag's set, then the set named by its hash alone, shared by
	// the tags of one hash, as earlier versions wrote: the entries they
	// stored stay purgeable until they expire.
	for i, tk := range []string{c.tagKey(tag), c.tagPre + "{" + hashTag(tag) + "}"} {
		n, err := c.purgeTagSet(ctx, rc, tk, tag, soft, i == 1)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// purgeTagSet purges the entries of the tag set tk that carry tag. A
// shared set keeps the entries without the tag: they may carry another
// tag of the set.
func (c *Client) purgeTagSet(ctx context.Context, rc rueidis.Client, tk, tag string, soft, shared bool) (int, error) {
	total := 0
	var cursor uint64
	for {
		cctx, cancel := c.opCtx(ctx)
		e, err := rc.Do(cctx, rc.B().Sscan().Key(tk).Cursor(cursor).Count(batch).Build()).AsScanEntry()
		cancel()
		if err != nil {
			return total, c.fail("purging a tag", err)
		}
		var del, stale []string
		for _, k := range e.Elements {
			m, _, err := c.getMeta(ctx, k)
			switch {
			case err == nil && hasTag(m.entry.Tags, tag):
				del = append(del, k)
			case err == nil && shared:
			case err == nil || !c.isDown():
				stale = append(stale, k)
			default:
				return total, ErrUnavailable
			}
		}
		if len(del) > 0 {
			var n int
			if soft {
				n, err = c.softPurge(ctx, del) // they stay, and stay tagged
			} else {
				n, err = c.deleteKeys(ctx, del, tk)
			}
			total += n
			if err != nil {
				return total, err
			}
		}
		if len(stale) > 0 {
			cctx, cancel := c.opCtx(ctx)
			err := rc.Do(cctx, rc.B().Srem().Key(tk).Member(stale...).Build()).Error()
			cancel()
			if err != nil {
				return total, c.fail("purging a tag", err)
			}
		}
		cursor = e.Cursor
		if cursor == 0 {
			return total, nil
		}
	}
}

// uniqueTags removes repeated tags from tags, in place, and reports
// whether at most maxTags are left.
func uniqueTags(tags []string) ([]string, bool) {
	if len(tags) < 2 {
		return tags, true
	}
	var seen map[string]bool
	if len(tags) > 16 {
		seen = make(map[string]bool, min(len(tags), maxTags+1))
	}
	out := tags[:0]
	for _, t := range tags {
		if seen != nil && seen[t] || seen == nil && hasTag(out, t) {
			continue
		}
		if len(out) == maxTags {
			return nil, false
		}
		if seen != nil {
			seen[t] = true
		}
		out = append(out, t)
	}
	return out, true
}

func hasTag(tags []string, tag string) bool {
	for _, t := range tags {
		if t == tag {
			return true
		}
	}
	return false
}

// Stats implements store.Store: the indexed entries and their body bytes
// (entries that Redis evicted count until they would have expired), the
// entries found evicted, and the failed operations.
func (c *Client) Stats() store.Stats {
	st := store.Stats{Evictions: c.evictions.Load(), Errors: c.errs.Load()}
	rc, err := c.client()
	if err != nil {
		return st
	}
	ctx, cancel := c.opCtx(context.Background())
	defer cancel()
	res := rc.DoMulti(ctx,
		rc.B().Zcard().Key(c.idx[0]).Build(),
		rc.B().Get().Key(c.idx[3]).Build())
	st.Entries, _ = res[0].AsInt64()
	if b, err := res[1].AsInt64(); err == nil {
		st.Bytes = b
	}
	if err := res[0].Error(); err != nil {
		c.fail("reading stats", err)
	}
	return st
}

// Errors returns the number of failed operations so far.
func (c *Client) Errors() int64 { return c.errs.Load() }

// Evictions returns the number of entries found with a body that Redis had
// evicted.
func (c *Client) Evictions() int64 { return c.evictions.Load() }

// sweep clears the index of keys whose entries expired.
func (c *Client) sweep() {
	for range 100 {
		rc, err := c.client()
		if err != nil {
			return
		}
		ctx, cancel := c.opCtx(c.ctx)
		n, err := rc.Do(ctx, evalCmd(rc, scriptSweep, c.idx, []string{strconv.Itoa(batch)})).AsInt64()
		cancel()
		if err != nil {
			c.fail("sweeping the index", err)
			return
		}
		if n < batch {
			return
		}
	}
}

// Subscribe calls fn with the keys of entries that changed in Redis (by
// any node, or expired, or evicted), and with nil when changes may have been
// missed (a connection to Redis was lost): then every copy must go. fn
// must be fast. The returned function unsubscribes.
func (c *Client) Subscribe(fn func(keys []string)) (unsubscribe func()) {
	c.lmu.Lock()
	id := c.nextL
	c.nextL++
	c.listeners[id] = fn
	c.lmu.Unlock()
	return func() {
		c.lmu.Lock()
		delete(c.listeners, id)
		c.lmu.Unlock()
	}
}

// invalidated receives rueidis's invalidation messages.
func (c *Client) invalidated(msgs []rueidis.RedisMessage) {
	var keys []string
	if msgs != nil {
		keys = make([]string, 0, len(msgs))
		for _, m := range msgs {
			name, err := m.ToString()
			if err != nil {
				continue
			}
			if k, ok := c.keyOfMeta(name); ok {
				keys = append(keys, k)
			}
		}
		if len(keys) == 0 {
			return
		}
	}
	c.lmu.Lock()
	defer c.lmu.Unlock()
	for _, fn := range c.listeners {
		fn(keys)
	}
}

// readChunk reads the chunk named key for a response under way (a hit's,
// a follower's): errChunkGone when Redis no longer has it. Such a read
// cannot fall back on the origin: failed, it cuts the response. So it is
// not stopped by the circuit that sends lookups to the origin while Redis
// fails (an open circuit is no sign that this read fails), and it has
// longer than an operation's timeout, at least bodyTimeout: a hundred
// hits of a 4 MiB body read 400 MiB through one connection, and with the
// 100 ms timeout 86 of 300 were cut.
func (c *Client) readChunk(key string) ([]byte, error) {
	p := c.rc.Load()
	if p == nil {
		c.errs.Add(1)
		return nil, ErrUnavailable
	}
	rc := *p
	ctx, cancel := context.WithTimeout(context.Background(), max(c.opts.Timeout, bodyTimeout))
	defer cancel()
	v, err := rc.Do(ctx, rc.B().Get().Key(key).Build()).AsBytes()
	if rueidis.IsRedisNil(err) {
		c.evictions.Add(1)
		return nil, errChunkGone
	}
	if err != nil {
		return nil, c.fail("reading a chunk", err)
	}
	return v, nil
}

// errChunkGone is a body read that found a chunk missing: the body cannot
// be completed, and the response must fail rather than end short.
var errChunkGone = errors.New("redis store: a chunk of the body is gone (evicted or expired)")

// chunkBody reads a chunked body one chunk at a time.
type chunkBody struct {
	c     *Client
	keys  []string
	size  int64
	chunk int64

	mu  sync.Mutex // protects off, cur and curI
	off int64
	cur []byte // the chunk last read
	// curI is the index of cur, -1 for none
	curI int
	init bool
	// released: Close gave back the Client's connection (see acquire).
	released bool
}

// fetch returns chunk i. Called with b.mu held.
func (b *chunkBody) fetch(i int) ([]byte, error) {
	if b.init && b.curI == i {
		return b.cur, nil
	}
	c := b.c
	v, err := c.readChunk(b.keys[i])
	if err != nil {
		return nil, err
	}
	want := b.chunk
	if i == len(b.keys)-1 {
		want = b.size - int64(i)*b.chunk
	}
	if int64(len(v)) != want {
		c.errs.Add(1)
		return nil, errChunkGone
	}
	b.cur, b.curI, b.init = v, i, true
	return v, nil
}

// readAt reads at off. Called with b.mu held.
func (b *chunkBody) readAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) && off < b.size {
		i := int(off / b.chunk)
		ch, err := b.fetch(i)
		if err != nil {
			return n, err
		}
		k := copy(p[n:], ch[off-int64(i)*b.chunk:])
		n += k
		off += int64(k)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (b *chunkBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.off >= b.size {
		return 0, io.EOF
	}
	// One chunk per Read at most: the body streams.
	i := b.off / b.chunk
	if lim := (i+1)*b.chunk - b.off; int64(len(p)) > lim {
		p = p[:lim]
	}
	n, err := b.readAt(p, b.off)
	b.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (b *chunkBody) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("redis store: negative offset")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.readAt(p, off)
}

func (b *chunkBody) Seek(offset int64, whence int) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	pos, err := store.SeekOffset(b.off, b.size, offset, whence)
	if err == nil {
		b.off = pos
	}
	return pos, err
}

func (b *chunkBody) Size() int64 { return b.size }

func (b *chunkBody) Close() error {
	b.mu.Lock()
	b.cur = nil
	b.init = false
	released := b.released
	b.released = true
	b.mu.Unlock()
	if !released {
		b.c.release()
	}
	return nil
}

// Interface guards
var (
	_ store.Store     = (*Client)(nil)
	_ store.Writer    = (*writer)(nil)
	_ store.Following = (*writer)(nil)
	_ store.Follower  = (*follower)(nil)
	_ store.Body      = (*chunkBody)(nil)
)

// Connected reports whether the Client has connected once (it reconnects
// by itself after that).
func (c *Client) Connected() bool { return c.rc.Load() != nil }

// WaitConnected waits until the Client has connected, for at most d or
// until ctx is done, and reports whether it has.
func (c *Client) WaitConnected(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !c.Connected() {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return c.Connected()
		case <-tick.C:
		}
	}
	return true
}
