package disk

import (
	"encoding/hex"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-edge/edge/cache/store/internal/unixtime"
)

// load rebuilds the index from the entry files, then evicts what exceeds
// the budget and marks the index ready. Files that fail their checks, are
// misplaced or expired are removed. Bodies are not read: small ones are
// verified when served, large ones by the scrub.
func (c *Cache) load() {
	defer c.wg.Done()
	start := time.Now()
	var loaded, removed int
	subs, err := os.ReadDir(c.dir)
	if err != nil {
		c.logger.Error("disk store: reading the cache directory", zap.String("dir", c.dir), zap.Error(err))
	}
	for _, sd := range subs {
		b, err := hex.DecodeString(sd.Name())
		if !sd.IsDir() || err != nil || len(b) != 1 || hex.EncodeToString(b) != sd.Name() {
			continue // lock, tmp, or not ours (such as "AB": Cache.path says "ab")
		}
		c.subdirs[b[0]].Store(true)
		dir := filepath.Join(c.dir, sd.Name())
		files, err := os.ReadDir(dir)
		if err != nil {
			c.readFailed(err)
			continue
		}
		for _, fe := range files {
			if c.ctx.Err() != nil {
				return // closed before the end: the index is never ready
			}
			switch c.loadFile(b[0], filepath.Join(dir, fe.Name()), fe.Name()) {
			case nil:
				loaded++
			default:
				removed++
			}
		}
	}
	c.mu.Lock()
	c.loading = false
	c.tomb, c.purgedGroups = nil, nil
	c.evictLocked()
	entries, bytes := len(c.index), c.bytes
	c.mu.Unlock()
	close(c.ready)
	c.logger.Info("disk store index ready",
		zap.String("dir", c.dir),
		zap.Int("entries", entries),
		zap.Int64("bytes", bytes),
		zap.Int("files_removed", removed),
		zap.Duration("took", time.Since(start)))
}

// errSkip reports a file removed or left alone by the loader.
var errSkip = errors.New("skipped")

// loadFile indexes one entry file, unless the index already has its key
// (written since the start) or the key was deleted since, or its group
// purged (then the file is removed).
func (c *Cache) loadFile(sub byte, path, file string) error {
	f, err := openRead(path)
	if err != nil {
		return errSkip
	}
	defer f.Close()
	buf, p, _, err := readPrefix(f, 4096, nil)
	if err == nil {
		need := prefixLen + int64(p.headerLen)
		if int64(len(buf)) < need {
			more := make([]byte, need)
			if _, rerr := io.ReadFull(io.NewSectionReader(f, 0, need), more); rerr != nil {
				err = errCorrupt
			}
			buf = more
		}
		if err == nil {
			buf = buf[prefixLen:need]
			var fi os.FileInfo
			if fi, err = f.Stat(); err == nil && fi.Size() != p.fileSize() {
				err = errCorrupt
			}
		}
	}
	if err == nil && crc32.Checksum(buf, castagnoli) != p.headerCRC {
		err = errCorrupt
	}
	var key string
	var ie *ient
	if err == nil {
		var k string
		k, e, derr := decodeHeader(buf, false)
		if derr != nil {
			err = derr
		} else if s, n := name(k); s != int(sub) || n != file {
			err = errCorrupt // not where its key puts it
		} else {
			key = k
			ie = &ient{fileSize: p.fileSize(), bodyLen: p.bodyLen, expires: unixtime.Nano(e.Expires), tags: e.Tags}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	purged := err == nil && c.index[key] == nil && c.groupPurgedLocked(key)
	if _, deleted := c.tomb[key]; err != nil || deleted || purged || c.index[key] != nil || c.expiredAt(ie.expires) {
		if err != nil {
			c.errors.Add(1)
		}
		if (err != nil || purged || c.expiredAt(ie.expires)) && same(path, f) {
			os.Remove(path)
		}
		return errSkip
	}
	if !same(path, f) {
		return errSkip // replaced meanwhile: the new file is indexed by its writer
	}
	c.addLocked(key, ie)
	return nil
}

// maintain removes expired entries and scrubs large bodies, every
// maintenanceInterval, until Close.
func (c *Cache) maintain() {
	defer c.wg.Done()
	select {
	case <-c.ready:
	case <-c.ctx.Done():
		return
	}
	t := time.NewTicker(maintenanceInterval)
	defer t.Stop()
	for {
		c.removeExpired()
		if c.cfg.ScrubRate > 0 {
			c.scrub()
		}
		select {
		case <-t.C:
		case <-c.ctx.Done():
			return
		}
	}
}

// removeExpired removes the entries past their Expires.
func (c *Cache) removeExpired() {
	c.mu.RLock()
	var keys []string
	for k, ie := range c.index {
		if c.expiredAt(ie.expires) {
			keys = append(keys, k)
		}
	}
	c.mu.RUnlock()
	for _, k := range keys {
		c.mu.Lock()
		if ie := c.index[k]; ie != nil && c.expiredAt(ie.expires) {
			c.deleteLocked(k)
		}
		c.mu.Unlock()
	}
}

// scrub verifies the bodies that may be sent from their file (larger than
// inlineMax) and were not verified in the last scrubInterval, at most ScrubRate bytes per second, and
// removes those that fail. A large body is thus verified within
// scrubInterval plus one pass (at most the bytes of such bodies divided
// by ScrubRate) of being written, loaded or last verified.
func (c *Cache) scrub() {
	due := time.Now().Add(-scrubInterval).UnixNano()
	c.mu.RLock()
	var keys []string
	for k, ie := range c.index {
		if ie.bodyLen > inlineMax && ie.scrubbed < due {
			keys = append(keys, k)
		}
	}
	c.mu.RUnlock()
	for _, k := range keys {
		if c.ctx.Err() != nil {
			return
		}
		c.scrubOne(k)
	}
}

// scrubOne verifies the body of the entry under key.
func (c *Cache) scrubOne(key string) {
	path := c.path(key)
	f, err := openRead(path)
	if err != nil {
		return
	}
	defer f.Close()
	_, p, _, err := readPrefix(f, prefixLen, nil)
	if err == nil {
		err = c.verifyBody(f, &p)
	}
	if errors.Is(err, errCorrupt) {
		c.corrupt(key, f, err)
		return
	}
	if err != nil {
		return
	}
	c.mu.Lock()
	if ie := c.index[key]; ie != nil && same(path, f) {
		ie.scrubbed = time.Now().UnixNano()
	}
	c.mu.Unlock()
}

// verifyBody reads the body of f in 1 MiB steps, pausing so as to stay
// within ScrubRate, and checks its CRC.
func (c *Cache) verifyBody(f *os.File, p *prefix) error {
	const step = 1 << 20
	buf := make([]byte, step)
	off, end := prefixLen+int64(p.headerLen), p.fileSize()
	var crc uint32
	for off < end {
		t0 := time.Now()
		n, err := f.ReadAt(buf[:min(step, end-off)], off)
		crc = crc32.Update(crc, castagnoli, buf[:n])
		off += int64(n)
		if err != nil {
			if err == io.EOF {
				return errCorrupt
			}
			return err
		}
		pause := time.Duration(float64(n)/float64(c.cfg.ScrubRate)*float64(time.Second)) - time.Since(t0)
		if pause > 0 {
			select {
			case <-time.After(pause):
			case <-c.ctx.Done():
				return c.ctx.Err()
			}
		}
	}
	if crc != p.bodyCRC {
		return errCorrupt
	}
	return nil
}
