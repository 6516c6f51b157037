package policy

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestNormalizeName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw  string
		want string
		err  error // nil, ErrInvalidName or ErrAddressLiteral
		why  string
	}{
		{"api.github.com", "api.github.com", nil, ""},
		{"API.GitHub.Com", "api.github.com", nil, ""},
		{"api.github.com.", "api.github.com", nil, ""},
		{"xn--bcher-kva.example", "xn--bcher-kva.example", nil, ""},
		{"_dmarc.example.com", "_dmarc.example.com", nil, ""},
		{"a-b.c_d.e", "a-b.c_d.e", nil, ""},
		{"localhost", "localhost", nil, ""},
		{"1.2.3", "1.2.3", nil, ""},
		{"01.2.3.4", "01.2.3.4", nil, ""},
		{"1.2.3.4.5", "1.2.3.4.5", nil, ""},
		{strings.Repeat("a", 63) + ".x", strings.Repeat("a", 63) + ".x", nil, ""},

		{"", "", ErrInvalidName, "empty"},
		{".", "", ErrInvalidName, "empty label"},
		{"api.github.com..", "", ErrInvalidName, "empty label"},
		{".github.com", "", ErrInvalidName, "empty label"},
		{"api..github.com", "", ErrInvalidName, "empty label"},
		{"api.github.com\x00.evil", "", ErrInvalidName, `invalid character '\x00'`},
		{"api github.com", "", ErrInvalidName, "invalid character ' '"},
		{"*.github.com", "", ErrInvalidName, "invalid character '*'"},
		{"%61pi.github.com", "", ErrInvalidName, "invalid character '%'"},
		{"github.com:443", "", ErrInvalidName, "invalid character ':'"},
		{"bücher.example", "", ErrInvalidName, "non-ASCII"},
		{strings.Repeat("a", 64) + ".x", "", ErrInvalidName, "longer than 63"},
		{strings.Repeat("a.", 126) + "ab", "", ErrInvalidName, "longer than 253"},

		{"203.0.113.9", "", ErrAddressLiteral, ""},
		{"203.0.113.9.", "", ErrAddressLiteral, ""},
		{"2001:db8::1", "", ErrAddressLiteral, ""},
		{"::ffff:203.0.113.9", "", ErrAddressLiteral, ""},
		{"2001:db8::1.", "", ErrInvalidName, "invalid character ':'"},
		{"[2001:db8::1]", "", ErrInvalidName, "invalid character '['"},
	}
	for _, tt := range tests {
		got, err := NormalizeName(tt.raw)
		if got != tt.want || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("NormalizeName(%q) = %q, %v; want %q, %v", tt.raw, got, err, tt.want, tt.err)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), tt.why) {
			t.Errorf("NormalizeName(%q) error %q does not say %q", tt.raw, err, tt.why)
		}
	}
}

func TestNormalizeNameAllocs(t *testing.T) {
	for _, raw := range []string{"api.github.com", "api.github.com.", strings.Repeat("abc.", 60) + "x"} {
		if n := testing.AllocsPerRun(100, func() { _, _ = NormalizeName(raw) }); n != 0 {
			t.Errorf("NormalizeName(%q) allocates %v times for a normal name", raw, n)
		}
	}
}

// TestParseIPLiterals compares the allocation-free address parsers with
// net/netip on tricky inputs; FuzzParseIPLiterals does the same on random
// ones.
func TestParseIPLiterals(t *testing.T) {
	t.Parallel()
	for _, s := range ipLiteralSeeds {
		checkIPLiteral(t, s)
	}
}

var ipLiteralSeeds = []string{
	"0.0.0.0", "255.255.255.255", "256.0.0.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.04", "1..2.3", ".1.2.3", "1.2.3.",
	"::", "::1", "1::", "2001:db8::1", "2001:DB8::A", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::",
	"::1:2:3:4:5:6:7", "1:2:3:4:5:6::7:8", "1::2::3", ":1::2", "1::2:", "12345::1", "::ffff:1.2.3.4", "::1.2.3.4",
	"1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:1.2.3.4", "1:2:3:4:5:6:7:1.2.3.4", "::1.2.3", "g::1", ":::", "1:::2",
	"fe80::1%eth0", "", ":", "0:0:0:0:0:0:0:0", "::0:0:0:0:0:0:0", "1:2:3:4:5:6:7:8::", "::ffff:1.2.3.4.5",
}

func checkIPLiteral(t *testing.T, s string) {
	t.Helper()
	want, err := netip.ParseAddr(s)
	wantOK := err == nil && want.Zone() == ""
	var got netip.Addr
	var ok bool
	if strings.Contains(s, ":") {
		got, ok = parseIPv6(s)
		wantOK = wantOK && want.Is6()
	} else {
		got, ok = parseIPv4(s)
		wantOK = wantOK && want.Is4()
	}
	if ok != wantOK || (ok && got != want) {
		t.Errorf("parse %q = %v, %v; netip says %v, %v", s, got, ok, want, err)
	}
}

func TestASCIIName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"bücher.example":       "xn--bcher-kva.example",
		"Shop.BÜCHER.example.": "shop.xn--bcher-kva.example",
		"_srv.bücher.example":  "_srv.xn--bcher-kva.example",
		"API.GitHub.com":       "api.github.com",
	} {
		if got, err := ASCIIName(in); err != nil || got != want {
			t.Errorf("ASCIIName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"-bücher.example", "\xffbücher.example", "bücher..example", "a b.example"} {
		if got, err := ASCIIName(in); !errors.Is(err, ErrInvalidName) {
			t.Errorf("ASCIIName(%q) = %q, %v; want ErrInvalidName", in, got, err)
		}
	}
	if _, err := ASCIIName("203.0.113.9"); !errors.Is(err, ErrAddressLiteral) {
		t.Errorf("ASCIIName(IP) error = %v", err)
	}
}
