package nat

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Route is a default route: where upstream connections leave.
type Route struct {
	Family    string // "ipv4" or "ipv6"
	Interface string
	Gateway   netip.Addr // invalid when the route has no gateway
}

// DefaultRoutes returns the IPv4 and IPv6 default routes of the main table.
func DefaultRoutes() ([]Route, error) {
	var out []Route
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		routes, err := netlink.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return out, fmt.Errorf("listing routes: %w", err)
		}
		for _, r := range routes {
			if r.Dst != nil {
				if ones, _ := r.Dst.Mask.Size(); ones != 0 {
					continue
				}
			}
			rt := Route{Family: "ipv4"}
			if fam == unix.AF_INET6 {
				rt.Family = "ipv6"
			}
			if link, err := netlink.LinkByIndex(r.LinkIndex); err == nil {
				rt.Interface = link.Attrs().Name
			}
			if a, ok := netip.AddrFromSlice(r.Gw); ok {
				rt.Gateway = a.Unmap()
			}
			out = append(out, rt)
		}
	}
	return out, nil
}
