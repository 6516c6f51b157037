package nat

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Route is a default route: where egressd's upstream connections and the
// masqueraded traffic leave the gateway.
type Route struct {
	Family    string // "ipv4" or "ipv6"
	Interface string // "" when the interface could not be looked up
	// Gateway is the next hop; invalid (zero) for a route straight out of
	// the interface (point-to-point links, some container setups).
	Gateway netip.Addr
}

// DefaultRoutes returns the unicast IPv4 (0.0.0.0/0) and IPv6 (::/0)
// default routes of the main routing table, in the calling thread's
// network namespace; a multipath route gives one Route per next hop. No
// default route is an empty slice, not an error.
func DefaultRoutes() ([]Route, error) {
	out := []Route{}
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		routes, err := netlink.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return out, fmt.Errorf("listing routes: %w", err)
		}
		name := "ipv4"
		if fam == unix.AF_INET6 {
			name = "ipv6"
		}
		for _, r := range routes {
			if r.Type != unix.RTN_UNICAST {
				continue // unreachable, blackhole, ... default routes carry no traffic out
			}
			if r.Dst != nil {
				if ones, _ := r.Dst.Mask.Size(); ones != 0 {
					continue
				}
			}
			if len(r.MultiPath) > 0 {
				for _, nh := range r.MultiPath {
					out = append(out, Route{Family: name, Interface: linkName(nh.LinkIndex), Gateway: addr(nh.Gw)})
				}
				continue
			}
			out = append(out, Route{Family: name, Interface: linkName(r.LinkIndex), Gateway: addr(r.Gw)})
		}
	}
	return out, nil
}

func linkName(index int) string {
	if index == 0 {
		return ""
	}
	link, err := netlink.LinkByIndex(index)
	if err != nil {
		return ""
	}
	return link.Attrs().Name
}

func addr(ip []byte) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	return a.Unmap()
}
