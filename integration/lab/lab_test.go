package lab

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// newLab builds a small lab removed when the test ends, or skips.
func newLab(t *testing.T) *Lab {
	t.Helper()
	if err := Check("tcpdump"); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := New(ctx, Options{Origins: 2, Cleanup: t.Cleanup})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// ourNamespaces lists the namespaces of labs made by this process.
func ourNamespaces(t *testing.T) []string {
	t.Helper()
	names, err := listNetns(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ours []string
	for _, n := range names {
		if pid, ok := creatorPID(n); ok && pid == os.Getpid() {
			ours = append(ours, n)
		}
	}
	return ours
}

func TestLab(t *testing.T) {
	l := newLab(t)
	ctx := testContext(t)
	if err := l.EnableKernelForwarding(ctx); err != nil {
		t.Fatal(err)
	}
	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	origin, err := StartOrigin(l.Internet, append(l.Origins4, l.Origins6...), ca, []string{"a.example", "*.b.example"})
	if err != nil {
		t.Fatal(err)
	}
	o4, o6 := l.Origins4[0], l.Origins6[0]

	t.Run("HTTPSThroughTheGatewayIsCaptured", func(t *testing.T) {
		capt, err := StartCapture(ctx, l.Gateway, GatewayOutsideIf, "tcp port 443")
		if err != nil {
			t.Fatal(err)
		}
		for _, dst := range []netip.Addr{o4, o6} {
			c := l.Client.HTTPClientResolving(ca.Pool(), map[string]netip.Addr{"a.example": dst})
			body := get(t, c, "https://a.example/")
			src := ClientAddr4
			if dst.Is6() {
				src = ClientAddr6
			}
			want := fmt.Sprintf("origin=%s host=a.example proto=https sni=a.example alpn=h2 peer=%s\n", dst, src)
			if body != want {
				t.Errorf("body %q, want %q", body, want)
			}
		}
		lines := capt.Stop()
		if err := capt.Err(); err != nil {
			t.Error(err)
		}
		// Listening before StartCapture returned: the very first SYN is there.
		if len(lines) == 0 || !strings.Contains(lines[0], "> "+o4.String()+".443: Flags [S]") {
			t.Errorf("first packet is not the SYN to %s:\n%s", o4, strings.Join(lines, "\n"))
		}
		if CountMatching(lines, "> "+o6.String()+".443") == 0 {
			t.Errorf("no packet to %s:\n%s", o6, strings.Join(lines, "\n"))
		}
		if n := CountMatching(lines, l.Origins4[1].String()); n != 0 {
			t.Errorf("%d packets to the unused origin", n)
		}
		if got := origin.AcceptedOn(netip.AddrPortFrom(o4, HTTPSPort)); got != 1 {
			t.Errorf("AcceptedOn(%s:443) = %d, want 1", o4, got)
		}
		if got := origin.Accepted(l.Origins4[1]); got != 0 {
			t.Errorf("Accepted(unused) = %d", got)
		}
	})

	t.Run("DialTLSWithAnySNI", func(t *testing.T) {
		c, err := l.Client.DialTLS(ctx, netip.AddrPortFrom(l.Origins4[1], 443).String(),
			&tls.Config{ServerName: "x.b.example", RootCAs: ca.Pool(), NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x.b.example\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if !strings.HasPrefix(string(body), "origin="+l.Origins4[1].String()+" host=x.b.example proto=https sni=x.b.example alpn=http/1.1") {
			t.Errorf("body %q", body)
		}
	})

	t.Run("OtherClientAddress", func(t *testing.T) {
		for _, src := range []netip.Addr{OtherClientAddr4, OtherClientAddr6} {
			dst := o4
			if src.Is6() {
				dst = o6
			}
			d := &net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
			c, err := l.Client.DialWith(ctx, d, "tcp", netip.AddrPortFrom(dst, HTTPPort).String())
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n")
			body, _ := io.ReadAll(c)
			c.Close()
			if want := fmt.Sprintf("origin=%s host=a.example proto=http peer=%s\n", dst, src); !strings.HasSuffix(string(body), want) {
				t.Errorf("answer %q, want the body %q", body, want)
			}
		}
	})

	t.Run("HTTPBytesAndUpgrade", func(t *testing.T) {
		c := l.Client.HTTPClient(nil)
		resp, err := c.Get("http://" + o4.String() + "/?bytes=100000")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if len(body) != 100000 || body[0] != 'a' || body[26] != 'a' || body[99999] != byte('a'+99999%26) {
			t.Errorf("bytes=100000: got %d bytes", len(body))
		}
		if got := resp.Header.Get("X-Origin"); got != o4.String() {
			t.Errorf("X-Origin %q", got)
		}

		conn, err := l.Client.DialContext(ctx, "tcp", netip.AddrPortFrom(o6, HTTPPort).String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(conn, "GET /upgrade HTTP/1.1\r\nHost: a.example\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nearly ")
		br := bufio.NewReader(conn)
		resp, err = http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Upgrade") != "echo" {
			t.Fatalf("upgrade: %v %v", resp, err)
		}
		fmt.Fprint(conn, "bytes\n")
		if line, err := br.ReadString('\n'); line != "early bytes\n" {
			t.Fatalf("echo after 101: %q %v", line, err)
		}
	})

	t.Run("Echo", func(t *testing.T) {
		c, err := l.Client.DialContext(ctx, "tcp", netip.AddrPortFrom(o4, EchoPort).String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprint(c, "ping\n")
		if line, err := bufio.NewReader(c).ReadString('\n'); line != "ping\n" {
			t.Fatalf("tcp echo: %q %v", line, err)
		}
		u, err := l.Client.DialContext(ctx, "udp", netip.AddrPortFrom(o6, EchoPort).String())
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		_ = u.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprint(u, "datagram")
		buf := make([]byte, 100)
		if n, err := u.Read(buf); string(buf[:n]) != "datagram" {
			t.Fatalf("udp echo: %q %v", buf[:n], err)
		}
		if got := origin.Datagrams(o6); got != 1 {
			t.Errorf("Datagrams = %d", got)
		}
	})

	t.Run("DNS", func(t *testing.T) {
		d, err := StartDNS(l.Internet, DNSAddr4, DNSAddr6)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Stop()
		d.SetRecords("A.Example.", o4, o6)
		d.SetRecords("v4only.example", l.Origins4[1])
		d.SetTTL(7)
		for _, server := range []netip.AddrPort{DNSAddr4, DNSAddr6} {
			for _, network := range []string{"udp", "tcp"} {
				m := query(t, l.Gateway, network, server, "a.example", dns.TypeA)
				if len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != o4.String() || m.Answer[0].Header().Ttl != 7 {
					t.Errorf("%s %s A: %v", network, server, m.Answer)
				}
				m = query(t, l.Gateway, network, server, "a.example", dns.TypeAAAA)
				if len(m.Answer) != 1 || m.Answer[0].(*dns.AAAA).AAAA.String() != o6.String() {
					t.Errorf("%s %s AAAA: %v", network, server, m.Answer)
				}
			}
		}
		if m := query(t, l.Gateway, "udp", DNSAddr4, "v4only.example", dns.TypeAAAA); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 {
			t.Errorf("NODATA: %v", m)
		}
		if m := query(t, l.Gateway, "udp", DNSAddr4, "nope.example", dns.TypeA); m.Rcode != dns.RcodeNameError {
			t.Errorf("unknown name: %v", m)
		}
		if m := query(t, l.Gateway, "udp", DNSAddr4, ".", dns.TypeNS); len(m.Answer) != 1 {
			t.Errorf("root NS: %v", m)
		}
		// From the client too, through the gateway.
		if m := query(t, l.Client, "udp", DNSAddr4, "a.example", dns.TypeA); len(m.Answer) != 1 {
			t.Errorf("from the client: %v", m)
		}
		if got, want := d.QueriesFor("a.example"), int64(9); got != want {
			t.Errorf("QueriesFor = %d, want %d", got, want)
		}
		if got, want := d.Queries(), int64(12); got != want {
			t.Errorf("Queries = %d, want %d", got, want)
		}

		d.Stop()
		if _, err := exchange(ctx, l.Gateway, "udp", DNSAddr4, "a.example", dns.TypeA); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("stopped server: %v, want connection refused", err)
		}
		if err := d.Start(); err != nil {
			t.Fatal(err)
		}
		query(t, l.Gateway, "tcp", DNSAddr6, "a.example", dns.TypeA)
		d.SetSilent(true)
		if _, err := exchange(ctx, l.Gateway, "udp", DNSAddr4, "a.example", dns.TypeA); !os.IsTimeout(err) {
			t.Errorf("silent server: %v, want a timeout", err)
		}
	})

	t.Run("Process", func(t *testing.T) {
		p, err := l.Gateway.Start("sh", "-c", "echo started; echo oops >&2; exec sleep 60")
		if err != nil {
			t.Fatal(err)
		}
		if err := p.WaitFor(ctx, "oops"); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("ip", "netns", "identify", strconv.Itoa(p.PID())).Output(); err != nil || strings.TrimSpace(string(out)) != l.Gateway.Name {
			t.Errorf("process in namespace %q (%v), want %s", out, err, l.Gateway.Name)
		}
		if err := p.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(ctx); err == nil || !p.Exited() {
			t.Errorf("Wait after SIGTERM: %v", err)
		}

		cmd := l.Client.Command(ctx, "sh", "-c", `echo "var=$LABVAR"; exit 3`)
		cmd.Env = append(os.Environ(), "LABVAR=set")
		var copyOut strings.Builder
		cmd.Stdout = &copyOut
		q, err := l.Client.StartCommand(cmd)
		if err != nil {
			t.Fatal(err)
		}
		var ee *exec.ExitError
		if err := q.Wait(ctx); !errors.As(err, &ee) || ee.ExitCode() != 3 {
			t.Errorf("exit: %v", err)
		}
		if q.Output() != "var=set\n" || copyOut.String() != "var=set\n" {
			t.Errorf("output %q, copy %q", q.Output(), copyOut.String())
		}
		if _, err := l.Client.StartCommand(exec.Command("true")); err == nil {
			t.Error("StartCommand took a command that is not in the namespace")
		}
		if err := p.WaitFor(ctx, "never printed"); err == nil || !strings.Contains(err.Error(), "exited") {
			t.Errorf("WaitFor on an exited process: %v", err)
		}
	})

	t.Run("SocketsStayInTheirNamespace", func(t *testing.T) {
		hostNS, err := os.Readlink("/proc/self/ns/net")
		if err != nil {
			t.Fatal(err)
		}
		// ClientAddr4 exists only in the client namespace: binding to it
		// proves where the socket is; accepting after Do has returned
		// proves it stays there.
		ln, err := l.Client.Listen("tcp", netip.AddrPortFrom(ClientAddr4, 0).String())
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ns := []*Netns{l.Client, l.Gateway, l.Internet}[i%3]
				c, err := ns.DialContext(ctx, "tcp", ln.Addr().String())
				if err != nil {
					t.Error(err)
					return
				}
				c.Close()
			}()
		}
		for range 40 {
			c, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
		}
		wg.Wait()
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			ns, err := os.Readlink("/proc/self/task/" + task.Name() + "/ns/net")
			if err == nil && ns != hostNS {
				t.Errorf("thread %s left in %s (host: %s)", task.Name(), ns, hostNS)
			}
		}
		if _, err := l.Client.DialContext(ctx, "tcp", "example.com:443"); err == nil || !strings.Contains(err.Error(), "not a name") {
			t.Errorf("dialing a name: %v", err)
		}
	})
}

func get(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(body)
}

// exchange asks server one question from inside ns.
func exchange(ctx context.Context, ns *Netns, network string, server netip.AddrPort, name string, qtype uint16) (*dns.Msg, error) {
	c, err := ns.DialContext(ctx, network, server.String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	co := &dns.Conn{Conn: c}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	if err := co.WriteMsg(m); err != nil {
		return nil, err
	}
	return co.ReadMsg()
}

func query(t *testing.T, ns *Netns, network string, server netip.AddrPort, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m, err := exchange(testContext(t), ns, network, server, name, qtype)
	if err != nil {
		t.Fatalf("%s %s %s %s: %v", network, server, name, dns.TypeToString[qtype], err)
	}
	return m
}

func TestCloseLeavesNothing(t *testing.T) {
	if err := Check("tcpdump"); err != nil {
		t.Skip(err)
	}
	ctx := testContext(t)
	l, err := New(ctx, Options{Origins: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	p, err := l.Gateway.Start("sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	// A process the lab did not start: Close finds it by namespace.
	stray := l.Internet.Command(context.Background(), "sleep", "60")
	if err := stray.Start(); err != nil {
		t.Fatal(err)
	}
	strayDone := make(chan error, 1)
	go func() { strayDone <- stray.Wait() }()
	if _, err := StartDNS(l.Internet, DNSAddr4); err != nil {
		t.Fatal(err)
	}
	ca, _ := NewCA()
	if _, err := StartOrigin(l.Internet, l.Origins4, ca, []string{"a.example"}); err != nil {
		t.Fatal(err)
	}
	capt, err := StartCapture(ctx, l.Client, ClientIf, "")
	if err != nil {
		t.Fatal(err)
	}
	// An extra namespace, wired to the client: Close deletes it too.
	extra, err := l.NewNetns(ctx, "extra")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Veth(ctx, l.Client, "c1", extra, "x0"); err != nil {
		t.Fatal(err)
	}
	for _, step := range [][]string{{"-n", l.Client.Name, "addr", "add", "10.77.9.1/24", "dev", "c1"},
		{"-n", extra.Name, "addr", "add", "10.77.9.2/24", "dev", "x0"}} {
		if err := ip(ctx, step...); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := extra.Listen("tcp", "10.77.9.2:7")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	if c, err := l.Client.DialContext(ctx, "tcp", "10.77.9.2:7"); err != nil {
		t.Fatalf("over the extra veth: %v", err)
	} else {
		c.Close()
	}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if !p.Exited() {
		t.Error("process survived Close")
	}
	select {
	case <-strayDone:
	case <-time.After(5 * time.Second):
		t.Error("stray process survived Close")
	}
	if capt.Stop(); capt.Err() != nil {
		t.Errorf("capture: %v", capt.Err())
	}
	for _, ns := range ourNamespaces(t) {
		if strings.HasPrefix(ns, l.ID+"-") {
			t.Errorf("namespace %s left", ns)
		}
	}
	if _, err := l.Gateway.Start("true"); err == nil {
		t.Error("Start on a closed lab worked")
	}
	if _, err := l.Client.DialContext(ctx, "tcp", "203.0.113.10:80"); err == nil {
		t.Error("dial in a deleted namespace worked")
	}
}

func TestNewCleansUpAfterFailure(t *testing.T) {
	if err := Check(); err != nil {
		t.Skip(err)
	}
	before := ourNamespaces(t)
	_, err := New(testContext(t), Options{Origins: 1, failAt: 6})
	if err == nil || !strings.Contains(err.Error(), "on purpose") {
		t.Fatalf("New: %v", err)
	}
	if after := ourNamespaces(t); !slices.Equal(before, after) {
		t.Fatalf("namespaces before %v, after the failed New %v", before, after)
	}
	if _, err := New(testContext(t), Options{Origins: 246}); err == nil {
		t.Fatal("246 origins accepted")
	}
}

func TestSweep(t *testing.T) {
	if err := Check(); err != nil {
		t.Skip(err)
	}
	maxText, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	pidMax, err := strconv.Atoi(strings.TrimSpace(string(maxText)))
	if err != nil {
		t.Fatal(err)
	}
	dead := fmt.Sprintf("egd%dx00beef-client", pidMax+1) // no such process, ever
	alive := fmt.Sprintf("egd%dx00beef-client", os.Getpid())
	for _, name := range []string{dead, alive} {
		if err := ip(context.Background(), "netns", "add", name); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	}
	stray := exec.Command("ip", "netns", "exec", dead, "sleep", "60")
	if err := stray.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stray.Process.Kill() })
	strayDone := make(chan error, 1)
	go func() { strayDone <- stray.Wait() }()

	// Wait until the stray process is inside the namespace.
	for i := 0; i < 200; i++ {
		if out, _ := exec.Command("ip", "netns", "pids", dead).Output(); len(strings.TrimSpace(string(out))) > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	deleted, err := Sweep()
	if err != nil {
		t.Fatal(err)
	}
	// Another test binary's Sweep (packages run in parallel) may have
	// removed the stale namespace first; the live one must survive both.
	if slices.Contains(deleted, alive) {
		t.Fatalf("Sweep deleted %v, including the live %s", deleted, alive)
	}
	names, _ := listNetns(context.Background())
	if slices.Contains(names, dead) || !slices.Contains(names, alive) {
		t.Fatalf("namespaces after Sweep: %v", names)
	}
	select {
	case <-strayDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the process in the stale namespace survived Sweep")
	}
}

func TestCreatorPID(t *testing.T) {
	for name, want := range map[string]int{
		"egd123xbd36-client":   123,
		"egd123xabcdef-gw2":    123,
		"egd123x-client":       0,
		"egd123xzz-client":     0,
		"egd0123xab-client":    0,
		"egd123xab":            0,
		"egdfoo":               0,
		"other123xab-client":   0,
		"egd-5xab-client":      0,
		"egd99999999xab-inet":  99999999,
		"egd123xab-":           0,
		"egd12 3xab-client":    0,
		"egd123xab-client-two": 123,
	} {
		got, ok := creatorPID(name)
		if ok != (want != 0) || got != want {
			t.Errorf("creatorPID(%q) = %d, %v; want %d", name, got, ok, want)
		}
	}
}

func TestDoRefusesNames(t *testing.T) {
	n := &Netns{Name: "unused"}
	for _, addr := range []string{"localhost:80", "example.com:443", "[::1]"} {
		if _, err := n.Listen("tcp", addr); err == nil {
			t.Errorf("Listen(%q) accepted", addr)
		}
	}
	if _, err := n.DialContext(context.Background(), "tcp", "203.0.113.10:80"); err == nil || !strings.Contains(err.Error(), "unused") {
		t.Errorf("dial in a missing namespace: %v", err)
	}
}
