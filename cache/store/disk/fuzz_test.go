package disk

import (
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache/store/storetest"
)

// FuzzDecodeHeader: any bytes as an entry file's metadata (a file may be
// damaged or written by someone else) decode or fail, never panic; what
// decodes encodes again to the same key and entry.
func FuzzDecodeHeader(f *testing.F) {
	f.Add(encodeHeader(nil, "https://example.com/a", entry(time.Unix(1700000000, 5))), true)
	f.Add(encodeHeader(nil, "k", entry(time.Unix(1700000000, 5))), false)
	f.Add([]byte{}, true)
	f.Fuzz(func(t *testing.T, b []byte, full bool) {
		key, e, err := decodeHeader(b, full)
		if err != nil {
			return
		}
		if e.Status > 999 || len(e.Header)%2 != 0 {
			t.Fatalf("decoded status %d, %d field strings", e.Status, len(e.Header))
		}
		key2, again, err := decodeHeader(encodeHeader(nil, key, e), full)
		if err != nil || key2 != key {
			t.Fatalf("encoded again: key %q, %v; want %q", key2, err, key)
		}
		storetest.CheckEntry(t, again, e)
	})
}
