package geoupdate_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5" //nolint:gosec // the protocol's checksum
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-edge/edge/geofilter/geodb"
	"github.com/caddy-edge/edge/geofilter/geoupdate"
	"github.com/caddy-edge/edge/internal/mmdbtest"
)

// fakeMaxMind speaks MaxMind's update protocol (metadata, then a download
// that redirects to a storage path serving a .tar.gz), and fails as told.
type fakeMaxMind struct {
	mu        sync.Mutex
	edition   string
	release   []byte // the .mmdb of the current release
	date      string // YYYY-MM-DD
	fault     string // "", "500", "401", "truncated", "garbage", "badmd5", "slow", "notar", "nommdb"
	downloads atomic.Int32
	metadata  atomic.Int32
}

func (f *fakeMaxMind) set(release []byte, date, fault string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.release, f.date, f.fault = release, date, fault
}

func tarGz(t testing.TB, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, name := range []string{"COPYRIGHT.txt", "LICENSE.txt", "GeoLite2-Country.mmdb", "db.mmdb"} {
		b, ok := files[name]
		if !ok {
			continue
		}
		dir := "GeoLite2-Country_20260102/"
		if err := tw.WriteHeader(&tar.Header{Name: dir + name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (f *fakeMaxMind) server(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	auth := func(w http.ResponseWriter, r *http.Request) bool {
		user, pass, ok := r.BasicAuth()
		if !ok || user != "42" || pass != "secret-key" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"code":"INVALID_LICENSE_KEY","error":"Your license key is invalid."}`)
			return false
		}
		return true
	}
	mux.HandleFunc("GET /geoip/updates/metadata", func(w http.ResponseWriter, r *http.Request) {
		f.metadata.Add(1)
		f.mu.Lock()
		rel, date, fault := f.release, f.date, f.fault
		f.mu.Unlock()
		if fault == "401" || !auth(w, r) {
			if fault == "401" {
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprint(w, `{"error":"Your license key is invalid."}`)
			}
			return
		}
		if fault == "500" {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		if r.URL.Query().Get("edition_id") != f.edition {
			http.Error(w, `{"error":"unknown edition"}`, http.StatusBadRequest)
			return
		}
		sum := md5.Sum(rel) //nolint:gosec
		if fault == "badmd5" {
			sum[0] ^= 0xff
		}
		fmt.Fprintf(w, `{"databases":[{"edition_id":%q,"md5":%q,"date":%q}]}`, f.edition, hex.EncodeToString(sum[:]), date)
	})
	mux.HandleFunc("GET /geoip/databases/{edition}/download", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		date := f.date
		f.mu.Unlock()
		if !auth(w, r) {
			return
		}
		if r.PathValue("edition") != f.edition || r.URL.Query().Get("date") != strings.ReplaceAll(date, "-", "") || r.URL.Query().Get("suffix") != "tar.gz" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		// As MaxMind does: a redirect to a presigned storage URL.
		http.Redirect(w, r, "/storage/"+f.edition+".tar.gz?sig=x", http.StatusFound)
	})
	mux.HandleFunc("GET /storage/", func(w http.ResponseWriter, r *http.Request) {
		f.downloads.Add(1)
		if r.Header.Get("Authorization") != "" {
			http.Error(w, "credentials sent to storage", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		rel, fault := f.release, f.fault
		f.mu.Unlock()
		body := tarGz(t, map[string][]byte{"COPYRIGHT.txt": []byte("(c)"), "LICENSE.txt": []byte("license"), "GeoLite2-Country.mmdb": rel})
		switch fault {
		case "garbage":
			body = bytes.Repeat([]byte("garbage!"), 1000)
		case "nommdb":
			body = tarGz(t, map[string][]byte{"LICENSE.txt": []byte("license")})
		case "slow":
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(body[:10])
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		case "truncated":
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			_, _ = w.Write(body[:len(body)/2])
			return // the server closes the connection short of Content-Length
		case "storage500":
			http.Error(w, "storage error", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Last-Modified", "Fri, 02 Jan 2026 03:04:05 GMT")
		_, _ = w.Write(body)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func verify(data []byte) error {
	db, err := geodb.OpenBytes(data, nil)
	if err != nil {
		return err
	}
	return db.Close()
}

func newUpdater(t *testing.T, cfg geoupdate.Config) *geoupdate.Updater {
	t.Helper()
	if cfg.Verify == nil {
		cfg.Verify = verify
	}
	u, err := geoupdate.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// onlyFile checks that dir holds the database and nothing else (no
// temporary file left behind), with the given content.
func onlyFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: %d bytes, not the %d expected", path, len(got), len(want))
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want only %s", names, filepath.Base(path))
	}
}

func TestMaxMindProtocol(t *testing.T) {
	v1 := mmdbtest.BuildCountry(map[string]string{"81.2.69.0/24": "GB"})
	v2 := mmdbtest.BuildCountry(map[string]string{"81.2.69.0/24": "GB", "89.160.20.0/24": "SE"})
	f := &fakeMaxMind{edition: "GeoLite2-Country"}
	f.set(v1, "2026-01-02", "")
	srv := f.server(t)
	path := filepath.Join(t.TempDir(), "GeoLite2-Country.mmdb")
	var replaced, observed atomic.Int32
	u := newUpdater(t, geoupdate.Config{
		Path: path, EditionID: "GeoLite2-Country", AccountID: "42", LicenseKey: "secret-key", Endpoint: srv.URL,
		OnReplaced: func() { replaced.Add(1) }, Observe: func(string) { observed.Add(1) },
	})
	ctx := context.Background()

	// No file yet: the release is downloaded.
	if res, err := u.Check(ctx); err != nil || res != geoupdate.Updated {
		t.Fatalf("first check: %v, %v", res, err)
	}
	onlyFile(t, path, v1)
	if fi, _ := os.Stat(path); !fi.ModTime().Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("mtime %v, want the download's Last-Modified", fi.ModTime())
	}
	// The file's MD5 is the release's: no download.
	if res, err := u.Check(ctx); err != nil || res != geoupdate.NotModified {
		t.Fatalf("second check: %v, %v", res, err)
	}
	if n := f.downloads.Load(); n != 1 {
		t.Errorf("%d downloads, want 1 (the second check must only ask for the metadata)", n)
	}
	// A new release.
	f.set(v2, "2026-01-09", "")
	if res, err := u.Check(ctx); err != nil || res != geoupdate.Updated {
		t.Fatalf("new release: %v, %v", res, err)
	}
	onlyFile(t, path, v2)
	st := u.Status()
	if st.Updates != 2 || st.Failures != 0 || st.LastResult != "updated" || st.Source != "maxmind:GeoLite2-Country" || replaced.Load() != 2 || observed.Load() != 3 {
		t.Errorf("status %+v, replaced %d, observed %d", st, replaced.Load(), observed.Load())
	}
}

// TestMaxMindFailures: each way a real update server can fail leaves the
// last good file in place, untouched, with no temporary file behind.
func TestMaxMindFailures(t *testing.T) {
	good := mmdbtest.BuildCountry(map[string]string{"81.2.69.0/24": "GB"})
	next := mmdbtest.BuildCountry(map[string]string{"81.2.69.0/24": "FR"})
	for _, tt := range []struct {
		fault   string
		release []byte
		want    string
	}{
		{"500", next, "unexpected status 500"},
		{"401", next, `401 Unauthorized: {"error":"Your license key is invalid."}`},
		{"storage500", next, "unexpected status 500"},
		{"truncated", next, "unexpected EOF"},
		{"garbage", next, "MD5"},
		{"badmd5", next, "does not match the release's"},
		{"nommdb", next, "tar archive holds no .mmdb file"},
		{"slow", next, "context deadline exceeded"},
		// A well-formed archive whose database is corrupt (its MD5 is right).
		{"", mmdbtest.CorruptBytes(), "downloaded database refused: not a valid MaxMind DB"},
	} {
		t.Run(tt.fault+fmt.Sprint(len(tt.release)), func(t *testing.T) {
			f := &fakeMaxMind{edition: "GeoLite2-Country"}
			f.set(tt.release, "2026-01-09", tt.fault)
			srv := f.server(t)
			path := filepath.Join(t.TempDir(), "GeoLite2-Country.mmdb")
			if err := os.WriteFile(path, good, 0o640); err != nil {
				t.Fatal(err)
			}
			// Only the slow server needs the timeout; on a loaded machine
			// the others would meet it before their own failure.
			timeout := 30 * time.Second
			if tt.fault == "slow" {
				timeout = 500 * time.Millisecond
			}
			u := newUpdater(t, geoupdate.Config{
				Path: path, EditionID: "GeoLite2-Country", AccountID: "42", LicenseKey: "secret-key",
				Endpoint: srv.URL, Timeout: timeout,
			})
			res, err := u.Check(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check = %v, %v; want an error with %q", res, err, tt.want)
			}
			if strings.Contains(err.Error(), "secret-key") {
				t.Errorf("the license key is in the error: %v", err)
			}
			onlyFile(t, path, good)
			if st := u.Status(); st.Failures != 1 || !strings.HasPrefix(st.LastResult, "error: ") || st.Updates != 0 {
				t.Errorf("status %+v", st)
			}
		})
	}
}

// fakeURL serves a database at a plain URL with ETag and Last-Modified
// validators, as a CDN does, in three forms.
type fakeURL struct {
	mu       sync.Mutex
	db       []byte
	etag     string
	modified time.Time
	fault    string
	gets     atomic.Int32
	notMod   atomic.Int32
}

func (f *fakeURL) server(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.gets.Add(1)
		f.mu.Lock()
		db, etag, mod, fault := f.db, f.etag, f.modified, f.fault
		f.mu.Unlock()
		switch fault {
		case "500":
			http.Error(w, "oops", http.StatusInternalServerError)
			return
		case "garbage":
			_, _ = w.Write([]byte(strings.Repeat("<html>not found</html>", 50)))
			return
		}
		if inm := r.Header.Get("If-None-Match"); inm != "" && inm == etag {
			f.notMod.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if ims, err := http.ParseTime(r.Header.Get("If-Modified-Since")); err == nil && r.Header.Get("If-None-Match") == "" && !mod.After(ims) {
			f.notMod.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		body := db
		switch {
		case strings.HasSuffix(r.URL.Path, ".tar.gz"):
			body = tarGz(t, map[string][]byte{"LICENSE.txt": []byte("CC BY 4.0"), "db.mmdb": db})
		case strings.HasSuffix(r.URL.Path, ".gz"):
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			_, _ = zw.Write(db)
			_ = zw.Close()
			body = buf.Bytes()
			if fault == "truncated gzip" {
				body = body[:len(body)-6]
			}
		}
		w.Header().Set("ETag", etag)
		w.Header().Set("Last-Modified", mod.UTC().Format(http.TimeFormat))
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestPlainURL(t *testing.T) {
	v1 := mmdbtest.IPLocationDBCountry(map[string]string{"81.2.69.0/24": "GB"}, 4)
	v2 := mmdbtest.IPLocationDBCountry(map[string]string{"81.2.69.0/24": "GB", "89.160.20.0/24": "SE"}, 4)
	for _, name := range []string{"country.mmdb", "country.mmdb.gz", "country.tar.gz"} {
		t.Run(name, func(t *testing.T) {
			f := &fakeURL{db: v1, etag: `"v1"`, modified: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
			srv := f.server(t)
			path := filepath.Join(t.TempDir(), "country.mmdb")
			u := newUpdater(t, geoupdate.Config{Path: path, URL: srv.URL + "/" + name + "?token=secret"})
			ctx := context.Background()
			if res, err := u.Check(ctx); err != nil || res != geoupdate.Updated {
				t.Fatalf("first: %v %v", res, err)
			}
			onlyFile(t, path, v1)
			// ETag known: If-None-Match, 304.
			if res, err := u.Check(ctx); err != nil || res != geoupdate.NotModified {
				t.Fatalf("second: %v %v", res, err)
			}
			// A new updater (a restart) knows no ETag: If-Modified-Since
			// from the file's time, which is the download's Last-Modified.
			u2 := newUpdater(t, geoupdate.Config{Path: path, URL: srv.URL + "/" + name})
			if res, err := u2.Check(ctx); err != nil || res != geoupdate.NotModified {
				t.Fatalf("after restart: %v %v", res, err)
			}
			if f.notMod.Load() != 2 {
				t.Errorf("%d 304s, want 2", f.notMod.Load())
			}
			// A new version.
			f.mu.Lock()
			f.db, f.etag, f.modified = v2, `"v2"`, f.modified.Add(24*time.Hour)
			f.mu.Unlock()
			if res, err := u.Check(ctx); err != nil || res != geoupdate.Updated {
				t.Fatalf("new version: %v %v", res, err)
			}
			onlyFile(t, path, v2)
			if st := u.Status(); strings.Contains(st.Source, "secret") {
				t.Errorf("source %q shows the query", st.Source)
			}
		})
	}
}

func TestPlainURLFailures(t *testing.T) {
	good := mmdbtest.IPLocationDBCountry(map[string]string{"81.2.69.0/24": "GB"}, 4)
	big := mmdbtest.IPLocationDBCountry(map[string]string{"81.2.69.0/24": "GB", "10.0.0.0/8": "DE"}, 4)
	for _, tt := range []struct {
		name, fault, file string
		maxSize           int64
		want              string
	}{
		{"500", "500", "db.mmdb", 0, "unexpected status 500"},
		{"garbage", "garbage", "db.mmdb", 0, "downloaded database refused"},
		{"truncated gzip", "truncated gzip", "db.mmdb.gz", 0, "gzip: unexpected EOF"},
		{"too large", "", "db.mmdb", 100, "more than the limit of 100 bytes"},
		{"too large uncompressed", "", "db.mmdb.gz", 300, "more than the limit of 300 bytes uncompressed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeURL{db: big, etag: `"x"`, modified: time.Now().Add(time.Hour), fault: tt.fault}
			srv := f.server(t)
			path := filepath.Join(t.TempDir(), "db.mmdb")
			if err := os.WriteFile(path, good, 0o644); err != nil {
				t.Fatal(err)
			}
			u := newUpdater(t, geoupdate.Config{Path: path, URL: srv.URL + "/" + tt.file, MaxSize: tt.maxSize})
			if _, err := u.Check(context.Background()); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			onlyFile(t, path, good)
		})
	}
}

// TestRunStops: the background loop makes its first attempt at once and
// returns when its context ends.
func TestRunStops(t *testing.T) {
	f := &fakeURL{db: mmdbtest.IPLocationDBCountry(map[string]string{"81.2.69.0/24": "GB"}, 4), etag: `"1"`, modified: time.Now()}
	srv := f.server(t)
	path := filepath.Join(t.TempDir(), "db.mmdb")
	replaced := make(chan struct{}, 1)
	u := newUpdater(t, geoupdate.Config{Path: path, URL: srv.URL + "/db.mmdb", Interval: time.Hour,
		OnReplaced: func() { replaced <- struct{}{} }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { u.Run(ctx, 0); close(done) }()
	<-replaced
	cancel()
	<-done
	if st := u.Status(); st.Updates != 1 || st.NextAttempt.IsZero() {
		t.Errorf("status %+v", st)
	}
}

func TestNewErrors(t *testing.T) {
	for _, tt := range []struct {
		cfg  geoupdate.Config
		want string
	}{
		{geoupdate.Config{Path: "x.mmdb", EditionID: "GeoLite2-Country"}, "account_id and license_key are required"},
		{geoupdate.Config{Path: "x.mmdb", EditionID: "GeoLite2-Country", AccountID: "1", LicenseKey: "k", URL: "https://a/b"}, "mutually exclusive"},
		{geoupdate.Config{Path: "x.mmdb", URL: "ftp://a/b"}, "not an http(s) URL"},
		// The license key goes in basic auth: never in clear past this machine.
		{geoupdate.Config{Path: "x.mmdb", EditionID: "GeoLite2-Country", AccountID: "1", LicenseKey: "k", Endpoint: "http://updates.example.com"}, "would send the license key in clear"},
		{geoupdate.Config{Path: "x.mmdb", URL: "https://a/b", Interval: time.Second}, "at least 1m0s"},
		{geoupdate.Config{Path: "x.mmdb"}, "want a MaxMind edition"},
		{geoupdate.Config{URL: "https://a/b"}, "no file path"},
	} {
		if _, err := geoupdate.New(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want %q", tt.cfg, err, tt.want)
		}
	}
	// A mirror on this machine may speak http.
	for _, ep := range []string{"http://127.0.0.1:8080", "http://localhost/", "http://[::1]:9000"} {
		cfg := geoupdate.Config{Path: "x.mmdb", EditionID: "GeoLite2-Country", AccountID: "1", LicenseKey: "k", Endpoint: ep}
		if _, err := geoupdate.New(cfg); err != nil {
			t.Errorf("endpoint %s: %v", ep, err)
		}
	}
}
