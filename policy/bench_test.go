package policy

import (
	"fmt"
	"net/netip"
	"testing"
)

// benchSpec generates a policy of n entries: exact names, .domains,
// *.domains, IPv4 and IPv6 prefixes of many lengths, and a few groups.
func benchSpec(n int) Spec {
	var spec Spec
	groups := make([]Group, 5)
	for g := range groups {
		groups[g] = Group{
			Name:    fmt.Sprintf("team%d", g),
			Sources: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 77, byte(g), 0}), 24)},
		}
	}
	for i := 0; len(spec.Allow)+countGroupEntries(groups) < n; i++ {
		var e string
		switch i % 10 {
		case 0, 1, 2:
			e = fmt.Sprintf("host%d.svc%d.example%d.com", i, i%97, i%1013)
		case 3, 4:
			e = fmt.Sprintf(".domain%d.example%d.org", i, i%101)
		case 5, 6:
			e = fmt.Sprintf("*.cdn%d.example%d.net", i, i%89)
		case 7:
			// IPv4 prefixes of lengths /16 to /32 inside 198.18.0.0/15.
			bits := 16 + i%17
			a := netip.AddrFrom4([4]byte{198, 18 + byte(i>>16&1), byte(i >> 8), byte(i)})
			e = netip.PrefixFrom(a, bits).Masked().String()
		case 8:
			// IPv6 prefixes of lengths /48 to /128 inside 2001:db8::/32.
			bits := 48 + (i%9)*10
			if bits > 128 {
				bits = 128
			}
			a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 16), byte(i >> 8), byte(i), 0, 0, 0, 0, 0, 0, 0, byte(i >> 8), byte(i)})
			e = netip.PrefixFrom(a, bits).Masked().String()
		case 9:
			gi := i / 10 % len(groups)
			groups[gi].Allow = append(groups[gi].Allow, fmt.Sprintf(".team%d-dep%d.example.com", gi, i))
			continue
		}
		spec.Allow = append(spec.Allow, e)
	}
	spec.Groups = groups
	return spec
}

func countGroupEntries(gs []Group) int {
	n := 0
	for _, g := range gs {
		n += len(g.Allow)
	}
	return n
}

type benchCase struct {
	src, dst netip.Addr
	name     string
	allowed  bool
}

func BenchmarkDecide100k(b *testing.B) {
	spec := benchSpec(100_000)
	p, err := New(spec)
	if err != nil {
		b.Fatal(err)
	}
	// One address inside an IPv4 and an IPv6 entry of the list.
	var in4, in6 netip.Addr
	for _, a := range spec.Allow {
		if p, err := netip.ParsePrefix(a); err == nil {
			last := p.Addr().Next()
			if p.Bits() == p.Addr().BitLen() {
				last = p.Addr()
			}
			if p.Addr().Is4() && !in4.IsValid() {
				in4 = last
			}
			if p.Addr().Is6() && !in6.IsValid() {
				in6 = last
			}
		}
	}
	client := netip.MustParseAddr("10.77.9.9")
	team1 := netip.MustParseAddr("10.77.1.5")
	internet := netip.MustParseAddr("203.0.113.50")
	cases := []benchCase{
		{client, internet, "host30.svc30.example30.com", true},                                // exact
		{client, internet, "a.b.c.www.domain13.example13.org", true},                          // .domain, deep
		{client, internet, "img.cdn15.example15.net", true},                                   // *.domain
		{team1, internet, "api.team1-dep19.example.com", true},                                // group
		{client, internet, "api.team1-dep19.example.com", false},                              // group, other source
		{client, internet, "www.not-in-the-list.example.com", false},                          // denied
		{client, internet, "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z.test", false}, // many labels
		{client, internet, "API.GitHub.com.", false},                                          // needs lower-casing
		{client, internet, "api github.com", false},                                           // invalid
		{client, netip.MustParseAddr("198.18.0.7"), "", true},                                 // IPv4 prefix
		{client, netip.MustParseAddr("2001:db8:0:0:700::7"), "spoofed.test", true},            // IPv6 prefix... maybe
		{client, netip.MustParseAddr("198.51.100.77"), "", false},                             // no name
	}
	for _, c := range cases {
		if d := p.Decide(c.src, c.name, c.dst); d.Allowed != c.allowed {
			b.Fatalf("Decide(%v, %q, %v) = %+v, want allowed %v", c.src, c.name, c.dst, d, c.allowed)
		}
	}
	b.Run("mix", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			c := &cases[i%len(cases)]
			p.Decide(c.src, c.name, c.dst)
		}
	})
	for _, sub := range []struct {
		name string
		c    benchCase
	}{{"allowed_name", cases[1]}, {"denied_name", cases[6]}, {"allowed_address", cases[9]}, {"no_name", cases[11]}} {
		b.Run(sub.name, func(b *testing.B) {
			b.ReportAllocs()
			c := sub.c
			for b.Loop() {
				p.Decide(c.src, c.name, c.dst)
			}
		})
	}
}

func BenchmarkNew100k(b *testing.B) {
	spec := benchSpec(100_000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := New(spec); err != nil {
			b.Fatal(err)
		}
	}
}
