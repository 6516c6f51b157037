package nat

import (
	"fmt"
	"testing"
)

func TestDefaultRoutes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup [][]string // `ip -n NS` commands after d0 has its addresses
		want  string
	}{
		{"none", nil, "[]"},
		{"both families", [][]string{
			{"route", "add", "default", "via", "10.77.0.1"},
			{"-6", "route", "add", "default", "via", "2001:db8:77::1"},
			{"route", "add", "198.51.100.0/24", "via", "10.77.0.9"}, // not a default route
		}, "[{ipv4 d0 10.77.0.1} {ipv6 d0 2001:db8:77::1}]"},
		{"multipath", [][]string{
			{"route", "add", "default", "nexthop", "via", "10.77.0.1", "dev", "d0", "nexthop", "via", "10.77.0.254", "dev", "d0"},
		}, "[{ipv4 d0 10.77.0.1} {ipv4 d0 10.77.0.254}]"},
		{"no gateway, and an unreachable default", [][]string{
			{"route", "add", "default", "dev", "d0"},
			{"-6", "route", "add", "unreachable", "default"},
		}, "[{ipv4 d0 invalid IP}]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := newNS(t)
			ns.ip(t, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
			ns.ip(t, "link", "set", "d0", "up")
			ns.ip(t, "link", "set", "d1", "up")
			ns.ip(t, "addr", "add", "10.77.0.2/24", "dev", "d0")
			ns.ip(t, "-6", "addr", "add", "2001:db8:77::2/64", "dev", "d0", "nodad")
			for _, c := range tc.setup {
				ns.ip(t, c...)
			}
			var got []Route
			var err error
			ns.do(t, func() { got, err = DefaultRoutes() })
			if err != nil {
				t.Fatal(err)
			}
			if got == nil {
				t.Error("DefaultRoutes() = nil, want an empty slice")
			}
			if s := fmt.Sprint(got); s != tc.want {
				t.Errorf("DefaultRoutes() = %s, want %s", s, tc.want)
			}
		})
	}
}
