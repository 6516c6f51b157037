package gateway

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/egressd/egressd/policy"
)

// record is one access-log line: a connection (TLS) or a request (HTTP).
// Field names are SPEC's and spelled only here.
type record struct {
	proto    string
	src, dst netip.AddrPort
	host     string
	allowed  bool
	enforced bool
	reason   string
	rule     string
	upstream netip.AddrPort
	up, down int64
	start    time.Time
	alpn     string
	ech      bool
	status   int    // HTTP status sent to the client, when known
	err      string // what went wrong after the decision, if anything
}

func (g *Gateway) newRecord(f *flow) *record {
	return &record{proto: f.proto, src: f.src, start: f.start, enforced: true}
}

// decided fills the record from a policy decision.
func (r *record) decided(d policy.Decision) {
	r.allowed, r.enforced, r.reason = d.Allowed, d.Enforced, string(d.Reason)
	if d.Rule != nil {
		r.rule = d.Rule.String()
	}
}

// deny marks the record as denied by the gateway itself (a sniff failure,
// a spoofed destination) with the enforcement of the current mode.
func (r *record) deny(reason string, enforced bool) {
	r.allowed, r.enforced, r.reason, r.rule = false, enforced, reason, ""
}

func (g *Gateway) emit(r *record) {
	decision := "deny"
	if r.allowed {
		decision = "allow"
	}
	ev := g.log.Info()
	if !r.allowed && r.enforced {
		ev = g.log.Warn()
	}
	ev = ev.Str("src", r.src.String()).
		Str("dst", apString(r.dst)).
		Str("proto", r.proto).
		Str("host", r.host).
		Str("decision", decision).
		Bool("enforced", r.enforced).
		Str("reason", r.reason).
		Str("rule", r.rule).
		Str("upstream", apString(r.upstream)).
		Int64("bytes_up", r.up).
		Int64("bytes_down", r.down).
		Int64("duration_ms", time.Since(r.start).Milliseconds())
	if r.proto == protoTLS {
		ev = ev.Str("alpn", r.alpn).Bool("ech", r.ech)
	}
	if r.status != 0 {
		ev = ev.Int("status", r.status)
	}
	if r.err != "" {
		ev = ev.Str("error", r.err)
	}
	ev.Msg("access")

	g.metrics.Connections.WithLabelValues(r.proto, decision, strconv.FormatBool(r.enforced)).Inc()
	if !r.allowed {
		g.metrics.Denials.WithLabelValues(r.proto, r.reason).Inc()
	}
	g.metrics.Bytes.WithLabelValues(r.proto, "up").Add(float64(r.up))
	g.metrics.Bytes.WithLabelValues(r.proto, "down").Add(float64(r.down))
}

func apString(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return ""
	}
	return ap.String()
}
