package policy

import (
	"net/netip"
	"strings"
	"testing"
)

// addr and pfx keep the tables readable.
func addr(s string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	return netip.MustParseAddr(s)
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func mustNew(t testing.TB, spec Spec) *Policy {
	t.Helper()
	p, err := New(spec)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

// specForTests is the policy most tests decide against: SPEC's example plus
// IPv6, IDN and a group with an address entry.
var specForTests = Spec{
	Allow: []string{
		"naver.com",
		".example.org",
		"*.example.net",
		"203.0.113.0/24",
		"198.51.100.7",
		"2001:db8:1::/48",
		".bücher.example",
		"_acme-challenge.example.com",
	},
	Groups: []Group{{
		Name:    "ci",
		Sources: []netip.Prefix{pfx("10.0.3.0/24"), pfx("2001:db8:77::/64")},
		Allow:   []string{".github.com", "198.51.100.128/25"},
	}},
}

func TestDecide(t *testing.T) {
	t.Parallel()
	p := mustNew(t, specForTests)
	const (
		client = "10.77.0.10"  // in no group
		ci     = "10.0.3.7"    // in group ci
		nobody = "203.0.113.1" // the destination when it does not matter
		other  = "198.51.100.1"
	)
	tests := []struct {
		desc      string
		src, name string
		dst       string
		reason    Reason
		rule      string // Rule.String(), "" for none
		byAddress bool
	}{
		// Exact names, case, trailing dot.
		{"exact", client, "naver.com", other, ReasonAllowedName, "naver.com", false},
		{"exact upper case", client, "NAVER.Com", other, ReasonAllowedName, "naver.com", false},
		{"exact one trailing dot", client, "naver.com.", other, ReasonAllowedName, "naver.com", false},
		{"two trailing dots are invalid", client, "naver.com..", other, ReasonInvalidName, "", false},
		{"exact is not a suffix", client, "www.naver.com", other, ReasonNotAllowed, "", false},
		{"exact is not a prefix", client, "naver.co", other, ReasonNotAllowed, "", false},

		// .domain: the apex and every subdomain, on label boundaries.
		{"domain apex", client, "example.org", other, ReasonAllowedName, ".example.org", false},
		{"domain sub", client, "www.example.org", other, ReasonAllowedName, ".example.org", false},
		{"domain deep", client, "a.b.c.d.example.org", other, ReasonAllowedName, ".example.org", false},
		{"domain mixed case", client, "WWW.Example.ORG.", other, ReasonAllowedName, ".example.org", false},
		{"domain not a string suffix", client, "badexample.org", other, ReasonNotAllowed, "", false},
		{"domain not a prefix", client, "example.org.evil.test", other, ReasonNotAllowed, "", false},
		{"domain parent", client, "org", other, ReasonNotAllowed, "", false},

		// *.domain: subdomains only.
		{"subdomains apex denied", client, "example.net", other, ReasonNotAllowed, "", false},
		{"subdomains sub", client, "cdn.example.net", other, ReasonAllowedName, "*.example.net", false},
		{"subdomains deep", client, "a.cdn.example.net", other, ReasonAllowedName, "*.example.net", false},
		{"subdomains not a string suffix", client, "badexample.net", other, ReasonNotAllowed, "", false},
		{"subdomains label boundary", client, "x.badexample.net", other, ReasonNotAllowed, "", false},

		// Underscores are valid in labels.
		{"underscore", client, "_acme-challenge.example.com", other, ReasonAllowedName, "_acme-challenge.example.com", false},

		// IDN: the config entry is Unicode, the wire name an A-label.
		{"idn apex", client, "xn--bcher-kva.example", other, ReasonAllowedName, ".bücher.example", false},
		{"idn sub upper", client, "Shop.XN--BCHER-KVA.example", other, ReasonAllowedName, ".bücher.example", false},
		{"idn unicode on the wire", client, "bücher.example", other, ReasonInvalidName, "", false},
		{"idn other label", client, "xn--bcher-kvb.example", other, ReasonNotAllowed, "", false},

		// Invalid names are denied, never repaired, even towards an
		// allowed address.
		{"nul byte", client, "api.github.com\x00.evil", nobody, ReasonInvalidName, "", false},
		{"space", client, "api github.com", nobody, ReasonInvalidName, "", false},
		{"empty label", client, "api..github.com", nobody, ReasonInvalidName, "", false},
		{"leading dot", client, ".github.com", nobody, ReasonInvalidName, "", false},
		{"wildcard on the wire", ci, "*.github.com", nobody, ReasonInvalidName, "", false},
		{"percent encoding", ci, "%61pi.github.com", nobody, ReasonInvalidName, "", false},
		{"port", client, "naver.com:443", nobody, ReasonInvalidName, "", false},
		{"slash", client, "naver.com/x", nobody, ReasonInvalidName, "", false},
		{"backslash", client, `naver.com\`, nobody, ReasonInvalidName, "", false},
		{"only a dot", client, ".", nobody, ReasonInvalidName, "", false},
		{"label of 64", client, strings.Repeat("a", 64) + ".example.org", nobody, ReasonInvalidName, "", false},
		{"name of 254", client, strings.Repeat("a.", 120) + "bb.example.org", nobody, ReasonInvalidName, "", false},
		{"bracketed IPv6", client, "[2001:db8:1::5]", nobody, ReasonInvalidName, "", false},
		{"IPv6 with zone", client, "fe80::1%eth0", nobody, ReasonInvalidName, "", false},
		{"high byte", client, "naver.com\xff", nobody, ReasonInvalidName, "", false},

		// Length limits are inclusive.
		{"label of 63", client, strings.Repeat("a", 63) + ".example.org", other, ReasonAllowedName, ".example.org", false},
		{"name of 253", client, strings.Repeat("a.", 120) + "b.example.org", other, ReasonAllowedName, ".example.org", false},
		{"name of 253 and a dot", client, strings.Repeat("a.", 120) + "b.example.org.", other, ReasonAllowedName, ".example.org", false},

		// Groups by source.
		{"group source", ci, "api.github.com", other, ReasonAllowedName, ".github.com (group ci)", false},
		{"group apex", ci, "github.com", other, ReasonAllowedName, ".github.com (group ci)", false},
		{"group other source", "10.0.4.1", "api.github.com", other, ReasonNotAllowed, "", false},
		{"group no source", "", "api.github.com", other, ReasonNotAllowed, "", false},
		{"group IPv6 source", "2001:db8:77::9", "api.github.com", other, ReasonAllowedName, ".github.com (group ci)", false},
		{"group IPv6 other source", "2001:db8:78::9", "api.github.com", other, ReasonNotAllowed, "", false},
		{"group IPv4-mapped source", "::ffff:10.0.3.7", "api.github.com", other, ReasonAllowedName, ".github.com (group ci)", false},
		{"group member keeps top-level", ci, "naver.com", other, ReasonAllowedName, "naver.com", false},
		{"group address entry", ci, "", "198.51.100.200", ReasonAllowedAddress, "198.51.100.128/25 (group ci)", true},
		{"group address entry other source", client, "", "198.51.100.200", ReasonNoName, "", false},

		// Address entries allow the destination whatever the name; the
		// gateway then dials the original destination.
		{"address no name", client, "", "203.0.113.9", ReasonAllowedAddress, "203.0.113.0/24", true},
		{"address spoofed name", client, "evil.test", "203.0.113.9", ReasonAllowedAddress, "203.0.113.0/24", true},
		{"address allowed name", client, "naver.com", "203.0.113.9", ReasonAllowedAddress, "203.0.113.0/24", true},
		{"address invalid name", client, "evil test", "203.0.113.9", ReasonInvalidName, "", false},
		{"address single", client, "", "198.51.100.7", ReasonAllowedAddress, "198.51.100.7", true},
		{"address single neighbour", client, "", "198.51.100.8", ReasonNoName, "", false},
		{"address IPv6", client, "evil.test", "2001:db8:1:ffff::1", ReasonAllowedAddress, "2001:db8:1::/48", true},
		{"address IPv6 outside", client, "evil.test", "2001:db8:2::1", ReasonNotAllowed, "", false},
		{"address IPv4-mapped destination", client, "", "::ffff:203.0.113.9", ReasonAllowedAddress, "203.0.113.0/24", true},
		{"address IPv6 source", "2001:db8:a::1", "", "203.0.113.9", ReasonAllowedAddress, "203.0.113.0/24", true},

		// An IP literal as the name is no name: the destination decides.
		{"IPv4 literal", client, "203.0.113.9", "203.0.113.9", ReasonAllowedAddress, "203.0.113.0/24", true},
		{"IPv4 literal spoofing an allowed address", client, "203.0.113.9", other, ReasonNoName, "", false},
		{"IPv4 literal with dot", client, "203.0.113.9.", other, ReasonNoName, "", false},
		{"IPv6 literal", client, "2001:db8:1::5", "2001:db8:1::5", ReasonAllowedAddress, "2001:db8:1::/48", true},
		{"IPv6 literal elsewhere", client, "2001:db8:1::5", "2001:db8:9::5", ReasonNoName, "", false},
		{"numeric name not an address", client, "1.2.3", other, ReasonNotAllowed, "", false},

		// No name.
		{"no name", client, "", other, ReasonNoName, "", false},
		{"no name no destination", client, "", "", ReasonNoName, "", false},
		{"name no destination", client, "naver.com", "", ReasonAllowedName, "naver.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			d := p.Decide(addr(tt.src), tt.name, addr(tt.dst))
			wantAllowed := tt.reason == ReasonAllowedName || tt.reason == ReasonAllowedAddress
			if d.Allowed != wantAllowed || d.Reason != tt.reason || d.Rule.String() != tt.rule || d.ByAddress != tt.byAddress {
				t.Errorf("Decide(%s, %q, %s) = allowed %v, %s, rule %q, byAddress %v; want allowed %v, %s, rule %q, byAddress %v",
					tt.src, tt.name, tt.dst, d.Allowed, d.Reason, d.Rule, d.ByAddress, wantAllowed, tt.reason, tt.rule, tt.byAddress)
			}
			if !d.Enforced {
				t.Errorf("Enforced = false in enforce mode")
			}
			if d.Permit() != wantAllowed {
				t.Errorf("Permit() = %v in enforce mode, want %v", d.Permit(), wantAllowed)
			}
			if (d.Rule == nil) == d.Allowed {
				t.Errorf("Rule = %v with Allowed = %v", d.Rule, d.Allowed)
			}
			if got := p.AllowsName(addr(tt.src), tt.name); got != (tt.reason == ReasonAllowedName) && !d.ByAddress {
				t.Errorf("AllowsName = %v, Decide says %s", got, tt.reason)
			}
		})
	}
}

// TestDecideSpecificity checks which rule a decision reports when several
// match: longest prefix, exact before suffix, longest suffix, and a
// top-level rule on ties.
func TestDecideSpecificity(t *testing.T) {
	t.Parallel()
	p := mustNew(t, Spec{
		Allow: []string{".github.com", "*.svc.example.org", "198.18.0.0/15", "2001:db8::/32", ".same.test"},
		Groups: []Group{
			{Name: "ci", Sources: []netip.Prefix{pfx("10.0.3.0/24")}, Allow: []string{
				"api.github.com", ".svc.example.org", "198.18.5.0/24", "2001:db8:5::/48", ".same.test", "*.same.test",
			}},
			{Name: "ci2", Sources: []netip.Prefix{pfx("10.0.0.0/16")}, Allow: []string{".a.svc.example.org"}},
		},
	})
	tests := []struct {
		src, name, dst, rule string
	}{
		{"10.0.3.7", "api.github.com", "", "api.github.com (group ci)"}, // exact beats a shorter suffix
		{"10.0.4.7", "api.github.com", "", ".github.com"},
		{"10.0.3.7", "x.api.github.com", "", ".github.com"},
		{"10.0.3.7", "svc.example.org", "", ".svc.example.org (group ci)"},
		{"10.0.3.7", "b.svc.example.org", "", "*.svc.example.org"},                // tie at one suffix: top-level
		{"10.0.3.7", "x.a.svc.example.org", "", ".a.svc.example.org (group ci2)"}, // longest suffix
		{"10.0.3.7", "same.test", "", ".same.test"},
		{"10.0.3.7", "x.same.test", "", ".same.test"},
		{"10.0.3.7", "", "198.18.5.1", "198.18.5.0/24 (group ci)"}, // longest prefix
		{"10.0.4.7", "", "198.18.5.1", "198.18.0.0/15"},
		{"10.0.3.7", "", "198.19.0.1", "198.18.0.0/15"},
		{"10.0.3.7", "", "2001:db8:5::1", "2001:db8:5::/48 (group ci)"},
		{"10.0.4.7", "", "2001:db8:5::1", "2001:db8::/32"},
	}
	for _, tt := range tests {
		d := p.Decide(addr(tt.src), tt.name, addr(tt.dst))
		if !d.Allowed || d.Rule.String() != tt.rule {
			t.Errorf("Decide(%s, %q, %s) = %v %s rule %q; want rule %q", tt.src, tt.name, tt.dst, d.Allowed, d.Reason, d.Rule, tt.rule)
		}
	}
}

func TestDecideCatchAllPrefixes(t *testing.T) {
	t.Parallel()
	p := mustNew(t, Spec{Allow: []string{"0.0.0.0/0"}})
	if d := p.Decide(netip.Addr{}, "", addr("198.51.100.1")); !d.Allowed || d.Rule.String() != "0.0.0.0/0" {
		t.Errorf("0.0.0.0/0: %+v", d)
	}
	if d := p.Decide(netip.Addr{}, "", addr("2001:db8::1")); d.Allowed {
		t.Errorf("0.0.0.0/0 allowed an IPv6 destination: %+v", d)
	}
	p = mustNew(t, Spec{Allow: []string{"::/0"}})
	if d := p.Decide(netip.Addr{}, "", addr("2001:db8::1")); !d.Allowed {
		t.Errorf("::/0: %+v", d)
	}
	if d := p.Decide(netip.Addr{}, "", addr("::ffff:198.51.100.1")); d.Allowed {
		t.Errorf("::/0 allowed an IPv4-mapped destination: %+v", d)
	}
}

func TestMonitorMode(t *testing.T) {
	t.Parallel()
	spec := specForTests
	spec.Mode = Monitor
	p := mustNew(t, spec)
	if p.Mode() != Monitor || p.Mode().String() != "monitor" {
		t.Fatalf("Mode() = %v", p.Mode())
	}
	tests := []struct {
		name   string
		dst    string
		reason Reason
	}{
		{"naver.com", "198.51.100.1", ReasonAllowedName},
		{"evil.test", "198.51.100.1", ReasonNotAllowed},
		{"evil test", "198.51.100.1", ReasonInvalidName},
		{"", "198.51.100.1", ReasonNoName},
		{"", "203.0.113.1", ReasonAllowedAddress},
	}
	for _, tt := range tests {
		d := p.Decide(addr("10.77.0.1"), tt.name, addr(tt.dst))
		if d.Reason != tt.reason || d.Enforced || !d.Permit() {
			t.Errorf("monitor Decide(%q, %s) = %+v; want reason %s, Enforced false, Permit true", tt.name, tt.dst, d, tt.reason)
		}
		if d.Allowed != (tt.reason == ReasonAllowedName || tt.reason == ReasonAllowedAddress) {
			t.Errorf("monitor Decide(%q): Allowed = %v: monitor mode must still say what the policy decides", tt.name, d.Allowed)
		}
	}
}

func TestZeroDecisionPermitsNothing(t *testing.T) {
	t.Parallel()
	if (Decision{}).Permit() {
		t.Error("the zero Decision permits")
	}
}

func TestModeStrings(t *testing.T) {
	t.Parallel()
	for _, m := range []Mode{Enforce, Monitor} {
		got, err := ParseMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v", m.String(), got, err)
		}
	}
	if _, err := ParseMode("Enforce"); err == nil || !strings.Contains(err.Error(), "valid: enforce, monitor") {
		t.Errorf("ParseMode(Enforce) error = %v", err)
	}
	var zero Mode
	if zero != Enforce {
		t.Error("the zero Mode is not Enforce")
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	_, err := New(Spec{
		Mode:  Mode(7),
		Allow: []string{"ok.example", ".com", "10.0.0.1/8", "a..b"},
		Groups: []Group{
			{Name: "", Sources: []netip.Prefix{pfx("10.0.3.0/24")}, Allow: []string{"x.example"}},
			{Name: "ci", Sources: nil, Allow: []string{"x.example"}},
			{Name: "ci", Sources: []netip.Prefix{netip.PrefixFrom(addr("10.0.3.7"), 24)}, Allow: nil},
		},
	})
	if err == nil {
		t.Fatal("New accepted a broken spec")
	}
	want := []string{
		"mode: Mode(7)",
		`allow[1]: ".com"`,
		`allow[2]: "10.0.0.1/8" has bits set beyond the /8 prefix length: did you mean 10.0.0.0/8?`,
		`allow[3]: "a..b" is not a valid host name`,
		"groups[0]: a group needs a name",
		"groups[1] (ci): no sources",
		`groups[2]: group name "ci" is used twice`,
		"groups[2] (ci).sources[0]: 10.0.3.7/24 is not a canonical prefix",
		"groups[2] (ci): no allow entries",
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Errorf("New error has %d lines, want %d:\n%v", len(lines), len(want), err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("New error lacks %q:\n%v", w, err)
		}
	}
}

// TestNewCopiesSources checks that a compiled policy does not change when
// the caller reuses its slices.
func TestNewCopiesSources(t *testing.T) {
	t.Parallel()
	src := []netip.Prefix{pfx("10.0.3.0/24")}
	p := mustNew(t, Spec{Groups: []Group{{Name: "ci", Sources: src, Allow: []string{".github.com"}}}})
	src[0] = pfx("10.0.4.0/24")
	if !p.AllowsName(addr("10.0.3.7"), "api.github.com") || p.AllowsName(addr("10.0.4.7"), "api.github.com") {
		t.Error("the policy followed a change to the caller's Sources slice")
	}
}

// TestDecideAllocs checks that no input makes Decide allocate.
func TestDecideAllocs(t *testing.T) {
	p := mustNew(t, specForTests)
	inputs := []struct{ src, name, dst string }{
		{"10.0.3.7", "api.github.com", "198.51.100.1"},
		{"10.0.4.7", "API.GITHUB.COM.", "198.51.100.1"},
		{"10.77.0.1", "deep.a.b.c.d.e.f.g.example.org", "198.51.100.1"},
		{"10.77.0.1", "not.allowed.test", "198.51.100.1"},
		{"10.77.0.1", "bad name", "198.51.100.1"},
		{"10.77.0.1", "bücher.example", "198.51.100.1"},
		{"10.77.0.1", strings.Repeat("x", 300), "198.51.100.1"},
		{"10.77.0.1", "203.0.113.9", "203.0.113.9"},
		{"10.77.0.1", "2001:db8::1", "2001:db8::1"},
		{"10.77.0.1", "2001:db8::g", "2001:db8::1"},
		{"10.77.0.1", "1.2.3.400", "198.51.100.1"},
		{"10.77.0.1", "", "203.0.113.9"},
		{"2001:db8:77::1", "", "2001:db8:1::1"},
		{"", "", ""},
	}
	for _, in := range inputs {
		src, dst := addr(in.src), addr(in.dst)
		if n := testing.AllocsPerRun(100, func() { p.Decide(src, in.name, dst) }); n != 0 {
			t.Errorf("Decide(%s, %q, %s) allocates %v times", in.src, in.name, in.dst, n)
		}
	}
}
