// Package admin serves egressd's operator endpoints: /metrics (Prometheus),
// /healthz (the process is alive) and /readyz (the gateway can do its job:
// table installed, listeners up, resolver answering).
//
// Keep it on a loopback or management address: it tells who talks to what.
package admin

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one readiness condition.
type Check struct {
	Name string
	Run  func(ctx context.Context) error
}

// Handler returns the admin mux. Readiness results are cached for
// cacheFor so that a scraper hammering /readyz does not hammer the resolver.
func Handler(g prometheus.Gatherer, checks []Check, cacheFor time.Duration) http.Handler {
	r := &readiness{checks: checks, cacheFor: cacheFor}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", r.serve)
	return mux
}

type readiness struct {
	checks   []Check
	cacheFor time.Duration

	mu      sync.Mutex
	at      time.Time
	failing []string
}

// Failing runs the checks (or returns the cached result) and lists the
// failures as "name: error".
func (r *readiness) Failing(ctx context.Context) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.at.IsZero() && time.Since(r.at) < r.cacheFor {
		return r.failing
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var failing []string
	for _, c := range r.checks {
		if err := c.Run(ctx); err != nil {
			failing = append(failing, c.Name+": "+err.Error())
		}
	}
	r.at, r.failing = time.Now(), failing
	return failing
}

func (r *readiness) serve(w http.ResponseWriter, req *http.Request) {
	failing := r.Failing(req.Context())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if len(failing) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not ready")
		fmt.Fprintln(w, strings.Join(failing, "\n"))
		return
	}
	fmt.Fprintln(w, "ready")
}
