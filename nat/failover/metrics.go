package failover

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the controller's Prometheus series.
type metrics struct {
	routeChanges *prometheus.CounterVec
	peerHealthy  prometheus.Gauge
	role         *prometheus.GaugeVec
	checks       *prometheus.CounterVec
	apiCalls     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		routeChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "egressd_ha_route_changes_total",
			Help: "Default routes this instance pointed at itself, by route table and reason (takeover, failback, claim).",
		}, []string{"route_table", "reason"}),
		peerHealthy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "egressd_ha_peer_healthy",
			Help: "1 when the last health check of the peer succeeded.",
		}),
		role: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "egressd_ha_role",
			Help: "1 for this instance's role: standby (no route table points here), active (its home tables do), takeover (the peer's do too).",
		}, []string{"role"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "egressd_ha_peer_checks_total",
			Help: "Health checks of the peer by result (ok, refused, no_answer, not_ready, unreachable).",
		}, []string{"result"}),
		apiCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "egressd_ha_ec2_calls_total",
			Help: "EC2 API calls by action and result (ok, error): watch it against the account's API rate limits.",
		}, []string{"action", "result"}),
	}
	for _, r := range []string{string(checkOK), string(checkRefused), string(checkNoAnswer), string(checkNotReady), string(checkUnreachable)} {
		m.checks.WithLabelValues(r).Add(0)
	}
	if reg != nil {
		reg.MustRegister(m.routeChanges, m.peerHealthy, m.role, m.checks, m.apiCalls)
	}
	return m
}

func (m *metrics) setRole(role string) {
	for _, r := range []string{RoleStandby, RoleActive, RoleTakeover} {
		v := 0.0
		if r == role {
			v = 1
		}
		m.role.WithLabelValues(r).Set(v)
	}
}

func (m *metrics) apiCall(action string, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.apiCalls.WithLabelValues(action, result).Inc()
}
