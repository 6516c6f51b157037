package policy

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseEntry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		kind EntryKind
		name string
		pfx  string
	}{
		{"naver.com", Exact, "naver.com", ""},
		{"Naver.COM.", Exact, "naver.com", ""},
		{".example.org", Domain, "example.org", ""},
		{"*.example.net", Subdomains, "example.net", ""},
		{"_acme-challenge.example.com", Exact, "_acme-challenge.example.com", ""},
		{".bücher.example", Domain, "xn--bcher-kva.example", ""},
		{"BÜCHER.example", Exact, "xn--bcher-kva.example", ""},
		{"*.straße.example", Subdomains, "xn--strae-oqa.example", ""},
		{"_srv.bücher.example", Exact, "_srv.xn--bcher-kva.example", ""},
		{"xn--bcher-kva.example", Exact, "xn--bcher-kva.example", ""},
		{"github.io", Exact, "github.io", ""}, // exact names may be public suffixes: one owner
		{"com", Exact, "com", ""},
		{".amazonaws.com", Domain, "amazonaws.com", ""},
		{"*.docker.io", Subdomains, "docker.io", ""},
		{"203.0.113.0/24", Prefix, "", "203.0.113.0/24"},
		{"203.0.113.7", Prefix, "", "203.0.113.7/32"},
		{"203.0.113.7/32", Prefix, "", "203.0.113.7/32"},
		{"0.0.0.0/0", Prefix, "", "0.0.0.0/0"},
		{"2001:db8::/32", Prefix, "", "2001:db8::/32"},
		{"2001:db8::7", Prefix, "", "2001:db8::7/128"},
		{"2001:DB8::/32", Prefix, "", "2001:db8::/32"},
	}
	for _, tt := range tests {
		e, err := ParseEntry(tt.in, false)
		if err != nil {
			t.Errorf("ParseEntry(%q): %v", tt.in, err)
			continue
		}
		var want netip.Prefix
		if tt.pfx != "" {
			want = netip.MustParsePrefix(tt.pfx)
		}
		if e.Kind != tt.kind || e.Name != tt.name || e.Prefix != want || e.Text != tt.in || e.String() != tt.in {
			t.Errorf("ParseEntry(%q) = %+v; want kind %v name %q prefix %v", tt.in, e, tt.kind, tt.name, want)
		}
	}
}

func TestParseEntryErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want string
	}{
		{"", "empty entry"},
		{"naver .com", "contains white space"},
		{"10.0.0.1/8", "did you mean 10.0.0.0/8?"},
		{"2001:db8::1/32", "did you mean 2001:db8::/32?"},
		{"10.0.0.0/33", "not a valid CIDR"},
		{"10.0.0", "not a valid IP address or CIDR"},
		{"300.1.1.1", "not a valid IP address or CIDR"},
		{"10.0.0.0/", "not a valid CIDR"},
		{"fe80::1%eth0", "zones are not allowed"},
		{"::ffff:10.0.0.0/104", "did you mean 10.0.0.0/8?"},
		{"::ffff:10.0.0.1", "did you mean 10.0.0.1?"},
		{"example.com:443", "not a valid IP address"},
		{".com", "com is a public suffix on the Public Suffix List"},
		{"*.com", "public suffix"},
		{".github.io", "github.io is a public suffix"},
		{"*.s3.amazonaws.com", "s3.amazonaws.com is a public suffix"},
		{".co.uk", "policy.allow_public_suffixes: true"},
		{".internal", "internal is a top-level domain"},
		{"*", "'*' may only be the whole first label"},
		{"*example.com", "'*' may only be the whole first label"},
		{"foo.*.example.com", "'*' may only be the whole first label"},
		{"*.*.example.com", "'*' may only be the whole first label"},
		{".", `a name must follow "."`},
		{"*.", `a name must follow "*."`},
		{"..example.com", "empty label"},
		{"a..example.com", "empty label"},
		{"example.com..", "empty label"},
		{"exa!mple.com", `invalid character '!'`},
		{strings.Repeat("a", 64) + ".example.com", "longer than 63"},
		{strings.Repeat("a.", 127) + "com", "longer than 253"},
		{"-bücher.example", "not a valid internationalised name"},
		{"\xffbücher.example", "not a valid internationalised name"},
		{"foo.123", `last label "123" is all digits`},
		{".203.0.113.1", "not a valid IP address"},
	}
	for _, tt := range tests {
		_, err := ParseEntry(tt.in, false)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseEntry(%q) error = %v; want one containing %q", tt.in, err, tt.want)
		}
	}
}

func TestParseEntryPublicSuffixesAllowed(t *testing.T) {
	t.Parallel()
	for _, in := range []string{".com", "*.github.io", "*.s3.amazonaws.com", ".internal"} {
		if _, err := ParseEntry(in, true); err != nil {
			t.Errorf("ParseEntry(%q, allowPublicSuffixes) = %v", in, err)
		}
	}
}

func TestParsePrefix(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"10.0.3.0/24":   "10.0.3.0/24",
		"10.0.3.7":      "10.0.3.7/32",
		"2001:db8::/32": "2001:db8::/32",
	} {
		if p, err := ParsePrefix(in); err != nil || p.String() != want {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for in, want := range map[string]string{
		"":            "empty",
		"10.0.3.7/24": "did you mean 10.0.3.0/24?",
		"10.0.3":      "not a valid IP address or CIDR",
		"naver.com":   "not a valid IP address or CIDR",
	} {
		if _, err := ParsePrefix(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePrefix(%q) error = %v; want %q", in, err, want)
		}
	}
}

func TestKindStrings(t *testing.T) {
	t.Parallel()
	for k, want := range map[EntryKind]string{Exact: "exact", Domain: "domain", Subdomains: "subdomains", Prefix: "prefix", 9: "EntryKind(9)"} {
		if k.String() != want {
			t.Errorf("%d.String() = %q, want %q", k, k.String(), want)
		}
	}
}
