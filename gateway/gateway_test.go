package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/egressd/egressd/gateway/dnscache"
	"github.com/egressd/egressd/gateway/splice"
	"github.com/egressd/egressd/policy"
)

// These tests run the gateway on loopback: the original destination and the
// resolver are injected, and "upstream" servers are loopback listeners. The
// namespace tests in integration/ cover the real redirect.

// fakeResolver maps names to addresses.
type fakeResolver map[string][]netip.Addr

func (r fakeResolver) Lookup(_ context.Context, name string, _ dnscache.Family) ([]netip.Addr, error) {
	if a, ok := r[name]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("%w: %s", dnscache.ErrNoAddress, name)
}

// syncBuffer collects log lines written concurrently.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if m["message"] == "access" {
			out = append(out, m)
		}
	}
	return out
}

// testGateway serves on loopback with dst as every connection's original
// destination. The "upstream" of every name is upstream's address.
type testGateway struct {
	g     *Gateway
	addr  string // where clients connect
	logs  *syncBuffer
	close func()
}

func startGateway(t *testing.T, proto string, allow []string, dst netip.AddrPort, resolver fakeResolver, tweak func(*Settings)) *testGateway {
	t.Helper()
	return startGatewayWith(t, nil, proto, allow, dst, resolver, tweak)
}

func startGatewayWith(t *testing.T, engine *splice.Engine, proto string, allow []string, dst netip.AddrPort, resolver fakeResolver, tweak func(*Settings)) *testGateway {
	t.Helper()
	pol, err := policy.New(policy.Spec{Allow: allow})
	if err != nil {
		t.Fatal(err)
	}
	s := &Settings{Policy: pol, UpstreamMode: Resolve, DialTimeout: 2 * time.Second,
		SniffTimeout: 2 * time.Second, IdleTimeout: time.Minute, MaxConnections: 100}
	if tweak != nil {
		tweak(s)
	}
	logs := &syncBuffer{}
	g := New(Options{
		Log:         zerolog.New(logs),
		Resolver:    resolver,
		OriginalDst: func(*net.TCPConn) (netip.AddrPort, error) { return dst, nil },
		Engine:      engine,
		// The "internet" of these tests is loopback.
		ForbiddenUpstream: func(a netip.Addr) bool { return forbiddenUpstream(a) && !a.IsLoopback() },
	}, s)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if proto == protoTLS {
			_ = g.ServeTLS(ctx, ln)
		} else {
			_ = g.ServeHTTP(ctx, ln)
		}
	}()
	tg := &testGateway{g: g, addr: ln.Addr().String(), logs: logs}
	tg.close = func() {
		cancel()
		<-done
		dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer dcancel()
		g.Drain(dctx)
	}
	t.Cleanup(tg.close)
	return tg
}

func loopback(t *testing.T, ln net.Listener) netip.AddrPort {
	t.Helper()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// waitRecords waits until n access lines were logged.
func (tg *testGateway) waitRecords(t *testing.T, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		recs := tg.logs.records(t)
		if len(recs) >= n || time.Now().After(deadline) {
			if len(recs) < n {
				t.Fatalf("want %d access lines, got %d: %v", n, len(recs), recs)
			}
			return recs
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTLSAllowedIsSplicedToTheNamesAddress(t *testing.T) {
	for _, withEngine := range []bool{false, true} {
		t.Run(fmt.Sprintf("engine=%v", withEngine), func(t *testing.T) { testTLSAllowed(t, withEngine) })
	}
}

func testTLSAllowed(t *testing.T, withEngine bool) {
	var engine *splice.Engine
	if withEngine {
		var err error
		if engine, err = splice.NewEngine(splice.Options{Loops: 1}); err != nil {
			t.Fatal(err)
		}
		defer engine.Close()
	}
	origin := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.Host)
	}))
	defer origin.Close()
	originAP := loopback(t, origin.Listener)
	// The client "dialed" 127.0.0.66 with an allowed SNI: resolve mode must
	// carry it to the name's own address instead.
	spoofed := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.66"), originAP.Port())
	tg := startGatewayWith(t, engine, protoTLS, []string{"allowed.example"}, spoofed,
		fakeResolver{"allowed.example": {originAP.Addr()}}, nil)

	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{ServerName: "allowed.example", InsecureSkipVerify: true},
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", tg.addr)
		},
	}}
	resp, err := client.Get("https://allowed.example/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello allowed.example" {
		t.Fatalf("body %q", body)
	}
	client.CloseIdleConnections()
	rec := tg.waitRecords(t, 1)[0]
	want := map[string]any{"decision": "allow", "host": "allowed.example", "proto": "tls",
		"upstream": originAP.String(), "dst": spoofed.String(), "reason": "allowed_name", "rule": "allowed.example"}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("log %s = %v, want %v", k, rec[k], v)
		}
	}
	if rec["bytes_up"].(float64) < 200 || rec["bytes_down"].(float64) < 200 {
		t.Errorf("byte counts too small: %v", rec)
	}
}

func TestTLSDeniedIsReset(t *testing.T) {
	dst := netip.MustParseAddrPort("127.0.0.1:1") // never dialed
	tg := startGateway(t, protoTLS, []string{"allowed.example"}, dst, fakeResolver{}, nil)
	conn, err := tls.Dial("tcp", tg.addr, &tls.Config{ServerName: "denied.example", InsecureSkipVerify: true})
	if err == nil {
		conn.Close()
		t.Fatal("handshake with a denied name succeeded")
	}
	if !strings.Contains(err.Error(), "reset") && !errors.Is(err, io.EOF) {
		t.Logf("client error: %v", err)
	}
	rec := tg.waitRecords(t, 1)[0]
	if rec["decision"] != "deny" || rec["reason"] != "not_allowed" || rec["upstream"] != "" {
		t.Fatalf("log: %v", rec)
	}
}

func TestTLSNothingSentIsClosedAfterSniffTimeout(t *testing.T) {
	tg := startGateway(t, protoTLS, []string{"allowed.example"}, netip.MustParseAddrPort("127.0.0.1:1"), fakeResolver{},
		func(s *Settings) { s.SniffTimeout = 300 * time.Millisecond })
	c, err := net.Dial("tcp", tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read data from a connection that sent nothing")
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("connection still open after the sniff timeout")
	}
	rec := tg.waitRecords(t, 1)[0]
	if rec["reason"] != "sniff_timeout" {
		t.Fatalf("log: %v", rec)
	}
}

// httpOrigin answers with the Host it saw, and implements /upgrade (101,
// then echo) and /close (Connection: close).
func httpOrigin(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveOrigin(c)
		}
	}()
	return ln
}

func serveOrigin(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		if req.URL.Path == "/upgrade" {
			fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
			io.Copy(c, br)
			return
		}
		body := "host=" + req.Host + " path=" + req.URL.Path
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	}
}

func TestHTTPKeepAliveChecksEveryRequest(t *testing.T) {
	origin := httpOrigin(t)
	ap := loopback(t, origin)
	tg := startGateway(t, protoHTTP, []string{"allowed.example", "other.example"}, ap,
		fakeResolver{"allowed.example": {ap.Addr()}, "other.example": {ap.Addr()}}, nil)
	c, err := net.Dial("tcp", tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	// Two requests pipelined for the allowed host, then one for another
	// host: two answers, then 403 and close.
	fmt.Fprintf(c, "GET /a HTTP/1.1\r\nHost: allowed.example\r\n\r\nGET /b HTTP/1.1\r\nHost: ALLOWED.example.\r\n\r\n")
	for _, want := range []string{"host=allowed.example path=/a", "host=ALLOWED.example. path=/b"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != want {
			t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, want)
		}
	}
	fmt.Fprintf(c, "GET /c HTTP/1.1\r\nHost: other.example\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 403 || !strings.Contains(string(body), "other.example") {
		t.Fatalf("third request: %d %q, want 403 naming the host", resp.StatusCode, body)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("connection still open after 403")
	}
	recs := tg.waitRecords(t, 3)
	if recs[2]["reason"] != reasonHostChanged || recs[2]["decision"] != "deny" {
		t.Fatalf("third log line: %v", recs[2])
	}
}

func TestHTTPDeniedAndMalformed(t *testing.T) {
	dst := netip.MustParseAddrPort("127.0.0.1:1")
	tg := startGateway(t, protoHTTP, []string{"allowed.example"}, dst, fakeResolver{}, nil)
	for _, tc := range []struct {
		req    string
		status int
	}{
		{"GET / HTTP/1.1\r\nHost: denied.example\r\n\r\n", 403},
		{"GET / HTTP/1.1\r\nHost: allowed.example\r\nHost: denied.example\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: allowed.example\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"GET / HTTP/1.0\r\n\r\n", 400},
		{"GET http://denied.example/ HTTP/1.1\r\nHost: allowed.example\r\n\r\n", 403},
	} {
		c, err := net.Dial("tcp", tg.addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, tc.req)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err != nil {
			t.Fatalf("%q: %v", tc.req, err)
		}
		if resp.StatusCode != tc.status {
			t.Errorf("%q: status %d, want %d", tc.req, resp.StatusCode, tc.status)
		}
	}
}

func TestHTTPUpgradeIsSplicedAfter101(t *testing.T) {
	origin := httpOrigin(t)
	ap := loopback(t, origin)
	tg := startGateway(t, protoHTTP, []string{"allowed.example"}, ap, fakeResolver{"allowed.example": {ap.Addr()}}, nil)
	c, err := net.Dial("tcp", tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /upgrade HTTP/1.1\r\nHost: allowed.example\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("want 101, got %v %v", resp, err)
	}
	// After the 101 anything goes, even what looks like a request for
	// another host: it is the upgraded protocol's data.
	msg := "GET / HTTP/1.1\r\nHost: denied.example\r\n\r\n"
	io.WriteString(c, msg)
	got := make([]byte, len(msg))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != msg {
		t.Fatalf("echo: %q %v", got, err)
	}
}

func TestMaxConnectionsRefusesAtOnce(t *testing.T) {
	tg := startGateway(t, protoTLS, []string{"allowed.example"}, netip.MustParseAddrPort("127.0.0.1:1"), fakeResolver{},
		func(s *Settings) { s.MaxConnections = 1; s.SniffTimeout = 5 * time.Second })
	first, err := net.Dial("tcp", tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	// Wait until the first is being served.
	for i := 0; tg.g.Active() < 1 && i < 500; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	second, err := net.Dial("tcp", tg.addr)
	if errors.Is(err, syscall.ECONNRESET) {
		return // refused so fast that the reset beat connect's return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	_ = second.SetReadDeadline(time.Now().Add(2 * time.Second))
	start := time.Now()
	_, err = second.Read(make([]byte, 1))
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("second connection not refused: %v", err)
	}
	t.Logf("refused after %v: %v", time.Since(start), err)
	if tg.g.Active() != 1 {
		t.Fatalf("active = %d, want the first still served", tg.g.Active())
	}
}

func TestRelayHalfCloseAndCounts(t *testing.T) {
	// client <-> [relay] <-> server; the client half-closes after sending,
	// and must still receive the server's whole answer.
	pair := func() (*net.TCPConn, *net.TCPConn) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		a, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		b, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return a.(*net.TCPConn), b.(*net.TCPConn)
	}
	client, gwClientSide := pair()
	gwUpSide, server := pair()
	done := make(chan relayResult)
	go func() { done <- relay(gwClientSide, gwUpSide, time.Minute) }()

	request := bytes.Repeat([]byte("q"), 100_000)
	answer := bytes.Repeat([]byte("a"), 3_000_000)
	go func() {
		client.Write(request)
		client.CloseWrite()
	}()
	got, err := io.ReadAll(server) // ends at the client's half-close
	if err != nil || len(got) != len(request) {
		t.Fatalf("server got %d bytes, %v", len(got), err)
	}
	server.Write(answer)
	server.Close()
	back, err := io.ReadAll(client)
	if err != nil || !bytes.Equal(back, answer) {
		t.Fatalf("client got %d bytes, %v", len(back), err)
	}
	r := <-done
	if r.up != int64(len(request)) || r.down != int64(len(answer)) || r.failed || r.idleTimedOut {
		t.Fatalf("relay result %+v", r)
	}
}

func TestForbiddenUpstreams(t *testing.T) {
	for a, want := range map[string]bool{
		"169.254.169.254": true, "fe80::1": true, "127.0.0.1": true, "::1": true, "0.0.0.0": true,
		"224.0.0.1": true, "255.255.255.255": true, "::ffff:169.254.169.254": true,
		"203.0.113.9": false, "10.0.0.5": false, "2001:db8::1": false,
	} {
		if got := forbiddenUpstream(netip.MustParseAddr(a)); got != want {
			t.Errorf("%s: forbidden=%v, want %v", a, got, want)
		}
	}
}

// An allowed name that resolves to the instance metadata address must not
// carry a client to the gateway's own credentials.
func TestAllowedNamePointingAtMetadataIsDenied(t *testing.T) {
	imds := netip.MustParseAddr("169.254.169.254")
	resolver := fakeResolver{"allowed.example": {imds}}
	dst := netip.MustParseAddrPort("203.0.113.9:80")
	tg := startGateway(t, protoHTTP, []string{"allowed.example"}, dst, resolver, nil)
	tg.g.opts.ForbiddenUpstream = forbiddenUpstream // the production filter
	c, err := net.Dial("tcp", tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /latest/meta-data/iam/ HTTP/1.1\r\nHost: allowed.example\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 403 {
		t.Fatalf("status %d, want 403", resp.StatusCode)
	}
	rec := tg.waitRecords(t, 1)[0]
	if rec["reason"] != reasonForbidden || rec["upstream"] != "" {
		t.Fatalf("log: %v", rec)
	}
}
