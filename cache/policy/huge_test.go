package policy_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-edge/edge/cache/policy"
)

// Huge and repeated fields, as a misbehaving origin or client may send up
// to the server's header limit (1 MiB by default in Go), are read in one
// pass with the right result.
func TestHugeFields(t *testing.T) {
	const mib = 1 << 20
	t.Run("1 MiB of repeated max-age reads as that max-age", func(t *testing.T) {
		v := strings.Repeat("max-age=7, ", mib/11)
		if d := policy.ParseCacheControl([]string{v}); d.MaxAge != set(7) {
			t.Errorf("MaxAge = %+v", d.MaxAge)
		}
	})
	t.Run("1 MiB of quotes and backslashes does not hide a directive on another line", func(t *testing.T) {
		d := policy.ParseCacheControl([]string{strings.Repeat(`"\`, mib/2), "no-store"})
		if !d.NoStore {
			t.Error("no-store on the second field line lost")
		}
	})
	t.Run("10000 field lines", func(t *testing.T) {
		lines := make([]string, 10000)
		for i := range lines {
			lines[i] = "public"
		}
		lines[len(lines)-1] = "max-age=60, max-age=61" // conflict at the very end
		if d := policy.ParseCacheControl(lines); !d.Public || d.MaxAge != set(0) {
			t.Errorf("got %+v", d)
		}
	})
	t.Run("Vary with 20000 distinct names, each twice", func(t *testing.T) {
		var b strings.Builder
		req := http.Header{}
		for i := 20000 - 1; i >= 0; i-- {
			fmt.Fprintf(&b, "X-F%05d, x-f%05d, ", i, i)
		}
		req.Set("X-F00001", "v")
		key, ok := policy.VaryKey([]string{b.String()}, req)
		if !ok || !strings.HasPrefix(key, "x-f00000&x-f00001=v&x-f00002&") || strings.Count(key, "&") != 19999 {
			t.Errorf("VaryKey: ok %v, %d names, prefix %q", ok, strings.Count(key, "&")+1, key[:min(len(key), 40)])
		}
	})
	t.Run("1 MiB Accept-Encoding", func(t *testing.T) {
		v := strings.Repeat("deflate;q=0.5, ", mib/15) + "gzip;q=0.1"
		if got := policy.NormalizeAcceptEncoding(v); got != "deflate,gzip" {
			t.Errorf("NormalizeAcceptEncoding = %q", got)
		}
	})
	t.Run("1 MiB If-None-Match list", func(t *testing.T) {
		v := strings.Repeat(`"x", `, mib/5) + `"abc"`
		if !policy.NotModified(http.Header{"If-None-Match": {v}}, http.Header{"Etag": {`"abc"`}}) {
			t.Error("tag at the end of a long list not matched")
		}
	})
	t.Run("1 MiB CDN-Cache-Control", func(t *testing.T) {
		v := strings.Repeat("a=1, ", mib/5) + "max-age=9"
		h := http.Header{"Cdn-Cache-Control": {v}, "Cache-Control": {"no-store"}}
		if f := policy.ResponseFreshness(h, t0, policy.Options{}); f.Lifetime != 9*time.Second {
			t.Errorf("Lifetime = %v", f.Lifetime)
		}
	})
}
