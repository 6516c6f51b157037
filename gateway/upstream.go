package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/egressd/egressd/gateway/dnscache"
	"github.com/egressd/egressd/policy"
)

// Reasons the gateway itself gives, beside the policy's.
const (
	reasonLoop           = "loop"                 // the client dialed egressd's own listener
	reasonNoOriginalDst  = "no_original_dst"      // the connection was not redirected by conntrack
	reasonDstMismatch    = "destination_mismatch" // original mode: the client's address is not the name's
	reasonResolveFailed  = "resolve_failed"       // the allowed name has no address, or the resolver failed
	reasonDialFailed     = "dial_failed"          // no upstream address answered
	reasonHostChanged    = "host_changed"         // a later HTTP request named another host
	reasonIdleTimeout    = "idle_timeout"
	reasonMaxConnections = "max_connections"
	reasonForbidden      = "upstream_forbidden" // the only addresses are loopback, link-local, multicast or unspecified
)

// forbiddenUpstream reports addresses egressd never dials, whatever the
// policy says: the gateway's own loopback services, link-local addresses
// (on EC2, 169.254.169.254 is the gateway's instance metadata service and
// its role credentials: a name someone points there must not reach it),
// multicast and unspecified addresses.
func forbiddenUpstream(a netip.Addr) bool {
	a = a.Unmap()
	return !a.IsValid() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() ||
		a == netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// dialable drops the forbidden addresses; it is an errDeny when none is left.
func (g *Gateway) dialable(addrs []netip.AddrPort) ([]netip.AddrPort, error) {
	out := addrs[:0:0]
	for _, a := range addrs {
		if !g.opts.ForbiddenUpstream(a.Addr()) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, &errDeny{reasonForbidden, fmt.Errorf("%v: loopback, link-local, multicast or unspecified addresses are never dialed", addrs)}
	}
	return out, nil
}

// errDeny is returned by chooseUpstream when the connection must be denied
// for the reason it carries.
type errDeny struct {
	reason string
	err    error
}

func (e *errDeny) Error() string { return e.reason + ": " + e.err.Error() }
func (e *errDeny) Unwrap() error { return e.err }

// chooseUpstream returns the addresses to dial, in order, for a connection
// the policy permits. name is the normalised name ("" if none).
//
// This is the defence against spoofing: the client controls both the name
// it sends and the address it dials, so an allowed name never carries the
// connection to an address that is not the name's own (SPEC, Upstream modes).
func (g *Gateway) chooseUpstream(ctx context.Context, s *Settings, d policy.Decision, name string, dst netip.AddrPort) ([]netip.AddrPort, error) {
	addrs, err := g.upstreamCandidates(ctx, s, d, name, dst)
	if err != nil {
		return nil, err
	}
	return g.dialable(addrs)
}

func (g *Gateway) upstreamCandidates(ctx context.Context, s *Settings, d policy.Decision, name string, dst netip.AddrPort) ([]netip.AddrPort, error) {
	if d.ByAddress || name == "" {
		// An address entry allows the destination itself; in monitor mode a
		// nameless connection goes where the client was going.
		return []netip.AddrPort{dst}, nil
	}
	family := dnscache.IPv4
	if dst.Addr().Is6() {
		family = dnscache.IPv6
	}
	addrs, err := g.opts.Resolver.Lookup(ctx, name, family)
	if err != nil {
		if !d.Allowed && !d.Enforced {
			// Monitor mode must not break traffic it would deny: fall back
			// to the destination the client chose.
			return []netip.AddrPort{dst}, nil
		}
		return nil, &errDeny{reasonResolveFailed, err}
	}
	if s.UpstreamMode == Original {
		if !slices.Contains(addrs, dst.Addr()) {
			if !d.Enforced {
				return []netip.AddrPort{dst}, nil
			}
			return nil, &errDeny{reasonDstMismatch, fmt.Errorf("%s is not an address of %s (%d addresses)", dst.Addr(), name, len(addrs))}
		}
		return []netip.AddrPort{dst}, nil
	}
	out := make([]netip.AddrPort, 0, len(addrs))
	// Prefer the client's own destination when it is one of the name's
	// addresses: same server, same session caches, no surprise.
	if slices.Contains(addrs, dst.Addr()) {
		out = append(out, dst)
	}
	for _, a := range addrs {
		if a != dst.Addr() {
			out = append(out, netip.AddrPortFrom(a, dst.Port()))
		}
	}
	return out, nil
}

// dial connects to the first address that answers within the dial timeout.
func (g *Gateway) dial(ctx context.Context, s *Settings, addrs []netip.AddrPort) (*net.TCPConn, netip.AddrPort, error) {
	ctx, cancel := context.WithTimeout(ctx, s.DialTimeout)
	defer cancel()
	var errs []error
	for _, a := range addrs {
		c, err := g.opts.Dial(ctx, "tcp", a.String())
		if err == nil {
			tc, ok := c.(*net.TCPConn)
			if !ok {
				c.Close()
				return nil, a, fmt.Errorf("dialer returned %T, not a TCP connection", c)
			}
			return tc, a, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, netip.AddrPort{}, fmt.Errorf("dialing %v: %w", addrs, errors.Join(errs...))
}
