package redis

import (
	"bytes"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache/store/storetest"
)

// FuzzDecodeMeta: any bytes as a meta value (Redis is shared, and others
// may write to it) decode or fail, never panic; what decodes encodes again
// to the same value.
func FuzzDecodeMeta(f *testing.F) {
	e := entry(time.Hour)
	e.Size = 4
	f.Add(encodeMeta("key", 7, 0, e, []byte("body")))
	e.Size = 1 << 20
	f.Add(encodeMeta("key", 7, 4, e, nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		if len(m.entry.Header)%2 != 0 || m.entry.Size < 0 {
			t.Fatalf("decoded %d field strings, size %d", len(m.entry.Header), m.entry.Size)
		}
		again, err := decodeMeta(encodeMeta(m.key, m.gen, m.chunks, m.entry, m.inline))
		if err != nil || again.key != m.key || again.gen != m.gen || again.chunks != m.chunks || !bytes.Equal(again.inline, m.inline) {
			t.Fatalf("encoded again: %+v, %v; want %+v", again, err, m)
		}
		storetest.CheckEntry(t, again.entry, m.entry)
		if again.entry.SoftPurged != m.entry.SoftPurged {
			t.Error("SoftPurged changed")
		}
	})
}
