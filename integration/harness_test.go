package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/egressd/egressd/integration/lab"
)

// egressdBin is the binary built once for all tests.
var egressdBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Println("integration: skipping: needs root (network namespaces, nftables); run `sudo .ci/test`")
		return m.Run() // every test skips itself
	}
	dir, err := os.MkdirTemp("", "egressd-it")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer os.RemoveAll(dir)
	egressdBin = filepath.Join(dir, "egressd")
	out, err := exec.Command("go", "build", "-race", "-o", egressdBin, "../cmd/egressd").CombinedOutput()
	if err != nil {
		fmt.Printf("building egressd: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// Names the lab's DNS knows.
const (
	allowedName = "allowed.example"
	deniedName  = "denied.example"
	otherName   = "www.good.example" // allowed by the .good.example entry
)

// env is one lab with DNS, origins and (once started) egressd.
type env struct {
	t       *testing.T
	lab     *lab.Lab
	dns     *lab.DNS
	origin  *lab.Origin
	caFile  string
	dir     string
	cfgPath string
	egressd *lab.Process

	allowed4, allowed6, denied4, bad4, bad6 netip.Addr
}

// newEnv builds a lab; yaml overrides are appended to the base config.
func newEnv(t *testing.T) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and nftables (run `sudo .ci/test`)")
	}
	for _, bin := range []string{"ip", "nft", "tcpdump", "curl", "openssl"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s (installed by .ci/test)", bin)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := lab.New(ctx, lab.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab cleanup: %v", err)
		}
	})
	e := &env{t: t, lab: l, dir: t.TempDir(),
		allowed4: l.Origins4[0], allowed6: l.Origins6[0], denied4: l.Origins4[1],
		bad4: l.Origins4[7], bad6: l.Origins6[7]}
	e.dns, err = lab.StartDNS(l.Internet, lab.DNSAddr4, lab.DNSAddr6)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.dns.Stop)
	e.dns.SetRecords(allowedName, e.allowed4, e.allowed6)
	e.dns.SetRecords(deniedName, e.denied4, l.Origins6[1])
	e.dns.SetRecords(otherName, l.Origins4[2], l.Origins6[2])
	ca, err := lab.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	e.caFile = filepath.Join(e.dir, "ca.pem")
	if err := ca.WriteFile(e.caFile); err != nil {
		t.Fatal(err)
	}
	e.origin, err = lab.StartOrigin(l.Internet, append(l.Origins4, l.Origins6...), ca,
		[]string{allowedName, deniedName, otherName})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.origin.Close)
	return e
}

// config returns the lab's egressd config with extra YAML replacing the
// policy/upstream/intercept.other settings given.
func (e *env) config(mode, other, extraPolicy string) string {
	if mode == "" {
		mode = "resolve"
	}
	if other == "" {
		other = "reject"
	}
	return fmt.Sprintf(`listen:
  http: ":15080"
  tls: ":15443"
  admin: "127.0.0.1:9901"
intercept:
  sources: [%s, %s]
  other: %s
upstream:
  mode: %s
  resolver: "%s"
  dial_timeout: 2s
limits:
  sniff_timeout: 1s
  drain_timeout: 2s
policy:
  allow:
    - %s
    - .good.example
%s
log:
  level: info
`, lab.ClientNet4, lab.ClientNet6, other, mode, lab.DNSAddr4, allowedName, extraPolicy)
}

// start writes cfg and runs egressd in the gateway namespace.
func (e *env) start(cfg string) *lab.Process {
	e.t.Helper()
	e.cfgPath = filepath.Join(e.dir, "egressd.yaml")
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o644); err != nil {
		e.t.Fatal(err)
	}
	p, err := e.lab.Gateway.Start(egressdBin, "run", "-c", e.cfgPath)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := p.WaitFor(ctx, `"message":"egressd serving"`); err != nil {
		e.t.Fatal(err)
	}
	e.egressd = p
	e.t.Cleanup(func() {
		if e.t.Failed() {
			e.t.Logf("egressd output:\n%s", p.Output())
		}
	})
	return p
}

// curl runs curl in the client namespace (never with proxy variables) and
// returns stdout, the exit code and stderr.
func (e *env) curl(args ...string) (string, int, string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := e.lab.Client.Command(ctx, "curl", append([]string{"-sS", "--max-time", "8", "--noproxy", "*", "--cacert", e.caFile}, args...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin:/usr/sbin:/sbin"}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	return stdout.String(), code, stderr.String()
}

// accessLogs returns egressd's access lines so far.
func (e *env) accessLogs() []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(e.egressd.Output(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["message"] == "access" {
			out = append(out, m)
		}
	}
	return out
}

// waitLog waits for an access line matching all of want.
func (e *env) waitLog(want map[string]any) map[string]any {
	e.t.Helper()
	return e.waitLogFor(e.t, want)
}

// waitLogFor is waitLog failing t (a subtest) instead of the env's test.
func (e *env) waitLogFor(t *testing.T, want map[string]any) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range e.accessLogs() {
			ok := true
			for k, v := range want {
				if fmt.Sprint(m[k]) != fmt.Sprint(v) {
					ok = false
					break
				}
			}
			if ok {
				return m
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no access line with %v in:\n%s", want, e.egressd.Output())
	return nil
}

// capture starts tcpdump on the gateway's outside interface.
func (e *env) capture(filter string) *lab.Capture {
	e.t.Helper()
	c, err := lab.StartCapture(context.Background(), e.lab.Gateway, lab.GatewayOutsideIf, filter)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// nft runs nft in the gateway namespace.
func (e *env) nft(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return e.lab.Gateway.Run(ctx, "nft", args...)
}

func (e *env) stop(sig syscall.Signal) {
	e.t.Helper()
	if err := e.egressd.Signal(sig); err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_ = e.egressd.Wait(ctx)
}

// rawHTTP sends a raw request from the client namespace and returns the
// status line of the answer.
func (e *env) rawHTTP(addr, request string) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := e.lab.Client.DialContext(ctx, "tcp", addr)
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		e.t.Fatal(err)
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

// hostPort renders addr:port with brackets for IPv6.
func hostPort(a netip.Addr, port uint16) string { return netip.AddrPortFrom(a, port).String() }

// resolveTo renders curl's --resolve for name to addr.
func resolveTo(name string, port int, a netip.Addr) string {
	s := a.String()
	if a.Is6() {
		s = "[" + s + "]"
	}
	return fmt.Sprintf("%s:%d:%s", name, port, s)
}
