package geofilter

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-edge/edge/geofilter/geodb"
	"github.com/caddy-edge/edge/geofilter/rules"
)

// sources are the databases and IP lists a handler or a matcher holds open.
// Both come from the shared, hot-reloaded pool (databases.go); close
// releases exactly what open and openList acquired.
type sources struct {
	dbs   *databases // nil when no database is configured
	lists []*ipList
	opts  watchOptions
}

// open opens the configured databases (none: dbs stays nil), watched every
// interval, and remembers how for the IP lists opened later by openList.
// user names the handler or matcher in the admin API. Reloads are counted
// in the metrics.
func (s *sources) open(cfgs []DatabaseConfig, interval time.Duration, logger *zap.Logger, user string) error {
	s.opts = watchOptions{interval: interval, logger: logger, onReload: countReload, user: user}
	if len(cfgs) == 0 {
		return nil
	}
	dbs, err := openDatabases(cfgs, s.opts)
	if err != nil {
		return fmt.Errorf("opening databases: %w", err)
	}
	s.dbs = dbs
	s.warnFamilies(logger)
	return nil
}

// warnFamilies warns when no database that provides a field holds a
// network of one address family: every client of that family is then
// unknown to the field, so a rule such as "deny country CN" never matches
// it (ip-location-db's "-ipv4" country build alone lets every IPv6 client
// through, even beside an ASN database that knows IPv6).
func (s *sources) warnFamilies(logger *zap.Logger) {
	if logger == nil {
		return
	}
	for _, family := range []string{"IPv4", "IPv6"} {
		var missing []string // fields no database of this family provides
		for _, f := range geodb.FieldNames() {
			provided, covered := false, false
			for _, w := range s.dbs.entries {
				db := w.cur.Load()
				if !db.Provides(f) {
					continue
				}
				provided = true
				v4, v6 := db.Families()
				covered = covered || family == "IPv4" && v4 || family == "IPv6" && v6
			}
			if provided && !covered {
				missing = append(missing, f)
			}
		}
		if len(missing) > 0 {
			logger.Warn("no database holds an "+family+" network for "+strings.Join(missing, ", ")+": every "+family+" client is unknown to them, "+
				"and a rule on them (deny country CN) never matches one; add a database (or build) with "+family+" networks, or a rule for unknown",
				zap.Strings("fields", missing))
		}
	}
}

// openList opens an IP list file; it is the opener given to
// rules.Conditions.Compile.
func (s *sources) openList(path string) (rules.IPSet, error) {
	l, err := openIPList(path, s.opts)
	if err != nil {
		return nil, err
	}
	s.lists = append(s.lists, l)
	return l, nil
}

// close releases the databases and IP lists. It leaves the fields as they
// are: Caddy cleans up an old config's modules while its servers still
// finish their requests (caddyhttp.App.Stop does not wait for the
// shutdowns), and those requests keep looking up in the same databases.
// Releasing only stops the checks of a file no config uses any more; its
// last version stays in memory until nothing refers to it. Both close
// methods are idempotent.
func (s *sources) close() error {
	var errs []error
	if s.dbs != nil {
		errs = append(errs, s.dbs.close())
	}
	for _, l := range s.lists {
		errs = append(errs, l.close())
	}
	return errors.Join(errs...)
}
