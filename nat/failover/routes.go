package failover

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// The default routes the pair moves.
const (
	defaultRoute4 = "0.0.0.0/0"
	defaultRoute6 = "::/0"
)

// targetKind classifies where a default route points.
type targetKind int

const (
	targetNothing targetKind = iota // blackhole, or no target: nobody serves it
	targetSelf
	targetPeer
	targetForeign // a NAT gateway, an internet gateway, a third instance...: not ours
)

// defaultRoute is one default route of one route table.
type defaultRoute struct {
	table       string
	home        bool // one of this instance's home tables
	destination string
	target      Identity
	other       string // a foreign target, described
	blackhole   bool
	kind        targetKind
}

func (r defaultRoute) targetString() string {
	switch {
	case r.blackhole:
		return "blackhole (" + joinNonEmpty(r.target.NetworkInterfaceID, r.target.InstanceID) + ")"
	case r.other != "":
		return r.other
	case r.target.NetworkInterfaceID != "" || r.target.InstanceID != "":
		return joinNonEmpty(r.target.NetworkInterfaceID, r.target.InstanceID)
	}
	return "nothing"
}

// readRoutes reads the default routes of the home and peer tables.
func (c *Controller) readRoutes(ctx context.Context) ([]defaultRoute, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.APITimeout)
	defer cancel()
	home := map[string]bool{}
	seen := map[string]bool{}
	var tables []types.RouteTable
	add := func(t types.RouteTable) {
		if id := aws.ToString(t.RouteTableId); !seen[id] {
			seen[id] = true
			tables = append(tables, t)
		}
	}
	// describe returns the IDs of the tables a tag finds.
	describe := func(in *ec2.DescribeRouteTablesInput, what string) ([]string, error) {
		var found []string
		p := ec2.NewDescribeRouteTablesPaginator(c.opts.EC2, in)
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			c.metrics.apiCall("DescribeRouteTables", err)
			if err != nil {
				return nil, fmt.Errorf("ec2:DescribeRouteTables %s: %w", what, err)
			}
			for _, t := range out.RouteTables {
				found = append(found, aws.ToString(t.RouteTableId))
				add(t)
			}
		}
		return found, nil
	}
	var ids []string
	for _, ref := range append(slices.Clone(c.opts.HomeTables), c.opts.PeerTables...) {
		if ref.ID != "" {
			ids = append(ids, ref.ID)
		}
	}
	if len(ids) > 0 {
		// No paginator: EC2 refuses MaxResults together with IDs.
		out, err := c.opts.EC2.DescribeRouteTables(ctx, &ec2.DescribeRouteTablesInput{RouteTableIds: ids})
		c.metrics.apiCall("DescribeRouteTables", err)
		if err != nil {
			return nil, fmt.Errorf("ec2:DescribeRouteTables %v: %w (check the IDs in ha.route_tables and ha.peer_route_tables and the instance role's ec2:DescribeRouteTables permission)", ids, err)
		}
		for _, t := range out.RouteTables {
			add(t)
		}
	}
	tagged := map[TableRef][]string{}
	for _, ref := range append(slices.Clone(c.opts.HomeTables), c.opts.PeerTables...) {
		if ref.ID != "" {
			continue
		}
		found, err := describe(&ec2.DescribeRouteTablesInput{Filters: []types.Filter{{
			Name: aws.String("tag:" + ref.TagKey), Values: []string{ref.TagValue},
		}}}, ref.String())
		if err != nil {
			return nil, err
		}
		if len(found) == 0 {
			c.warnOnce("notag:"+ref.String(), func() {
				c.log.Warn().Str("route_tables", ref.String()).Msg("ha: no route table carries this tag")
			})
		}
		tagged[ref] = found
	}
	peerSet := map[string]bool{}
	for _, ref := range c.opts.HomeTables {
		if ref.ID != "" {
			home[ref.ID] = true
		}
		for _, id := range tagged[ref] {
			home[id] = true
		}
	}
	for _, ref := range c.opts.PeerTables {
		if ref.ID != "" {
			peerSet[ref.ID] = true
		}
		for _, id := range tagged[ref] {
			peerSet[id] = true
		}
	}
	// A table that is both (two tags on one table) has no one home
	// instance: both would claim it. Leave it alone.
	tables = slices.DeleteFunc(tables, func(t types.RouteTable) bool {
		id := aws.ToString(t.RouteTableId)
		if !home[id] || !peerSet[id] {
			return false
		}
		c.warnOnce("both:"+id, func() {
			c.log.Error().Str("route_table", id).Str("home_tables", refsString(c.opts.HomeTables)).
				Str("peer_tables", refsString(c.opts.PeerTables)).
				Msg("ha: route table is in both ha.route_tables and ha.peer_route_tables (by tag?): leaving it alone; give each table one home")
		})
		return true
	})

	var routes []defaultRoute
	for _, t := range tables {
		id := aws.ToString(t.RouteTableId)
		found := false
		for _, r := range t.Routes {
			dest := aws.ToString(r.DestinationCidrBlock)
			if dest == "" {
				dest = aws.ToString(r.DestinationIpv6CidrBlock)
			}
			if dest != defaultRoute4 && dest != defaultRoute6 {
				continue
			}
			found = true
			routes = append(routes, c.classify(defaultRoute{
				table:       id,
				home:        home[id],
				destination: dest,
				target:      Identity{InstanceID: aws.ToString(r.InstanceId), NetworkInterfaceID: aws.ToString(r.NetworkInterfaceId)},
				other:       foreignTarget(r),
				blackhole:   r.State == types.RouteStateBlackhole,
			}))
		}
		if !found {
			c.warnOnce("noroute:"+id, func() {
				c.log.Warn().Str("route_table", id).Str("interface", c.opts.Self.NetworkInterfaceID).
					Msg("ha: route table has no 0.0.0.0/0 route; egressd only replaces routes: create one pointing at the home instance's interface")
			})
		}
	}
	c.learnFromRoutes(routes)
	for i := range routes {
		routes[i] = c.classify(routes[i])
	}
	slices.SortFunc(routes, func(a, b defaultRoute) int {
		return cmp.Or(strings.Compare(a.table, b.table), strings.Compare(a.destination, b.destination))
	})
	return routes, nil
}

// foreignTarget describes a target that is neither an instance nor a
// network interface, or "".
func foreignTarget(r types.Route) string {
	for _, t := range []*string{r.GatewayId, r.NatGatewayId, r.TransitGatewayId, r.VpcPeeringConnectionId,
		r.EgressOnlyInternetGatewayId, r.LocalGatewayId, r.CarrierGatewayId, r.CoreNetworkArn} {
		if s := aws.ToString(t); s != "" {
			return s
		}
	}
	return ""
}

// classify sets r.kind from what is known of this instance and its peer.
func (c *Controller) classify(r defaultRoute) defaultRoute {
	self, peer := c.opts.Self, c.peerIdentity()
	is := func(id Identity) bool {
		return id.NetworkInterfaceID != "" && r.target.NetworkInterfaceID == id.NetworkInterfaceID ||
			id.InstanceID != "" && r.target.InstanceID == id.InstanceID
	}
	switch {
	case r.blackhole:
		r.kind = targetNothing
	case r.other != "":
		r.kind = targetForeign
	case is(self):
		r.kind = targetSelf
	case is(peer):
		r.kind = targetPeer
	case r.target == Identity{}:
		r.kind = targetNothing
	default:
		r.kind = targetForeign
	}
	return r
}

// learnFromRoutes learns the peer's identity from its tables: the instance
// EC2 shows behind the peer's known interface (current: it may have been
// replaced), or, while the peer's interface is unknown, the interface its
// tables point at.
func (c *Controller) learnFromRoutes(routes []defaultRoute) {
	peer := c.peerIdentity()
	for _, r := range routes {
		if r.home || r.blackhole || r.other != "" {
			continue
		}
		switch {
		case peer.NetworkInterfaceID != "" && r.target.NetworkInterfaceID == peer.NetworkInterfaceID:
			c.learnPeer(Identity{InstanceID: r.target.InstanceID}, "route table "+r.table, true)
		case peer.NetworkInterfaceID == "" && r.kind == targetForeign:
			c.learnPeer(r.target, "route table "+r.table, false)
			peer = c.peerIdentity()
		}
	}
}

// reconcile reads the routes and moves those that reason calls for:
// takeover: every route (home or peer) pointing at the peer or at nothing;
// failback: home routes pointing at the peer or at nothing; claim: home
// routes pointing at nothing; "": none (read only).
func (c *Controller) reconcile(ctx context.Context, now time.Time, reason string) error {
	c.lastReconcile = now
	routes, err := c.readRoutes(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for i, r := range routes {
		move := false
		switch r.kind {
		case targetForeign:
			c.warnOnce("foreign:"+r.table+r.destination, func() {
				c.log.Warn().Str("route_table", r.table).Str("destination", r.destination).Str("target", r.targetString()).
					Msg("ha: route points at neither this instance nor its peer: leaving it alone")
			})
		case targetPeer:
			// Not just after our own move: EC2 reads may lag a change.
			if at, ok := c.moved[routeKey(r)]; ok && now.Sub(at) > c.opts.ContestedAfter {
				// It was ours this failure, and the peer took it back: the
				// peer is alive enough to call EC2, yet fails our checks.
				// Fighting would flap the route; leave it to the peer.
				c.warnOnce("contested:"+routeKey(r), func() {
					c.log.Error().Str("route_table", r.table).Str("destination", r.destination).
						Msg("ha: the peer took back a route this instance took over, yet fails its checks: the pair disagrees (check ha.listen, ha.peer and firewalls between them); not moving it again until the peer answers")
				})
				continue
			}
			move = reason == ReasonTakeover || reason == ReasonFailback && r.home
		case targetNothing:
			move = reason == ReasonTakeover || r.home && (reason == ReasonFailback || reason == ReasonClaim)
		}
		if !move {
			continue
		}
		why := reason
		if r.kind == targetNothing && reason != ReasonTakeover {
			why = ReasonClaim
		}
		if err := c.replace(ctx, r, why); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, ok := c.moved[routeKey(r)]; !ok && reason == ReasonTakeover {
			c.moved[routeKey(r)] = now // the first move of this failure
		}
		routes[i].kind = targetSelf
	}
	c.setRole(roleOf(routes))
	return errors.Join(errs...)
}

func routeKey(r defaultRoute) string { return r.table + " " + r.destination }

func roleOf(routes []defaultRoute) string {
	role := RoleStandby
	for _, r := range routes {
		if r.kind != targetSelf {
			continue
		}
		if !r.home {
			return RoleTakeover
		}
		role = RoleActive
	}
	return role
}

// replace points one default route at this instance.
func (c *Controller) replace(ctx context.Context, r defaultRoute, reason string) error {
	in := &ec2.ReplaceRouteInput{
		RouteTableId:       aws.String(r.table),
		NetworkInterfaceId: aws.String(c.opts.Self.NetworkInterfaceID),
	}
	if r.destination == defaultRoute6 {
		in.DestinationIpv6CidrBlock = aws.String(r.destination)
	} else {
		in.DestinationCidrBlock = aws.String(r.destination)
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.APITimeout)
	defer cancel()
	start := time.Now()
	_, err := c.opts.EC2.ReplaceRoute(ctx, in)
	c.metrics.apiCall("ReplaceRoute", err)
	if err != nil {
		return fmt.Errorf("ec2:ReplaceRoute %s %s -> %s: %w (check the instance role's ec2:ReplaceRoute permission on this table)",
			r.table, r.destination, c.opts.Self.NetworkInterfaceID, err)
	}
	c.metrics.routeChanges.WithLabelValues(r.table, reason).Inc()
	c.log.Info().Str("route_table", r.table).Str("destination", r.destination).
		Str("from", r.targetString()).Str("to", c.opts.Self.NetworkInterfaceID).Str("reason", reason).
		Bool("home_table", r.home).Str("peer_check", string(c.lastCheck)).
		Dur("api_ms", time.Since(start)).Msg("ha: route moved")
	return nil
}
