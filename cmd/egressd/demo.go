package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/egressd/egressd/integration/lab"
)

// demoPolicy is the embedded policy of `egressd demo`.
const demoPolicy = `listen:
  http: ":15080"
  tls: ":15443"
  admin: ""
intercept:
  sources: [%s, %s]
upstream:
  mode: resolve
  resolver: "%s"
limits:
  sniff_timeout: 2s
  drain_timeout: 1s
policy:
  allow:
    - allowed.example
log:
  level: info
`

// cmdDemo builds a namespace lab, runs this binary as the gateway, fires an
// allowed, a denied and a spoofed request from the client, and reports what
// the client saw, the access-log line and the packets on the outside
// interface. Everything is removed at the end, also on Ctrl-C.
func cmdDemo(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintln(stderr, "usage: egressd demo")
		return exitError
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "egressd demo: needs root (it creates network namespaces and nftables rules): sudo egressd demo")
		return exitError
	}
	for _, bin := range []string{"ip", "tcpdump"} {
		if _, err := exec.LookPath(bin); err != nil {
			fmt.Fprintf(stderr, "egressd demo: %s is missing (apt-get install -y iproute2 tcpdump)\n", bin)
			return exitError
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := runDemo(ctx, stdout); err != nil {
		fmt.Fprintf(stderr, "egressd demo: %v\n", err)
		return exitError
	}
	return exitOK
}

func runDemo(ctx context.Context, out io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "Building the lab: client ─ gateway (egressd) ─ internet, in network namespaces…")
	l, err := lab.New(ctx, lab.Options{})
	if err != nil {
		return err
	}
	defer func() {
		l.Close()
		fmt.Fprintln(out, "\nLab removed: namespaces deleted, processes stopped.")
	}()
	dns, err := lab.StartDNS(l.Internet, lab.DNSAddr4)
	if err != nil {
		return err
	}
	defer dns.Stop()
	real, other, bad := l.Origins4[0], l.Origins4[1], l.Origins4[7]
	dns.SetRecords("allowed.example", real)
	dns.SetRecords("denied.example", other)
	ca, err := lab.NewCA()
	if err != nil {
		return err
	}
	origin, err := lab.StartOrigin(l.Internet, l.Origins4, ca, []string{"allowed.example", "denied.example"})
	if err != nil {
		return err
	}
	defer origin.Close()

	dir, err := os.MkdirTemp("", "egressd-demo")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := filepath.Join(dir, "egressd.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, demoPolicy, lab.ClientNet4, lab.ClientNet6, lab.DNSAddr4), 0o644); err != nil {
		return err
	}
	gw, err := l.Gateway.Start(self, "run", "-c", cfg)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := gw.WaitFor(wctx, `"message":"egressd serving"`); err != nil {
		return err
	}
	fmt.Fprintf(out, "egressd runs in the gateway namespace; policy: allow allowed.example only; upstream mode: resolve.\n")
	fmt.Fprintf(out, "DNS: allowed.example → %s, denied.example → %s; %s is an address no allowed name has.\n", real, other, bad)

	cases := []struct {
		title, sni string
		dial       netip.Addr
	}{
		{"Allowed name", "allowed.example", real},
		{"Denied name", "denied.example", other},
		{"Spoofed: allowed SNI sent to another address", "allowed.example", bad},
	}
	for i, c := range cases {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fmt.Fprintf(out, "\n%d. %s — client dials %s:443 with SNI %s\n", i+1, c.title, c.dial, c.sni)
		capt, err := lab.StartCapture(ctx, l.Gateway, lab.GatewayOutsideIf, "tcp")
		if err != nil {
			return err
		}
		before := len(accessLines(gw.Output()))
		saw := demoRequest(ctx, l, ca, c.dial, c.sni)
		time.Sleep(200 * time.Millisecond)
		lines := capt.Stop()
		fmt.Fprintf(out, "   client saw:   %s\n", saw)
		if logs := accessLines(gw.Output()); len(logs) > before {
			fmt.Fprintf(out, "   access log:   %s\n", logs[len(logs)-1])
		}
		toDial := len(lab.Matching(lines, "> "+c.dial.String()+"."))
		if c.dial == real {
			fmt.Fprintf(out, "   outside if:   %d packets to %s\n", toDial, c.dial)
		} else {
			fmt.Fprintf(out, "   outside if:   %d packets to %s, %d to %s (the name's own address)\n",
				toDial, c.dial, len(lab.Matching(lines, "> "+real.String()+".")), real)
		}
	}
	_ = gw.Signal(syscall.SIGTERM)
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	_ = gw.Wait(sctx)
	return nil
}

// demoRequest makes one HTTPS request from the client namespace and
// describes the outcome in a few words.
func demoRequest(ctx context.Context, l *lab.Lab, ca *lab.CA, dial netip.Addr, sni string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	raw, err := l.Client.DialContext(ctx, "tcp", netip.AddrPortFrom(dial, 443).String())
	if err != nil {
		return "connect failed: " + err.Error()
	}
	defer raw.Close()
	conn := tls.Client(raw, &tls.Config{ServerName: sni, RootCAs: ca.Pool(), NextProtos: []string{"http/1.1"}})
	if err := conn.HandshakeContext(ctx); err != nil {
		if errors.Is(err, syscall.ECONNRESET) || strings.Contains(err.Error(), "reset") {
			return "TLS handshake failed: connection reset by egressd (denied)"
		}
		return "TLS handshake failed: " + err.Error()
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", sni)
	body, _ := io.ReadAll(conn)
	s := string(body)
	if i := strings.Index(s, "origin="); i >= 0 {
		return "HTTP 200, body: " + strings.TrimSpace(s[i:])
	}
	return "answer: " + strings.TrimSpace(s)
}

// accessLines returns egressd's access-log lines, compacted.
func accessLines(output string) []string {
	var out []string
	for _, line := range strings.Split(output, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["message"] != "access" {
			continue
		}
		out = append(out, fmt.Sprintf("decision=%v reason=%v host=%v dst=%v upstream=%v bytes_up=%v bytes_down=%v",
			m["decision"], m["reason"], m["host"], m["dst"], m["upstream"], m["bytes_up"], m["bytes_down"]))
	}
	return out
}
