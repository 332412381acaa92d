package geofilter

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-edge/edge/geofilter/geodb"
	"github.com/caddy-edge/edge/geofilter/iplist"
)

// Result is what the databases know of one address.
type Result = geodb.Result

// DefaultReloadInterval is how often database and IP list files are checked
// for changes when no interval is configured.
const DefaultReloadInterval = time.Minute

// DatabaseConfig is one database in the JSON config of the handler and the matcher.
type DatabaseConfig struct {
	// Path of the MaxMind-format (.mmdb) file. Its kind (country, city, asn,
	// anonymous) is read from the file's metadata.
	Path string `json:"path"`

	// Where the fields live in the records of a database with another layout
	// than MaxMind's, by field name: country_code, continent_code, in_eu,
	// subdivision_code, city, asn, asn_org, is_anonymous, is_anonymous_vpn,
	// is_hosting_provider, is_public_proxy, is_tor_exit_node,
	// is_residential_proxy. A path is a list of map keys and array indexes,
	// e.g. `{"country_code": ["country_code"]}` for a database that keeps the
	// country code at the top level. Required for a database of a type this
	// module does not know; for a known type it overrides the defaults, and
	// an empty path turns a field off. Default: the layout of the type.
	Fields geodb.FieldPaths `json:"fields,omitempty"`
}

// files holds every open database and IP list of the process, shared by
// every handler and matcher (of this config and the next, during a reload)
// that names the same file. Keys: "db\x00" + absolute path + "\x00" + fields
// as JSON, and "list\x00" + absolute path. Values: *watchedFile[geodb.DB]
// and *watchedFile[iplist.List].
var files = caddy.NewUsagePool()

// Databases is the shared, hot-reloaded view of a list of databases. Its
// methods are safe for concurrent use; a nil *Databases knows nothing.
type Databases struct {
	entries []*watchedFile[geodb.DB]
	keys    []string
	once    sync.Once
}

// OpenDatabases opens (or shares, when another handler or matcher already
// has it open) each database, and starts checking each file for changes
// every interval (0: DefaultReloadInterval; negative: never, only forced
// reloads). The checks belong to the shared entry, not to a config: they stop
// when the last user closes it. When several users give different intervals,
// the latest one applies. Errors name the path; a missing file is an error.
func OpenDatabases(cfgs []DatabaseConfig, interval time.Duration, logger *zap.Logger) (*Databases, error) {
	d := &Databases{}
	for _, c := range cfgs {
		w, key, err := openDB(c, interval, logger)
		if err != nil {
			_ = d.Close()
			return nil, err
		}
		d.entries = append(d.entries, w)
		d.keys = append(d.keys, key)
	}
	return d, nil
}

func openDB(c DatabaseConfig, interval time.Duration, logger *zap.Logger) (*watchedFile[geodb.DB], string, error) {
	if c.Path == "" {
		return nil, "", errors.New("database path is empty")
	}
	abs, err := filepath.Abs(c.Path)
	if err != nil {
		return nil, "", fmt.Errorf("database %s: %w", c.Path, err)
	}
	fields, err := json.Marshal(c.Fields) // map keys sorted: a canonical form
	if err != nil {
		return nil, "", fmt.Errorf("database %s: fields: %w", c.Path, err)
	}
	key := "db\x00" + abs + "\x00" + string(fields)
	load := func(path string) (*geodb.DB, error) { return geodb.Open(path, c.Fields) }
	describe := func(db *geodb.DB) (string, time.Time) { return string(db.Kind()), db.BuildTime() }
	compatible := func(old, new *geodb.DB) error {
		if old.Kind() != new.Kind() {
			return fmt.Errorf("database kind changed from %s (%s) to %s (%s)", old.Kind(), old.Type(), new.Kind(), new.Type())
		}
		return nil
	}
	w, err := loadOrOpen(key, abs, "database", interval, logger, load, describe, compatible)
	if err != nil {
		return nil, "", fmt.Errorf("opening database %s: %w", c.Path, err)
	}
	return w, key, nil
}

// Lookup merges what every database knows of ip into r, in the configured
// order (a later database overwrites the fields it has). An IPv4-mapped IPv6
// address is looked up as IPv4. A record that fails to decode contributes
// what could be decoded. It does not allocate for the built-in layouts.
func (d *Databases) Lookup(ip netip.Addr, r *Result) {
	if d == nil {
		return
	}
	ip = ip.Unmap()
	for _, w := range d.entries {
		_ = w.cur.Load().Lookup(ip, r)
	}
}

// LookupEach looks ip up in each database on its own, in the configured
// order, and tells fn what that database says (for the admin API: no file
// is reopened). path is absolute; err is a decoding error of the record.
func (d *Databases) LookupEach(ip netip.Addr, fn func(path, kind string, r Result, err error)) {
	if d == nil {
		return
	}
	ip = ip.Unmap()
	for _, w := range d.entries {
		db := w.cur.Load()
		var r Result
		err := db.Lookup(ip, &r)
		fn(w.path, string(db.Kind()), r, err)
	}
}

// Len returns the number of databases.
func (d *Databases) Len() int {
	if d == nil {
		return 0
	}
	return len(d.entries)
}

// Close releases the databases; the last user of a file stops its checks.
// Calls after the first do nothing. Lookups running during or after Close
// stay safe and keep answering from the last loaded version (its memory is
// freed by the garbage collector once nothing refers to it).
func (d *Databases) Close() error {
	if d == nil {
		return nil
	}
	var errs []error
	d.once.Do(func() {
		for _, key := range d.keys {
			if _, err := files.Delete(key); err != nil {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
}

// IPList is a shared, hot-reloaded IP list file (see package iplist for the
// format). Its methods are safe for concurrent use; a nil *IPList contains
// nothing.
type IPList struct {
	w    *watchedFile[iplist.List]
	key  string
	once sync.Once
}

// OpenIPList opens (or shares) the IP list at path, with the sharing and
// reload semantics of OpenDatabases.
func OpenIPList(path string, interval time.Duration, logger *zap.Logger) (*IPList, error) {
	if path == "" {
		return nil, errors.New("ip list path is empty")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("ip list %s: %w", path, err)
	}
	key := "list\x00" + abs
	describe := func(*iplist.List) (string, time.Time) { return "ip_list", time.Time{} }
	load := func(path string) (*iplist.List, error) {
		// A file of zero bytes is most likely being written (`> file`
		// truncates first): never take it for a list of nothing. A list of
		// nothing has at least a comment line.
		if fi, err := os.Stat(path); err == nil && fi.Size() == 0 {
			return nil, errors.New("empty file (an empty list needs at least a comment line)")
		}
		return iplist.Load(path)
	}
	w, err := loadOrOpen(key, abs, "ip list", interval, logger, load, describe, nil)
	if err != nil {
		return nil, fmt.Errorf("opening ip list %s: %w", path, err)
	}
	return &IPList{w: w, key: key}, nil
}

// Contains reports whether ip is in the list. It does not allocate.
func (l *IPList) Contains(ip netip.Addr) bool {
	if l == nil {
		return false
	}
	return l.w.cur.Load().Contains(ip)
}

// Len returns the number of entries of the list as last loaded.
func (l *IPList) Len() int {
	if l == nil {
		return 0
	}
	return l.w.cur.Load().Len()
}

// Close releases the list. Calls after the first do nothing; Contains stays
// safe during and after Close, as Databases.Lookup does.
func (l *IPList) Close() error {
	if l == nil {
		return nil
	}
	var err error
	l.once.Do(func() { _, err = files.Delete(l.key) })
	return err
}

// DatabaseInfo describes one open database or IP list, for the admin API.
type DatabaseInfo struct {
	// Absolute path of the file.
	Path string `json:"path"`
	// country, city, asn, anonymous, custom, or ip_list.
	Kind string `json:"kind"`
	// When the database was built, from its metadata (zero for IP lists).
	BuildTime time.Time `json:"build_time"`
	// When the file was first opened.
	LoadedAt time.Time `json:"loaded_at"`
	// When the file was last checked for a change.
	LastCheck time.Time `json:"last_check"`
	// When a changed file was last swapped in.
	LastReload time.Time `json:"last_reload,omitzero"`
	// Outcome of the last check: "ok" (loaded), "unchanged", "changing: ..."
	// (the file was being written; read again at the next check), or
	// "error: ..." (rejected; the last good version keeps serving).
	LastResult string `json:"last_result"`
	// Successful reloads and rejected replacements since the file was opened.
	Reloads  int64 `json:"reloads"`
	Failures int64 `json:"failures"`
}

// ErrUnknownDatabase is returned by ReloadDatabase for a path that no
// handler or matcher has open.
var ErrUnknownDatabase = errors.New("no open database or ip list has this path")

// ListDatabases lists every open database and IP list of the process,
// sorted by path (a file opened with different field paths is listed once
// per set of fields).
func ListDatabases() []DatabaseInfo {
	ws := watchers("")
	out := make([]DatabaseInfo, len(ws))
	for i, w := range ws {
		out[i] = w.snapshot()
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// ReloadDatabase reloads the database or IP list at path now, even if the
// file looks unchanged, and returns its state afterwards. path is matched
// after being made absolute. For a path nothing has open, the error wraps
// ErrUnknownDatabase and the DatabaseInfo is zero; for a rejected file the
// error says why and the DatabaseInfo (Path set) shows the failure, with
// the last good version still serving. A path open with several field sets
// is reloaded for each; the first one's state is returned.
func ReloadDatabase(path string) (DatabaseInfo, error) {
	abs, err := filepath.Abs(path)
	if err != nil || path == "" {
		return DatabaseInfo{}, fmt.Errorf("reloading %q: %w", path, ErrUnknownDatabase)
	}
	ws := watchers(abs)
	if len(ws) == 0 {
		return DatabaseInfo{}, fmt.Errorf("reloading %s: %w", abs, ErrUnknownDatabase)
	}
	var (
		first    DatabaseInfo
		firstErr error
	)
	for i, w := range ws {
		info, err := w.check(true)
		if i == 0 {
			first = info
		}
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("reloading %s: %w", abs, err)
		}
	}
	return first, firstErr
}

// ReloadObserver, when set, is told the outcome of every reload of a changed
// (or force-reloaded) file; result is "ok" or "error". Set it once, before
// any file is opened (e.g. in an init function): it is read without a lock.
var ReloadObserver func(path string, kind string, result string)

// errFileChanging means the file changed while it was read: it is being
// written, and is read again at the next check without counting a failure.
var errFileChanging = errors.New("file changed while being read")

// watcher is what ListDatabases and ReloadDatabase need of an entry.
type watcher interface {
	snapshot() DatabaseInfo
	check(force bool) (DatabaseInfo, error)
	filePath() string
}

// watchers returns the open entries for path ("" = all).
func watchers(path string) []watcher {
	var ws []watcher
	files.Range(func(_, v any) bool {
		if w, ok := v.(watcher); ok && (path == "" || w.filePath() == path) {
			ws = append(ws, w)
		}
		return true
	})
	return ws
}

// watchedFile is one file (a database or an IP list) kept loaded, checked
// for changes, and swapped when it changes. It is the value of a files pool
// entry and lives as long as that entry.
type watchedFile[T any] struct {
	path       string
	what       string // "database" or "ip list", for logs
	logger     *zap.Logger
	load       func(path string) (*T, error)
	describe   func(*T) (kind string, built time.Time)
	compatible func(old, new *T) error // nil: any replacement is fine

	// cur is what lookups use. A replaced value is never closed: lookups
	// still running keep it alive and the garbage collector frees it (the
	// file was read into memory, so nothing is unmapped under them).
	cur atomic.Pointer[T]

	interval atomic.Int64 // time.Duration; <0: no periodic checks
	changed  chan struct{}
	stop     chan struct{}
	done     chan struct{}

	mu        sync.Mutex      // protects the fields below; serialises checks
	stamp     geodb.FileStamp // version of the file cur was loaded from
	failed    geodb.FileStamp // version last rejected, not retried until it changes
	failedMsg string          // LastResult of that rejection; "" if none since the last load
	info      DatabaseInfo
}

// loadOrOpen returns the pool entry for key, loading the file and starting
// its checks if nobody has it open yet. The caller must Delete key exactly
// once when done, unless an error is returned.
func loadOrOpen[T any](key, path, what string, interval time.Duration, logger *zap.Logger,
	load func(string) (*T, error), describe func(*T) (string, time.Time), compatible func(old, new *T) error,
) (*watchedFile[T], error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	v, _, err := files.LoadOrNew(key, func() (caddy.Destructor, error) {
		w := &watchedFile[T]{
			path: path, what: what, logger: logger,
			load: load, describe: describe, compatible: compatible,
			changed: make(chan struct{}, 1),
			stop:    make(chan struct{}),
			done:    make(chan struct{}),
		}
		st, val, err := w.read()
		for try := 0; errors.Is(err, errFileChanging) && try < 3; try++ {
			st, val, err = w.read() // being written right now: give it a moment
		}
		if err != nil {
			return nil, err
		}
		now := time.Now()
		kind, built := describe(val)
		w.cur.Store(val)
		w.stamp = st
		w.info = DatabaseInfo{Path: path, Kind: kind, BuildTime: built, LoadedAt: now, LastCheck: now, LastResult: "ok"}
		w.setInterval(interval)
		go w.run()
		return w, nil
	})
	if err != nil {
		return nil, err
	}
	w := v.(*watchedFile[T])
	w.setInterval(interval)
	return w, nil
}

// read loads the file, and makes sure it did not change while being read
// (a file being written is retried at the next check).
func (w *watchedFile[T]) read() (geodb.FileStamp, *T, error) {
	before, err := geodb.Stat(w.path)
	if err != nil {
		return before, nil, err
	}
	val, err := w.load(w.path)
	if err != nil {
		return before, nil, err
	}
	after, err := geodb.Stat(w.path)
	if err != nil {
		return before, nil, err
	}
	if after != before {
		return before, nil, errFileChanging
	}
	return before, val, nil
}

func (w *watchedFile[T]) setInterval(d time.Duration) {
	if d == 0 {
		d = DefaultReloadInterval
	}
	if time.Duration(w.interval.Swap(int64(d))) != d {
		select {
		case w.changed <- struct{}{}:
		default:
		}
	}
}

// run checks the file every interval until the entry is destroyed.
func (w *watchedFile[T]) run() {
	defer close(w.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var tick <-chan time.Time
		if d := time.Duration(w.interval.Load()); d > 0 {
			timer.Reset(d)
			tick = timer.C
		} else {
			timer.Stop()
		}
		select {
		case <-w.stop:
			return
		case <-w.changed:
		case <-tick:
			_, _ = w.check(false)
		}
	}
}

// check reloads the file if it changed since it was loaded (or always, if
// force), keeping the current version when the new one is unreadable,
// corrupt or incompatible. It returns the state afterwards and, when a
// replacement was rejected, why.
func (w *watchedFile[T]) check(force bool) (DatabaseInfo, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	w.info.LastCheck = now
	st, err := geodb.Stat(w.path)
	if !force {
		if err == nil && st == w.stamp {
			w.info.LastResult = "unchanged"
			return w.info, nil
		}
		// The version (or the stat error) already rejected: reported and
		// counted once, retried when the file changes.
		if w.failedMsg != "" && ((err == nil && st == w.failed) || (err != nil && "error: "+err.Error() == w.failedMsg)) {
			w.info.LastResult = w.failedMsg
			return w.info, errors.New(w.failedMsg)
		}
	}
	var val *T
	if err == nil {
		st, val, err = w.read()
	}
	if err == nil && w.compatible != nil {
		err = w.compatible(w.cur.Load(), val)
	}
	if errors.Is(err, errFileChanging) {
		w.info.LastResult = "changing: " + err.Error()
		w.logger.Debug(w.what+" is being written; will retry at the next check", zap.String("path", w.path))
		return w.info, err
	}
	if err != nil {
		w.failed = st
		w.failedMsg = "error: " + err.Error()
		w.info.Failures++
		w.info.LastResult = w.failedMsg
		w.logger.Error("rejected changed "+w.what+"; the last good version keeps serving",
			zap.String("path", w.path), zap.Error(err))
		w.observe("error")
		return w.info, err
	}
	w.cur.Store(val)
	w.stamp, w.failed, w.failedMsg = st, geodb.FileStamp{}, ""
	kind, built := w.describe(val)
	w.info.Kind, w.info.BuildTime = kind, built
	w.info.LastReload = now
	w.info.Reloads++
	w.info.LastResult = "ok"
	w.logger.Info("reloaded "+w.what, zap.String("path", w.path), zap.String("kind", kind), zap.Time("build_time", built))
	w.observe("ok")
	return w.info, nil
}

func (w *watchedFile[T]) observe(result string) {
	if f := ReloadObserver; f != nil {
		f(w.path, w.info.Kind, result)
	}
}

func (w *watchedFile[T]) snapshot() DatabaseInfo {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.info
}

func (w *watchedFile[T]) filePath() string { return w.path }

// Destruct stops the checks; called by the pool when the last user is gone.
func (w *watchedFile[T]) Destruct() error {
	close(w.stop)
	<-w.done
	return nil
}

// Interface guards
var (
	_ caddy.Destructor = (*watchedFile[geodb.DB])(nil)
	_ watcher          = (*watchedFile[iplist.List])(nil)
)
