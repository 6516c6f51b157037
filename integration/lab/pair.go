package lab

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
)

// The HA pair lab (NewPair) models a VPC with two availability zones:
//
//	client-a 10.77.1.2 ─┐                     ┌─ gw-a  gin 10.77.101.10   gout 198.51.100.1 ─┐
//	                    ├─ vpc (router with ──┤                                               ├─ inet (bridge:
//	client-b 10.77.2.2 ─┘   per-subnet route  └─ gw-b  gin 10.77.102.10   gout 198.51.100.3 ─┘  198.51.100.2,
//	                        tables)                                                             DNS .53, API .80;
//	                                                                                            origins on lo)
//
// The vpc namespace plays the VPC router: traffic from private subnet a
// (arriving on vpc's interface "va") is routed by route table 101, from
// subnet b ("vb") by table 102, and each table's default route points at
// one gateway, as an EC2 route table's 0.0.0.0/0 points at an instance's
// network interface. Addresses inside 10.77.0.0/16 are reached directly
// (the VPC's local route), so the gateways check each other's health
// endpoint through vpc. PointSubnet moves a table's default route: what
// ec2:ReplaceRoute does in AWS.
var (
	PairClientAddr4 = [2]netip.Addr{netip.MustParseAddr("10.77.1.2"), netip.MustParseAddr("10.77.2.2")}
	PairClientNet4  = [2]netip.Prefix{netip.MustParsePrefix("10.77.1.0/24"), netip.MustParsePrefix("10.77.2.0/24")}
	// PairGatewayAddr4 are the gateways' VPC addresses (their "ENIs").
	PairGatewayAddr4 = [2]netip.Addr{netip.MustParseAddr("10.77.101.10"), netip.MustParseAddr("10.77.102.10")}
	// PairOutsideAddr4 are the gateways' internet-side addresses.
	PairOutsideAddr4 = [2]netip.Addr{GatewayOutsideAddr4, netip.MustParseAddr("198.51.100.3")}
	// APIAddr4 is where a test serves its cloud API (e.g. an EC2 endpoint),
	// in the internet namespace: reachable from both gateways even when the
	// link between them is cut.
	APIAddr4 = netip.MustParseAddr("198.51.100.80")
)

// Pair is the lab of a highly available gateway pair: Lab's Client and
// Gateway are client-a and gw-a.
type Pair struct {
	*Lab
	VPC      *Netns
	Clients  [2]*Netns // client-a, client-b
	Gateways [2]*Netns // gw-a, gw-b
}

// pairTable is the VPC router's route table for subnet i.
func pairTable(i int) string { return strconv.Itoa(101 + i) }

// NewPair builds the HA pair lab. On error everything built so far is
// removed again.
func NewPair(ctx context.Context, opts Options) (_ *Pair, err error) {
	l, err := emptyLab(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer l.closeOnError(&err)
	p := &Pair{Lab: l}
	for i, side := range []string{"a", "b"} {
		if p.Clients[i], err = l.NewNetns(ctx, "client-"+side); err != nil {
			return nil, err
		}
		if p.Gateways[i], err = l.NewNetns(ctx, "gw-"+side); err != nil {
			return nil, err
		}
	}
	if p.VPC, err = l.NewNetns(ctx, "vpc"); err != nil {
		return nil, err
	}
	if l.Internet, err = l.NewNetns(ctx, "inet"); err != nil {
		return nil, err
	}
	l.Client, l.Gateway = p.Clients[0], p.Gateways[0]
	for _, step := range p.plan() {
		if err := ip(ctx, step...); err != nil {
			return nil, fmt.Errorf("lab: building the pair topology: %w", err)
		}
	}
	waits := map[*Netns][]string{
		p.VPC:      {"va", "vb", "vga", "vgb"},
		l.Internet: {"ia", "ib", "br0"},
	}
	for i := range 2 {
		waits[p.Clients[i]] = []string{ClientIf}
		waits[p.Gateways[i]] = []string{GatewayInsideIf, GatewayOutsideIf}
	}
	for ns, ifaces := range waits {
		if err := ns.WaitLinksUp(ctx, ifaces...); err != nil {
			return nil, err
		}
	}
	if opts.Cleanup != nil {
		opts.Cleanup(func() { _ = l.Close() })
	}
	return p, nil
}

func (p *Pair) plan() [][]string {
	v, in := p.VPC.Name, p.Internet.Name
	addr := func(ns, dev string, a netip.Addr, bits int) []string {
		return []string{"-n", ns, "addr", "add", netip.PrefixFrom(a, bits).String(), "dev", dev}
	}
	var steps [][]string
	up := func(ns string, devs ...string) {
		for _, d := range devs {
			steps = append(steps, []string{"-n", ns, "link", "set", d, "up"})
		}
	}
	steps = append(steps,
		[]string{"-n", in, "link", "add", "br0", "type", "bridge"},
		[]string{"netns", "exec", v, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
	)
	for i, side := range []string{"a", "b"} {
		c, g := p.Clients[i].Name, p.Gateways[i].Name
		vpcClientIf, vpcGatewayIf, inetIf := "v"+side, "vg"+side, "i"+side
		subnetRouter := PairClientNet4[i].Addr().Next()             // 10.77.1.1, 10.77.2.1
		gwNet := netip.PrefixFrom(PairGatewayAddr4[i], 24).Masked() // 10.77.101.0/24
		gwRouter := gwNet.Addr().Next()                             // 10.77.101.1
		steps = append(steps,
			[]string{"-n", c, "link", "add", ClientIf, "type", "veth", "peer", "name", vpcClientIf, "netns", v},
			[]string{"-n", g, "link", "add", GatewayInsideIf, "type", "veth", "peer", "name", vpcGatewayIf, "netns", v},
			[]string{"-n", g, "link", "add", GatewayOutsideIf, "type", "veth", "peer", "name", inetIf, "netns", in},
			[]string{"-n", in, "link", "set", inetIf, "master", "br0"},
		)
		up(c, ClientIf, "lo")
		up(g, GatewayInsideIf, GatewayOutsideIf, "lo")
		up(v, vpcClientIf, vpcGatewayIf)
		up(in, inetIf)
		steps = append(steps,
			addr(c, ClientIf, PairClientAddr4[i], 24),
			addr(v, vpcClientIf, subnetRouter, 24),
			addr(g, GatewayInsideIf, PairGatewayAddr4[i], 24),
			addr(v, vpcGatewayIf, gwRouter, 24),
			addr(g, GatewayOutsideIf, PairOutsideAddr4[i], 24),
			[]string{"-n", c, "route", "add", "default", "via", subnetRouter.String()},
			[]string{"-n", g, "route", "add", "10.77.0.0/16", "via", gwRouter.String()},
			[]string{"-n", g, "route", "add", "default", "via", InternetAddr4.String()},
			// Subnet i's route table: its default route to gateway i.
			[]string{"-n", v, "route", "add", "default", "via", PairGatewayAddr4[i].String(), "table", pairTable(i)},
			[]string{"-n", v, "rule", "add", "pref", strconv.Itoa(200 + i), "iif", vpcClientIf, "lookup", pairTable(i)},
		)
	}
	up(v, "lo")
	up(in, "br0", "lo")
	steps = append(steps,
		// The VPC's local route comes first.
		[]string{"-n", v, "rule", "add", "pref", "100", "to", "10.77.0.0/16", "lookup", "main"},
		addr(in, "br0", InternetAddr4, 24),
		addr(in, "br0", DNSAddr4.Addr(), 24),
		addr(in, "br0", APIAddr4, 24),
	)
	for _, a := range p.Origins4 {
		steps = append(steps, addr(in, OriginIf, a, 32))
	}
	return steps
}

// PointSubnet points private subnet i's default route (0 for client-a's,
// 1 for client-b's) at gateway g (0 or 1), or drops it (g < 0: a blackhole
// route, as when the target's interface is gone).
func (p *Pair) PointSubnet(ctx context.Context, i, g int) error {
	if i < 0 || i > 1 || g > 1 {
		return fmt.Errorf("lab: PointSubnet(%d, %d): subnet and gateway are 0 or 1", i, g)
	}
	args := []string{"-n", p.VPC.Name, "route", "replace"}
	if g < 0 {
		args = append(args, "blackhole", "default")
	} else {
		args = append(args, "default", "via", PairGatewayAddr4[g].String())
	}
	return ip(ctx, append(args, "table", pairTable(i))...)
}

// CutPair drops, silently as a security group would, every packet between
// the two gateways' VPC addresses; HealPair restores the link. The
// gateways still reach the clients, the internet and the API.
func (p *Pair) CutPair(ctx context.Context) error {
	if err := p.pairRules(ctx, "add"); err != nil {
		return fmt.Errorf("lab: cutting the link between the gateways: %w", err)
	}
	return nil
}

// HealPair undoes CutPair.
func (p *Pair) HealPair(ctx context.Context) error {
	if err := p.pairRules(ctx, "del"); err != nil {
		return fmt.Errorf("lab: restoring the link between the gateways: %w", err)
	}
	return nil
}

// pairRules adds or deletes the VPC router's blackhole rules between the
// gateways, both ways.
func (p *Pair) pairRules(ctx context.Context, op string) error {
	a, b := PairGatewayAddr4[0].String(), PairGatewayAddr4[1].String()
	for _, r := range [][2]string{{a, b}, {b, a}} {
		if err := ip(ctx, "-n", p.VPC.Name, "rule", op, "pref", "50", "from", r[0], "to", r[1], "blackhole"); err != nil {
			return err
		}
	}
	return nil
}
