package geofilter

import (
	"errors"
	"net/netip"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-edge/edge/geofilter/geodb"
)

// Result is what the databases know of one address.
type Result = geodb.Result

// DatabaseConfig is one database in the JSON config of the handler and the matcher.
type DatabaseConfig struct {
	Path   string           `json:"path"`
	Fields geodb.FieldPaths `json:"fields,omitempty"`
}

// Databases is the shared, hot-reloaded view of a list of databases.
type Databases struct{}

// OpenDatabases opens or shares each database.
func OpenDatabases(cfgs []DatabaseConfig, interval time.Duration, logger *zap.Logger) (*Databases, error) {
	return nil, errors.New("geofilter: databases not implemented")
}

// Lookup merges what every database knows of ip into r.
func (d *Databases) Lookup(ip netip.Addr, r *Result) {}

// Close releases the databases.
func (d *Databases) Close() error { return nil }

// IPList is a shared, hot-reloaded IP list file.
type IPList struct{}

// OpenIPList opens or shares the IP list at path.
func OpenIPList(path string, interval time.Duration, logger *zap.Logger) (*IPList, error) {
	return nil, errors.New("geofilter: ip lists not implemented")
}

// Contains reports whether ip is in the list.
func (l *IPList) Contains(ip netip.Addr) bool { return false }

// Close releases the list.
func (l *IPList) Close() error { return nil }

// DatabaseInfo describes one open database or IP list, for the admin API.
type DatabaseInfo struct {
	Path       string    `json:"path"`
	Kind       string    `json:"kind"`
	BuildTime  time.Time `json:"build_time"`
	LoadedAt   time.Time `json:"loaded_at"`
	LastCheck  time.Time `json:"last_check"`
	LastReload time.Time `json:"last_reload,omitempty"`
	LastResult string    `json:"last_result"`
	Reloads    int64     `json:"reloads"`
	Failures   int64     `json:"failures"`
}

// ListDatabases lists every open database and IP list, sorted by path.
func ListDatabases() []DatabaseInfo { return nil }

// ReloadDatabase forces a reload of the database or list at path.
func ReloadDatabase(path string) (DatabaseInfo, error) {
	return DatabaseInfo{}, errors.New("geofilter: reload not implemented")
}

// ReloadObserver, when set, is told the outcome of every reload.
var ReloadObserver func(path string, kind string, result string)
