package geofilter

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-edge/edge/geofilter/geodb"
	"github.com/caddy-edge/edge/geofilter/geoupdate"
	"github.com/caddy-edge/edge/geofilter/iplist"
	"github.com/caddy-edge/edge/geofilter/rules"
)

// This file is what handlers, matchers and the admin API use of the files
// they hold open: databases and IP lists, on the watched-file pool
// (filepool.go).

// Result is what the databases know of one address.
type Result = geodb.Result

// DatabaseConfig is one database in the JSON config of the handler and the matcher.
type DatabaseConfig struct {
	// Path of the MaxMind-format (.mmdb) file. Its kind (country, city, asn,
	// anonymous) and the layout of its records are found from its metadata
	// and a probe of its records (MaxMind, DB-IP, IPinfo, ip-location-db and
	// the like need nothing more). With a MaxMind update (update.account_id),
	// it may be an edition ID alone, e.g. "GeoLite2-Country": the file is
	// then GeoLite2-Country.mmdb in DefaultDatabaseDir().
	Path string `json:"path"`

	// Where fields live in the records, by field name: country_code,
	// continent_code, in_eu, subdivision_code, city, asn, asn_org,
	// is_anonymous, is_anonymous_vpn, is_hosting_provider, is_public_proxy,
	// is_tor_exit_node, is_residential_proxy. A path is a list of map keys
	// and array indexes, e.g. `{"country_code": ["geo", "cc"]}`; it must
	// hold a value in the records probed at load. A field given here
	// overrides the layout found; an empty path turns a field off (the
	// continent and EU membership are then derived from the country).
	// Default: the layout found.
	Fields geodb.FieldPaths `json:"fields,omitempty"`

	// Update keeps the file current by downloading new versions in the
	// background. Default: no updates.
	Update *UpdateConfig `json:"update,omitempty"`
}

// DatabaseInfo describes one opening of a database or IP list file, for the
// admin API. A file opened with different fields is opened (and listed)
// once for each set of fields.
type DatabaseInfo struct {
	// Absolute path of the file.
	Path string `json:"path"`
	// country, city, asn, anonymous, custom, or ip_list.
	Kind string `json:"kind"`
	// The database_type of the file's metadata, e.g. GeoLite2-Country
	// (empty for IP lists).
	Type string `json:"type,omitempty"`
	// How the filter found the fields in the records: the layout the
	// database type names (geoip2-country, geoip2-city, geoip2-asn,
	// geoip2-anonymous-ip, geoip2-enterprise, ipinfo), "detected" (found by
	// probing the records) or "custom" (fields given). Empty for IP lists.
	Layout string `json:"layout,omitempty"`
	// The fields configured for this opening (db ... { fields ... }): a file
	// opened with different fields is another opening. None when the
	// layout's own are used.
	Fields geodb.FieldPaths `json:"fields,omitempty"`
	// The fields the database fills (country_code, asn, ...), including
	// those derived from the country (continent_code, in_eu). Empty for IP
	// lists.
	Provides []string `json:"provides,omitempty"`
	// Who has this opening in use: "geofilter N" for the handler of id N
	// (the id of GET /geofilter/lookup), "geo matcher N" for a geo matcher
	// with databases of its own.
	Users []string `json:"users"`
	// When the database was built, from its metadata (zero for IP lists).
	BuildTime time.Time `json:"build_time"`
	// When the file was first opened.
	LoadedAt time.Time `json:"loaded_at"`
	// When the file was last checked for a change.
	LastCheck time.Time `json:"last_check"`
	// When a changed file was last swapped in.
	LastReload time.Time `json:"last_reload,omitzero"`
	// Outcome of the last check: "ok" (loaded), "unchanged", "settling: ..."
	// (rewritten in place: loaded once left unchanged for a while; the last
	// good version keeps serving meanwhile), "changing: ..." (the file was
	// being written; read again at the next check), or "error: ..."
	// (rejected; the last good version keeps serving).
	LastResult string `json:"last_result"`
	// Successful reloads and rejected replacements since the file was opened.
	Reloads  int64 `json:"reloads"`
	Failures int64 `json:"failures"`
	// The state of the automatic updates of the file; absent when the file
	// is not updated automatically.
	Update *geoupdate.Status `json:"update,omitempty"`
}

// databases is the shared, hot-reloaded view of a list of databases. Its
// methods are safe for concurrent use; a nil *databases knows nothing.
type databases struct {
	entries []*watchedFile[geodb.DB]
	keys    []string
	updates updateKeys // updaters started for these databases
	user    string
	once    sync.Once
}

// openDatabases opens (or shares, when another handler or matcher already
// has it open) each database, watched as opts says. Errors name the path;
// a missing file is an error.
func openDatabases(cfgs []DatabaseConfig, opts watchOptions) (*databases, error) {
	d := &databases{user: opts.user}
	for _, c := range cfgs {
		if c.Update != nil {
			// Before the file is opened: a missing one is downloaded.
			var (
				key string
				err error
			)
			c.Path, key, err = startUpdater(c, opts.logger)
			if err != nil {
				_ = d.close()
				return nil, fmt.Errorf("database %s: %w", c.Path, err)
			}
			d.updates.add(key)
		}
		w, key, err := openDB(c, opts)
		if err != nil {
			_ = d.close()
			return nil, err
		}
		d.entries = append(d.entries, w)
		d.keys = append(d.keys, key)
	}
	return d, nil
}

// dbLoader loads and describes databases read with fields.
func dbLoader(fields geodb.FieldPaths) fileLoader[geodb.DB] {
	return fileLoader[geodb.DB]{
		what: "database",
		load: func(path string) (*geodb.DB, error) { return geodb.Open(path, fields) },
		describe: func(db *geodb.DB) fileDescription {
			return fileDescription{kind: string(db.Kind()), dbType: db.Type(), layout: db.Layout(), provides: db.Fields(), built: db.BuildTime()}
		},
		compatible: compatibleDB,
	}
}

func openDB(c DatabaseConfig, opts watchOptions) (*watchedFile[geodb.DB], string, error) {
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
	w, err := loadOrOpen(key, abs, dbLoader(c.Fields), DatabaseInfo{Fields: c.Fields}, opts)
	if err != nil {
		return nil, "", fmt.Errorf("opening database %s: %w", c.Path, err)
	}
	if c.Update != nil {
		w.setUpdateState(func() *geoupdate.Status { return updateStatus(abs) })
	}
	return w, key, nil
}

// Lookup merges what every database knows of ip into r, in the configured
// order (a later database overwrites the fields it has). An IPv4-mapped IPv6
// address is looked up as IPv4. A record that fails to decode contributes
// what could be decoded. It does not allocate for the built-in layouts.
func (d *databases) Lookup(ip netip.Addr, r *Result) {
	if d == nil {
		return
	}
	ip = ip.Unmap()
	for _, w := range d.entries {
		if err := w.cur.Load().Lookup(ip, r); err != nil {
			w.lookupFailed(ip, err)
		}
	}
}

// lookupErrorLogInterval is how often, at most, a file's records that do
// not decode are logged.
const lookupErrorLogInterval = time.Minute

// lookupFailed reports a record of the file that does not decode (a field
// of the wrong type outside the records probed at load): the address is
// then looked up as if the file did not know the fields that failed, which
// a deny rule on them misses. Logged at Error, at most once a
// lookupErrorLogInterval.
func (w *watchedFile[T]) lookupFailed(ip netip.Addr, err error) {
	now := time.Now().UnixNano()
	last := w.lookupErrLogged.Load()
	if last != 0 && now-last < int64(lookupErrorLogInterval) || !w.lookupErrLogged.CompareAndSwap(last, now) {
		return
	}
	w.logger.Error("a record of the database does not decode: the address is looked up as if the database did not know it",
		zap.String("path", w.path), zap.Stringer("ip", ip), zap.Error(err))
}

// lookupEach looks ip up in each database on its own, in the configured
// order, and tells fn what that database says (for the admin API: no file
// is reopened). path is absolute; err is a decoding error of the record.
func (d *databases) lookupEach(ip netip.Addr, fn func(path, kind string, r Result, err error)) {
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

// checkNeeds refuses a rule (or matcher) whose conditions read a field that
// none of the databases provides: such a condition would never hold (or,
// negated, always), which must be a configuration error, not a filter that
// lets everything through. The error names the condition, the field and
// what each file provides.
func (d *databases) checkNeeds(needs []rules.FieldNeed) error {
	if d == nil {
		return nil
	}
	for _, n := range needs {
		ok := false
		for _, w := range d.entries {
			db := w.cur.Load()
			for _, f := range n.Fields {
				ok = ok || db.Provides(f)
			}
		}
		if ok {
			continue
		}
		var have []string
		for _, w := range d.entries {
			db := w.cur.Load()
			p := strings.Join(db.Fields(), ", ")
			if p == "" {
				p = "nothing"
			}
			have = append(have, fmt.Sprintf("%s (%s, layout %s) provides %s", w.path, db.Type(), db.Layout(), p))
		}
		what := n.Fields[0]
		if len(n.Fields) > 1 {
			what = "any of " + strings.Join(n.Fields, ", ")
		}
		hint := ""
		if strings.HasPrefix(what, "any of is_") || strings.HasPrefix(what, "is_") {
			hint = ": add an anonymous-IP database (e.g. GeoIP2-Anonymous-IP)"
		} else {
			hint = ": add a database that has it, or give its path (db ... { fields { " + n.Fields[0] + " <path> } })"
		}
		return fmt.Errorf("condition %s reads %s, which no database provides: %s%s", n.Condition, what, strings.Join(have, "; "), hint)
	}
	return nil
}

// len returns the number of databases.
func (d *databases) len() int {
	if d == nil {
		return 0
	}
	return len(d.entries)
}

// close releases the databases; the last user of a file stops its checks.
// Calls after the first do nothing. Lookups running during or after close
// stay safe and keep answering from the last loaded version (its memory is
// freed by the garbage collector once nothing refers to it).
func (d *databases) close() error {
	if d == nil {
		return nil
	}
	var errs []error
	d.once.Do(func() {
		for i, key := range d.keys {
			if err := release(key, d.entries[i], d.user); err != nil {
				errs = append(errs, err)
			}
		}
		errs = append(errs, d.updates.release())
	})
	return errors.Join(errs...)
}

// ipList is a shared, hot-reloaded IP list file (see package iplist for the
// format). Its methods are safe for concurrent use; a nil *ipList contains
// nothing.
type ipList struct {
	w    *watchedFile[iplist.List]
	key  string
	user string
	once sync.Once
}

// ipListLoader loads IP lists.
var ipListLoader = fileLoader[iplist.List]{
	what:     "ip list",
	describe: func(*iplist.List) fileDescription { return fileDescription{kind: "ip_list"} },
	load: func(path string) (*iplist.List, error) {
		// A file of zero bytes is most likely being written (`> file`
		// truncates first): never take it for a list of nothing. A list of
		// nothing has at least a comment line.
		if fi, err := os.Stat(path); err == nil && fi.Size() == 0 {
			return nil, errors.New("empty file (an empty list needs at least a comment line)")
		}
		return iplist.Load(path)
	},
}

// openIPList opens (or shares) the IP list at path, with the sharing and
// reload semantics of openDatabases.
func openIPList(path string, opts watchOptions) (*ipList, error) {
	if path == "" {
		return nil, errors.New("ip list path is empty")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("ip list %s: %w", path, err)
	}
	key := "list\x00" + abs
	w, err := loadOrOpen(key, abs, ipListLoader, DatabaseInfo{}, opts)
	if err != nil {
		return nil, fmt.Errorf("opening ip list %s: %w", path, err)
	}
	return &ipList{w: w, key: key, user: opts.user}, nil
}

// Contains reports whether ip is in the list. It does not allocate.
func (l *ipList) Contains(ip netip.Addr) bool {
	if l == nil {
		return false
	}
	return l.w.cur.Load().Contains(ip)
}

// len returns the number of entries of the list as last loaded.
func (l *ipList) len() int {
	if l == nil {
		return 0
	}
	return l.w.cur.Load().Len()
}

// close releases the list. Calls after the first do nothing; Contains stays
// safe during and after close, as databases.Lookup does.
func (l *ipList) close() error {
	if l == nil {
		return nil
	}
	var err error
	l.once.Do(func() { err = release(l.key, l.w, l.user) })
	return err
}

// errUnknownDatabase is returned by reloadDatabase for a path that no
// handler or matcher has open.
var errUnknownDatabase = errors.New("no open database or ip list has this path")

// listDatabases lists every open database and IP list of the process,
// sorted by path (a file opened with different field paths is listed once
// per set of fields).
func listDatabases() []DatabaseInfo {
	ws := watchers("")
	out := make([]DatabaseInfo, len(ws))
	for i, w := range ws {
		out[i] = w.snapshot()
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// reloadDatabase reloads the database or IP list at path now, even if the
// file looks unchanged, and returns its state afterwards. path is matched
// after being made absolute. For a path nothing has open, the error wraps
// errUnknownDatabase and the DatabaseInfo is zero; for a rejected file the
// error says why and the DatabaseInfo (Path set) shows the failure, with
// the last good version still serving. A path open with several field sets
// is reloaded for each; the first one's state is returned.
func reloadDatabase(path string) (DatabaseInfo, error) {
	abs, err := filepath.Abs(path)
	if err != nil || path == "" {
		return DatabaseInfo{}, fmt.Errorf("reloading %q: %w", path, errUnknownDatabase)
	}
	ws := watchers(abs)
	if len(ws) == 0 {
		return DatabaseInfo{}, fmt.Errorf("reloading %s: %w", abs, errUnknownDatabase)
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
