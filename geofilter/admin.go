package geofilter

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-edge/edge/geofilter/rules"
)

// filters is the registry of provisioned geofilter handlers, for the admin
// API: filled in Provision, emptied in Cleanup. During a config reload the
// old and the new config's handlers are both listed for a moment.
var filters struct {
	// mu protects live; the admin API holds it for reading while it uses a
	// handler's databases, and Cleanup takes it (through unregisterFilter)
	// before closing them, so an admin lookup never uses a closed database.
	mu   sync.RWMutex
	live map[*Handler]int // handler -> its id
}

// lastID numbers the handlers and the geo matchers with databases of their
// own, in provisioning order, so that the admin API can tell them apart.
var lastID atomic.Int64

// newID returns the next handler or matcher id.
func newID() int { return int(lastID.Add(1)) }

// registerFilter lists h, of id h.id, for the admin API.
func registerFilter(h *Handler) {
	filters.mu.Lock()
	defer filters.mu.Unlock()
	if filters.live == nil {
		filters.live = make(map[*Handler]int)
	}
	filters.live[h] = h.id
}

func unregisterFilter(h *Handler) {
	filters.mu.Lock()
	defer filters.mu.Unlock()
	delete(filters.live, h)
}

// liveFilter is a registered handler and its id.
type liveFilter struct {
	h  *Handler
	id int
}

// liveFiltersLocked returns the registered handlers, oldest first. The
// caller holds filters.mu.
func liveFiltersLocked() []liveFilter {
	fs := make([]liveFilter, 0, len(filters.live))
	for h, id := range filters.live {
		fs = append(fs, liveFilter{h, id})
	}
	slices.SortFunc(fs, func(a, b liveFilter) int { return a.id - b.id })
	return fs
}

// Admin is the admin API of geofilter, module admin.api.geofilter:
//
//   - GET /geofilter/lookup?ip=ADDR: what each database says of the address
//     (each database on its own, and the merged result of each filter) and
//     what each live filter would decide, from the databases as they serve
//     requests now (after the last hot reload; no file is reopened). Rules
//     with request matchers are skipped, since they depend on a request.
//   - GET /geofilter/databases: every opening of a database or IP list (a
//     file read with other fields is another opening) with its kind,
//     layout, fields, users (handlers and matchers), build time, last
//     reload and update state.
//   - POST /geofilter/reload[?path=FILE]: checks and reloads the file now
//     (every open file without path).
type Admin struct{}

// CaddyModule returns the Caddy module information.
func (Admin) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.geofilter",
		New: func() caddy.Module { return new(Admin) },
	}
}

// Routes returns the admin routes.
func (a Admin) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/geofilter/lookup", Handler: caddy.AdminHandlerFunc(a.handleLookup)},
		{Pattern: "/geofilter/databases", Handler: caddy.AdminHandlerFunc(a.handleDatabases)},
		{Pattern: "/geofilter/reload", Handler: caddy.AdminHandlerFunc(a.handleReload)},
	}
}

// LookupResponse is the answer of GET /geofilter/lookup.
type LookupResponse struct {
	IP        string           `json:"ip"`
	Databases []DatabaseAnswer `json:"databases"`
	Filters   []FilterAnswer   `json:"filters"`
}

// DatabaseAnswer is what one database says of an address: the version
// that serves requests now.
type DatabaseAnswer struct {
	Path   string  `json:"path"` // absolute
	Kind   string  `json:"kind,omitempty"`
	Result *Result `json:"result,omitempty"`
	Error  string  `json:"error,omitempty"`
}

// FilterAnswer is what one live filter knows of an address and decides.
type FilterAnswer struct {
	ID        int      `json:"id"` // the N of "geofilter N" in GET /geofilter/databases
	Databases []string `json:"databases"`
	Result    Result   `json:"result"`
	Country   string   `json:"country"`
	Decision  string   `json:"decision"`
	Rule      string   `json:"rule"`
	LogRule   string   `json:"log_rule,omitempty"`
}

func (Admin) handleLookup(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method not allowed")}
	}
	ip, err := netip.ParseAddr(r.URL.Query().Get("ip"))
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("bad ip parameter: %v", err)}
	}
	ip = ip.Unmap().WithZone("")
	resp := LookupResponse{IP: ip.String()}
	resp.Filters, resp.Databases = lookupFilters(ip)
	return writeJSON(w, resp)
}

// lookupFilters asks every live filter what it knows of ip and decides,
// and each database in use what it says of ip on its own. Both answers come
// from the databases that serve requests, as loaded in memory now (the
// version after the last hot reload); no file is reopened. A database
// shared by several filters is answered once.
func lookupFilters(ip netip.Addr) ([]FilterAnswer, []DatabaseAnswer) {
	out, dbs := []FilterAnswer{}, []DatabaseAnswer{}
	seen := make(map[string]bool)
	filters.mu.RLock()
	defer filters.mu.RUnlock()
	for _, lf := range liveFiltersLocked() {
		h := lf.h
		f := FilterAnswer{ID: lf.id, Databases: []string{}}
		for _, c := range h.Databases {
			f.Databases = append(f.Databases, c.Path)
		}
		h.src.dbs.Lookup(ip, &f.Result)
		h.src.dbs.lookupEach(ip, func(path, kind string, r Result, err error) {
			if seen[path] {
				return
			}
			seen[path] = true
			a := DatabaseAnswer{Path: path, Kind: kind}
			if err != nil {
				a.Error = err.Error()
			} else {
				a.Result = &r
			}
			dbs = append(dbs, a)
		})
		f.Country = rules.NormalizeCountry(f.Result.CountryCode)
		d, err := h.set.Decide(&rules.Input{IP: ip, Geo: &f.Result}, nil)
		if err != nil {
			f.Decision = "error: " + err.Error()
		} else {
			f.Decision, f.Rule = h.outcome(d)
			if d.Logged >= 0 {
				f.LogRule = h.set.Rules[d.Logged].Name
			}
		}
		out = append(out, f)
	}
	return out, dbs
}

func (Admin) handleDatabases(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method not allowed")}
	}
	list := listDatabases()
	if list == nil {
		list = []DatabaseInfo{}
	}
	return writeJSON(w, list)
}

func (Admin) handleReload(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method not allowed")}
	}
	paths := []string{r.URL.Query().Get("path")}
	if paths[0] == "" {
		paths = paths[:0]
		for _, d := range listDatabases() {
			paths = append(paths, d.Path)
		}
	}
	out := make([]DatabaseInfo, 0, len(paths))
	for _, p := range paths {
		info, err := reloadDatabase(p)
		if errors.Is(err, errUnknownDatabase) {
			return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: err}
		}
		if err != nil && info.Path == "" {
			return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
		}
		// A rejected file: info shows the failure (last_result), and the
		// last good version keeps serving.
		out = append(out, info)
	}
	return writeJSON(w, out)
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	return nil
}

// Interface guards
var (
	_ caddy.AdminRouter = (*Admin)(nil)
)
