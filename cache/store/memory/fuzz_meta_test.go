package memory

import (
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache/store"
	"github.com/caddy-edge/edge/cache/store/storetest"
)

// FuzzDecodeMeta: any bytes as an entry's metadata decode to an entry or
// fail, never panic; what decodes encodes again to the same entry.
func FuzzDecodeMeta(f *testing.F) {
	now := time.Unix(1700000000, 5)
	f.Add(encodeMeta(originEntry()))
	f.Add(encodeMeta(&store.Entry{
		Status: 304, SoftPurged: true, RequestTime: now, ResponseTime: now,
		Tags:   []string{"a", "b"},
		Header: store.Fields{"Vary", "A", "Vary", "B", "X-Other", "1"},
	}))
	f.Add("")
	f.Fuzz(func(t *testing.T, meta string) {
		e, ok := decodeMeta(meta)
		if !ok {
			return
		}
		if len(e.Header)%2 != 0 {
			t.Fatalf("decoded an odd number of field strings: %q", e.Header)
		}
		again, ok := decodeMeta(encodeMeta(e))
		if !ok {
			t.Fatal("a decoded entry did not decode once encoded again")
		}
		storetest.CheckEntry(t, again, e)
		if again.SoftPurged != e.SoftPurged {
			t.Error("SoftPurged changed")
		}
	})
}
