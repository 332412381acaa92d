package geofilter

import (
	"errors"
	"io"
	"io/fs"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-edge/edge/geofilter/geoupdate"
)

// This file is the pool of watched files: any file (a database, an IP list)
// kept loaded in memory, shared by every handler and matcher that names it,
// checked for changes and swapped when it changes. databases.go builds the
// databases and IP lists on it.

// defaultReloadInterval is how often files are checked for changes when no
// interval is configured.
const defaultReloadInterval = time.Minute

// A file rewritten in place (the same inode as the version loaded, or as the
// last version seen) may be read between two writes of its writer, and the
// part written so far can be valid: any prefix of the lines of an IP list
// is a list. So it is loaded only once it has settled: its stamp unchanged
// since the previous check, and its modification time at least the settle
// time in the past. The settle time is one check interval, bounded:
//   - minSettle, because modification times are coarse on some file
//     systems (1 s on ext3, HFS+ and many network mounts), so a younger one
//     says little, and a copy or a download pausing for less than a second
//     is ordinary;
//   - maxSettle, because beyond it the rule "unchanged since the previous
//     check" already asks for a whole interval of quiet: with the default
//     interval, a rewrite is loaded at the second check after it ended.
//
// A file replaced by rename (a new inode at the path) is whole when it
// appears, and is loaded at the first check; so is any file on a forced
// check (the operator asked).
const (
	minSettle = time.Second
	maxSettle = 10 * time.Second
)

// files holds every open database and IP list of the process, shared by
// every handler and matcher (of this config and the next, during a reload)
// that names the same file. Keys are made by the openers (databases.go);
// values are *watchedFile[T].
var files = caddy.NewUsagePool()

// watchOptions is how the files a handler or matcher opens are watched.
type watchOptions struct {
	// interval between checks for a change: 0 is defaultReloadInterval,
	// negative is never (only forced reloads). The checks belong to the
	// shared entry: when several users give different intervals, the latest
	// one still holding the file applies.
	interval time.Duration
	logger   *zap.Logger // nil: no logs
	// onReload, if not nil, is told the outcome ("ok" or "error") of each
	// reload of a changed or force-reloaded file. The first opener of a file
	// sets it for the entry.
	onReload func(path, kind, result string)
	// user names who holds the file open, for the admin API (for example
	// "geofilter 3"); a file lists each of its users.
	user string
}

// fileLoader is how one kind of file is loaded and described.
type fileLoader[T any] struct {
	what       string // "database" or "ip list", for logs
	load       func(path string) (*T, error)
	describe   func(*T) fileDescription
	compatible func(old, new *T) error // nil: any replacement is fine
}

// fileDescription is what the admin API shows of a loaded file's content.
type fileDescription struct {
	kind     string
	dbType   string
	layout   string
	provides []string
	built    time.Time
}

// errFileChanging means the file changed while it was read: it is being
// written, and is read again at the next check without counting a failure.
var errFileChanging = errors.New("file changed while being read")

// watcher is what listDatabases and reloadDatabase need of an entry,
// whatever it holds.
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

// watchedFile is one file kept loaded, checked for changes, and swapped
// when it changes. It is the value of a files pool entry and lives as long
// as that entry.
type watchedFile[T any] struct {
	path     string
	loader   fileLoader[T]
	logger   *zap.Logger
	onReload func(path, kind, result string)

	// cur is what lookups use. A replaced value is never closed: lookups
	// still running keep it alive and the garbage collector frees it (the
	// file was read into memory, so nothing is unmapped under them).
	cur atomic.Pointer[T]

	interval atomic.Int64 // time.Duration; <0: no periodic checks
	changed  chan struct{}
	stop     chan struct{}
	done     chan struct{}

	mu    sync.Mutex // protects the fields below; serialises checks
	stamp fileStamp  // version of the file cur was loaded from
	// pin holds that file open (see pinFile; nil if none). With seenPin,
	// at most two versions of the file are held: their disk space is freed
	// at the next load after they were replaced or removed.
	pin       io.Closer
	failed    fileStamp // version last rejected, not retried until it changes
	failedMsg string    // LastResult of that rejection; "" if none since the last load
	// The version seen at the last check that did not load it (settling,
	// rejected, or changing while read), when it was first seen so, and the
	// file held open if it is not the one loaded; zero after a load.
	seen    fileStamp
	seenAt  time.Time
	seenPin io.Closer
	// gone: a check since the last load found no file at the path; a file
	// that appears there next is likely being written by whoever removed
	// the last one, and settles as a rewrite in place.
	gone bool

	// lookupErrLogged is when a record that does not decode was last
	// logged (UnixNano; 0: never), see lookupFailed.
	lookupErrLogged atomic.Int64

	info  DatabaseInfo
	users map[string]int // who holds the entry, and how many times
	// intervals are the check intervals asked for by the openings that
	// hold the entry, oldest first: the newest applies, and when it is
	// released (a reload that failed, a site removed) the one before it
	// applies again.
	intervals []userInterval
	// destroyed: the last user released the entry (Destruct). A check
	// that comes after (the admin API's or the updater's reload, which
	// found the entry just before) does nothing: it would hold the file
	// open for nobody.
	destroyed bool
	// update, if set, reports the state of the file's automatic updates
	// (see setUpdateState).
	update func() *geoupdate.Status
}

// loadOrOpen returns the pool entry for key, loading the file at path and
// starting its checks if nobody has it open yet, and adds opts.user to its
// users. info is the part of the entry's DatabaseInfo that the key
// identifies (such as the configured fields). The caller must call release
// exactly once when done, unless an error is returned.
func loadOrOpen[T any](key, path string, l fileLoader[T], info DatabaseInfo, opts watchOptions) (*watchedFile[T], error) {
	logger := opts.logger
	if logger == nil {
		logger = zap.NewNop()
	}
	v, _, err := files.LoadOrNew(key, func() (caddy.Destructor, error) {
		w := &watchedFile[T]{
			path: path, loader: l, logger: logger, onReload: opts.onReload,
			changed: make(chan struct{}, 1),
			stop:    make(chan struct{}),
			done:    make(chan struct{}),
			users:   make(map[string]int),
		}
		st, val, pin, err := w.read()
		for try := 0; errors.Is(err, errFileChanging) && try < 3; try++ {
			unpin(pin)
			st, val, pin, err = w.read() // being written right now: give it a moment
		}
		if err != nil {
			unpin(pin)
			return nil, err
		}
		now := time.Now()
		w.cur.Store(val)
		w.stamp, w.pin = st, pin
		w.info = info
		w.info.Path = path
		w.info.LoadedAt, w.info.LastCheck, w.info.LastResult = now, now, "ok"
		w.describe(val)
		w.setInterval(opts.interval)
		go w.run()
		return w, nil
	})
	if err != nil {
		return nil, err
	}
	w := v.(*watchedFile[T])
	w.mu.Lock()
	w.intervals = append(w.intervals, userInterval{opts.user, opts.interval})
	w.setInterval(opts.interval)
	if opts.user != "" {
		w.users[opts.user]++
	}
	w.mu.Unlock()
	return w, nil
}

// userInterval is the check interval an opening of a file asked for.
type userInterval struct {
	user     string
	interval time.Duration
}

// release gives back one use of the entry of key, opened by user.
func release[T any](key string, w *watchedFile[T], user string) error {
	w.mu.Lock()
	if user != "" {
		if w.users[user]--; w.users[user] <= 0 {
			delete(w.users, user)
		}
	}
	for i := len(w.intervals) - 1; i >= 0; i-- {
		if w.intervals[i].user == user {
			w.intervals = slices.Delete(w.intervals, i, i+1)
			break
		}
	}
	if n := len(w.intervals); n > 0 {
		w.setInterval(w.intervals[n-1].interval)
	}
	w.mu.Unlock()
	_, err := files.Delete(key)
	return err
}

// describe sets the description of val in w.info. The caller holds w.mu,
// or has not shared w yet.
func (w *watchedFile[T]) describe(val *T) {
	d := w.loader.describe(val)
	w.info.Kind, w.info.Type, w.info.Layout, w.info.Provides, w.info.BuildTime = d.kind, d.dbType, d.layout, d.provides, d.built
}

// read loads the file, and makes sure it did not change while being read
// (a file being written is retried at the next check). It returns the
// stamp of the version read and that file held open (see pinFile), even
// when the load failed; the caller closes or keeps pin.
func (w *watchedFile[T]) read() (fileStamp, *T, io.Closer, error) {
	before, err := statFile(w.path)
	if err != nil {
		return before, nil, nil, err
	}
	pin, err := pinFile(w.path, before)
	if err != nil {
		return before, nil, nil, err
	}
	val, err := w.loader.load(w.path)
	if err != nil {
		return before, nil, pin, err
	}
	after, err := statFile(w.path)
	if err != nil {
		return before, nil, pin, err
	}
	if after != before {
		return before, nil, pin, errFileChanging
	}
	return before, val, pin, nil
}

// settleTime is how long a file rewritten in place must be left alone
// before it is loaded (see minSettle).
func (w *watchedFile[T]) settleTime() time.Duration {
	return min(max(time.Duration(w.interval.Load()), minSettle), maxSettle)
}

// settled tells whether the version st of the file, changed since the
// version loaded, may be loaded now: at once if it is a new file at the
// path (replaced by rename), or once it has settled if it was rewritten in
// place (see minSettle). A rewrite in place not seen before is recorded
// as the version seen (w.seen, w.seenAt), from which its quiet time
// counts. The caller holds w.mu.
func (w *watchedFile[T]) settled(st fileStamp, now time.Time) bool {
	inPlace := st.inode == 0 || // no inodes: cannot tell, so be safe
		sameFile(st, w.stamp) || sameFile(st, w.seen) || w.gone
	if !inPlace {
		return true
	}
	if st != w.seen { // changed since the previous check
		if !sameFile(st, w.seen) {
			unpin(w.seenPin)
			w.seenPin = nil
		}
		w.seen, w.seenAt = st, now
		return false
	}
	quiet := now.Sub(time.Unix(0, st.modTime))
	if quiet < 0 { // modified in the future (a clock set back, touch -d)
		quiet = now.Sub(w.seenAt)
	}
	return quiet >= w.settleTime()
}

// see records st, read but not loaded, as the version last seen, and pin
// as the file held open for it. The caller holds w.mu.
func (w *watchedFile[T]) see(st fileStamp, pin io.Closer, now time.Time) {
	if st != w.seen {
		w.seenAt = now
	}
	unpin(w.seenPin)
	w.seen, w.seenPin = st, pin
}

func (w *watchedFile[T]) setInterval(d time.Duration) {
	if d == 0 {
		d = defaultReloadInterval
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
	if w.destroyed {
		info := w.infoLocked()
		w.mu.Unlock()
		return info, errUnknownDatabase
	}
	info, err := w.checkLocked(force)
	update := w.update
	w.mu.Unlock()
	return withUpdate(info, update), err
}

// checkLocked is check with w.mu held.
func (w *watchedFile[T]) checkLocked(force bool) (DatabaseInfo, error) {
	now := time.Now()
	w.info.LastCheck = now
	st, err := statFile(w.path)
	if errors.Is(err, fs.ErrNotExist) {
		w.gone = true
	}
	if !force {
		if err == nil && st == w.stamp {
			w.info.LastResult = "unchanged"
			return w.infoLocked(), nil
		}
		// The version (or the stat error) already rejected: reported and
		// counted once, retried when the file changes.
		if w.failedMsg != "" && ((err == nil && st == w.failed) || (err != nil && "error: "+err.Error() == w.failedMsg)) {
			w.info.LastResult = w.failedMsg
			return w.infoLocked(), errors.New(w.failedMsg)
		}
		// A rewrite in place is maybe not finished: the last good version
		// keeps serving until it has settled. Nothing is counted.
		if err == nil && !w.settled(st, now) {
			settle := w.settleTime()
			w.info.LastResult = "settling: rewritten in place; loaded once left unchanged for " + settle.String()
			w.logger.Debug(w.loader.what+" rewritten in place; will load it once left unchanged for "+settle.String(),
				zap.String("path", w.path))
			return w.infoLocked(), nil
		}
	}
	var (
		val *T
		pin io.Closer
	)
	if err == nil {
		var read fileStamp
		read, val, pin, err = w.read()
		if err == nil && !sameFile(read, st) && read.inode != 0 {
			err = errFileChanging // replaced since judged settled
		}
		st = read
	}
	if err == nil && w.loader.compatible != nil {
		err = w.loader.compatible(w.cur.Load(), val)
	}
	if err != nil && pin != nil {
		w.see(st, pin, now)
	}
	if errors.Is(err, errFileChanging) {
		w.info.LastResult = "changing: " + err.Error()
		w.logger.Debug(w.loader.what+" is being written; will retry at the next check", zap.String("path", w.path))
		return w.infoLocked(), err
	}
	if err != nil {
		w.failed = st
		w.failedMsg = "error: " + err.Error()
		w.info.Failures++
		w.info.LastResult = w.failedMsg
		w.logger.Error("rejected changed "+w.loader.what+"; the last good version keeps serving",
			zap.String("path", w.path), zap.Error(err))
		w.observe("error")
		return w.infoLocked(), err
	}
	w.cur.Store(val)
	unpin(w.pin)
	unpin(w.seenPin)
	w.stamp, w.pin, w.failed, w.failedMsg = st, pin, fileStamp{}, ""
	w.seen, w.seenAt, w.seenPin, w.gone = fileStamp{}, time.Time{}, nil, false
	w.describe(val)
	w.info.LastReload = now
	w.info.Reloads++
	w.info.LastResult = "ok"
	w.logger.Info("reloaded "+w.loader.what, zap.String("path", w.path), zap.String("kind", w.info.Kind), zap.Time("build_time", w.info.BuildTime))
	w.observe("ok")
	return w.infoLocked(), nil
}

func (w *watchedFile[T]) observe(result string) {
	if w.onReload != nil {
		w.onReload(w.path, w.info.Kind, result)
	}
}

func (w *watchedFile[T]) snapshot() DatabaseInfo {
	w.mu.Lock()
	info, update := w.infoLocked(), w.update
	w.mu.Unlock()
	return withUpdate(info, update)
}

// withUpdate returns info with the update state that update reports, if
// any. It is called without the entry's lock, so that the updater may reload
// the file while it reports.
func withUpdate(info DatabaseInfo, update func() *geoupdate.Status) DatabaseInfo {
	if update != nil {
		info.Update = update()
	}
	return info
}

// infoLocked returns a copy of w.info with its users. The caller holds
// w.mu.
func (w *watchedFile[T]) infoLocked() DatabaseInfo {
	info := w.info
	info.Users = make([]string, 0, len(w.users))
	for u := range w.users {
		info.Users = append(info.Users, u)
	}
	slices.Sort(info.Users)
	return info
}

func (w *watchedFile[T]) filePath() string { return w.path }

// setUpdateState makes the admin API show what f reports as the state of
// the file's automatic updates; nil removes it.
func (w *watchedFile[T]) setUpdateState(f func() *geoupdate.Status) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.update = f
}

// Destruct stops the checks; called by the pool when the last user is gone.
func (w *watchedFile[T]) Destruct() error {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	w.destroyed = true
	unpin(w.pin)
	unpin(w.seenPin)
	w.pin, w.seenPin = nil, nil
	return nil
}

// Interface guards
var (
	_ caddy.Destructor = (*watchedFile[struct{}])(nil)
	_ watcher          = (*watchedFile[struct{}])(nil)
)
