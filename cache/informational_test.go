package cache_test

import (
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"testing"
)

// A 103 Early Hints response from the origin reaches the client as an
// informational response with its Link field, but its fields end up
// neither in the final response nor in the stored one (RFC 9110 §15.2).
func TestEarlyHintsForwardedButNotStored(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "page")
	})
	s := startCache(t, o, "")

	var mu sync.Mutex
	var hints []textproto.MIMEHeader
	getTraced := func(what string) result {
		t.Helper()
		trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			if code == http.StatusEarlyHints {
				mu.Lock()
				hints = append(hints, h)
				mu.Unlock()
			}
			return nil
		}}
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), http.MethodGet, s.URL("/hints"), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := s.Client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return result{status: resp.StatusCode, header: resp.Header, body: string(b)}
	}

	miss := getTraced("miss")
	expect(t, "miss", miss, 200, "page", "miss", "stored")
	mu.Lock()
	if len(hints) != 1 || hints[0].Get("Link") != "</style.css>; rel=preload; as=style" {
		t.Errorf("103 responses before the miss: %v, want one with the Link field", hints)
	}
	mu.Unlock()
	if l := miss.header.Get("Link"); l != "" {
		t.Errorf("final response of the miss carries the 103's Link %q", l)
	}
	hit := getTraced("hit")
	expect(t, "hit", hit, 200, "page", "hit", "hit")
	if l := hit.header.Get("Link"); l != "" {
		t.Errorf("stored response carries the 103's Link %q", l)
	}
}
