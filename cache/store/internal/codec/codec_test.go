package codec

import (
	"encoding/binary"
	"math"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/caddy-edge/edge/cache/store"
)

func encoded() []byte {
	f := store.Fields{"Cache-Control", "max-age=60", "Set-Thing", "a", "Set-Thing", "b"}
	b := AppendString(nil, "key")
	b = AppendTime(b, time.Unix(1700000000, 123).UTC())
	b = AppendTime(b, time.Time{})
	b = AppendStrings(b, []string{"t1", "t2"})
	b = AppendStrings(b, nil)
	return AppendFields(b, f)
}

func check(t *testing.T, d *Decoder) {
	t.Helper()
	if got := d.String(); got != "key" {
		t.Errorf("String = %q", got)
	}
	if got := d.Time(); !got.Equal(time.Unix(1700000000, 123)) {
		t.Errorf("Time = %v", got)
	}
	if got := d.Time(); !got.IsZero() {
		t.Errorf("zero Time = %v", got)
	}
	if got := d.Strings(); !slices.Equal(got, []string{"t1", "t2"}) {
		t.Errorf("Strings = %q", got)
	}
	if got := d.Strings(); got != nil {
		t.Errorf("no Strings = %q", got)
	}
	f := d.Fields()
	if want := (store.Fields{"Cache-Control", "max-age=60", "Set-Thing", "a", "Set-Thing", "b"}); !slices.Equal(f, want) {
		t.Errorf("Fields = %q, want %q", f, want)
	}
	if cap(f) != len(f) {
		t.Errorf("Fields not capped: len %d cap %d", len(f), cap(f))
	}
	if d.Failed() || len(d.Rest()) != 0 {
		t.Errorf("Failed %v, rest %d bytes", d.Failed(), len(d.Rest()))
	}
}

func TestRoundTrip(t *testing.T) {
	b := encoded()
	check(t, NewDecoder(b))
	check(t, NewStringDecoder(string(b)))
}

// Every truncation of a valid encoding fails instead of reading past the
// end or returning garbage as valid.
func TestTruncatedFails(t *testing.T) {
	b := encoded()
	for n := range len(b) {
		for _, d := range []*Decoder{NewDecoder(b[:n]), NewStringDecoder(string(b[:n]))} {
			_ = d.String()
			d.Time()
			d.Time()
			d.Strings()
			d.Strings()
			d.Fields()
			if !d.Failed() {
				t.Fatalf("%d of %d bytes decoded without failing", n, len(b))
			}
		}
	}
}

// A count larger than the bytes left is refused before anything is
// allocated for it.
func TestHugeCountFails(t *testing.T) {
	d := NewDecoder([]byte{0xff, 0xff, 0xff, 0xff, 0x0f, 'a'})
	if d.Strings() != nil || !d.Failed() {
		t.Fatal("a count of 4G strings in 6 bytes was accepted")
	}
}

func TestNanosecondsOutOfRangeFail(t *testing.T) {
	b := []byte{1}
	b = append(b, 2)                            // varint 1
	b = append(b, 0x80, 0x94, 0xeb, 0xdc, 0x03) // uvarint 1e9
	d := NewDecoder(b)
	if tm := d.Time(); !tm.IsZero() || !d.Failed() {
		t.Fatalf("Time = %v, Failed %v", tm, d.Failed())
	}
}

// Strings from a string decoder are sub-strings of its string, not
// copies; those of a byte decoder are copies, which outlive changes to
// the bytes.
func TestStringDecoderShares(t *testing.T) {
	b := encoded()
	s := string(b)
	start := uintptr(unsafe.Pointer(unsafe.StringData(s)))
	got := NewStringDecoder(s).String()
	if p := uintptr(unsafe.Pointer(unsafe.StringData(got))); p < start || p >= start+uintptr(len(s)) {
		t.Error("a string decoder copied a string")
	}
	copied := NewDecoder(b).String()
	clear(b)
	if copied != "key" {
		t.Errorf("a byte decoder's string changed with its bytes: %q", copied)
	}
}

// Varint reads what binary.AppendVarint writes, at the limits too.
func TestVarint(t *testing.T) {
	for _, v := range []int64{0, 1, -1, 63, -64, 1700000000, -1700000000, math.MaxInt64, math.MinInt64} {
		d := NewDecoder(binary.AppendVarint(nil, v))
		if got := d.Varint(); got != v || d.Failed() {
			t.Errorf("Varint of %d = %d (failed %v)", v, got, d.Failed())
		}
	}
}
