// Package geoupdate keeps a database file current by downloading new
// versions in the background, as MaxMind's geoipupdate does, for users who
// run no cron job. It knows nothing of Caddy.
//
// Two sources are spoken:
//
//   - MaxMind's update service (GeoIP2 and GeoLite2 editions, with an
//     account ID and a license key): GET /geoip/updates/metadata?edition_id=E
//     tells the MD5 of the current release, which is compared with the MD5
//     of the file on disk; only when they differ is the release downloaded
//     (GET /geoip/databases/E/download?date=YYYYMMDD&suffix=tar.gz, which
//     redirects to the storage host), extracted from its .tar.gz, and
//     checked against that MD5. Both requests use HTTP basic
//     authentication, as geoipupdate does.
//   - A plain URL (DB-IP, IPinfo, ip-location-db, a mirror): a conditional
//     GET with If-None-Match (the ETag of the last download) or
//     If-Modified-Since (the file's modification time, which is set to the
//     download's Last-Modified); a 304 means the file is current. The body
//     may be a .mmdb, a gzip of one (.mmdb.gz) or a .tar.gz holding one.
//
// A download is bounded in size (compressed and uncompressed) and in time,
// and must pass the archive's own checks (gzip CRC, tar framing), the
// checksum where the source gives one, and Config.Verify (the open-and-probe
// of a reload) before it replaces the file, atomically: it is written to a
// temporary file in the same directory, synced, and renamed over the file.
// On any failure the file is left as it was.
package geoupdate

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5" //nolint:gosec // MaxMind's update protocol identifies releases by MD5
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Defaults of Config.
const (
	DefaultEndpoint = "https://updates.maxmind.com"
	DefaultInterval = 24 * time.Hour
	DefaultMaxSize  = 512 << 20 // bytes; GeoIP2-City is about 130 MB
	DefaultTimeout  = 10 * time.Minute
	// MinInterval is the shortest interval between attempts: update servers
	// limit how often a client may download.
	MinInterval = time.Minute
)

// Config describes one file to keep current. Either EditionID (with
// AccountID and LicenseKey) or URL must be set.
type Config struct {
	// Path of the database file.
	Path string

	// MaxMind edition, e.g. "GeoLite2-Country", and the account's
	// credentials.
	EditionID  string
	AccountID  string
	LicenseKey string
	// Endpoint is the base URL of MaxMind's update service. Default:
	// DefaultEndpoint.
	Endpoint string

	// URL is a direct download (https). Mutually exclusive with EditionID.
	URL string

	// Interval between attempts. Default: DefaultInterval. After a failed
	// attempt the next one comes after a quarter of it (at least
	// MinInterval), so that an outage is retried sooner.
	Interval time.Duration
	// MaxSize bounds the download, compressed and uncompressed, in bytes.
	// Default: DefaultMaxSize.
	MaxSize int64
	// Timeout bounds one attempt. Default: DefaultTimeout.
	Timeout time.Duration

	// Client makes the requests. Default: an http.Client with no timeout of
	// its own (Timeout bounds each attempt).
	Client *http.Client
	// UserAgent of the requests. Default: "caddy-edge-geoupdate".
	UserAgent string

	// Verify checks a downloaded database before it replaces the file (the
	// same open-and-probe as a reload); nil accepts any download that passed
	// the archive and checksum checks.
	Verify func(data []byte) error
	// OnReplaced is called after the file was replaced (e.g. to reload it
	// now rather than at the next check).
	OnReplaced func()
	// Observe is told the outcome of every attempt: "updated",
	// "not_modified" or "error" (for metrics).
	Observe func(result string)

	Logger *zap.Logger
}

// Status is the state of an updater, for the admin API.
type Status struct {
	// Source: the MaxMind edition or the URL (without its query, which may
	// hold a key).
	Source string `json:"source"`
	// When the last attempt started and ended.
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	// When the file was last found current or replaced.
	LastSuccess time.Time `json:"last_success,omitzero"`
	// When the file was last replaced by a download.
	LastUpdate time.Time `json:"last_update,omitzero"`
	// When the next attempt is due.
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// Outcome of the last attempt: "updated", "not_modified" or "error: ...".
	LastResult string `json:"last_result,omitempty"`
	// Replacements and failed attempts since the updater started.
	Updates  int64 `json:"updates"`
	Failures int64 `json:"failures"`
}

// Updater keeps one file current. Its methods are safe for concurrent use.
type Updater struct {
	cfg    Config
	logger *zap.Logger

	attempt sync.Mutex // serialises attempts

	mu     sync.Mutex // protects the fields below
	etag   string     // of the last download from URL
	status Status
}

// New checks cfg and returns its updater; Run starts it.
func New(cfg Config) (*Updater, error) {
	if cfg.Path == "" {
		return nil, errors.New("update: no file path")
	}
	switch {
	case cfg.EditionID != "" && cfg.URL != "":
		return nil, errors.New("update: a MaxMind edition and a URL are mutually exclusive")
	case cfg.EditionID != "":
		if cfg.AccountID == "" || cfg.LicenseKey == "" {
			return nil, fmt.Errorf("update of MaxMind edition %s: account_id and license_key are required", cfg.EditionID)
		}
		if strings.ContainsAny(cfg.EditionID, "/?#% ") {
			return nil, fmt.Errorf("update: bad MaxMind edition ID %q", cfg.EditionID)
		}
		if cfg.Endpoint == "" {
			cfg.Endpoint = DefaultEndpoint
		}
		u, err := parseHTTPURL(cfg.Endpoint)
		if err != nil {
			return nil, fmt.Errorf("update endpoint: %w", err)
		}
		if plainHTTP(u) {
			// The license key goes in every request's basic auth.
			return nil, fmt.Errorf("update endpoint %s: http would send the license key in clear; use https (http only to a loopback address)", redact(cfg.Endpoint))
		}
		cfg.Endpoint = strings.TrimRight(cfg.Endpoint, "/")
	case cfg.URL != "":
		u, err := parseHTTPURL(cfg.URL)
		if err != nil {
			return nil, fmt.Errorf("update_url: %w", err)
		}
		if plainHTTP(u) {
			// Nothing else vouches for a direct download (MaxMind's MD5
			// comes from the update service): over http, anyone on the
			// path could serve a database of their own, and read a token
			// in the query.
			return nil, fmt.Errorf("update_url %s: http lets anyone on the path replace the database (and read a token in the URL); use https (http only to a loopback address)", redact(cfg.URL))
		}
	default:
		return nil, errors.New("update: want a MaxMind edition (with account_id and license_key) or an update_url")
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Interval < MinInterval {
		return nil, fmt.Errorf("update interval %s: must be at least %s", cfg.Interval, MinInterval)
	}
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = DefaultMaxSize
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	// The credentials go to the update service only, never to the host it
	// redirects downloads to (Go's client keeps them on a redirect to the
	// same host).
	c := *cfg.Client
	check := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		req.Header.Del("Authorization")
		// Go's client sends the previous URL, query included, as the
		// Referer: a token in a download URL's query (IPinfo's ?token=)
		// would go to the host the download redirects to.
		req.Header.Del("Referer")
		// Nor may a redirect take the download to plain http: the
		// database would come unprotected from there.
		if plainHTTP(req.URL) {
			return fmt.Errorf("redirected to %s: http lets anyone on the path replace the database; use https (http only to a loopback address)", redact(req.URL.String()))
		}
		if check != nil {
			return check(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	cfg.Client = &c
	if cfg.UserAgent == "" {
		cfg.UserAgent = "caddy-edge-geoupdate"
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	u := &Updater{cfg: cfg, logger: cfg.Logger.With(zap.String("path", cfg.Path), zap.String("source", source(cfg)))}
	u.status.Source = source(cfg)
	return u, nil
}

func parseHTTPURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http(s) URL", redact(s))
	}
	return u, nil
}

// plainHTTP tells whether u is http to another machine than this one.
func plainHTTP(u *url.URL) bool {
	return u.Scheme == "http" && !isLoopback(u.Hostname())
}

// isLoopback tells whether host (a URL's, without port) is this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// source names where updates come from, without secrets.
func source(cfg Config) string {
	if cfg.EditionID != "" {
		return "maxmind:" + cfg.EditionID
	}
	return redact(cfg.URL)
}

// redact drops the query and user info of a URL (a license key may be in
// either).
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(bad URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// redactURLError returns err with the URL that a *url.Error quotes (the
// request's, or a redirect's) redacted: the error is logged and shown by the
// admin API, and the query may hold a key.
func redactURLError(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	return &url.Error{Op: ue.Op, URL: redact(ue.URL), Err: ue.Err}
}

// Status returns the state of the updater.
func (u *Updater) Status() Status {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.status
}

// Run attempts an update after first (0: at once), then every interval (a
// quarter of it after a failure), until ctx is done.
func (u *Updater) Run(ctx context.Context, first time.Duration) {
	u.mu.Lock()
	u.status.NextAttempt = time.Now().Add(first)
	u.mu.Unlock()
	timer := time.NewTimer(first)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		_, err := u.Check(ctx)
		if ctx.Err() != nil {
			return
		}
		next := u.cfg.Interval
		if err != nil {
			next = max(u.cfg.Interval/4, MinInterval)
		}
		u.mu.Lock()
		u.status.NextAttempt = time.Now().Add(next)
		u.mu.Unlock()
		timer.Reset(next)
	}
}

// Result is the outcome of one attempt.
type Result string

// The outcomes of an attempt that did not fail.
const (
	Updated     Result = "updated"      // the file was replaced
	NotModified Result = "not_modified" // the file is current
)

// Check makes one attempt now: it asks the source whether the file is
// current and, if not, downloads, checks and installs the new version. On
// error the file is left as it was.
func (u *Updater) Check(ctx context.Context) (Result, error) {
	u.attempt.Lock()
	defer u.attempt.Unlock()
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, u.cfg.Timeout)
	defer cancel()

	var (
		res Result
		err error
	)
	if u.cfg.EditionID != "" {
		res, err = u.checkMaxMind(ctx)
	} else {
		res, err = u.checkURL(ctx)
	}

	u.mu.Lock()
	u.status.LastAttempt = start
	if err != nil {
		u.status.Failures++
		u.status.LastResult = "error: " + err.Error()
	} else {
		u.status.LastSuccess = time.Now()
		u.status.LastResult = string(res)
		if res == Updated {
			u.status.Updates++
			u.status.LastUpdate = u.status.LastSuccess
		}
	}
	u.mu.Unlock()

	switch {
	case err != nil:
		u.logger.Error("database update failed; the current file is kept", zap.Duration("duration", time.Since(start)), zap.Error(err))
		u.observe("error")
	case res == Updated:
		u.logger.Info("database updated", zap.Duration("duration", time.Since(start)))
		u.observe(string(res))
		if u.cfg.OnReplaced != nil {
			u.cfg.OnReplaced()
		}
	default:
		u.logger.Debug("database is current", zap.Duration("duration", time.Since(start)))
		u.observe(string(res))
	}
	return res, err
}

func (u *Updater) observe(result string) {
	if u.cfg.Observe != nil {
		u.cfg.Observe(result)
	}
}

// newRequest makes a GET request with the updater's user agent.
func (u *Updater) newRequest(ctx context.Context, rawURL string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, http.NoBody)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", u.cfg.UserAgent)
	return req, nil
}

// checkMaxMind speaks MaxMind's update protocol.
func (u *Updater) checkMaxMind(ctx context.Context) (Result, error) {
	// 1. The metadata of the current release.
	q := url.Values{"edition_id": {u.cfg.EditionID}}
	req, err := u.newRequest(ctx, u.cfg.Endpoint+"/geoip/updates/metadata?"+q.Encode())
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(u.cfg.AccountID, u.cfg.LicenseKey)
	resp, err := u.cfg.Client.Do(req)
	if err != nil {
		return "", fmt.Errorf("metadata request: %w", redactURLError(err))
	}
	body, err := readBody(resp, 1<<20)
	if err != nil {
		return "", fmt.Errorf("metadata: %w", err)
	}
	var meta struct {
		Databases []struct {
			EditionID string `json:"edition_id"`
			MD5       string `json:"md5"`
			Date      string `json:"date"`
		} `json:"databases"`
	}
	if err := json.Unmarshal(body, &meta); err != nil {
		return "", fmt.Errorf("metadata: %w", err)
	}
	if len(meta.Databases) != 1 || meta.Databases[0].EditionID != u.cfg.EditionID {
		return "", fmt.Errorf("metadata does not describe edition %s", u.cfg.EditionID)
	}
	rel := meta.Databases[0]
	want, err := hex.DecodeString(rel.MD5)
	if err != nil || len(want) != md5.Size {
		return "", fmt.Errorf("metadata: bad md5 %q", rel.MD5)
	}
	date := strings.ReplaceAll(rel.Date, "-", "")
	if len(date) != 8 || strings.Trim(date, "0123456789") != "" {
		return "", fmt.Errorf("metadata: bad date %q", rel.Date)
	}

	// 2. Compare with the file on disk.
	if have, err := fileMD5(u.cfg.Path); err == nil && bytes.Equal(have, want) {
		return NotModified, nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}

	// 3. Download the release, extract it, check its MD5.
	q = url.Values{"date": {date}, "suffix": {"tar.gz"}}
	req, err = u.newRequest(ctx, u.cfg.Endpoint+"/geoip/databases/"+url.PathEscape(u.cfg.EditionID)+"/download?"+q.Encode())
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(u.cfg.AccountID, u.cfg.LicenseKey)
	resp, err = u.cfg.Client.Do(req)
	if err != nil {
		return "", fmt.Errorf("download request: %w", redactURLError(err))
	}
	lastMod := parseLastModified(resp)
	raw, err := readBody(resp, u.cfg.MaxSize)
	if err != nil {
		return "", fmt.Errorf("download: %w", err)
	}
	data, err := u.extract(raw)
	if err != nil {
		return "", fmt.Errorf("download: %w", err)
	}
	if sum := md5.Sum(data); !bytes.Equal(sum[:], want) { //nolint:gosec // the protocol's checksum
		return "", fmt.Errorf("download: MD5 %x does not match the release's %s", sum, rel.MD5)
	}
	if err := u.install(data, lastMod); err != nil {
		return "", err
	}
	return Updated, nil
}

// checkURL makes a conditional GET of a plain URL.
func (u *Updater) checkURL(ctx context.Context) (Result, error) {
	req, err := u.newRequest(ctx, u.cfg.URL)
	if err != nil {
		return "", err
	}
	u.mu.Lock()
	etag := u.etag
	u.mu.Unlock()
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	} else if fi, err := os.Stat(u.cfg.Path); err == nil {
		req.Header.Set("If-Modified-Since", fi.ModTime().UTC().Format(http.TimeFormat))
	}
	resp, err := u.cfg.Client.Do(req)
	if err != nil {
		return "", fmt.Errorf("request: %w", redactURLError(err))
	}
	if resp.StatusCode == http.StatusNotModified {
		_ = resp.Body.Close()
		if _, err := os.Stat(u.cfg.Path); err != nil {
			return "", fmt.Errorf("304 Not Modified, but the file is missing: %w", err)
		}
		return NotModified, nil
	}
	lastMod := parseLastModified(resp)
	newETag := resp.Header.Get("ETag")
	raw, err := readBody(resp, u.cfg.MaxSize)
	if err != nil {
		return "", err
	}
	data, err := u.extract(raw)
	if err != nil {
		return "", err
	}
	if err := u.install(data, lastMod); err != nil {
		return "", err
	}
	u.mu.Lock()
	u.etag = newETag
	u.mu.Unlock()
	return Updated, nil
}

// readBody reads a 200 response's body, at most limit bytes, and closes it.
// Any other status is an error that quotes the start of the body (MaxMind's
// errors explain themselves there: bad license key, unknown edition).
func readBody(resp *http.Response, limit int64) ([]byte, error) {
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		msg := strings.Join(strings.Fields(string(bytes.ToValidUTF8(b, nil))), " ")
		if msg != "" {
			msg = ": " + msg
		}
		return nil, fmt.Errorf("unexpected status %s%s", resp.Status, msg)
	}
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("%d bytes is more than the limit of %d bytes", resp.ContentLength, limit)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading body: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("body is more than the limit of %d bytes", limit)
	}
	return b, nil
}

// extract returns the database in a download: the body itself, or the
// content of a gzip of it, or the first .mmdb file of a (gzipped) tar.
// Each layer is bounded by MaxSize and must be whole (gzip's CRC and
// length, tar's framing).
func (u *Updater) extract(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, errors.New("empty body")
	}
	if len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		zr.Multistream(false)
		d, err := io.ReadAll(io.LimitReader(zr, u.cfg.MaxSize+1))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		if int64(len(d)) > u.cfg.MaxSize {
			return nil, fmt.Errorf("gzip: more than the limit of %d bytes uncompressed", u.cfg.MaxSize)
		}
		b = d
	}
	if isTar(b) {
		tr := tar.NewReader(bytes.NewReader(b))
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				return nil, errors.New("tar archive holds no .mmdb file")
			}
			if err != nil {
				return nil, fmt.Errorf("tar: %w", err)
			}
			if h.Typeflag != tar.TypeReg || !strings.HasSuffix(h.Name, ".mmdb") {
				continue
			}
			if h.Size > u.cfg.MaxSize {
				return nil, fmt.Errorf("tar: %s is more than the limit of %d bytes", h.Name, u.cfg.MaxSize)
			}
			d, err := io.ReadAll(tr)
			if err != nil {
				return nil, fmt.Errorf("tar: %s: %w", h.Name, err)
			}
			return d, nil
		}
	}
	return b, nil
}

// isTar reports whether b starts with a POSIX (ustar) tar header.
func isTar(b []byte) bool {
	return len(b) >= 512 && bytes.HasPrefix(b[257:], []byte("ustar"))
}

// install checks data with Verify and replaces the file with it atomically:
// a temporary file in the same directory, synced, then renamed. The file
// keeps its mode (0644 for a new file); its modification time is set to
// lastMod when the server gave one, for If-Modified-Since.
func (u *Updater) install(data []byte, lastMod time.Time) error {
	if u.cfg.Verify != nil {
		if err := u.cfg.Verify(data); err != nil {
			return fmt.Errorf("downloaded database refused: %w", err)
		}
	}
	dir, base := filepath.Split(u.cfg.Path)
	if dir == "" {
		dir = "."
	}
	mode := fs.FileMode(0o644)
	if fi, err := os.Stat(u.cfg.Path); err == nil {
		mode = fi.Mode().Perm()
	}
	tmp, err := os.CreateTemp(dir, "."+base+".*.download")
	if err != nil {
		return fmt.Errorf("installing: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("installing: %w", err)
	}
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("installing: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("installing: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("installing: %w", err)
	}
	if !lastMod.IsZero() {
		_ = os.Chtimes(tmp.Name(), lastMod, lastMod)
	}
	if err := os.Rename(tmp.Name(), u.cfg.Path); err != nil {
		return fmt.Errorf("installing: %w", err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil { // make the rename durable
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

func parseLastModified(resp *http.Response) time.Time {
	t, err := http.ParseTime(resp.Header.Get("Last-Modified"))
	if err != nil || t.After(time.Now().Add(time.Hour)) {
		return time.Time{}
	}
	return t
}

// fileMD5 returns the MD5 of the file at path.
func fileMD5(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := md5.New() //nolint:gosec // the protocol's checksum
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}
