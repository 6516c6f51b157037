package failover

import (
	"encoding/json"
	"net/http"
	"strings"
)

// HealthPath is where the health endpoint answers.
const HealthPath = "/health"

// HealthHandler serves the endpoint the peer checks: 200 with
// {"ready":true,"instance_id":…,"network_interface":…,"role":…,
// "peer_healthy":…} when this instance can serve, 503 with the failing
// checks otherwise. It answers from the controller's last self-check (made
// every CheckInterval), so it never waits on the checks themselves, and
// what the peer is told is what this instance believes. It tells no more
// than that, so it may be open to the VPC (unlike /metrics).
func (c *Controller) HealthHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+HealthPath, func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		a := healthAnswer{Ready: c.selfChecked && c.selfErr == nil, Identity: c.opts.Self, Role: c.role, PeerHealthy: c.peerHealthy}
		switch {
		case !c.selfChecked:
			a.Failing = []string{"starting"}
		case c.selfErr != nil:
			a.Failing = strings.Split(c.selfErr.Error(), "\n")
		}
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !a.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(a)
	})
	return mux
}
