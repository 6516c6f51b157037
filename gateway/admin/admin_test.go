package admin

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestReadiness(t *testing.T) {
	var resolverErr atomic.Pointer[error]
	var runs atomic.Int32
	none := error(nil)
	resolverErr.Store(&none)
	r := NewReadiness([]Check{
		{Name: "listeners", Run: func(context.Context) error { return nil }},
		{Name: "resolver", Run: func(context.Context) error { runs.Add(1); return *resolverErr.Load() }},
	}, 50*time.Millisecond)
	h := Handler(prometheus.NewRegistry(), r)
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := get("/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Errorf("/readyz = %d %q", code, body)
	}
	if err := r.Err(context.Background()); err != nil {
		t.Errorf("Err = %v", err)
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("checks ran %d times within the cache period, want 1", n)
	}
	down := errors.New("timeout")
	resolverErr.Store(&down)
	time.Sleep(60 * time.Millisecond)
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "resolver: timeout") {
		t.Errorf("/readyz with the resolver down = %d %q", code, body)
	}
	if err := r.Err(context.Background()); err == nil || err.Error() != "resolver: timeout" {
		t.Errorf("Err = %v, want resolver: timeout", err)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d", code)
	}
	if code, _ := get("/metrics"); code != http.StatusOK {
		t.Errorf("/metrics = %d", code)
	}
}
