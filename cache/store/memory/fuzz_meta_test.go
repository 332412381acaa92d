package memory

import (
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache/store"
	"github.com/caddy-edge/edge/cache/store/storetest"
)

// FuzzDecodeMeta: any bytes as an entry's metadata, with any body size,
// decode to an entry or fail, never panic; what decodes encodes again to
// the same entry.
func FuzzDecodeMeta(f *testing.F) {
	now := time.Unix(1700000000, 5)
	f.Add(encodeMeta(originEntry(), nil), int64(1024))
	f.Add(encodeMeta(&store.Entry{
		Status: 304, SoftPurged: true, RequestTime: now, ResponseTime: now,
		Expires: now.Add(-time.Second), Size: -1,
		Tags:   []string{"a", "b"},
		Header: store.Fields{"Vary", "A", "Vary", "B", "X-Other", "1", "Date", "Tue, 14 Nov 2023 22:13:20 GMT"},
	}, nil), int64(0))
	f.Add("", int64(-1))
	// A table that numbers one value, as 0.
	table := newValueTable(DefaultMaxSize)
	shared := &store.Entry{Status: 200, Size: -1, Header: store.Fields{"Content-Type", "text/plain"}}
	encodeMeta(shared, table)
	f.Add(encodeMeta(shared, table), int64(-1))
	f.Fuzz(func(t *testing.T, meta string, size int64) {
		e, ok := decodeMeta(meta, size, table)
		if !ok {
			return
		}
		if len(e.Header)%2 != 0 {
			t.Fatalf("decoded an odd number of field strings: %q", e.Header)
		}
		e.Size = size
		again, ok := decodeMeta(encodeMeta(e, table), size, table)
		if !ok {
			t.Fatal("a decoded entry did not decode once encoded again")
		}
		again.Size = size
		storetest.CheckEntry(t, again, e)
		if again.SoftPurged != e.SoftPurged {
			t.Error("SoftPurged changed")
		}
	})
}
