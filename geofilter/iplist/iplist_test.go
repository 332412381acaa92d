package iplist_test

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-edge/edge/geofilter/iplist"
)

func write(t testing.TB, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "list.netset")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const firehol = `#
# firehol_level1
#
# Maintainer      : FireHOL
# This File Date  : Fri Nov 27 10:00:00 UTC 2026
#
0.0.0.0/8
1.10.16.0/20
192.0.2.1
198.51.100.0/25
198.51.100.128/25
2001:db8:1::/48
2001:db8:2::7
::ffff:203.0.113.0/120
`

const drop = `; Spamhaus DROP List 2026/11/27 - (c) 2026 The Spamhaus Project SLU
; Last-Modified: Fri, 27 Nov 2026 09:00:00 GMT
; Expires: Fri, 27 Nov 2026 11:00:00 GMT
1.19.0.0/16 ; SBL434604
   2.56.192.0/22 ; SBL459831   
2a06:e480::/29 ; SBL301771
`

func TestContains(t *testing.T) {
	l, err := iplist.Load(write(t, firehol+drop))
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Len(); got != 11 {
		t.Errorf("Len() = %d, want 11", got)
	}
	if got := l.Ranges(); got != 10 {
		t.Errorf("Ranges() = %d, want 10 (two adjacent /25 merged)", got)
	}
	tests := []struct {
		addr string
		want bool
	}{
		{"0.0.0.0", true},
		{"0.255.255.255", true},
		{"1.0.0.0", false},
		{"1.10.16.0", true},
		{"1.10.31.255", true},
		{"1.10.32.0", false},
		{"1.19.200.1", true},
		{"2.56.195.255", true},
		{"2.56.196.0", false},
		{"192.0.2.1", true},
		{"192.0.2.2", false},
		{"192.0.2.0", false},
		{"198.51.100.0", true},
		{"198.51.100.200", true},
		{"198.51.101.0", false},
		{"203.0.113.77", true}, // listed as ::ffff:203.0.113.0/120
		{"::ffff:1.10.16.5", true},
		{"::ffff:1.10.32.5", false},
		{"2001:db8:1:ffff::1", true},
		{"2001:db8:2::7", true},
		{"2001:db8:2::8", false},
		{"2a06:e487:ffff::1", true},
		{"2a06:e488::", false},
		{"::1", false},
		{"255.255.255.255", false},
	}
	for _, tt := range tests {
		if got := l.Contains(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("Contains(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	if l.Contains(netip.Addr{}) {
		t.Error("Contains(invalid address) = true")
	}
}

func TestEdges(t *testing.T) {
	l, err := iplist.Load(write(t, "0.0.0.0/0\n::/0\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"0.0.0.0", "255.255.255.255", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"} {
		if !l.Contains(netip.MustParseAddr(a)) {
			t.Errorf("everything list does not contain %s", a)
		}
	}
	l, err = iplist.Load(write(t, "10.0.0.0/8\n10.1.0.0/16\n::/1\n8000::/1\n255.255.255.255\n"))
	if err != nil {
		t.Fatal(err)
	}
	if l.Ranges() != 3 {
		t.Errorf("Ranges() = %d, want 3 (nested and adjacent merged)", l.Ranges())
	}
	if !l.Contains(netip.MustParseAddr("ffff::1")) || !l.Contains(netip.MustParseAddr("255.255.255.255")) {
		t.Error("top of the address spaces missing")
	}
	empty, err := iplist.Load(write(t, "# nothing listed today\n"))
	if err != nil || empty.Len() != 0 || empty.Contains(netip.MustParseAddr("192.0.2.1")) {
		t.Errorf("comment-only list: %v, %v", empty, err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		content string
		line    int
	}{
		{"192.0.2.0/24\nnot-an-ip\n", 2},
		{"# c\n\n192.0.2.0/33\n", 3},
		{"192.0.2.1 192.0.2.2\n", 1},
		{"1.2.3.4-1.2.3.9\n", 1},
		{"fe80::1%eth0\n", 1},
		{"::ffff:0:0/64\n", 1},
	}
	for _, tt := range tests {
		path := write(t, tt.content)
		_, err := iplist.Load(path)
		var pe *iplist.ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%q: err = %v, want a ParseError", tt.content, err)
			continue
		}
		if pe.Line != tt.line {
			t.Errorf("%q: line %d, want %d", tt.content, pe.Line, tt.line)
		}
		if want := fmt.Sprintf("%s:%d: bad entry", path, tt.line); !strings.HasPrefix(err.Error(), want) {
			t.Errorf("error %q does not start with %q", err, want)
		}
	}
	_, err := iplist.Load(filepath.Join(t.TempDir(), "missing.netset"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.netset") {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestContainsAllocations(t *testing.T) {
	l, err := iplist.Load(write(t, firehol))
	if err != nil {
		t.Fatal(err)
	}
	v4, v6 := netip.MustParseAddr("198.51.100.3"), netip.MustParseAddr("2001:db8:1::1")
	if a := testing.AllocsPerRun(100, func() { l.Contains(v4); l.Contains(v6) }); a != 0 {
		t.Errorf("Contains allocates %v times, want 0", a)
	}
}

// BenchmarkIPListContains looks addresses up in a list the size of FireHOL
// level 1 (about 4,500 networks).
func BenchmarkIPListContains(b *testing.B) {
	var sb strings.Builder
	for i := range 4000 {
		fmt.Fprintf(&sb, "%d.%d.%d.0/24\n", 1+i%200, (i*37)%256, (i*11)%256)
	}
	for i := range 500 {
		fmt.Fprintf(&sb, "2001:db8:%x::/48\n", i*3)
	}
	l, err := iplist.Load(write(b, sb.String()))
	if err != nil {
		b.Fatal(err)
	}
	addrs := []netip.Addr{
		netip.MustParseAddr("1.0.0.7"), netip.MustParseAddr("203.0.113.9"),
		netip.MustParseAddr("2001:db8:3::1"), netip.MustParseAddr("2001:db8:4::1"),
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		l.Contains(addrs[i&3])
		i++
	}
}
