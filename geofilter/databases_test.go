package geofilter

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-edge/edge/geofilter/geodb"
	"github.com/caddy-edge/edge/internal/mmdbtest"
)

// openDBsForTest opens the databases, checked every interval, and closes
// them at the end of the test.
func openDBsForTest(t *testing.T, interval time.Duration, paths ...string) *databases {
	t.Helper()
	return openObservedForTest(t, watchOptions{interval: interval, logger: zap.NewNop()}, paths...)
}

// openObservedForTest is openDBsForTest with the watch options given.
func openObservedForTest(t *testing.T, opts watchOptions, paths ...string) *databases {
	t.Helper()
	var cfgs []DatabaseConfig
	for _, p := range paths {
		cfgs = append(cfgs, DatabaseConfig{Path: p})
	}
	d, err := openDatabases(cfgs, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.close() })
	return d
}

func lookupForTest(d *databases, addr string) Result {
	var r Result
	d.Lookup(netip.MustParseAddr(addr), &r)
	return r
}

// observeReloads returns a reload observer to hand to the files a test
// opens, and the channel of "path kind result" strings it sends.
func observeReloads() (<-chan string, func(path, kind, result string)) {
	ch := make(chan string, 100)
	return ch, func(path, kind, result string) { ch <- path + " " + kind + " " + result }
}

// reported returns the next reload outcome reported to the observer of
// observeReloads. It is for checks made by the test itself, which report
// before they return: none reported fails the test (it does not wait).
func reported(t *testing.T, reloads <-chan string) string {
	t.Helper()
	select {
	case got := <-reloads:
		return got
	default:
		t.Fatal("no reload outcome reported")
		return ""
	}
}

func infoFor(t *testing.T, path string) DatabaseInfo {
	t.Helper()
	for _, info := range listDatabases() {
		if info.Path == path {
			return info
		}
	}
	t.Fatalf("listDatabases has no %s", path)
	return DatabaseInfo{}
}

func TestDatabasesLookup(t *testing.T) {
	country := mmdbtest.Country(t, map[string]string{"81.2.69.0/24": "GB", "2001:db8::/32": "SE"})
	asn := mmdbtest.ASN(t, map[string]mmdbtest.ASNRecord{"81.2.0.0/16": {Number: 20712, Org: "Andrews & Arnold Ltd"}})
	anon := mmdbtest.Anonymous(t, map[string]mmdbtest.AnonymousRecord{"81.2.69.128/25": {IsAnonymous: true, IsTorExitNode: true}})
	city := mmdbtest.City(t, map[string]mmdbtest.CityRecord{"81.2.69.0/24": {Country: "GB", Subdivision: "ENG", City: "London"}})
	d := openDBsForTest(t, -1, country, asn, anon, city)

	if d.len() != 4 {
		t.Errorf("Len() = %d", d.len())
	}
	tests := []struct {
		addr string
		want Result
	}{
		{"81.2.69.1", Result{Found: true, CountryCode: "GB", ContinentCode: "EU", SubdivisionCode: "ENG", City: "London", ASN: 20712, ASNOrg: "Andrews & Arnold Ltd"}},
		{"81.2.69.200", Result{Found: true, CountryCode: "GB", ContinentCode: "EU", SubdivisionCode: "ENG", City: "London", ASN: 20712, ASNOrg: "Andrews & Arnold Ltd", IsAnonymous: true, IsTorExitNode: true}},
		{"::ffff:81.2.69.1", Result{Found: true, CountryCode: "GB", ContinentCode: "EU", SubdivisionCode: "ENG", City: "London", ASN: 20712, ASNOrg: "Andrews & Arnold Ltd"}},
		{"81.2.1.1", Result{Found: true, ASN: 20712, ASNOrg: "Andrews & Arnold Ltd"}},
		{"2001:db8::5", Result{Found: true, CountryCode: "SE", ContinentCode: "EU", InEU: true}},
		{"192.0.2.1", Result{}},
	}
	for _, tt := range tests {
		if got := lookupForTest(d, tt.addr); got != tt.want {
			t.Errorf("Lookup(%s) = %+v, want %+v", tt.addr, got, tt.want)
		}
	}

	var nilDBs *databases
	var r Result
	nilDBs.Lookup(netip.MustParseAddr("81.2.69.1"), &r)
	if r.Found || nilDBs.close() != nil || nilDBs.len() != 0 {
		t.Error("a nil *databases should know nothing and close cleanly")
	}
}

func TestDatabasesLookupAllocations(t *testing.T) {
	d := openDBsForTest(t, -1,
		mmdbtest.Country(t, map[string]string{"81.2.69.0/24": "GB"}),
		mmdbtest.ASN(t, map[string]mmdbtest.ASNRecord{"81.2.0.0/16": {Number: 20712, Org: "A&A"}}))
	ip := netip.MustParseAddr("::ffff:81.2.69.1")
	var r Result
	d.Lookup(ip, &r)
	if a := testing.AllocsPerRun(100, func() { r = Result{}; d.Lookup(ip, &r) }); a != 0 {
		t.Errorf("Lookup allocates %v times, want 0", a)
	}
}

func TestDatabasesShared(t *testing.T) {
	path := mmdbtest.Country(t, map[string]string{"81.2.69.0/24": "GB"})
	d1 := openDBsForTest(t, -1, path)
	// The same file by another (relative) name, as a second site or the next
	// config of a reload would open it.
	wd, _ := os.Getwd()
	rel, err := filepath.Rel(wd, path)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := openDatabases([]DatabaseConfig{{Path: rel}}, watchOptions{interval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if d1.entries[0] != d2.entries[0] {
		t.Fatal("the same file opened twice is not shared")
	}
	key := d1.keys[0]
	if refs, _ := files.References(key); refs != 2 {
		t.Errorf("references = %d, want 2", refs)
	}
	// Other field paths are another view of the file: not shared.
	d3, err := openDatabases([]DatabaseConfig{{Path: path, Fields: geodb.FieldPaths{"country_code": {"registered_country", "iso_code"}}}}, watchOptions{interval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if d3.entries[0] == d1.entries[0] {
		t.Error("different field paths share an entry")
	}
	d3.close()

	// The old config goes away: the new one keeps working.
	w := d2.entries[0]
	if err := d2.close(); err != nil {
		t.Fatal(err)
	}
	if err := d2.close(); err != nil { // a second Close does nothing
		t.Fatal(err)
	}
	if refs, _ := files.References(key); refs != 1 {
		t.Errorf("references after one Close = %d, want 1", refs)
	}
	if got := lookupForTest(d1, "81.2.69.1"); got.CountryCode != "GB" {
		t.Errorf("lookup after the other user closed = %+v", got)
	}
	d1.close()
	// A lookup still running when the last user closes is safe.
	if got := lookupForTest(d1, "81.2.69.1"); got.CountryCode != "GB" {
		t.Errorf("lookup after the last Close = %+v", got)
	}
	if _, ok := files.References(key); ok {
		t.Error("entry still in the pool after the last Close")
	}
	select {
	case <-w.done:
	default:
		t.Error("reload checks still running after the last Close")
	}
}

func TestOpenDatabasesErrors(t *testing.T) {
	good := mmdbtest.Country(t, map[string]string{"81.2.69.0/24": "GB"})
	missing := filepath.Join(t.TempDir(), "GeoLite2-Country.mmdb")
	_, err := openDatabases([]DatabaseConfig{{Path: good}, {Path: missing}}, watchOptions{interval: -1})
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: err = %v, want not-exist naming %s", err, missing)
	}
	// The good database opened before the failure was released.
	for _, info := range listDatabases() {
		if info.Path == good {
			t.Errorf("%s still open after the failed openDatabases", good)
		}
	}
	corrupt := mmdbtest.Corrupt(t)
	if _, err := openDatabases([]DatabaseConfig{{Path: corrupt}}, watchOptions{interval: -1}); err == nil || !strings.Contains(err.Error(), corrupt) {
		t.Errorf("corrupt file: err = %v, want an error naming %s", err, corrupt)
	}
	custom := mmdbtest.Unknown(t, map[string]string{"81.2.69.0/24": "GB"})
	if _, err := openDatabases([]DatabaseConfig{{Path: custom}}, watchOptions{interval: -1}); err == nil || !strings.Contains(err.Error(), "fields") {
		t.Errorf("unknown layout without fields: err = %v", err)
	}
	if _, err := openDatabases([]DatabaseConfig{{Path: ""}}, watchOptions{interval: -1}); err == nil {
		t.Error("empty path accepted")
	}
	if _, err := openIPList(filepath.Join(t.TempDir(), "drop.txt"), watchOptions{interval: -1}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing ip list: err = %v", err)
	}
}

func TestReloadReplacedByRename(t *testing.T) {
	reloads, observe := observeReloads()
	path := mmdbtest.Country(t, map[string]string{"81.2.69.0/24": "GB"})
	d := openObservedForTest(t, watchOptions{interval: -1, onReload: observe}, path)
	w := d.entries[0]

	if _, err := w.check(false); err != nil {
		t.Fatal(err)
	}
	if info := infoFor(t, path); info.LastResult != "unchanged" || info.Reloads != 0 || info.Kind != "country" {
		t.Errorf("after a check of an unchanged file: %+v", info)
	}

	mmdbtest.WriteFile(t, path, mmdbtest.BuildCountry(map[string]string{"81.2.69.0/24": "SE", "89.160.20.0/24": "SE"}))
	if _, err := w.check(false); err != nil {
		t.Fatal(err)
	}
	if got := lookupForTest(d, "81.2.69.1"); got.CountryCode != "SE" {
		t.Errorf("after reload: %+v, want SE", got)
	}
	info := infoFor(t, path)
	if info.LastResult != "ok" || info.Reloads != 1 || info.Failures != 0 || info.LastReload.IsZero() || info.LastReload.Before(info.LoadedAt) {
		t.Errorf("after reload: %+v", info)
	}
	if got := reported(t, reloads); got != path+" country ok" {
		t.Errorf("observer got %q", got)
	}
}

// leftAlone makes the file at path look last written a minute ago, as a
// rewrite in place that its writer finished long ago. It changes the
// file's stamp: the next check sees a new version, the one after may load
// it.
func leftAlone(t *testing.T, path string) {
	t.Helper()
	if err := os.Chtimes(path, time.Time{}, time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
}

// TestReloadRewrittenInPlace: a database rewritten in place is loaded once
// it has settled (unchanged since the previous check, and written at least
// the settle time ago), not at the first check that sees it: the writer may
// not be done.
func TestReloadRewrittenInPlace(t *testing.T) {
	reloads, observe := observeReloads()
	path := mmdbtest.Country(t, map[string]string{"81.2.69.0/24": "GB"})
	d := openObservedForTest(t, watchOptions{interval: -1, onReload: observe}, path)
	w := d.entries[0]
	// Truncate and rewrite the same inode, as `cp new.mmdb path` does.
	if err := os.WriteFile(path, mmdbtest.BuildCountry(map[string]string{"81.2.69.0/24": "FR", "89.160.20.0/24": "SE"}), 0o644); err != nil {
		t.Fatal(err)
	}
	leftAlone(t, path)
	if _, err := w.check(false); err != nil {
		t.Fatal(err)
	}
	if got := lookupForTest(d, "81.2.69.1"); got.CountryCode != "GB" {
		t.Errorf("loaded at the first check that saw the rewrite: %+v, want the old GB", got)
	}
	if info := infoFor(t, path); !strings.HasPrefix(info.LastResult, "settling: ") || info.Reloads != 0 || info.Failures != 0 {
		t.Errorf("while settling: %+v", info)
	}
	if _, err := w.check(false); err != nil {
		t.Fatal(err)
	}
	if got := lookupForTest(d, "81.2.69.1"); got.CountryCode != "FR" || !got.InEU {
		t.Errorf("after in-place rewrite: %+v, want FR", got)
	}
	if info := infoFor(t, path); info.LastResult != "ok" || info.Reloads != 1 || info.Failures != 0 {
		t.Errorf("after the settled rewrite: %+v", info)
	}
	if got := reported(t, reloads); got != path+" country ok" {
		t.Errorf("observer got %q", got)
	}
	if len(reloads) != 0 {
		t.Errorf("%d more reload observations, want one", len(reloads))
	}
}

func TestReloadRejectsCorruptReplacement(t *testing.T) {
	reloads, observe := observeReloads()
	logs, logged := observer.New(zap.ErrorLevel)
	path := mmdbtest.Country(t, map[string]string{"81.2.69.0/24": "GB"})
	d := openObservedForTest(t, watchOptions{interval: -1, logger: zap.New(logs), onReload: observe}, path)
	w := d.entries[0]

	for name, data := range map[string][]byte{
		"half-written": mmdbtest.CorruptBytes(),
		"empty":        {},
		"not a db":     []byte("<html>503 Service Unavailable</html>"),
	} {
		mmdbtest.WriteFile(t, path, data)
		if _, err := w.check(false); err == nil {
			t.Errorf("%s replacement accepted", name)
		}
		if got := lookupForTest(d, "81.2.69.1"); got.CountryCode != "GB" {
			t.Errorf("after %s replacement: %+v, want the last good GB", name, got)
		}
	}
	info := infoFor(t, path)
	if info.Failures != 3 || info.Reloads != 0 || !strings.HasPrefix(info.LastResult, "error: ") {
		t.Errorf("after 3 rejected replacements: %+v", info)
	}
	if n := logged.Len(); n != 3 {
		t.Errorf("%d error logs, want 3", n)
	}
	// The same bad file is not counted (or logged) again at the next check.
	if _, err := w.check(false); err == nil {
		t.Error("check of the still-bad file returned no error")
	}
	if info := infoFor(t, path); info.Failures != 3 || !strings.HasPrefix(info.LastResult, "error: ") {
		t.Errorf("bad file counted twice: %+v", info)
	}
	for range 3 {
		if got := reported(t, reloads); got != path+" country error" {
			t.Errorf("observer got %q", got)
		}
	}
	// A good file recovers.
	mmdbtest.WriteFile(t, path, mmdbtest.BuildCountry(map[string]string{"81.2.69.0/24": "US"}))
	if _, err := w.check(false); err != nil {
		t.Fatal(err)
	}
	if got := lookupForTest(d, "81.2.69.1"); got.CountryCode != "US" {
		t.Errorf("after recovery: %+v", got)
	}
	if info := infoFor(t, path); info.LastResult != "ok" || info.Reloads != 1 || info.Failures != 3 {
		t.Errorf("after recovery: %+v", info)
	}
}

func TestReloadRejectsOtherKind(t *testing.T) {
	path := mmdbtest.Country(t, map[string]string{"81.2.69.0/24": "GB"})
	d := openDBsForTest(t, -1, path)
	mmdbtest.WriteFile(t, path, mmdbtest.BuildASN(map[string]mmdbtest.ASNRecord{"81.2.0.0/16": {Number: 1, Org: "x"}}))
	_, err := d.entries[0].check(false)
	if err == nil || !strings.Contains(err.Error(), "kind changed from country") {
		t.Fatalf("ASN database replacing a country database: err = %v", err)
	}
	if got := lookupForTest(d, "81.2.69.1"); got.CountryCode != "GB" || got.ASN != 0 {
		t.Errorf("after rejected replacement: %+v", got)
	}
	if info := infoFor(t, path); info.Kind != "country" || info.Failures != 1 {
		t.Errorf("info: %+v", info)
	}
}

func TestReloadFileRemoved(t *testing.T) {
	path := mmdbtest.Country(t, map[string]string{"81.2.69.0/24": "GB"})
	d := openDBsForTest(t, -1, path)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := d.entries[0].check(false); !errors.Is(err, fs.ErrNotExist) && err == nil {
			t.Errorf("check of a removed file: err = %v", err)
		}
	}
	if got := lookupForTest(d, "81.2.69.1"); got.CountryCode != "GB" {
		t.Errorf("after the file was removed: %+v", got)
	}
	if info := infoFor(t, path); info.Failures != 1 {
		t.Errorf("removed file counted %d times, want once", info.Failures)
	}
}

func TestReloadDatabaseForced(t *testing.T) {
	path := mmdbtest.Country(t, map[string]string{"81.2.69.0/24": "GB"})
	openDBsForTest(t, -1, path)
	info, err := reloadDatabase(path)
	if err != nil || info.Path != path || info.Reloads != 1 || info.LastResult != "ok" {
		t.Errorf("forced reload of an unchanged file: %+v, %v", info, err)
	}
	mmdbtest.WriteFile(t, path, mmdbtest.CorruptBytes())
	info, err = reloadDatabase(path)
	if err == nil || info.Path != path || info.Failures != 1 {
		t.Errorf("forced reload of a corrupt file: %+v, %v", info, err)
	}
	info, err = reloadDatabase(filepath.Join(t.TempDir(), "nope.mmdb"))
	if !errors.Is(err, errUnknownDatabase) || info.Path != "" {
		t.Errorf("reload of an unknown path: %+v, %v", info, err)
	}
	if _, err := reloadDatabase(""); !errors.Is(err, errUnknownDatabase) {
		t.Errorf("reload of empty path: %v", err)
	}
}

func TestListDatabases(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a-country.mmdb")
	b := filepath.Join(dir, "b-asn.mmdb")
	c := filepath.Join(dir, "c-list.netset")
	mmdbtest.WriteFile(t, a, mmdbtest.BuildCountry(map[string]string{"81.2.69.0/24": "GB"}))
	mmdbtest.WriteFile(t, b, mmdbtest.BuildASN(map[string]mmdbtest.ASNRecord{"81.2.0.0/16": {Number: 1, Org: "x"}}))
	if err := os.WriteFile(c, []byte("192.0.2.0/24\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	openDBsForTest(t, -1, b, a)
	l, err := openIPList(c, watchOptions{interval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.close() })

	var got []string
	for _, info := range listDatabases() {
		if strings.HasPrefix(info.Path, dir) {
			got = append(got, fmt.Sprintf("%s %s %s", filepath.Base(info.Path), info.Kind, info.LastResult))
			if info.LoadedAt.IsZero() || info.LastCheck.IsZero() {
				t.Errorf("%s: times not set: %+v", info.Path, info)
			}
		}
	}
	want := "a-country.mmdb country ok|b-asn.mmdb asn ok|c-list.netset ip_list ok"
	if strings.Join(got, "|") != want {
		t.Errorf("listDatabases = %q, want %q", strings.Join(got, "|"), want)
	}
	if info := infoFor(t, a); !info.BuildTime.Equal(mmdbtest.BuildEpoch) {
		t.Errorf("build time %v, want %v", info.BuildTime, mmdbtest.BuildEpoch)
	}
}

func TestIPListReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "drop.txt")
	if err := os.WriteFile(path, []byte("; DROP\n192.0.2.0/24 ; SBL1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := openIPList(path, watchOptions{interval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.close() })
	l2, err := openIPList(path, watchOptions{interval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if l2.w != l.w {
		t.Error("the same list opened twice is not shared")
	}
	l2.close()
	l2.close()

	in, out := netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("198.51.100.7")
	if !l.Contains(in) || l.Contains(out) || l.len() != 1 {
		t.Fatal("initial list wrong")
	}
	mmdbtest.WriteFile(t, path, []byte("198.51.100.0/24\n2001:db8::/32\n"))
	if _, err := l.w.check(false); err != nil {
		t.Fatal(err)
	}
	if l.Contains(in) || !l.Contains(out) || !l.Contains(netip.MustParseAddr("2001:db8::1")) {
		t.Error("reloaded list not served")
	}
	// Truncated for a rewrite: not loaded while the writer may be at work,
	// and once left alone, a file of zero bytes is not a list of nothing.
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := l.w.check(false); err != nil || !strings.HasPrefix(l.w.snapshot().LastResult, "settling: ") {
		t.Errorf("truncated list at the first check: err = %v, %+v", err, l.w.snapshot())
	}
	if !l.Contains(out) {
		t.Error("truncated list loaded before it settled")
	}
	leftAlone(t, path)
	if _, err := l.w.check(false); err != nil {
		t.Errorf("truncated list changed again: err = %v", err)
	}
	if _, err := l.w.check(false); err == nil || !strings.Contains(err.Error(), "empty file") {
		t.Errorf("empty replacement: err = %v", err)
	}
	if !l.Contains(out) {
		t.Error("empty replacement not rejected")
	}
	mmdbtest.WriteFile(t, path, []byte("203.0.113.0/24\n203.0.113.300\n"))
	_, err = l.w.check(false)
	if err == nil || !strings.Contains(err.Error(), path+":2") {
		t.Errorf("bad replacement: err = %v, want one naming %s:2", err, path)
	}
	if !l.Contains(out) || l.Contains(netip.MustParseAddr("203.0.113.1")) {
		t.Error("bad replacement not rejected as a whole")
	}
	if info := infoFor(t, path); info.Kind != "ip_list" || info.Reloads != 1 || info.Failures != 2 {
		t.Errorf("info: %+v", info)
	}
	var nilList *ipList
	if nilList.Contains(in) || nilList.close() != nil {
		t.Error("nil *ipList should contain nothing")
	}
}

// TestReloadUnderConcurrentLookups swaps the database many times while
// lookups run; run with -race. Every lookup must see one whole version.
func TestReloadUnderConcurrentLookups(t *testing.T) {
	path := mmdbtest.Country(t, map[string]string{"81.2.69.0/24": "GB"})
	d := openDBsForTest(t, -1, path)
	versions := [][]byte{
		mmdbtest.BuildCountry(map[string]string{"81.2.69.0/24": "SE", "10.0.0.0/8": "SE"}),
		mmdbtest.BuildCountry(map[string]string{"81.2.69.0/24": "GB"}),
		mmdbtest.CorruptBytes(),
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for range 4 {
		wg.Go(func() {
			ip := netip.MustParseAddr("81.2.69.1")
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				var r Result
				d.Lookup(ip, &r)
				if r.CountryCode != "GB" && r.CountryCode != "SE" {
					errs <- fmt.Sprintf("lookup %d saw %+v", n, r)
					return
				}
			}
		})
	}
	for i := range 60 {
		mmdbtest.WriteFile(t, path, versions[i%len(versions)])
		d.entries[0].check(false)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if info := infoFor(t, path); info.Reloads != 40 || info.Failures != 20 {
		t.Errorf("reloads %d failures %d, want 40 and 20", info.Reloads, info.Failures)
	}
}

// TestReloadTicker checks that the background check notices a change on its
// own (no timing assertion: it waits for the reload to be reported).
func TestReloadTicker(t *testing.T) {
	reloads, observe := observeReloads()
	path := mmdbtest.Country(t, map[string]string{"81.2.69.0/24": "GB"})
	d := openObservedForTest(t, watchOptions{interval: -1, onReload: observe}, path) // no checks yet
	mmdbtest.WriteFile(t, path, mmdbtest.BuildCountry(map[string]string{"81.2.69.0/24": "SE", "89.160.20.0/24": "SE"}))
	// The next config asks for frequent checks: the shared entry takes them.
	openDBsForTest(t, time.Millisecond, path)
	select {
	case got := <-reloads:
		if got != path+" country ok" {
			t.Fatalf("observer got %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the change was not noticed by the background check")
	}
	if got := lookupForTest(d, "81.2.69.1"); got.CountryCode != "SE" {
		t.Errorf("after background reload: %+v", got)
	}
}

// BenchmarkDatabasesLookup looks an address up in four databases (country,
// city, ASN, anonymous-IP), as a filter configured with all of them does
// once per request.
func BenchmarkDatabasesLookup(b *testing.B) {
	countries := map[string]string{}
	cities := map[string]mmdbtest.CityRecord{}
	asns := map[string]mmdbtest.ASNRecord{}
	anons := map[string]mmdbtest.AnonymousRecord{}
	codes := []string{"GB", "US", "SE", "CN", "DE", "FR", "JP", "BR"}
	for i := range 256 {
		n := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(i), byte(i * 7), 0, 0}), 16).String()
		cc := codes[i%len(codes)]
		countries[n] = cc
		cities[n] = mmdbtest.CityRecord{Country: cc, Subdivision: "X" + cc, City: "City " + cc}
		asns[n] = mmdbtest.ASNRecord{Number: uint32(64496 + i), Org: "Org " + cc}
		if i%3 == 0 {
			anons[n] = mmdbtest.AnonymousRecord{IsAnonymous: true, IsAnonymousVPN: true}
		}
	}
	countries["81.2.69.0/24"] = "GB"
	cities["81.2.69.0/24"] = mmdbtest.CityRecord{Country: "GB", Subdivision: "ENG", City: "London"}
	asns["81.2.69.0/24"] = mmdbtest.ASNRecord{Number: 20712, Org: "Andrews & Arnold Ltd"}
	anons["81.2.69.0/24"] = mmdbtest.AnonymousRecord{IsAnonymous: true, IsTorExitNode: true}
	d, err := openDatabases([]DatabaseConfig{
		{Path: mmdbtest.Country(b, countries)}, {Path: mmdbtest.City(b, cities)},
		{Path: mmdbtest.ASN(b, asns)}, {Path: mmdbtest.Anonymous(b, anons)},
	}, watchOptions{interval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer d.close()
	ip := netip.MustParseAddr("81.2.69.142")
	var r Result
	b.ReportAllocs()
	for b.Loop() {
		r = Result{}
		d.Lookup(ip, &r)
	}
	if r.City != "London" || r.ASN != 20712 || !r.IsTorExitNode {
		b.Fatalf("lookup: %+v", r)
	}
}

// TestReloadFileChangingWhileRead: a file that changes while it is read (a
// writer still at work) is neither accepted nor counted as a failure; the
// next check reads the finished file.
func TestReloadFileChangingWhileRead(t *testing.T) {
	path := mmdbtest.Country(t, map[string]string{"81.2.69.0/24": "GB"})
	writing := false
	load := func(p string) (*geodb.DB, error) {
		db, err := geodb.Open(p, nil)
		if writing { // the writer appends more while we read
			writing = false
			mmdbtest.WriteFile(t, p, mmdbtest.BuildCountry(map[string]string{"81.2.69.0/24": "SE", "89.160.20.0/24": "SE"}))
		}
		return db, err
	}
	loader := dbLoader(nil)
	loader.load = load
	key := "test-changing\x00" + path
	w, err := loadOrOpen(key, path, loader, DatabaseInfo{}, watchOptions{interval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { files.Delete(key) })

	mmdbtest.WriteFile(t, path, mmdbtest.BuildCountry(map[string]string{"81.2.69.0/24": "FR"}))
	writing = true
	if _, err := w.check(false); !errors.Is(err, errFileChanging) {
		t.Fatalf("check during a write: err = %v", err)
	}
	var r Result
	w.cur.Load().Lookup(netip.MustParseAddr("81.2.69.1"), &r)
	if r.CountryCode != "GB" {
		t.Errorf("version read during a write was swapped in: %+v", r)
	}
	if info := w.snapshot(); info.Failures != 0 || !strings.HasPrefix(info.LastResult, "changing: ") {
		t.Errorf("info after a read during a write: %+v", info)
	}
	if _, err := w.check(false); err != nil {
		t.Fatal(err)
	}
	r = Result{}
	w.cur.Load().Lookup(netip.MustParseAddr("81.2.69.1"), &r)
	if r.CountryCode != "SE" {
		t.Errorf("finished file not loaded at the next check: %+v", r)
	}
}

func TestDatabasesLookupEach(t *testing.T) {
	country := mmdbtest.Country(t, map[string]string{"81.2.69.0/24": "GB"})
	asn := mmdbtest.ASN(t, map[string]mmdbtest.ASNRecord{"81.2.0.0/16": {Number: 20712, Org: "A&A"}})
	d := openDBsForTest(t, -1, country, asn)
	var got []string
	d.lookupEach(netip.MustParseAddr("::ffff:81.2.69.1"), func(path, kind string, r Result, err error) {
		got = append(got, fmt.Sprintf("%s %s %s %d %v", filepath.Base(path), kind, r.CountryCode, r.ASN, err))
	})
	want := "country.mmdb country GB 0 <nil>|asn.mmdb asn  20712 <nil>"
	if strings.Join(got, "|") != want {
		t.Errorf("LookupEach = %q, want %q", strings.Join(got, "|"), want)
	}
}

// TestIPListReplacedByRenameLoadsAtOnce: a list replaced by rename (a new
// file at the path, whole when it appears) is loaded at the first check
// that sees it, even while a rewrite in place of the old file was settling,
// and every time: on file systems that give a freed inode to the next new
// file (ext4), the replaced version is held open so that its inode is not
// taken for the old file's.
func TestIPListReplacedByRenameLoadsAtOnce(t *testing.T) {
	path, l := unwatchedList(t, "192.0.2.0/24\n")
	first, second := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.1")

	// Half of a rewrite in place: settling, the whole old list serves.
	if err := os.WriteFile(path, []byte("198.51.100.0/24\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := l.w.check(false); err != nil || !strings.HasPrefix(l.w.snapshot().LastResult, "settling: ") {
		t.Fatalf("rewrite in place: err = %v, %+v", err, l.w.snapshot())
	}
	if !l.Contains(first) || l.Contains(second) {
		t.Fatal("a list rewritten in place was loaded before it settled")
	}
	// Each good replacement follows a rejected one: the inode freed by the
	// rename of the rejected file over the loaded one is the one ext4 gives
	// to the next temporary file.
	for i := range 20 {
		want, other := first, second
		if i%2 == 0 {
			want, other = second, first
		}
		mmdbtest.WriteFile(t, path, []byte("not a list\n"))
		if _, err := l.w.check(false); err == nil {
			t.Fatalf("bad replacement %d by rename not rejected at the first check: %+v", i, l.w.snapshot())
		}
		mmdbtest.WriteFile(t, path, []byte(netip.PrefixFrom(want, 24).Masked().String()+"\n"))
		if _, err := l.w.check(false); err != nil {
			t.Fatal(err)
		}
		if !l.Contains(want) || l.Contains(other) {
			t.Fatalf("replacement %d by rename not loaded at the first check: %+v", i, l.w.snapshot())
		}
	}
	if info := l.w.snapshot(); info.Reloads != 20 || info.Failures != 20 || info.LastResult != "ok" {
		t.Errorf("after 20 bad and 20 good replacements by rename: %+v", info)
	}
}

// TestReloadForcedLoadsRewriteInPlace: a forced reload (POST
// /geofilter/reload) loads a file rewritten in place at once: the operator
// asked for it.
func TestReloadForcedLoadsRewriteInPlace(t *testing.T) {
	path, l := unwatchedList(t, "192.0.2.0/24\n")
	if err := os.WriteFile(path, []byte("198.51.100.0/24\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := l.w.check(false); err != nil || l.Contains(netip.MustParseAddr("198.51.100.1")) {
		t.Fatalf("rewrite in place loaded before it settled (err = %v)", err)
	}
	info, err := reloadDatabase(path)
	if err != nil || info.LastResult != "ok" || info.Reloads != 1 {
		t.Errorf("forced reload: %+v, %v", info, err)
	}
	if !l.Contains(netip.MustParseAddr("198.51.100.1")) || l.Contains(netip.MustParseAddr("192.0.2.1")) {
		t.Error("forced reload did not load the rewrite in place")
	}
	// Loaded: the next check finds it unchanged, nothing pending.
	if info, err := l.w.check(false); err != nil || info.LastResult != "unchanged" {
		t.Errorf("check after the forced reload: %+v, %v", info, err)
	}
}

// unwatchedList writes an IP list with content and opens it with no
// periodic check (tests call check themselves).
func unwatchedList(t *testing.T, content string) (string, *ipList) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "drop.netset")
	mmdbtest.WriteFile(t, path, []byte(content))
	l, err := openIPList(path, watchOptions{interval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.close() })
	return path, l
}
