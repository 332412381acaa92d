package geofilter

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddy-edge/edge/geofilter/geodb"
	"github.com/caddy-edge/edge/geofilter/geoupdate"
)

// UpdateConfig keeps a database file current by downloading new versions in
// the background (package geoupdate): from MaxMind's update service (an
// edition with account_id and license_key, as geoipupdate does) or from a
// plain URL (DB-IP, IPinfo, ip-location-db or any mirror). A download
// replaces the file only once it passed its archive's and checksum's checks
// and the same open-and-probe as a reload (same kind, and every field the
// current file provides); otherwise the current file is kept. The replaced
// file is then reloaded at once.
type UpdateConfig struct {
	// MaxMind edition ID, e.g. "GeoLite2-Country". Default, with
	// account_id: the database's file name without ".mmdb".
	EditionID string `json:"edition_id,omitempty"`
	// MaxMind account ID. Setting it selects MaxMind's update protocol.
	AccountID string `json:"account_id,omitempty"`
	// MaxMind license key; placeholders such as {env.MAXMIND_LICENSE_KEY}
	// are replaced when the config is loaded, so the key need not be in
	// the config.
	LicenseKey string `json:"license_key,omitempty"`
	// With account_id: the base URL of MaxMind's update service (default
	// https://updates.maxmind.com). Without: the https URL of a direct
	// download (a .mmdb, .mmdb.gz or .tar.gz), fetched with
	// If-None-Match / If-Modified-Since. Placeholders are replaced.
	URL string `json:"url,omitempty"`
	// How often to look for a new version. Default: 24h; at least 1m.
	Interval caddy.Duration `json:"interval,omitempty"`
	// Largest download accepted, compressed or not, in bytes. Default: 512 MiB.
	MaxSize int64 `json:"max_size,omitempty"`
	// Longest one attempt may take. Default: 10m.
	Timeout caddy.Duration `json:"timeout,omitempty"`
}

// databaseUpdates counts update attempts by result.
var databaseUpdates = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: "caddy",
	Subsystem: "geofilter",
	Name:      "database_updates_total",
	Help:      "Attempts to download a new version of a geofilter database, by result (updated, not_modified, error).",
}, []string{"result"})

// updaters holds the running updaters, one per database file and update
// config, shared by every handler and matcher (of this config and the next,
// during a reload) that configure it. Keys: "update\x00" + absolute path +
// "\x00" + config as JSON. Values: *updaterEntry.
var updaters = caddy.NewUsagePool()

// updaterEntry is a running updater; its goroutine ends when the last user
// releases the entry.
type updaterEntry struct {
	u        *geoupdate.Updater
	path     string
	interval time.Duration
	cancel   context.CancelFunc
	done     chan struct{}
}

// Destruct stops the updater and waits for its goroutine.
func (e *updaterEntry) Destruct() error {
	e.cancel()
	<-e.done
	return nil
}

// DefaultDatabaseDir is where a database named by its MaxMind edition only
// (db GeoLite2-Country { account_id ... }) is kept: geofilter/ under Caddy's
// data directory.
func DefaultDatabaseDir() string { return filepath.Join(caddy.AppDataDir(), "geofilter") }

// resolveUpdate returns the updater's config for the database c: the path
// of an edition-only database (db GeoLite2-Country), the edition from the
// file name, and the placeholders replaced.
func resolveUpdate(c DatabaseConfig, logger *zap.Logger) (geoupdate.Config, error) {
	u := c.Update
	repl := caddy.NewReplacer()
	cfg := geoupdate.Config{
		AccountID:  repl.ReplaceAll(u.AccountID, ""),
		LicenseKey: repl.ReplaceAll(u.LicenseKey, ""),
		Interval:   time.Duration(u.Interval),
		MaxSize:    u.MaxSize,
		Timeout:    time.Duration(u.Timeout),
		Observe:    func(result string) { databaseUpdates.WithLabelValues(result).Inc() },
		Logger:     logger,
	}
	target := repl.ReplaceAll(u.URL, "")
	path := c.Path
	if u.AccountID != "" || u.LicenseKey != "" || u.EditionID != "" {
		cfg.EditionID, cfg.Endpoint = u.EditionID, target
		if isEditionName(path) {
			if cfg.EditionID == "" {
				cfg.EditionID = path
			}
			path = filepath.Join(DefaultDatabaseDir(), path+".mmdb")
		}
		if cfg.EditionID == "" {
			cfg.EditionID = strings.TrimSuffix(filepath.Base(path), ".mmdb")
		}
		if cfg.LicenseKey == "" && u.LicenseKey != "" {
			return cfg, fmt.Errorf("update: license_key %q is empty once its placeholders are replaced (is the environment variable set?)", u.LicenseKey)
		}
	} else {
		cfg.URL = target
		if cfg.URL == "" {
			return cfg, errors.New("update: want a url, or a MaxMind account_id and license_key")
		}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return cfg, err
	}
	cfg.Path = abs
	return cfg, nil
}

// isEditionName reports whether the path of a database with a MaxMind
// update names an edition rather than a file: letters, digits and dashes
// only, as MaxMind's edition IDs are (GeoLite2-Country, GeoIP2-City).
func isEditionName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// startUpdater starts (or shares) the updater of the database c, first
// downloading the file if it does not exist yet (bounded by the update's
// timeout). It returns the file's path (that of an edition-only database
// resolved) and the key to release with updaters.Delete.
func startUpdater(c DatabaseConfig, logger *zap.Logger) (string, string, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	cfg, err := resolveUpdate(c, logger)
	if err != nil {
		return c.Path, "", err
	}
	fields := c.Fields
	cfg.Verify = func(data []byte) error { return verifyDownload(cfg.Path, data, fields) }
	cfg.OnReplaced = func() {
		if _, err := reloadDatabase(cfg.Path); err != nil && !errors.Is(err, errUnknownDatabase) {
			logger.Error("reloading the updated database", zap.String("path", cfg.Path), zap.Error(err))
		}
	}
	u, err := geoupdate.New(cfg)
	if err != nil {
		return cfg.Path, "", err
	}
	js, _ := json.Marshal(c.Update)
	key := "update\x00" + cfg.Path + "\x00" + string(js)
	_, _, err = updaters.LoadOrNew(key, func() (caddy.Destructor, error) {
		first := time.Duration(0) // a restart looks for an update at once, as geoipupdate does
		if _, err := os.Stat(cfg.Path); errors.Is(err, fs.ErrNotExist) {
			// Nothing to serve yet: download it now, before the
			// database is opened.
			if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o755); err != nil {
				return nil, err
			}
			logger.Info("database file missing: downloading it", zap.String("path", cfg.Path), zap.String("source", u.Status().Source))
			if _, err := u.Check(context.Background()); err != nil {
				return nil, fmt.Errorf("the file is missing and the first download failed: %w", err)
			}
			first = cmp.Or(cfg.Interval, geoupdate.DefaultInterval)
		}
		ctx, cancel := context.WithCancel(context.Background())
		e := &updaterEntry{u: u, path: cfg.Path, interval: cmp.Or(cfg.Interval, geoupdate.DefaultInterval), cancel: cancel, done: make(chan struct{})}
		go func() {
			defer close(e.done)
			u.Run(ctx, first)
		}()
		return e, nil
	})
	if err != nil {
		return cfg.Path, "", err
	}
	return cfg.Path, key, nil
}

// verifyDownload is the check a download passes before it replaces the
// database at path: it opens and probes as a reload does, and must be of the
// kind of the current file and provide every field the current file
// provides.
func verifyDownload(path string, data []byte, fields geodb.FieldPaths) error {
	db, err := geodb.OpenBytes(data, fields)
	if err != nil {
		return err
	}
	defer db.Close()
	old, err := geodb.Open(path, fields)
	if err != nil {
		return nil // no usable current file: the download is better than nothing
	}
	defer old.Close()
	return compatibleDB(old, db)
}

// compatibleDB reports why new may not replace old: another kind, a
// field old provides and new does not, or an address family old holds
// networks of and new does not.
func compatibleDB(old, new *geodb.DB) error {
	if old.Kind() != new.Kind() {
		return fmt.Errorf("database kind changed from %s (%s) to %s (%s)", old.Kind(), old.Type(), new.Kind(), new.Type())
	}
	for _, f := range old.Fields() {
		if !new.Provides(f) {
			return fmt.Errorf("the new version provides no %s (it provides %s), the current one does", f, strings.Join(new.Fields(), ", "))
		}
	}
	// Nor the networks of an address family: every client of it would be
	// unknown, and go through a rule the current version enforces (an
	// "-ipv4" build over one with both).
	ov4, ov6 := old.Families()
	nv4, nv6 := new.Families()
	if ov4 && !nv4 || ov6 && !nv6 {
		family := "IPv4"
		if ov6 && !nv6 {
			family = "IPv6"
		}
		return fmt.Errorf("the new version holds no %s network, the current one does", family)
	}
	return nil
}

// updateStatus returns the state of the updater of the database file at
// path (absolute), for the admin API; nil when it has none.
func updateStatus(path string) *geoupdate.Status {
	var st *geoupdate.Status
	updaters.Range(func(_, v any) bool {
		e, ok := v.(*updaterEntry)
		if !ok || e.path != path {
			return true
		}
		s := e.u.Status()
		st = &s
		return false
	})
	return st
}

// updateKeys releases updaters on Close.
type updateKeys struct {
	mu   sync.Mutex
	keys []string
}

func (k *updateKeys) add(key string) {
	k.mu.Lock()
	k.keys = append(k.keys, key)
	k.mu.Unlock()
}

func (k *updateKeys) release() error {
	k.mu.Lock()
	keys := k.keys
	k.keys = nil
	k.mu.Unlock()
	var errs []error
	for _, key := range keys {
		if _, err := updaters.Delete(key); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Interface guards
var (
	_ caddy.Destructor = (*updaterEntry)(nil)
)
