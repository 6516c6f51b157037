// Package admin serves egressd's operator endpoints: /metrics (Prometheus),
// /healthz (the process is alive) and /readyz (the gateway can do its job:
// table installed, listeners up, resolver answering).
//
// Keep it on a loopback or management address: it tells who talks to what.
package admin

import (
	"context"
	"errors"
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

// Handler returns the admin mux, answering /readyz from r.
func Handler(g prometheus.Gatherer, r *Readiness) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", r.serve)
	return mux
}

// Readiness runs the readiness checks for /readyz and for the ha health
// endpoint. Results are cached for cacheFor so that a scraper (or a peer)
// checking often does not hammer the resolver.
type Readiness struct {
	checks   []Check
	cacheFor time.Duration

	mu      sync.Mutex
	at      time.Time
	failing []string
}

// NewReadiness returns the readiness of checks, cached for cacheFor.
func NewReadiness(checks []Check, cacheFor time.Duration) *Readiness {
	return &Readiness{checks: checks, cacheFor: cacheFor}
}

// Err runs the checks (or uses the cached result): nil when all pass,
// otherwise one "name: error" line per failing check.
func (r *Readiness) Err(ctx context.Context) error {
	if failing := r.Failing(ctx); len(failing) > 0 {
		return errors.New(strings.Join(failing, "\n"))
	}
	return nil
}

// Failing runs the checks (or returns the cached result) and lists the
// failures as "name: error".
func (r *Readiness) Failing(ctx context.Context) []string {
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

func (r *Readiness) serve(w http.ResponseWriter, req *http.Request) {
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
