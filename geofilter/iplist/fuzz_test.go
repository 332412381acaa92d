package iplist

import (
	"bufio"
	"net/netip"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics and that the merged ranges answer
// exactly as a linear scan of the entries would.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"192.0.2.0/24\n198.51.100.7\n",
		"# FireHOL\n0.0.0.0/8\n10.0.0.0/8\n10.1.0.0/16\n",
		"; Spamhaus DROP\n1.10.16.0/20 ; SBL256894\n2a06:e480::/29 ; SBL301771\n",
		"::ffff:203.0.113.0/120\n::/0\n",
		"255.255.255.255\n0.0.0.0/0\n8000::/1\n",
		"bad line\n",
	} {
		f.Add(seed, "192.0.2.1")
	}
	f.Fuzz(func(t *testing.T, content, addr string) {
		l, err := Parse(strings.NewReader(content))
		if err != nil {
			return
		}
		ip, err := netip.ParseAddr(addr)
		if err != nil {
			return
		}
		// The naive answer: any entry line containing ip.
		var want bool
		sc := bufio.NewScanner(strings.NewReader(content))
		sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			if i := strings.IndexAny(line, "#;"); i >= 0 {
				line = line[:i]
			}
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			p, err := parseEntry(line)
			if err != nil {
				t.Fatalf("Parse accepted %q that parseEntry rejects: %v", line, err)
			}
			if p.Contains(ip.Unmap().WithZone("")) {
				want = true
			}
		}
		if got := l.Contains(ip); got != want {
			t.Errorf("Contains(%s) = %v, linear scan says %v (list %q)", ip, got, want, content)
		}
	})
}
