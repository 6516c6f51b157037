package failover

import (
	"encoding/json"
	"net/http"
	"strings"
)

// HealthPath is where the health endpoint answers.
const HealthPath = "/health"

// HealthHandler serves the endpoint the peer checks: 200 with
// {"ready":true,"instance_id":…,"network_interface":…,"role":…} when this
// instance can serve, 503 with the failing checks otherwise. It tells no
// more than that, so it may be open to the VPC (unlike /metrics).
func (c *Controller) HealthHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+HealthPath, func(w http.ResponseWriter, r *http.Request) {
		a := healthAnswer{Ready: true, Identity: c.opts.Self, Role: c.Role()}
		if err := c.opts.Ready(r.Context()); err != nil {
			a.Ready = false
			a.Failing = strings.Split(err.Error(), "\n")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !a.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(a)
	})
	return mux
}
