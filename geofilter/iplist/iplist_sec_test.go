package iplist

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

// Overlapping, nested, adjacent and edge ranges (0/0, the top of the
// space, IPv4-mapped forms) against a naive Contains.
func TestRandomListsAgainstNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 300 {
		var lines []string
		var prefixes []netip.Prefix
		for range 1 + rng.IntN(20) {
			var p netip.Prefix
			if rng.IntN(2) == 0 {
				a := netip.AddrFrom4([4]byte{byte(rng.IntN(4) * 63), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())})
				p = netip.PrefixFrom(a, rng.IntN(33)).Masked()
				if rng.IntN(4) == 0 {
					lines = append(lines, fmt.Sprintf("::ffff:%s/%d", p.Addr(), p.Bits()+96))
				} else {
					lines = append(lines, p.String())
				}
			} else {
				var b [16]byte
				b[0] = byte(rng.IntN(4) * 85)
				for i := 1; i < 16; i++ {
					b[i] = byte(rng.Uint32())
				}
				p = netip.PrefixFrom(netip.AddrFrom16(b), rng.IntN(129)).Masked()
				lines = append(lines, p.String()+" ; comment")
			}
			prefixes = append(prefixes, p)
		}
		l, err := Parse(strings.NewReader(strings.Join(lines, "\n")))
		if err != nil {
			t.Fatalf("round %d: %v\n%s", round, err, strings.Join(lines, "\n"))
		}
		probe := func(a netip.Addr) {
			want := false
			for _, p := range prefixes {
				want = want || p.Contains(a)
			}
			if got := l.Contains(a); got != want {
				t.Fatalf("round %d: Contains(%s) = %v, want %v\n%s", round, a, got, want, strings.Join(lines, "\n"))
			}
		}
		for _, p := range prefixes {
			probe(p.Addr())
			probe(lastAddr(p))
			if n := lastAddr(p).Next(); n.IsValid() {
				probe(n)
			}
			if n := p.Addr().Prev(); n.IsValid() {
				probe(n)
			}
		}
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
