package integration

import (
	"context"
	"crypto/tls"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// admin fetches a path of the admin endpoint inside the gateway namespace.
func (e *env) admin(path string) (int, string) {
	e.t.Helper()
	c := e.lab.Gateway.HTTPClient(nil)
	resp, err := c.Get("http://127.0.0.1:9901" + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric returns the value of one sample line of /metrics.
func (e *env) metric(series string) float64 {
	e.t.Helper()
	_, body := e.admin("/metrics")
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` ([0-9.e+]+)$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// waitOutput waits until egressd printed s count times.
func (e *env) waitOutput(s string, count int) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(e.egressd.Output(), s) < count {
		if time.Now().After(deadline) {
			e.t.Fatalf("egressd did not print %q %d times:\n%s", s, count, e.egressd.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestReloadAddsNameAndInvalidReloadKeepsPolicy(t *testing.T) {
	e := newEnv(t)
	e.start(e.config("", "", ""))
	https := func(name string, addr int) int {
		_, code, _ := e.curl("--resolve", resolveTo(name, 443, e.lab.Origins4[addr]), "https://"+name+"/")
		return code
	}
	if https(deniedName, 1) == 0 {
		t.Fatal("denied.example allowed before the reload")
	}
	// Rewrite the file the way editors do (new file renamed over the old):
	// the directory watch must see it without a signal.
	cfg := strings.Replace(e.config("", "", ""), "    - .good.example\n", "    - .good.example\n    - "+deniedName+"\n", 1)
	tmp := e.cfgPath + ".tmp"
	if err := os.WriteFile(tmp, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, e.cfgPath); err != nil {
		t.Fatal(err)
	}
	e.waitOutput(`"message":"config reloaded"`, 1)
	if code := https(deniedName, 1); code != 0 {
		t.Fatalf("denied.example still refused after the reload added it (curl %d)", code)
	}

	// An invalid file is refused; the old policy stays and traffic flows.
	bad := strings.Replace(cfg, "  allow:\n", "  alow:\n", 1)
	if err := os.WriteFile(e.cfgPath, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.egressd.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	e.waitOutput("config reload refused", 1)
	if !strings.Contains(e.egressd.Output(), `policy.alow: unknown key (did you mean \"allow\"?)`) {
		t.Fatalf("refusal does not carry the located error:\n%s", e.egressd.Output())
	}
	if code := https(allowedName, 0); code != 0 {
		t.Fatalf("gateway stopped serving after an invalid reload (curl %d)", code)
	}
	if code := https(deniedName, 1); code != 0 {
		t.Fatalf("old policy lost after an invalid reload (curl %d)", code)
	}
	if v := e.metric(`egressd_config_reloads_total{result="error"}`); v < 1 {
		t.Fatalf("reload errors metric = %v", v)
	}
	if v := e.metric(`egressd_config_reloads_total{result="success"}`); v != 1 {
		t.Fatalf("reload success metric = %v, want 1", v)
	}
}

func TestMonitorModeLetsDenialsThroughAndLogsThem(t *testing.T) {
	e := newEnv(t)
	e.start(strings.Replace(e.config("", "", ""), "policy:\n", "policy:\n  mode: monitor\n", 1))
	body, code, _ := e.curl("--resolve", resolveTo(deniedName, 443, e.denied4), "https://"+deniedName+"/")
	if code != 0 || !strings.Contains(body, "origin="+e.denied4.String()) {
		t.Fatalf("monitor mode blocked a denied name: %d %q", code, body)
	}
	rec := e.waitLog(map[string]any{"host": deniedName, "decision": "deny", "enforced": false, "reason": "not_allowed"})
	if rec["upstream"] != hostPort(e.denied4, 443) {
		t.Fatalf("upstream %v", rec["upstream"])
	}
	if v := e.metric(`egressd_connections_total{decision="deny",enforced="false",proto="tls"}`); v != 1 {
		t.Fatalf("would-be denials counted %v, want 1", v)
	}
}

func TestMetricsMoveWithTraffic(t *testing.T) {
	e := newEnv(t)
	e.start(e.config("", "", ""))
	if code, body := e.admin("/healthz"); code != 200 {
		t.Fatalf("healthz %d %s", code, body)
	}
	before := e.metric(`egressd_connections_total{decision="allow",enforced="true",proto="tls"}`)
	for i := 0; i < 3; i++ {
		e.curl("--resolve", resolveTo(allowedName, 443, e.allowed4), "https://"+allowedName+"/")
	}
	e.curl("--resolve", resolveTo(deniedName, 443, e.denied4), "https://"+deniedName+"/")
	deadline := time.Now().Add(5 * time.Second)
	for e.metric(`egressd_connections_total{decision="allow",enforced="true",proto="tls"}`)-before < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := e.metric(`egressd_connections_total{decision="allow",enforced="true",proto="tls"}`) - before; got != 3 {
		t.Fatalf("allowed TLS connections counted %v, want 3", got)
	}
	if got := e.metric(`egressd_denials_total{proto="tls",reason="not_allowed"}`); got != 1 {
		t.Fatalf("denials counted %v, want 1", got)
	}
	if got := e.metric(`egressd_bytes_total{direction="down",proto="tls"}`); got < 1000 {
		t.Fatalf("bytes down %v", got)
	}
	// Three lookups of one name: one miss, then the cache answers.
	if hits, misses := e.metric("egressd_dns_cache_hits_total"), e.metric("egressd_dns_cache_misses_total"); hits < 2 || misses < 1 {
		t.Fatalf("dns cache hits %v misses %v", hits, misses)
	}
	_, body := e.admin("/metrics")
	for _, forbidden := range []string{allowedName, "10.77.1.2"} {
		if strings.Contains(body, forbidden) {
			t.Fatalf("/metrics carries a per-host or per-client label (%s)", forbidden)
		}
	}
}

func TestReadyzFailsWhenResolverIsDown(t *testing.T) {
	e := newEnv(t)
	e.start(e.config("", "", ""))
	if code, body := e.admin("/readyz"); code != 200 {
		t.Fatalf("readyz %d: %s", code, body)
	}
	e.dns.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := e.admin("/readyz")
		if code == 503 && strings.Contains(body, "resolver") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz still %d with the resolver down: %s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := e.dns.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if code, _ := e.admin("/readyz"); code == 200 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal("readyz did not recover with the resolver back")
}

func TestReloadRevokesOpenConnections(t *testing.T) {
	e := newEnv(t)
	e.start(e.config("", "", ""))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	raw, err := e.lab.Client.DialContext(ctx, "tcp", hostPort(e.allowed4, 443))
	if err != nil {
		t.Fatal(err)
	}
	conn := tls.Client(raw, &tls.Config{ServerName: allowedName, RootCAs: caPool(t, e.caFile), NextProtos: []string{"http/1.1"}})
	defer conn.Close()
	if err := conn.HandshakeContext(ctx); err != nil {
		t.Fatal(err)
	}
	// Remove allowed.example and reload: the open connection must close.
	cfg := strings.Replace(e.config("", "", ""), "    - "+allowedName+"\n", "", 1)
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.egressd.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	e.waitOutput(`"message":"config reloaded"`, 1)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil || os.IsTimeout(err) {
		t.Fatalf("connection still open after its name was removed: %v", err)
	}
	e.waitLog(map[string]any{"host": allowedName, "reason": "policy_revoked"})
	if !strings.Contains(e.egressd.Output(), `"revoked_connections":1`) {
		t.Fatalf("reload did not report the revocation:\n%s", e.egressd.Output())
	}
}
