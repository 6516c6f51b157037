package integration

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/egressd/egressd/integration/lab"
)

func TestHTTPSAllowedPassesDeniedSendsNothingOut(t *testing.T) {
	e := newEnv(t)
	e.start(e.config("", "", ""))
	cap := e.capture("tcp")

	body, code, stderr := e.curl("--resolve", resolveTo(allowedName, 443, e.allowed4), "https://"+allowedName+"/")
	if code != 0 || !strings.Contains(body, "origin="+e.allowed4.String()+" host="+allowedName+" proto=https") {
		t.Fatalf("allowed: curl exit %d, body %q, stderr %q", code, body, stderr)
	}
	_, code, stderr = e.curl("--resolve", resolveTo(deniedName, 443, e.denied4), "https://"+deniedName+"/")
	// A TCP reset during the handshake: curl 35 (SSL connect error) or 56 (recv failure).
	if code != 35 && code != 56 {
		t.Fatalf("denied: curl exit %d (%s), want 35 or 56 (reset)", code, stderr)
	}
	lines := cap.Stop()
	if len(lab.Matching(lines, "> "+e.allowed4.String()+".443")) == 0 {
		t.Fatalf("capture saw no packet of the allowed connection; capture:\n%s", strings.Join(lines, "\n"))
	}
	if out := lab.Matching(lines, e.denied4.String()); len(out) != 0 {
		t.Fatalf("denied connection sent packets toward %s:\n%s", e.denied4, strings.Join(out, "\n"))
	}
	if n := e.origin.Accepted(e.denied4); n != 0 {
		t.Fatalf("denied origin accepted %d connections", n)
	}
	e.waitLog(map[string]any{"host": allowedName, "decision": "allow", "proto": "tls", "upstream": hostPort(e.allowed4, 443)})
	e.waitLog(map[string]any{"host": deniedName, "decision": "deny", "reason": "not_allowed", "upstream": ""})
	t.Logf("allowed: %s", strings.TrimSpace(body))
	t.Logf("denied: curl exit %d: %s", code, strings.TrimSpace(stderr))
	t.Logf("tcpdump on gout (%d lines):\n%s", len(lines), strings.Join(lines, "\n"))
}

func TestHTTPAllowedDeniedMalformed(t *testing.T) {
	e := newEnv(t)
	e.start(e.config("", "", ""))
	cap := e.capture("tcp")
	body, code, _ := e.curl("--resolve", resolveTo(allowedName, 80, e.allowed4), "http://"+allowedName+"/")
	if code != 0 || !strings.Contains(body, "origin="+e.allowed4.String()+" host="+allowedName+" proto=http") {
		t.Fatalf("allowed http: exit %d body %q", code, body)
	}
	body, code, _ = e.curl("-w", "%{http_code}", "--resolve", resolveTo(deniedName, 80, e.denied4), "http://"+deniedName+"/")
	if code != 0 || !strings.HasSuffix(body, "403") || !strings.Contains(body, deniedName) {
		t.Fatalf("denied http: exit %d body %q, want a 403 naming the host", code, body)
	}
	// Two Host headers: malformed, 400.
	for _, req := range []string{
		"GET / HTTP/1.1\r\nHost: " + allowedName + "\r\nHost: " + deniedName + "\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: " + allowedName + "\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: " + allowedName + "\r\nX-Folded: a\r\n b\r\n\r\n",
	} {
		if status := e.rawHTTP(hostPort(e.denied4, 80), req); status != "HTTP/1.1 400 Bad Request" {
			t.Fatalf("%q: got %q, want 400", req, status)
		}
	}
	lines := cap.Stop()
	if len(lab.Matching(lines, "> "+e.allowed4.String()+".80")) == 0 {
		t.Fatal("capture saw no packet of the allowed request")
	}
	if out := lab.Matching(lines, e.denied4.String()); len(out) != 0 {
		t.Fatalf("denied HTTP sent packets out:\n%s", strings.Join(out, "\n"))
	}
	e.waitLog(map[string]any{"host": deniedName, "proto": "http", "decision": "deny", "status": 403})
}

// A client that dials a bad address while sending an allowed name never
// reaches the bad address: resolve mode carries it to the name's own
// address, original mode refuses it.
func TestSpoofedNameNeverReachesBadAddress(t *testing.T) {
	for _, mode := range []string{"resolve", "original"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.start(e.config(mode, "", ""))
			cap := e.capture("tcp")
			// A correct connection first, so the capture is proven to see traffic.
			if _, code, _ := e.curl("--resolve", resolveTo(allowedName, 443, e.allowed4), "https://"+allowedName+"/"); code != 0 {
				t.Fatalf("allowed request failed: %d", code)
			}
			tlsBody, tlsCode, _ := e.curl("--resolve", resolveTo(allowedName, 443, e.bad4), "https://"+allowedName+"/")
			httpBody, _, _ := e.curl("-w", "%{http_code}", "-H", "Host: "+allowedName, "http://"+hostPort(e.bad4, 80)+"/")
			lines := cap.Stop()
			if len(lab.Matching(lines, e.allowed4.String())) == 0 {
				t.Fatal("capture saw nothing of the allowed connection")
			}
			if out := lab.Matching(lines, e.bad4.String()); len(out) != 0 {
				t.Fatalf("spoofed connection reached the bad address:\n%s", strings.Join(out, "\n"))
			}
			if n := e.origin.Accepted(e.bad4); n != 0 {
				t.Fatalf("bad address accepted %d connections", n)
			}
			switch mode {
			case "resolve":
				if tlsCode != 0 || !strings.Contains(tlsBody, "origin="+e.allowed4.String()) {
					t.Fatalf("resolve mode TLS: exit %d body %q, want served by %s", tlsCode, tlsBody, e.allowed4)
				}
				if !strings.Contains(httpBody, "origin="+e.allowed4.String()) {
					t.Fatalf("resolve mode HTTP: %q", httpBody)
				}
			case "original":
				if tlsCode == 0 {
					t.Fatalf("original mode let a spoofed SNI through: %q", tlsBody)
				}
				if !strings.HasSuffix(httpBody, "403") {
					t.Fatalf("original mode HTTP: %q, want 403", httpBody)
				}
				e.waitLog(map[string]any{"host": allowedName, "proto": "tls", "reason": "destination_mismatch", "decision": "deny"})
			}
		})
	}
}

func TestRealClients(t *testing.T) {
	e := newEnv(t)
	e.start(e.config("", "", ""))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("openssl", func(t *testing.T) {
		cmd := e.lab.Client.Command(ctx, "openssl", "s_client", "-connect", hostPort(e.allowed4, 443),
			"-servername", allowedName, "-CAfile", e.caFile, "-verify_return_error", "-brief", "-ign_eof")
		cmd.Stdin = strings.NewReader("GET / HTTP/1.1\r\nHost: " + allowedName + "\r\nConnection: close\r\n\r\n")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "origin="+e.allowed4.String()) {
			t.Fatalf("openssl: %v\n%s", err, out)
		}
		cmd = e.lab.Client.Command(ctx, "openssl", "s_client", "-connect", hostPort(e.denied4, 443),
			"-servername", deniedName, "-CAfile", e.caFile, "-brief")
		cmd.Stdin = strings.NewReader("")
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Fatalf("openssl to a denied name succeeded:\n%s", out)
		}
	})
	t.Run("go-post-quantum", func(t *testing.T) {
		// Go's default hello carries an X25519MLKEM768 key share: ~1.8 KiB,
		// more than one TCP segment on the lab's path.
		raw, err := e.lab.Client.DialContext(ctx, "tcp", hostPort(e.allowed4, 443))
		if err != nil {
			t.Fatal(err)
		}
		conn := tls.Client(raw, &tls.Config{ServerName: allowedName, RootCAs: caPool(t, e.caFile), NextProtos: []string{"http/1.1"}})
		defer conn.Close()
		if err := conn.HandshakeContext(ctx); err != nil {
			t.Fatal(err)
		}
		if cs := conn.ConnectionState(); cs.CurveID != tls.X25519MLKEM768 {
			t.Logf("negotiated %v (not post-quantum)", cs.CurveID)
		}
		fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", allowedName)
		body, _ := io.ReadAll(conn)
		conn.Close()
		if !strings.Contains(string(body), "origin="+e.allowed4.String()) {
			t.Fatalf("body %q", body)
		}
		rec := e.waitLogFor(t, map[string]any{"host": allowedName, "decision": "allow", "alpn": "http/1.1"})
		if rec["bytes_up"].(float64) < 1500 {
			t.Fatalf("bytes_up %v: the post-quantum hello should be ~1.8 KiB", rec["bytes_up"])
		}
	})
}

func TestIPv6(t *testing.T) {
	e := newEnv(t)
	e.start(e.config("", "", ""))
	cap := e.capture("tcp")
	body, code, stderr := e.curl("-6", "--resolve", resolveTo(allowedName, 443, e.allowed6), "https://"+allowedName+"/")
	if code != 0 || !strings.Contains(body, "origin="+e.allowed6.String()) {
		t.Fatalf("IPv6 allowed: exit %d body %q %s", code, body, stderr)
	}
	body, code, _ = e.curl("-6", "--resolve", resolveTo(allowedName, 80, e.allowed6), "http://"+allowedName+"/")
	if code != 0 || !strings.Contains(body, "origin="+e.allowed6.String()) {
		t.Fatalf("IPv6 HTTP: exit %d body %q", code, body)
	}
	_, code, _ = e.curl("-6", "--resolve", resolveTo(deniedName, 443, e.lab.Origins6[1]), "https://"+deniedName+"/")
	if code == 0 {
		t.Fatal("IPv6 denied name succeeded")
	}
	tlsBody, tlsCode, _ := e.curl("-6", "--resolve", resolveTo(allowedName, 443, e.bad6), "https://"+allowedName+"/")
	lines := cap.Stop()
	if tlsCode != 0 || !strings.Contains(tlsBody, "origin="+e.allowed6.String()) {
		t.Fatalf("IPv6 spoof in resolve mode: %d %q", tlsCode, tlsBody)
	}
	if len(lab.Matching(lines, e.allowed6.String())) == 0 {
		t.Fatal("capture saw no IPv6 traffic")
	}
	for _, bad := range []string{e.lab.Origins6[1].String(), e.bad6.String()} {
		if out := lab.Matching(lines, bad); len(out) != 0 {
			t.Fatalf("packets toward %s:\n%s", bad, strings.Join(out, "\n"))
		}
	}
}

func TestOtherTraffic(t *testing.T) {
	for _, other := range []string{"reject", "drop", "masquerade"} {
		t.Run(other, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.start(e.config("", other, ""))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
			defer dcancel()
			start := time.Now()
			c, err := e.lab.Client.DialContext(dctx, "tcp", hostPort(e.allowed4, 22))
			took := time.Since(start)
			switch other {
			case "reject":
				if err == nil || !errors.Is(err, syscall.ECONNREFUSED) {
					t.Fatalf("reject: got %v, want connection refused (TCP reset)", err)
				}
				t.Logf("refused after %v", took)
			case "drop":
				if err == nil || !errors.Is(err, context.DeadlineExceeded) && !os.IsTimeout(err) {
					t.Fatalf("drop: got %v, want a timeout", err)
				}
			case "masquerade":
				if err != nil {
					t.Fatalf("masquerade: %v", err)
				}
				fmt.Fprint(c, "ping\n")
				line, err := bufio.NewReader(c).ReadString('\n')
				c.Close()
				if err != nil || line != "ping\n" {
					t.Fatalf("echo through masquerade: %q %v", line, err)
				}
			}
		})
	}
}

func TestTableRemovedOnStopAndStaleTableReplaced(t *testing.T) {
	e := newEnv(t)
	e.start(e.config("", "", ""))
	if out, err := e.nft("list", "table", "inet", "egressd"); err != nil || !strings.Contains(out, "redirect to :15443") {
		t.Fatalf("table not installed: %v\n%s", err, out)
	}
	e.stop(syscall.SIGTERM)
	if out, err := e.nft("list", "tables"); err != nil || strings.Contains(out, "egressd") {
		t.Fatalf("table still there after SIGTERM: %v\n%s", err, out)
	}
	if !strings.Contains(e.egressd.Output(), "nftables table removed") {
		t.Fatalf("no removal message:\n%s", e.egressd.Output())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if fwd, _ := e.lab.Gateway.Run(ctx, "sysctl", "-n", "net.ipv4.ip_forward"); strings.TrimSpace(fwd) != "0" {
		t.Fatalf("forwarding left on after stop: %q", fwd)
	}

	// kill -9 leaves the table; a new egressd replaces it, never two.
	e.start(e.config("", "", ""))
	e.stop(syscall.SIGKILL)
	if out, _ := e.nft("list", "tables"); !strings.Contains(out, "egressd") {
		t.Fatal("expected a stale table after kill -9")
	}
	e.start(e.config("", "", ""))
	out, err := e.nft("list", "tables")
	if err != nil || strings.Count(out, "table inet egressd") != 1 {
		t.Fatalf("want exactly one table, got:\n%s", out)
	}
	if body, code, _ := e.curl("--resolve", resolveTo(allowedName, 443, e.allowed4), "https://"+allowedName+"/"); code != 0 {
		t.Fatalf("after restart: %d %q", code, body)
	}
}

func TestSilentClientIsClosedAfterSniffTimeout(t *testing.T) {
	e := newEnv(t)
	e.start(e.config("", "", "")) // sniff_timeout: 1s
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	silent, err := e.lab.Client.DialContext(ctx, "tcp", hostPort(e.allowed4, 443))
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	start := time.Now()
	// Others are served meanwhile.
	if body, code, _ := e.curl("--resolve", resolveTo(allowedName, 443, e.allowed4), "https://"+allowedName+"/"); code != 0 {
		t.Fatalf("other client not served: %d %q", code, body)
	}
	_ = silent.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = silent.Read(make([]byte, 1))
	took := time.Since(start)
	if err == nil || os.IsTimeout(err) {
		t.Fatalf("silent client not closed: %v after %v", err, took)
	}
	if took < 500*time.Millisecond {
		t.Fatalf("closed after %v, before the sniff timeout", took)
	}
	e.waitLog(map[string]any{"reason": "sniff_timeout", "decision": "deny"})
	var ne net.Error
	_ = errors.As(err, &ne)
	t.Logf("silent client closed after %v: %v", took, err)
}
