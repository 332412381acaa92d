package memory

import (
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// FuzzUnmarshalCaddyfile feeds arbitrary store blocks to the parser: it
// never panics, and what it accepts is a valid configuration.
// Run: go test -fuzz FuzzUnmarshalCaddyfile ./cache/store/memory/
func FuzzUnmarshalCaddyfile(f *testing.F) {
	for _, seed := range []string{
		"memory",
		"memory {\n}",
		"memory {\n\tmax_size 512MiB\n\tname shared\n}",
		"memory {\n max_size 1.5GB\n}",
		"memory {\n max_size 18446744073709551615\n}", // max uint64
		"memory {\n max_size 16EiB\n}",                // overflows uint64
		"memory {\n max_size -1\n}",
		"memory {\n max_size NaN\n}",
		"memory {\n max_size 1e400\n}",
		"memory {\n name \"\"\n}",
		"memory {\n name a\n name b\n}",
		"memory {\n name {\n}\n}",
		"memory x y {\n}",
		"memory {\n max_size 2MiB {\n }\n}",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		tokens, err := caddyfile.Tokenize([]byte(input), "Fuzzfile")
		if err != nil || len(tokens) == 0 {
			return
		}
		var s Store
		if err := s.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)); err != nil {
			return
		}
		if s.MaxSize != 0 && s.MaxSize < MinMaxSize {
			t.Errorf("accepted max_size %d, below the minimum", s.MaxSize)
		}
		if err := s.Validate(); err != nil {
			t.Errorf("accepted a config that Validate rejects: %v", err)
		}
	})
}
