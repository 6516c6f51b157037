package nat

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// normalize trims every line of nft output and drops empty ones.
func normalize(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// wantLines checks that want appears in got, in order, as whole lines.
func wantLines(t *testing.T, got string, want ...string) {
	t.Helper()
	lines := normalize(got)
	i := 0
	for _, w := range want {
		for i < len(lines) && lines[i] != w {
			i++
		}
		if i == len(lines) {
			t.Fatalf("ruleset lacks the line %q (or it is out of order):\n%s", w, got)
		}
	}
}

func TestInstallRendersRuleset(t *testing.T) {
	t.Parallel()
	common := []string{
		"table inet egressd {",
		"counter to_gateway {", "counter redirect_http {", "counter redirect_tls {",
		"set sources4 {", "type ipv4_addr", "flags interval", "elements = { 10.77.0.0/16, 10.78.1.0/24 }",
		"set sources6 {", "type ipv6_addr", "flags interval", "elements = { 2001:db8:77::/64 }",
		"set http_ports {", "type inet_service", "elements = { 80, 8080 }",
		"set tls_ports {", "type inet_service", "elements = { 443 }",
		"chain prerouting {",
		"type nat hook prerouting priority dstnat; policy accept;",
		`fib daddr type local counter name "to_gateway" return`,
		`ip saddr @sources4 tcp dport @http_ports counter name "redirect_http" redirect to :15080`,
		`ip saddr @sources4 tcp dport @tls_ports counter name "redirect_tls" redirect to :15443`,
		`ip6 saddr @sources6 tcp dport @http_ports counter name "redirect_http" redirect to :15080`,
		`ip6 saddr @sources6 tcp dport @tls_ports counter name "redirect_tls" redirect to :15443`,
		"chain forward {",
		"type filter hook forward priority filter; policy drop;",
		`ct state established,related counter name "established" accept`,
	}
	output := []string{
		"chain output {",
		"type filter hook output priority filter; policy accept;",
		`icmp type redirect counter name "icmp_redirect_dropped" drop`,
		`icmpv6 type nd-redirect counter name "icmpv6_redirect_dropped" drop`,
	}
	for _, tc := range []struct {
		other Other
		want  []string
	}{
		{OtherReject, []string{
			`ip saddr @sources4 meta l4proto tcp counter name "other_reject" reject with tcp reset`,
			`ip saddr @sources4 counter name "other_reject" reject with icmpx admin-prohibited`,
			`ip6 saddr @sources6 meta l4proto tcp counter name "other_reject" reject with tcp reset`,
			`ip6 saddr @sources6 counter name "other_reject" reject with icmpx admin-prohibited`,
			`counter name "forward_dropped"`,
		}},
		{OtherDrop, []string{
			`ip saddr @sources4 counter name "other_drop" drop`,
			`ip6 saddr @sources6 counter name "other_drop" drop`,
			`counter name "forward_dropped"`,
		}},
		{OtherMasquerade, []string{
			`ip saddr @sources4 counter name "other_masquerade" accept`,
			`ip6 saddr @sources6 counter name "other_masquerade" accept`,
			`counter name "forward_dropped"`,
			"chain postrouting {",
			"type nat hook postrouting priority srcnat; policy accept;",
			`ip saddr @sources4 ct status ! dnat counter name "masquerade" masquerade`,
			`ip6 saddr @sources6 ct status ! dnat counter name "masquerade" masquerade`,
		}},
	} {
		t.Run(string(tc.other), func(t *testing.T) {
			t.Parallel()
			ns := newNS(t)
			tb := ns.tables(t)
			rs := goodRuleset()
			rs.Sources = prefixes("10.78.1.0/24", "10.77.0.0/16", "2001:db8:77::/64", "10.77.9.0/24")
			rs.HTTPPorts = []uint16{8080, 80, 80}
			rs.Other = tc.other
			if err := tb.Install(rs); err != nil {
				t.Fatal(err)
			}
			got := ns.nft(t, "list", "table", "inet", "egressd")
			t.Logf("nft list table inet egressd (other: %s):\n%s", tc.other, got)
			wantLines(t, got, append(append(common, tc.want...), output...)...)
			if tc.other != OtherMasquerade && strings.Contains(got, "postrouting") {
				t.Errorf("postrouting chain without masquerade:\n%s", got)
			}
			if ok, err := tb.Installed(); !ok || err != nil {
				t.Errorf("Installed() = %v, %v; want true", ok, err)
			}
		})
	}
}

func TestInstallReplacesStaleTable(t *testing.T) {
	t.Parallel()
	ns := newNS(t)
	tb := ns.tables(t)
	// A stale table from a crashed run, with things the ruleset lacks.
	ns.nft(t, "add", "table", "inet", "egressd")
	ns.nft(t, "add", "chain", "inet", "egressd", "junk", "{ type filter hook input priority 0; policy drop; }")
	ns.nft(t, "add", "set", "inet", "egressd", "sources4", "{ type ipv4_addr; }") // same name, other flags
	ns.nft(t, "add", "element", "inet", "egressd", "sources4", "{ 203.0.113.1 }")

	rs := goodRuleset()
	for i := range 3 {
		rs.TLSPorts = []uint16{443, uint16(8443 + i)}
		if err := tb.Install(rs); err != nil {
			t.Fatalf("Install #%d: %v", i+1, err)
		}
	}
	tables := ns.nft(t, "list", "tables")
	if n := strings.Count(tables, "table inet egressd"); n != 1 {
		t.Fatalf("%d tables inet egressd after three installs, want 1:\n%s", n, tables)
	}
	got := ns.nft(t, "list", "table", "inet", "egressd")
	if strings.Contains(got, "junk") || strings.Contains(got, "203.0.113.1") || strings.Contains(got, "8443,") {
		t.Fatalf("stale objects survived Install:\n%s", got)
	}
	wantLines(t, got, "elements = { 10.77.0.0/16 }", "elements = { 443, 8445 }")
	if n := strings.Count(got, "chain "); n != 3 {
		t.Errorf("%d chains, want prerouting, forward, output:\n%s", n, got)
	}
}

func TestInstallInvalidChangesNothing(t *testing.T) {
	t.Parallel()
	ns := newNS(t)
	tb := ns.tables(t)
	if err := tb.Install(goodRuleset()); err != nil {
		t.Fatal(err)
	}
	before := ns.nft(t, "list", "table", "inet", "egressd")
	bad := goodRuleset()
	bad.Sources = nil
	err := tb.Install(bad)
	if err == nil || !strings.Contains(err.Error(), "intercept.sources") {
		t.Fatalf("Install(no sources) = %v, want an error naming intercept.sources", err)
	}
	if after := ns.nft(t, "list", "table", "inet", "egressd"); after != before {
		t.Errorf("a rejected Install changed the table:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestInstallIsAtomic: when the kernel refuses any part of the batch, the
// table already there stays as it was.
func TestInstallIsAtomic(t *testing.T) {
	t.Parallel()
	ns := newNS(t)
	tb := ns.tables(t)
	if err := tb.Install(goodRuleset()); err != nil {
		t.Fatal(err)
	}
	before := ns.nft(t, "list", "table", "inet", "egressd")
	rs := goodRuleset()
	rs.Other = OtherMasquerade
	err := tb.install(rs, func(c *nftables.Conn, tbl *nftables.Table) {
		// A lookup in a set that does not exist: refused by the kernel.
		c.AddRule(&nftables.Rule{Table: tbl, Chain: &nftables.Chain{Name: "forward", Table: tbl},
			Exprs: []expr.Any{&expr.Lookup{SourceRegister: 1, SetName: "no_such_set"}}})
	})
	if err == nil {
		t.Fatal("Install with a bad rule succeeded")
	}
	t.Logf("refused: %v", err)
	if after := ns.nft(t, "list", "table", "inet", "egressd"); after != before {
		t.Errorf("a refused Install changed the table:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestUpdateSources(t *testing.T) {
	t.Parallel()
	ns := newNS(t)
	tb := ns.tables(t)
	err := tb.UpdateSources(prefixes("10.77.0.0/16"))
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("UpdateSources without a table = %v, want ErrNotInstalled", err)
	}
	if err := tb.Install(goodRuleset()); err != nil {
		t.Fatal(err)
	}
	rulesBefore := rulesOnly(ns.nft(t, "list", "table", "inet", "egressd"))

	if err := tb.UpdateSources(prefixes("10.77.5.0/24", "10.77.6.0/24", "2001:db8:78::/64", "2001:db8:79::/64")); err != nil {
		t.Fatal(err)
	}
	wantLines(t, ns.nft(t, "list", "set", "inet", "egressd", "sources4"), "elements = { 10.77.5.0-10.77.6.255 }")
	wantLines(t, ns.nft(t, "list", "set", "inet", "egressd", "sources6"), "elements = { 2001:db8:78::/64,", "2001:db8:79::/64 }")

	// IPv4 only: the IPv6 set is emptied.
	if err := tb.UpdateSources(prefixes("10.77.0.0/16")); err != nil {
		t.Fatal(err)
	}
	wantLines(t, ns.nft(t, "list", "set", "inet", "egressd", "sources4"), "elements = { 10.77.0.0/16 }")
	if got := ns.nft(t, "list", "set", "inet", "egressd", "sources6"); strings.Contains(got, "elements") {
		t.Errorf("sources6 not emptied:\n%s", got)
	}
	if after := rulesOnly(ns.nft(t, "list", "table", "inet", "egressd")); after != rulesBefore {
		t.Errorf("UpdateSources changed more than the sets:\nbefore:\n%s\nafter:\n%s", rulesBefore, after)
	}
	if err := tb.UpdateSources(nil); err == nil || !strings.Contains(err.Error(), "intercept.sources") {
		t.Errorf("UpdateSources(nil) = %v, want an error naming intercept.sources", err)
	}
}

// rulesOnly keeps the chains of an nft listing.
func rulesOnly(s string) string {
	if i := strings.Index(s, "chain "); i >= 0 {
		return s[i:]
	}
	return s
}

func TestRemoveIsIdempotent(t *testing.T) {
	t.Parallel()
	ns := newNS(t)
	tb := ns.tables(t)
	if err := tb.Remove(); err != nil {
		t.Fatalf("Remove with no table: %v", err)
	}
	if err := tb.Install(goodRuleset()); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := tb.Remove(); err != nil {
			t.Fatalf("Remove #%d: %v", i+1, err)
		}
		if ok, err := tb.Installed(); ok || err != nil {
			t.Fatalf("Installed() after Remove = %v, %v; want false, nil", ok, err)
		}
	}
	if got := ns.nft(t, "list", "tables"); strings.Contains(got, "egressd") {
		t.Errorf("table left after Remove:\n%s", got)
	}
	if _, err := tb.Counters(); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("Counters() after Remove = %v, want ErrNotInstalled", err)
	}
}

func TestCounters(t *testing.T) {
	t.Parallel()
	ns := newNS(t)
	tb := ns.tables(t)
	if err := tb.Install(goodRuleset()); err != nil {
		t.Fatal(err)
	}
	c, err := tb.Counters()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{CounterToGateway, CounterRedirectHTTP, CounterRedirectTLS, CounterEstablished,
		CounterOtherReject, CounterForwardDropped, CounterICMPRedirect, CounterICMPv6Redirect} {
		if v, ok := c[name]; !ok || v != 0 {
			t.Errorf("counter %s = %d, %v; want 0, present (all: %v)", name, v, ok, c)
		}
	}
	if _, ok := c[CounterMasquerade]; ok {
		t.Errorf("masquerade counter with other=reject: %v", c)
	}
	// Increments are checked end to end in lab_test.go.
}

// TestNotPermitted runs a child as nobody inside a test namespace and
// checks that the error says what to do.
func TestNotPermitted(t *testing.T) {
	if os.Getenv("EGRESSD_NAT_CHILD") == "1" {
		tb, _ := New()
		_, err := tb.Installed()
		if !errors.Is(err, ErrNotPermitted) {
			os.Stdout.WriteString("Installed: want ErrNotPermitted, got: " + errString(err) + "\n")
			os.Exit(1)
		}
		err = tb.Install(goodRuleset())
		if !errors.Is(err, ErrNotPermitted) {
			os.Stdout.WriteString("Install: want ErrNotPermitted, got: " + errString(err) + "\n")
			os.Exit(1)
		}
		os.Stdout.WriteString(err.Error() + "\n")
		os.Exit(0)
	}
	t.Parallel()
	ns := newNS(t)
	ns.tables(t)
	exe := copyForNobody(t)
	var out []byte
	var err error
	// Forked from a thread inside the namespace, the child starts there.
	ns.do(t, func() {
		cmd := exec.Command(exe, "-test.run=^TestNotPermitted$")
		cmd.Env = append(os.Environ(), "EGRESSD_NAT_CHILD=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err = cmd.CombinedOutput()
	})
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "nftables: operation not permitted (run as root or with CAP_NET_ADMIN)") {
		t.Errorf("child said %q", out)
	}
	t.Logf("non-root Install: %s", out)
}

// copyForNobody copies the test binary where uid 65534 may run it (the
// build directory is private to root).
func copyForNobody(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "egdnat")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "nat.test")
	// A hard link, not a copy: a file this process wrote may still be open
	// for writing in a child forked meanwhile (exec fails with ETXTBSY).
	if err := os.Link(self, exe); err != nil {
		t.Skipf("cannot link the test binary for uid 65534: %v", err)
	}
	if err := os.Chmod(exe, 0o755); err != nil {
		t.Fatal(err)
	}
	return exe
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
