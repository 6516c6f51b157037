package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the gateway's Prometheus collectors. Labels are bounded sets
// (protocol, decision, reason): never a host name or a client address.
type Metrics struct {
	Connections    *prometheus.CounterVec // proto, decision, enforced
	Active         *prometheus.GaugeVec   // proto
	Bytes          *prometheus.CounterVec // proto, direction
	SniffFailures  *prometheus.CounterVec // proto, reason
	Denials        *prometheus.CounterVec // proto, reason
	DialFailures   *prometheus.CounterVec // proto
	Refused        *prometheus.CounterVec // reason
	Revoked        prometheus.Counter
	ConnectionTime *prometheus.HistogramVec // proto
}

// NewMetrics creates the collectors and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "egressd_connections_total",
			Help: "Connections (for HTTP, requests) by protocol and decision; enforced=false counts monitor-mode would-be denials.",
		}, []string{"proto", "decision", "enforced"}),
		Active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "egressd_active_connections",
			Help: "Client connections being served.",
		}, []string{"proto"}),
		Bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "egressd_bytes_total",
			Help: "Bytes relayed, up (client to server) and down.",
		}, []string{"proto", "direction"}),
		SniffFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "egressd_sniff_failures_total",
			Help: "Connections whose ClientHello or request head could not be read, by reason.",
		}, []string{"proto", "reason"}),
		Denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "egressd_denials_total",
			Help: "Denials (enforced or not) by reason.",
		}, []string{"proto", "reason"}),
		DialFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "egressd_dial_failures_total",
			Help: "Allowed connections whose upstream could not be reached.",
		}, []string{"proto"}),
		Refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "egressd_refused_connections_total",
			Help: "Connections refused before sniffing (max_connections reached, out of file descriptors).",
		}, []string{"reason"}),
		Revoked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "egressd_revoked_connections_total",
			Help: "Open connections closed because a reload no longer allows them.",
		}),
		ConnectionTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "egressd_connection_duration_seconds",
			Help:    "Duration of served connections.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 12),
		}, []string{"proto"}),
	}
	if reg != nil {
		reg.MustRegister(m.Connections, m.Active, m.Bytes, m.SniffFailures, m.Denials,
			m.DialFailures, m.Refused, m.Revoked, m.ConnectionTime)
	}
	return m
}
