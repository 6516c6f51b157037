package nat

import (
	"net/netip"
	"strings"
	"testing"
)

func prefixes(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range s {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}

func goodRuleset() Ruleset {
	return Ruleset{
		Sources:        prefixes("10.77.0.0/16", "2001:db8:77::/64"),
		HTTPPorts:      []uint16{80},
		TLSPorts:       []uint16{443},
		HTTPListenPort: 15080,
		TLSListenPort:  15443,
		Other:          OtherReject,
	}
}

func TestRulesetValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(*Ruleset)
		want   []string // substrings of the error; none = valid
	}{
		{"good", func(*Ruleset) {}, nil},
		{"only TLS", func(rs *Ruleset) { rs.HTTPPorts = nil }, nil},
		{"masquerade", func(rs *Ruleset) { rs.Other = OtherMasquerade }, nil},
		{"no sources", func(rs *Ruleset) { rs.Sources = nil }, []string{"set intercept.sources"}},
		{"invalid source", func(rs *Ruleset) { rs.Sources = []netip.Prefix{{}} }, []string{"intercept.sources[0]: not a valid CIDR"}},
		{"listen ports", func(rs *Ruleset) { rs.HTTPListenPort, rs.TLSListenPort = 0, 0 },
			[]string{"set listen.http", "set listen.tls"}},
		{"no ports", func(rs *Ruleset) { rs.HTTPPorts, rs.TLSPorts = nil, nil }, []string{"set intercept.http_ports or intercept.tls_ports"}},
		{"port 0", func(rs *Ruleset) { rs.TLSPorts = []uint16{443, 0} }, []string{"intercept.tls_ports[1]: port 0"}},
		{"port in both", func(rs *Ruleset) { rs.HTTPPorts = []uint16{80, 443} }, []string{"port 443 is in both"}},
		{"other", func(rs *Ruleset) { rs.Other = "allow" }, []string{`intercept.other "allow": valid values are drop, reject, masquerade`}},
		{"empty other", func(rs *Ruleset) { rs.Other = "" }, []string{`intercept.other ""`}},
		{"everything at once", func(rs *Ruleset) { *rs = Ruleset{} },
			[]string{"intercept.sources", "listen.http", "listen.tls", "http_ports", "intercept.other"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := goodRuleset()
			tc.change(&rs)
			err := rs.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error mentioning %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestSplitFamiliesMergesAndSorts(t *testing.T) {
	t.Parallel()
	v4, v6 := splitFamilies(prefixes(
		"10.77.3.0/24", "10.77.0.0/23", "10.77.2.0/24", // adjacent: one range 10.77.0.0-10.77.3.255
		"10.77.1.5/32",           // inside
		"10.0.0.7/8",             // host bits set: masked
		"::ffff:203.0.113.0/120", // IPv4-mapped: IPv4
		"2001:db8:77::/64",       //
		"2001:db8:77:0:1::/80",   // inside
		"2001:db8:78::/64",       // not adjacent to the first
		"2001:db8:77:1::/64",     // adjacent to the first
	))
	if got, want := rangesString(v4), "10.0.0.0/8 203.0.113.0/24"; got != want {
		// 10.77.x is inside 10.0.0.0/8
		t.Errorf("v4 = %q, want %q", got, want)
	}
	if got, want := rangesString(v6), "2001:db8:77::/63 2001:db8:78::/64"; got != want {
		t.Errorf("v6 = %q, want %q", got, want)
	}
	v4, _ = splitFamilies(prefixes("10.77.0.0/24", "10.77.1.0/24", "10.77.2.0/24"))
	if got, want := rangesString(v4), "10.77.0.0-10.77.2.255"; got != want {
		t.Errorf("v4 = %q, want %q", got, want)
	}
}

func rangesString(rs []prefixRange) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.String())
	}
	return strings.Join(s, " ")
}

func TestIntervalElements(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sources []string
		want    string
	}{
		// Like nft: a leading end at zero, then start / end-exclusive pairs.
		{[]string{"10.77.0.0/16", "10.78.1.0/24"}, "0.0.0.0 end, 10.77.0.0, 10.78.0.0 end, 10.78.1.0, 10.78.2.0 end"},
		// No end element past the top of the address space, no leading one at zero.
		{[]string{"0.0.0.0/0"}, "0.0.0.0"},
		{[]string{"255.255.255.0/24"}, "0.0.0.0 end, 255.255.255.0"},
		{[]string{"2001:db8::/32"}, ":: end, 2001:db8::, 2001:db9:: end"},
		{nil, ""},
	} {
		v4, v6 := splitFamilies(prefixes(tc.sources...))
		var got []string
		for _, e := range append(intervalElements(v4), intervalElements(v6)...) {
			a, _ := netip.AddrFromSlice(e.Key)
			s := a.String()
			if e.IntervalEnd {
				s += " end"
			}
			got = append(got, s)
		}
		if g := strings.Join(got, ", "); g != tc.want {
			t.Errorf("%v: got %q, want %q", tc.sources, g, tc.want)
		}
	}
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	rs := goodRuleset()
	rs.TLSPorts = []uint16{8443, 443, 443}
	got := rs.Describe()
	for _, want := range []string{
		"table inet egressd",
		"sources ipv4 {10.77.0.0/16}, ipv6 {2001:db8:77::/64}",
		"tcp dport {80} -> :15080 (http), {443, 8443} -> :15443 (tls)",
		"gateway's own addresses not intercepted",
		"other forwarded traffic from sources: reject (tcp reset, icmp admin-prohibited)",
		"ICMP redirects dropped",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Describe() = %q\nwant it to contain %q", got, want)
		}
	}
	rs.Sources = prefixes("10.77.0.0/16")
	if got := rs.Describe(); !strings.Contains(got, "ipv6 none") {
		t.Errorf("Describe() = %q, want ipv6 none", got)
	}
}
