package nat

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIntervalElements(t *testing.T) {
	els := intervalElements([]netip.Prefix{
		netip.MustParsePrefix("10.0.3.0/24"),
		netip.MustParsePrefix("10.0.0.0/23"),
		netip.MustParsePrefix("0.0.0.0/0"),
	})
	var got []string
	for _, e := range els {
		a, _ := netip.AddrFromSlice(e.Key)
		s := a.String()
		if e.IntervalEnd {
			s += " end"
		}
		got = append(got, s)
	}
	want := "0.0.0.0 10.0.0.0 10.0.2.0 end 10.0.3.0 10.0.4.0 end"
	if strings.Join(got, " ") != want {
		t.Fatalf("got %q, want %q", strings.Join(got, " "), want)
	}
	if next, ok := afterPrefix(netip.MustParsePrefix("2001:db8::/32")); !ok || next != netip.MustParseAddr("2001:db9::") {
		t.Fatalf("afterPrefix v6: %v %v", next, ok)
	}
}

func TestRulesetValidate(t *testing.T) {
	good := Ruleset{Sources: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16")}, HTTPPorts: []uint16{80},
		TLSPorts: []uint16{443}, HTTPListenPort: 15080, TLSListenPort: 15443, Other: OtherReject}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := good
	bad.Sources, bad.Other = nil, "allow"
	err := bad.Validate()
	if err == nil || !strings.Contains(err.Error(), "intercept.sources") || !strings.Contains(err.Error(), "drop, reject, masquerade") {
		t.Fatalf("got %v", err)
	}
}

func TestSysctlsWriteAndNameTheFix(t *testing.T) {
	root := t.TempDir()
	write := func(key, v string) {
		p := filepath.Join(root, strings.ReplaceAll(key, ".", "/"))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(v+"\n"), 0o644)
	}
	write("net.ipv4.ip_forward", "0")
	s := Sysctls{Root: root}
	if err := s.Set("net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "net/ipv4/ip_forward")); strings.TrimSpace(string(b)) != "1" {
		t.Fatalf("not written: %q", b)
	}
	// A key that cannot be written (its parent is missing: like a read-only
	// /proc/sys) gives an error naming the sysctl -w to run.
	err := s.Set("net.ipv4.conf.eth9.send_redirects", "0")
	if err == nil || !strings.Contains(err.Error(), "net.ipv4.conf.eth9.send_redirects=0") {
		t.Fatalf("got %v", err)
	}
}
