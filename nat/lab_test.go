package nat

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// lab is three network namespaces joined by veth pairs:
//
//	client 10.77.0.2, 2001:db8:77::2 (c0) — (g0) 10.77.0.1, 2001:db8:77::1  gateway
//	gateway 198.51.100.1, 2001:db8:100::1 (g1) — (i0) 198.51.100.9, 2001:db8:100::9  internet
//
// The client's default routes point at the gateway. The internet has no
// route back to the client network, so only masquerading gets a reply
// there. The client also holds 10.99.0.2, which is not a source.
type lab struct {
	client, gw, inet testNS
	tables           *Tables
}

var (
	internet4 = netip.MustParseAddr("198.51.100.9")
	internet6 = netip.MustParseAddr("2001:db8:100::9")
)

func newLab(t *testing.T) *lab {
	t.Helper()
	l := &lab{client: newNS(t), gw: newNS(t), inet: newNS(t)}
	l.tables = l.gw.tables(t)
	for _, ns := range []testNS{l.client, l.gw, l.inet} {
		// No duplicate address detection: addresses, link-local ones
		// included, are usable at once.
		ns.do(t, func() {
			for _, k := range []string{"net.ipv6.conf.default.accept_dad", "net.ipv6.conf.all.accept_dad"} {
				if err := (Sysctls{}).Set(k, "0"); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	l.client.ip(t, "link", "add", "c0", "type", "veth", "peer", "name", "g0", "netns", l.gw.name)
	l.gw.ip(t, "link", "add", "g1", "type", "veth", "peer", "name", "i0", "netns", l.inet.name)
	for _, a := range []struct {
		ns   testNS
		dev  string
		addr []string
	}{
		{l.client, "c0", []string{"10.77.0.2/24", "10.99.0.2/32", "2001:db8:77::2/64"}},
		{l.gw, "g0", []string{"10.77.0.1/24", "2001:db8:77::1/64"}},
		{l.gw, "g1", []string{"198.51.100.1/24", "2001:db8:100::1/64"}},
		{l.inet, "i0", []string{"198.51.100.9/24", "2001:db8:100::9/64"}},
	} {
		for _, addr := range a.addr {
			a.ns.ip(t, "addr", "add", addr, "dev", a.dev, "nodad")
		}
		a.ns.ip(t, "link", "set", a.dev, "up")
	}
	l.client.ip(t, "route", "add", "default", "via", "10.77.0.1")
	l.client.ip(t, "-6", "route", "add", "default", "via", "2001:db8:77::1")
	l.gw.ip(t, "route", "add", "10.99.0.0/24", "dev", "g0") // so rp_filter keeps the non-source's packets
	l.gw.do(t, func() {
		if err := EnableForwarding([]string{"g0", "g1"}); err != nil {
			t.Fatal(err)
		}
	})
	return l
}

func (l *lab) install(t *testing.T, other Other) {
	t.Helper()
	rs := goodRuleset()
	rs.Other = other
	if err := l.tables.Install(rs); err != nil {
		t.Fatal(err)
	}
}

func (l *lab) counters(t *testing.T) map[string]uint64 {
	t.Helper()
	c, err := l.tables.Counters()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// accepted is what a listener saw of one connection.
type accepted struct {
	remote, local, origDst netip.AddrPort
	err                    error
}

// listen opens a dual-stack TCP listener on addr in ns (as egressd's
// ":15443" is), reports each connection and answers "hi".
func listen(t *testing.T, ns testNS, addr string) <-chan accepted {
	t.Helper()
	var ln net.Listener
	ns.do(t, func() {
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { ln.Close() })
	ch := make(chan accepted, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*net.TCPConn)
			a := accepted{
				remote: tc.RemoteAddr().(*net.TCPAddr).AddrPort(),
				local:  tc.LocalAddr().(*net.TCPAddr).AddrPort(),
			}
			a.origDst, a.err = OriginalDst(tc)
			a.remote = netip.AddrPortFrom(a.remote.Addr().Unmap(), a.remote.Port())
			a.local = netip.AddrPortFrom(a.local.Addr().Unmap(), a.local.Port())
			ch <- a
			_, _ = io.WriteString(tc, "hi")
			tc.Close()
		}
	}()
	return ch
}

// dial connects from ns (from src when valid) and reads the answer.
func dial(t *testing.T, ns testNS, src netip.Addr, dst netip.AddrPort, timeout time.Duration) (string, error) {
	t.Helper()
	var answer []byte
	var err error
	ns.do(t, func() {
		d := net.Dialer{Timeout: timeout}
		if src.IsValid() {
			d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
		}
		var c net.Conn
		if c, err = d.Dial("tcp", dst.String()); err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(timeout))
		answer, err = io.ReadAll(c)
	})
	return string(answer), err
}

func expectAccepted(t *testing.T, ch <-chan accepted, what string) accepted {
	t.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(2 * time.Second):
		t.Fatalf("%s: the listener saw no connection", what)
	}
	return accepted{}
}

func expectNothing(t *testing.T, ch <-chan accepted, what string) {
	t.Helper()
	select {
	case a := <-ch:
		t.Errorf("%s: a connection reached the listener from %v (to %v)", what, a.remote, a.local)
	default:
	}
}

// TestLabRedirect: the clients' web traffic lands on egressd's listeners
// with its original destination recoverable, for both families;
// connections to the gateway itself and from non-sources are left alone;
// other traffic is rejected without reaching its destination.
func TestLabRedirect(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	l.install(t, OtherReject)
	tlsLn := listen(t, l.gw, ":15443")
	httpLn := listen(t, l.gw, ":15080")
	inetLn := listen(t, l.inet, ":2222")

	for _, tc := range []struct {
		name   string
		dst    netip.AddrPort
		ln     <-chan accepted
		client netip.Addr
	}{
		{"tls ipv4", netip.AddrPortFrom(internet4, 443), tlsLn, netip.MustParseAddr("10.77.0.2")},
		{"tls ipv6", netip.AddrPortFrom(internet6, 443), tlsLn, netip.MustParseAddr("2001:db8:77::2")},
		{"http ipv4", netip.AddrPortFrom(internet4, 80), httpLn, netip.MustParseAddr("10.77.0.2")},
		{"http ipv6", netip.AddrPortFrom(internet6, 80), httpLn, netip.MustParseAddr("2001:db8:77::2")},
	} {
		answer, err := dial(t, l.client, netip.Addr{}, tc.dst, 2*time.Second)
		if err != nil || answer != "hi" {
			t.Fatalf("%s: dial %v: %q, %v", tc.name, tc.dst, answer, err)
		}
		a := expectAccepted(t, tc.ln, tc.name)
		if a.err != nil {
			t.Errorf("%s: OriginalDst: %v", tc.name, a.err)
		} else if a.origDst != tc.dst {
			t.Errorf("%s: OriginalDst = %v, want %v", tc.name, a.origDst, tc.dst)
		}
		if a.remote.Addr() != tc.client {
			t.Errorf("%s: remote = %v, want the client %v", tc.name, a.remote, tc.client)
		}
	}
	expectNothing(t, inetLn, "redirected connections")

	// Straight to the gateway: not redirected. OriginalDst is the
	// listener's own address, which is how egressd spots such connections.
	self := netip.MustParseAddrPort("10.77.0.1:15443")
	if _, err := dial(t, l.client, netip.Addr{}, self, 2*time.Second); err != nil {
		t.Fatalf("dial %v: %v", self, err)
	}
	if a := expectAccepted(t, tlsLn, "to the gateway"); a.err != nil || a.origDst != self || a.local != self {
		t.Errorf("to the gateway: OriginalDst %v (%v), local %v; want both %v", a.origDst, a.err, a.local, self)
	}
	if _, err := dial(t, l.client, netip.Addr{}, netip.MustParseAddrPort("10.77.0.1:443"), 2*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("gateway:443 (nothing listens): %v, want connection refused, not a redirect", err)
	}
	expectNothing(t, tlsLn, "gateway:443")

	// other: reject. TCP gets a reset, UDP an ICMP error; nothing arrives.
	for _, dst := range []netip.AddrPort{netip.AddrPortFrom(internet4, 2222), netip.AddrPortFrom(internet6, 2222)} {
		if _, err := dial(t, l.client, netip.Addr{}, dst, 2*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("tcp %v: %v, want connection refused (reset by the gateway)", dst, err)
		}
		l.client.do(t, func() {
			c, err := net.Dial("udp", netip.AddrPortFrom(dst.Addr(), 53).String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, _ = c.Write([]byte("q"))
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, err = c.Read(make([]byte, 16))
			if !errors.Is(err, syscall.EHOSTUNREACH) && !errors.Is(err, syscall.EACCES) {
				t.Errorf("udp %v: %v, want host unreachable / permission denied (ICMP admin-prohibited)", dst, err)
			}
		})
	}
	expectNothing(t, inetLn, "rejected connections")

	// Not a source: neither redirected nor forwarded.
	if _, err := dial(t, l.client, netip.MustParseAddr("10.99.0.2"), netip.AddrPortFrom(internet4, 443), 300*time.Millisecond); !isTimeout(err) {
		t.Errorf("from a non-source: %v, want a timeout (dropped)", err)
	}
	expectNothing(t, tlsLn, "from a non-source")

	c := l.counters(t)
	for name, want := range map[string]uint64{
		CounterRedirectTLS: 2, CounterRedirectHTTP: 2, CounterToGateway: 2, CounterOtherReject: 4,
	} {
		if c[name] != want {
			t.Errorf("counter %s = %d, want %d (all: %v)", name, c[name], want, c)
		}
	}
	if c[CounterForwardDropped] < 1 {
		t.Errorf("counter %s = 0, want the non-source's SYN (all: %v)", CounterForwardDropped, c)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestLabMasquerade: with other: masquerade the rest is forwarded, NATed
// to the gateway's address, and the replies come back; web ports are
// still redirected.
func TestLabMasquerade(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	l.install(t, OtherMasquerade)
	tlsLn := listen(t, l.gw, ":15443")
	inetLn := listen(t, l.inet, ":2222")
	for _, tc := range []struct {
		dst  netip.AddrPort
		seen netip.Addr // the source the internet sees: the gateway's
	}{
		{netip.AddrPortFrom(internet4, 2222), netip.MustParseAddr("198.51.100.1")},
		{netip.AddrPortFrom(internet6, 2222), netip.MustParseAddr("2001:db8:100::1")},
	} {
		answer, err := dial(t, l.client, netip.Addr{}, tc.dst, 2*time.Second)
		if err != nil || answer != "hi" {
			t.Fatalf("dial %v: %q, %v", tc.dst, answer, err)
		}
		if a := expectAccepted(t, inetLn, tc.dst.String()); a.remote.Addr() != tc.seen {
			t.Errorf("%v: the internet saw %v, want the gateway's %v", tc.dst, a.remote.Addr(), tc.seen)
		}
	}
	if _, err := dial(t, l.client, netip.Addr{}, netip.AddrPortFrom(internet4, 443), 2*time.Second); err != nil {
		t.Fatal(err)
	}
	expectAccepted(t, tlsLn, "tls with masquerade")
	expectNothing(t, inetLn, "tls with masquerade")

	c := l.counters(t)
	if c[CounterMasquerade] != 2 || c[CounterOtherForward] < 2 || c[CounterEstablished] < 2 || c[CounterRedirectTLS] != 1 {
		t.Errorf("counters %v: want masquerade 2, other_masquerade >= 2, established >= 2, redirect_tls 1", c)
	}
}

// TestLabDrop: with other: drop the rest times out.
func TestLabDrop(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	l.install(t, OtherDrop)
	inetLn := listen(t, l.inet, ":2222")
	for _, dst := range []netip.AddrPort{netip.AddrPortFrom(internet4, 2222), netip.AddrPortFrom(internet6, 2222)} {
		if _, err := dial(t, l.client, netip.Addr{}, dst, 300*time.Millisecond); !isTimeout(err) {
			t.Errorf("%v: %v, want a timeout", dst, err)
		}
	}
	expectNothing(t, inetLn, "dropped connections")
	if c := l.counters(t); c[CounterOtherDrop] < 2 {
		t.Errorf("counters %v: want other_drop >= 2", c)
	}
}

// TestLabICMPRedirectsDropped: a one-armed route (in and out through g0)
// makes the kernel send ICMP redirects when send_redirects is on; none
// reaches the client.
func TestLabICMPRedirectsDropped(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	l.install(t, OtherMasquerade)
	l.gw.do(t, func() {
		for _, k := range []string{"net.ipv4.conf.all.send_redirects", "net.ipv4.conf.g0.send_redirects"} {
			if err := (Sysctls{}).Set(k, "1"); err != nil {
				t.Fatal(err)
			}
		}
	})
	l.gw.ip(t, "route", "add", "203.0.113.0/24", "via", "10.77.0.3", "dev", "g0")
	l.gw.ip(t, "-6", "route", "add", "2001:db8:203::/64", "via", "fe80::3", "dev", "g0")
	l.client.do(t, func() {
		for _, dst := range []string{"203.0.113.5:9", "[2001:db8:203::5]:9"} {
			c, err := net.Dial("udp", dst)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = c.Write([]byte("x"))
			c.Close()
		}
	})
	// The ICMPv6 redirect is dropped by the output chain. (The kernel's
	// own NAT already drops IPv4 redirects about connections whose NAT is
	// not done, which is every forwarded first packet here.)
	deadline := time.Now().Add(2 * time.Second)
	for l.counters(t)[CounterICMPv6Redirect] < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("counters %v: want icmpv6_redirect_dropped >= 1", l.counters(t))
		}
		time.Sleep(20 * time.Millisecond)
	}
	l.client.do(t, func() {
		if n := snmp(t, "/proc/thread-self/net/snmp", "Icmp:", "InRedirects"); n != 0 {
			t.Errorf("the client received %d ICMP redirects", n)
		}
		if n := snmp(t, "/proc/thread-self/net/snmp6", "Icmp6InRedirects", ""); n != 0 {
			t.Errorf("the client received %d ICMPv6 redirects", n)
		}
	})

	// An IPv4 redirect that no conntrack entry claims reaches the output
	// chain, which drops it: sendto fails with EPERM.
	l.gw.do(t, func() {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_ICMP)
		if err != nil {
			t.Fatal(err)
		}
		defer syscall.Close(fd)
		inner := []byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 77, 0, 2, 203, 0, 113, 5, 0, 9, 0, 9, 0, 8, 0, 0}
		msg := append([]byte{5, 1, 0, 0, 10, 77, 0, 3}, inner...) // redirect host, gateway 10.77.0.3
		sum := checksum(msg)
		msg[2], msg[3] = byte(sum>>8), byte(sum)
		err = syscall.Sendto(fd, msg, 0, &syscall.SockaddrInet4{Addr: [4]byte{10, 77, 0, 2}})
		if !errors.Is(err, syscall.EPERM) {
			t.Errorf("sending an ICMP redirect: %v, want EPERM (dropped by the output chain)", err)
		}
	})
	if c := l.counters(t); c[CounterICMPRedirect] != 1 {
		t.Errorf("counters %v: want icmp_redirect_dropped 1", c)
	}
}

// snmp reads one counter from /proc/net/snmp (a header line and a value
// line per protocol, both starting with proto) or, with field "", from
// /proc/net/snmp6 (one "name value" line each).
func snmp(t *testing.T, file, proto, field string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var header []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != proto {
			continue
		}
		if field == "" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
		if header == nil {
			header = f
			continue
		}
		for i, h := range header {
			if h == field && i < len(f) {
				n, _ := strconv.Atoi(f[i])
				return n
			}
		}
	}
	t.Fatalf("%s: no %s %s", file, proto, field)
	return 0
}

func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
