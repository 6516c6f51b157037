package nat

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Other is what happens to forwarded traffic from the sources that is not
// redirected to egressd (config key intercept.other).
type Other string

// The values of intercept.other.
const (
	// OtherDrop drops the packets silently: clients time out.
	OtherDrop Other = "drop"
	// OtherReject answers TCP with a reset and everything else with an
	// ICMP administratively-prohibited error: clients fail at once.
	OtherReject Other = "reject"
	// OtherMasquerade forwards the traffic, source-NATed to the gateway's
	// outgoing address, like the NAT instance egressd replaces.
	OtherMasquerade Other = "masquerade"
)

// Ruleset is the declarative description of the `inet egressd` table:
// Install renders it to nftables objects.
type Ruleset struct {
	// Sources are the client networks, IPv4 and IPv6. Overlapping and
	// adjacent prefixes are merged; IPv4-mapped IPv6 prefixes count as IPv4.
	Sources []netip.Prefix
	// HTTPPorts and TLSPorts are the TCP destination ports redirected to
	// HTTPListenPort and TLSListenPort on the gateway. A port must not be
	// in both lists; an empty list intercepts nothing of that kind.
	HTTPPorts, TLSPorts []uint16
	// HTTPListenPort and TLSListenPort are egressd's listening ports.
	HTTPListenPort, TLSListenPort uint16
	// Other is the fate of the sources' remaining forwarded traffic.
	Other Other
}

// Validate says everything that is wrong with rs, one line per problem,
// naming the config key to fix.
func (rs Ruleset) Validate() error {
	var errs []error
	if len(rs.Sources) == 0 {
		errs = append(errs, errors.New("no source networks: set intercept.sources to the client CIDRs"))
	}
	for i, p := range rs.Sources {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("intercept.sources[%d]: not a valid CIDR prefix", i))
		}
	}
	if rs.HTTPListenPort == 0 {
		errs = append(errs, errors.New("HTTP listen port is 0: set listen.http to a fixed port such as :15080"))
	}
	if rs.TLSListenPort == 0 {
		errs = append(errs, errors.New("TLS listen port is 0: set listen.tls to a fixed port such as :15443"))
	}
	if len(rs.HTTPPorts)+len(rs.TLSPorts) == 0 {
		errs = append(errs, errors.New("no ports to intercept: set intercept.http_ports or intercept.tls_ports"))
	}
	for _, l := range []struct {
		key   string
		ports []uint16
	}{{"intercept.http_ports", rs.HTTPPorts}, {"intercept.tls_ports", rs.TLSPorts}} {
		for i, p := range l.ports {
			if p == 0 {
				errs = append(errs, fmt.Errorf("%s[%d]: port 0 cannot be intercepted; use 1-65535", l.key, i))
			}
		}
	}
	for _, p := range rs.HTTPPorts {
		if p != 0 && slices.Contains(rs.TLSPorts, p) {
			errs = append(errs, fmt.Errorf("port %d is in both intercept.http_ports and intercept.tls_ports; keep it in one", p))
		}
	}
	switch rs.Other {
	case OtherDrop, OtherReject, OtherMasquerade:
	default:
		errs = append(errs, fmt.Errorf("intercept.other %q: valid values are drop, reject, masquerade", string(rs.Other)))
	}
	return errors.Join(errs...)
}

// Describe summarises rs in one line for the start-up log.
func (rs Ruleset) Describe() string {
	v4, v6 := splitFamilies(rs.Sources)
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s: sources ipv4 %s, ipv6 %s; tcp dport %s -> :%d (http), %s -> :%d (tls); "+
		"traffic to the gateway's own addresses not intercepted; other forwarded traffic from sources: %s",
		TableName, prefixList(v4), prefixList(v6), portList(rs.HTTPPorts), rs.HTTPListenPort,
		portList(rs.TLSPorts), rs.TLSListenPort, rs.Other)
	switch rs.Other {
	case OtherReject:
		b.WriteString(" (tcp reset, icmp admin-prohibited)")
	case OtherMasquerade:
		b.WriteString(" (source NAT to the outgoing interface)")
	}
	b.WriteString("; all other forwarding dropped; ICMP redirects dropped")
	return b.String()
}

func prefixList(ps []prefixRange) string {
	if len(ps) == 0 {
		return "none"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return "{" + strings.Join(s, ", ") + "}"
}

func portList(ports []uint16) string {
	ports = uniquePorts(ports)
	if len(ports) == 0 {
		return "{}"
	}
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = fmt.Sprint(p)
	}
	return "{" + strings.Join(s, ", ") + "}"
}

// uniquePorts returns the ports sorted, without duplicates and zeros.
func uniquePorts(ports []uint16) []uint16 {
	out := slices.Clone(ports)
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > 0 && out[0] == 0 {
		out = out[1:]
	}
	return out
}

// prefixRange is an inclusive address range [first, last] of one family.
type prefixRange struct{ first, last netip.Addr }

func (r prefixRange) String() string {
	if p, ok := r.prefix(); ok {
		return p.String()
	}
	return r.first.String() + "-" + r.last.String()
}

// prefix returns r as a prefix when it is exactly one.
func (r prefixRange) prefix() (netip.Prefix, bool) {
	for bits := 0; bits <= r.first.BitLen(); bits++ {
		p := netip.PrefixFrom(r.first, bits)
		if p.Masked().Addr() == r.first && lastAddr(p) == r.last {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// splitFamilies merges the prefixes into sorted, non-overlapping,
// non-adjacent ranges, IPv4 and IPv6 apart. Invalid prefixes are skipped
// (Validate reports them).
func splitFamilies(prefixes []netip.Prefix) (v4, v6 []prefixRange) {
	for _, p := range prefixes {
		if !p.IsValid() {
			continue
		}
		if p.Addr().Is4In6() {
			bits := p.Bits() - 96
			if bits < 0 {
				bits = 0
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), bits)
		}
		p = p.Masked()
		r := prefixRange{p.Addr(), lastAddr(p)}
		if r.first.Is4() {
			v4 = append(v4, r)
		} else {
			v6 = append(v6, r)
		}
	}
	return mergeRanges(v4), mergeRanges(v6)
}

func mergeRanges(rs []prefixRange) []prefixRange {
	slices.SortFunc(rs, func(a, b prefixRange) int { return a.first.Compare(b.first) })
	var out []prefixRange
	for _, r := range rs {
		if n := len(out); n > 0 {
			prev := &out[n-1]
			// Overlapping or adjacent: extend the previous range.
			if next := prev.last.Next(); !next.IsValid() || r.first.Compare(next) <= 0 {
				if r.last.Compare(prev.last) > 0 {
					prev.last = r.last
				}
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// lastAddr returns the last address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
