package cache

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// panickingWriter is a client's writer chain whose WriteHeader panics.
type panickingWriter struct{ *httptest.ResponseRecorder }

func (panickingWriter) WriteHeader(int) { panic("a writer of the chain panicked") }

// When a writer of the client's chain panics during a call of the fetch
// that runs aside, the panic goes on on the client's goroutine, and the
// fetch's calls fail from then on instead of waiting for a goroutine that
// no longer serves them: the fetch ends, and its flight lands.
func TestRelayCallsFailOnceTheClientsGoroutinePanicked(t *testing.T) {
	rl := newRelay(panickingWriter{httptest.NewRecorder()})
	served := make(chan any, 1)
	go func() {
		defer func() { served <- recover() }()
		rl.serve(make(chan exchange))
	}()
	errs := make(chan error, 1)
	go func() {
		rl.WriteHeader(http.StatusOK)
		_, err := rl.Write([]byte("body"))
		errs <- err
	}()
	select {
	case p := <-served:
		if p == nil {
			t.Fatal("the client's goroutine returned without the panic")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client's goroutine did not end")
	}
	select {
	case err := <-errs:
		if !errors.Is(err, errClientGoroutineGone) {
			t.Fatalf("the fetch's write after the panic: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the fetch's calls wait for ever for a goroutine that is gone")
	}
	if err := rl.FlushError(); !errors.Is(err, errClientGoroutineGone) {
		t.Fatalf("flush after the panic: %v", err)
	}
}
