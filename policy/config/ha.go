package config

import (
	"fmt"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// HA is the ha section: a pair of egressd instances that move each other's
// route tables' default routes when one fails (nat/failover). The section is
// off unless present.
type HA struct {
	Enabled  bool   // the section is present
	Provider string // "aws", the only provider
	// Listen is this instance's health endpoint ("host:port"), which the
	// peer probes over the VPC; separate from listen.admin so that /metrics
	// need not be exposed to the VPC.
	Listen string
	// Peer is the peer's health endpoint, "ip:port".
	Peer netip.AddrPort
	// RouteTables are this instance's home route tables and PeerRouteTables
	// the peer's: each entry an ID ("rtb-…") or a tag filter.
	RouteTables     []RouteTableRef
	PeerRouteTables []RouteTableRef
	// Identities; "" means discovered: this instance's from instance
	// metadata (IMDSv2), the peer's from its health answer or from the
	// current targets of the peer's route tables.
	InstanceID           string
	NetworkInterface     string
	PeerInstanceID       string
	PeerNetworkInterface string
	Region               string // "" = from instance metadata
	Endpoint             string // EC2 API base URL; "" = the region's default
	CheckInterval        time.Duration
	FailAfter            int
	FailbackAfter        time.Duration
}

// RouteTableRef names route tables: by ID, or by a tag as in EC2's
// "tag:KEY" filter (every table carrying KEY=Value).
type RouteTableRef struct {
	ID       string // "rtb-…", or "" for a tag
	TagKey   string
	TagValue string
}

// String returns the ref as written in the config.
func (r RouteTableRef) String() string {
	if r.ID != "" {
		return r.ID
	}
	return "tag:" + r.TagKey + "=" + r.TagValue
}

// The ha defaults: a peer is declared failed after fail_after × check_interval
// (2 s) of failed checks; an instance takes its own tables back after a
// minute of good health, so a crash-looping instance does not flap routes.
const (
	DefaultHAListen        = ":9902"
	DefaultHACheckInterval = 500 * time.Millisecond
	DefaultHAFailAfter     = 4
	DefaultHAFailbackAfter = 60 * time.Second
)

var (
	routeTableID = regexp.MustCompile(`^rtb-[0-9a-f]{8,17}$`)
	instanceID   = regexp.MustCompile(`^i-[0-9a-f]{8,17}$`)
	eniID        = regexp.MustCompile(`^eni-[0-9a-f]{8,17}$`)
	awsRegion    = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
)

func (p *parser) ha(key string, n *yaml.Node) {
	if isNull(n) {
		return
	}
	h := &p.cfg.HA
	*h = HA{
		Enabled:       true,
		Listen:        DefaultHAListen,
		CheckInterval: DefaultHACheckInterval,
		FailAfter:     DefaultHAFailAfter,
		FailbackAfter: DefaultHAFailbackAfter,
	}
	id := func(dst *string, re *regexp.Regexp, example, empty string) func(string, *yaml.Node) {
		return func(key string, n *yaml.Node) {
			want := fmt.Sprintf("an ID such as %q, or \"\" for %s", example, empty)
			s, ok := p.str(key, n, want, true)
			if ok && s != "" && !re.MatchString(s) {
				p.errorf(n.Line, key, "%q is not %s", s, want)
				return
			}
			*dst = s
		}
	}
	p.mapping(n, key, []field{
		{"provider", func(key string, n *yaml.Node) {
			if s, ok := p.enum(key, n, "aws"); ok {
				h.Provider = s
			}
		}},
		{"listen", func(key string, n *yaml.Node) {
			const want = `"host:port" such as ":9902" or "10.0.101.10:9902"`
			s, ok := p.str(key, n, want, false)
			if !ok {
				return
			}
			if _, _, err := splitListen(s); err != nil {
				p.errorf(n.Line, key, "%q: %v: expected %s", s, err, want)
				return
			}
			h.Listen = s
		}},
		{"peer", func(key string, n *yaml.Node) {
			const want = `the peer's ha.listen address as "ip:port", such as "10.0.102.10:9902"`
			s, ok := p.str(key, n, want, false)
			if !ok {
				return
			}
			ap, err := netip.ParseAddrPort(s)
			if err != nil || ap.Port() == 0 || ap.Addr().IsUnspecified() {
				p.errorf(n.Line, key, "%q is not %s", s, want)
				return
			}
			h.Peer = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}},
		{"route_tables", func(key string, n *yaml.Node) { h.RouteTables = p.routeTables(key, n) }},
		{"peer_route_tables", func(key string, n *yaml.Node) { h.PeerRouteTables = p.routeTables(key, n) }},
		{"instance_id", id(&h.InstanceID, instanceID, "i-0123456789abcdef0", "this instance's, from instance metadata")},
		{"network_interface", id(&h.NetworkInterface, eniID, "eni-0123456789abcdef0", "this instance's primary interface, from instance metadata")},
		{"peer_instance_id", id(&h.PeerInstanceID, instanceID, "i-0123456789abcdef0", "learning it from the peer")},
		{"peer_network_interface", id(&h.PeerNetworkInterface, eniID, "eni-0123456789abcdef0", "learning it from the peer")},
		{"region", func(key string, n *yaml.Node) {
			const want = `an AWS region such as "eu-west-1", or "" for this instance's, from instance metadata`
			s, ok := p.str(key, n, want, true)
			if ok && s != "" && !awsRegion.MatchString(s) {
				p.errorf(n.Line, key, "%q is not %s", s, want)
				return
			}
			h.Region = s
		}},
		{"endpoint", func(key string, n *yaml.Node) {
			const want = `an http(s) URL such as "https://vpce-0123-abcd.ec2.eu-west-1.vpce.amazonaws.com", or "" for the region's default EC2 endpoint`
			s, ok := p.str(key, n, want, true)
			if ok && s != "" && !strings.HasPrefix(s, "https://") && !strings.HasPrefix(s, "http://") {
				p.errorf(n.Line, key, "%q is not %s", s, want)
				return
			}
			h.Endpoint = s
		}},
		{"check_interval", p.durationInto(&h.CheckInterval)},
		{"fail_after", func(key string, n *yaml.Node) {
			const want = "a number of failed checks in a row from 1 to 100, such as 4"
			v, ok := p.integer(key, n, want)
			if !ok {
				return
			}
			if v < 1 || v > 100 {
				p.errorf(n.Line, key, "%d is not %s", v, want)
				return
			}
			h.FailAfter = int(v)
		}},
		{"failback_after", p.durationInto(&h.FailbackAfter)},
	})
	p.checkHA(key, n)
}

// routeTables reads a list of route table IDs and "tag:KEY=VALUE" filters.
func (p *parser) routeTables(key string, n *yaml.Node) []RouteTableRef {
	const want = `route table IDs such as "rtb-0123456789abcdef0", or tag filters such as "tag:egressd-home=a"`
	items, ok := p.seq(key, n, "a list of "+want, false)
	if !ok {
		return nil
	}
	var refs []RouteTableRef
	for i, item := range items {
		k := index(key, i)
		s, ok := p.str(k, item, "one of "+want, false)
		if !ok {
			continue
		}
		var ref RouteTableRef
		if tag, isTag := strings.CutPrefix(s, "tag:"); isTag {
			k, v, found := strings.Cut(tag, "=")
			if !found || k == "" || v == "" {
				p.errorf(item.Line, index(key, i), "%q: a tag filter is \"tag:KEY=VALUE\", such as \"tag:egressd-home=a\"", s)
				continue
			}
			ref = RouteTableRef{TagKey: k, TagValue: v}
		} else {
			if !routeTableID.MatchString(s) {
				p.errorf(item.Line, index(key, i), "%q is not one of %s", s, want)
				continue
			}
			ref = RouteTableRef{ID: s}
		}
		if slices.Contains(refs, ref) {
			p.errorf(item.Line, index(key, i), "%q is listed twice: list each route table once", s)
			continue
		}
		refs = append(refs, ref)
	}
	if len(items) == 0 {
		p.errorf(n.Line, key, "empty: list at least one route table (%s)", want)
	}
	return refs
}

// checkHA checks what the ha keys say together: the required keys, and
// that no route table is both this instance's and the peer's.
func (p *parser) checkHA(key string, n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		return
	}
	line := p.lines[key]
	for _, req := range []struct{ key, example string }{
		{"provider", "provider: aws"},
		{"peer", `peer: "10.0.102.10:9902" (the other instance's ha.listen)`},
		{"route_tables", "route_tables: [rtb-0123456789abcdef0] (this instance's home route tables)"},
		{"peer_route_tables", "peer_route_tables: [rtb-0fedcba9876543210] (the peer's home route tables)"},
	} {
		if _, set := p.lines[key+"."+req.key]; !set && !p.noMissing[key+"."+req.key] {
			p.errorf(line, key+"."+req.key, "required when ha is on: add %s", req.example)
		}
	}
	h := p.cfg.HA
	lineOf := func(k string) int {
		if l, set := p.lines[key+"."+k]; set {
			return l
		}
		return line
	}
	for i, ref := range h.PeerRouteTables {
		if slices.Contains(h.RouteTables, ref) {
			k := index(key+".peer_route_tables", i)
			p.errorf(lineOf("peer_route_tables"), k, "%s is also in ha.route_tables: a route table has one home instance", ref)
		}
	}
	if h.InstanceID != "" && h.InstanceID == h.PeerInstanceID {
		p.errorf(lineOf("peer_instance_id"), key+".peer_instance_id", "%s is also ha.instance_id: the peer is another instance", h.InstanceID)
	}
	if h.NetworkInterface != "" && h.NetworkInterface == h.PeerNetworkInterface {
		p.errorf(lineOf("peer_network_interface"), key+".peer_network_interface", "%s is also ha.network_interface: the peer has its own interface", h.NetworkInterface)
	}
	if h.FailbackAfter < h.CheckInterval*time.Duration(h.FailAfter) {
		p.errorf(lineOf("failback_after"), key+".failback_after", "%s is shorter than fail_after × check_interval (%s): an instance would take its tables back before its peer could notice it failing again; use at least %s",
			h.FailbackAfter, h.CheckInterval*time.Duration(h.FailAfter), h.CheckInterval*time.Duration(h.FailAfter))
	}
}

func (h HA) equal(o HA) bool {
	return reflect.DeepEqual(h, o)
}
