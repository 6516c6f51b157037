package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/egressd/egressd/integration/lab"
	"github.com/egressd/egressd/integration/lab/ec2api"
)

// The HA pair's AWS identities in the lab's EC2 endpoint.
var (
	haInstance  = [2]string{"i-0aaaaaaaaaaaaaaa1", "i-0bbbbbbbbbbbbbbb2"}
	haInterface = [2]string{"eni-0aaaaaaaaaaaaaaa1", "eni-0bbbbbbbbbbbbbbb2"}
	haTable     = [2]string{"rtb-0aaaaaaaaaaaaaaa1", "rtb-0bbbbbbbbbbbbbbb2"}
)

const (
	haAccessKey     = "AKIDEGRESSDLAB"
	haFailbackAfter = 3 * time.Second
	haHealthPort    = 9902
)

// haEnv is the HA pair lab: two clients, two gateways each running
// egressd with an ha section, DNS, origins and an EC2-compatible endpoint
// whose ReplaceRoute moves the lab's routes.
type haEnv struct {
	t      *testing.T
	pair   *lab.Pair
	ec2    *ec2api.Server
	dir    string
	ca     *lab.CA
	origin netip.Addr
	procs  [2]*lab.Process
}

func newHAEnv(t *testing.T) *haEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and nftables (run `sudo .ci/test`)")
	}
	for _, bin := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s (installed by .ci/test)", bin)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := lab.NewPair(ctx, lab.Options{Origins: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("lab cleanup: %v", err)
		}
	})
	e := &haEnv{t: t, pair: p, dir: t.TempDir(), origin: p.Origins4[0]}
	dns, err := lab.StartDNS(p.Internet, lab.DNSAddr4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dns.Stop)
	dns.SetRecords(allowedName, p.Origins4[0])
	dns.SetRecords(deniedName, p.Origins4[1])
	if e.ca, err = lab.NewCA(); err != nil {
		t.Fatal(err)
	}
	o, err := lab.StartOrigin(p.Internet, p.Origins4, e.ca, []string{allowedName, deniedName})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)

	// The EC2 endpoint: ReplaceRoute on a table moves its subnet's route.
	e.ec2 = ec2api.New(ec2api.Options{
		AccessKeyID: haAccessKey,
		OnReplaceRoute: func(ctx context.Context, c ec2api.RouteChange) error {
			subnet, gw := index(haTable[:], c.RouteTableID), index(haInterface[:], c.To.NetworkInterfaceID)
			if subnet < 0 || gw < 0 || c.DestinationCIDR != "0.0.0.0/0" {
				return fmt.Errorf("lab has no route for %+v", c)
			}
			return p.PointSubnet(ctx, subnet, gw)
		},
	})
	for i := range 2 {
		e.ec2.AddInstance(haInstance[i], haInterface[i])
		e.ec2.AddRouteTable(haTable[i], map[string]string{"egressd-home": []string{"a", "b"}[i]},
			ec2api.Route{DestinationCIDR: "0.0.0.0/0", NetworkInterfaceID: haInterface[i]})
	}
	ln, err := p.Internet.Listen("tcp", netip.AddrPortFrom(lab.APIAddr4, 80).String())
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: e.ec2, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return e
}

func index(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// config is gateway i's egressd config. gw-a names its peer's tables by
// tag and learns the peer's identity; gw-b names everything.
func (e *haEnv) config(i int) string {
	peer := 1 - i
	peerTables := fmt.Sprintf("[%s]", haTable[peer])
	peerIdentity := fmt.Sprintf("  peer_instance_id: %s\n  peer_network_interface: %s\n", haInstance[peer], haInterface[peer])
	if i == 0 {
		peerTables, peerIdentity = `["tag:egressd-home=b"]`, ""
	}
	return fmt.Sprintf(`listen:
  http: ":15080"
  tls: ":15443"
  admin: "127.0.0.1:9901"
intercept:
  sources: [%s, %s]
upstream:
  resolver: "%s"
  dial_timeout: 2s
limits:
  sniff_timeout: 2s
  drain_timeout: 1s
policy:
  allow: [%s]
ha:
  provider: aws
  listen: "%s"
  peer: "%s"
  route_tables: [%s]
  peer_route_tables: %s
  instance_id: %s
  network_interface: %s
%s  region: us-east-1
  endpoint: "http://%s"
  failback_after: %s
`, lab.PairClientNet4[0], lab.PairClientNet4[1], lab.DNSAddr4, allowedName,
		netip.AddrPortFrom(lab.PairGatewayAddr4[i], haHealthPort), netip.AddrPortFrom(lab.PairGatewayAddr4[peer], haHealthPort),
		haTable[i], peerTables, haInstance[i], haInterface[i], peerIdentity, lab.APIAddr4, haFailbackAfter)
}

// start runs egressd on gateway i and waits until it serves. The SDK gets
// static credentials and never looks for instance metadata.
func (e *haEnv) start(i int) *lab.Process {
	e.t.Helper()
	path := filepath.Join(e.dir, fmt.Sprintf("egressd-%d.yaml", i))
	if err := os.WriteFile(path, []byte(e.config(i)), 0o644); err != nil {
		e.t.Fatal(err)
	}
	cmd := e.pair.Gateways[i].Command(context.Background(), egressdBin, "run", "-c", path)
	cmd.Env = []string{
		"PATH=/usr/bin:/bin:/usr/sbin:/sbin",
		"AWS_ACCESS_KEY_ID=" + haAccessKey,
		"AWS_SECRET_ACCESS_KEY=lab-secret",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
	}
	p, err := e.pair.Gateways[i].StartCommand(cmd)
	if err != nil {
		e.t.Fatal(err)
	}
	e.procs[i] = p
	name := []string{"gw-a", "gw-b"}[i]
	e.t.Cleanup(func() {
		if e.t.Failed() {
			e.t.Logf("%s egressd output:\n%s", name, p.Output())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := p.WaitFor(ctx, `"message":"ha: watching the peer"`); err != nil {
		e.t.Fatalf("%s: %v", name, err)
	}
	return p
}

// waitPeersHealthy waits until both instances have seen each other healthy.
func (e *haEnv) waitPeersHealthy() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for i, p := range e.procs {
		if err := p.WaitFor(ctx, `"message":"ha: peer healthy"`); err != nil {
			e.t.Fatalf("gateway %d never saw its peer healthy: %v", i, err)
		}
	}
}

// get makes one HTTPS request for name from client i and returns which
// gateway carried it (0 or 1, from the address the origin saw), or an error.
func (e *haEnv) get(ctx context.Context, client int, name string, timeout time.Duration) (int, error) {
	hc := e.pair.Clients[client].HTTPClientResolving(e.ca.Pool(), map[string]netip.Addr{
		allowedName: e.pair.Origins4[0], deniedName: e.pair.Origins4[1]})
	hc.Timeout = timeout
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+name+"/", nil)
	if err != nil {
		return -1, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return -1, err
	}
	defer resp.Body.Close()
	var body strings.Builder
	_, _ = io.Copy(&body, resp.Body)
	for g, a := range lab.PairOutsideAddr4 {
		if strings.Contains(body.String(), "peer="+a.String()+"\n") {
			return g, nil
		}
	}
	return -1, fmt.Errorf("HTTP %d, answer names no gateway: %q", resp.StatusCode, body.String())
}

// mustVia checks that client i reaches the allowed name through gateway g.
func (e *haEnv) mustVia(client, g int) {
	e.t.Helper()
	got, err := e.get(context.Background(), client, allowedName, 5*time.Second)
	if err != nil {
		e.t.Fatalf("client %d: %v", client, err)
	}
	if got != g {
		e.t.Fatalf("client %d went through gateway %d, want %d", client, got, g)
	}
}

// mustBeDenied checks that client i cannot reach the denied name.
func (e *haEnv) mustBeDenied(client int) {
	e.t.Helper()
	if g, err := e.get(context.Background(), client, deniedName, 5*time.Second); err == nil {
		e.t.Fatalf("client %d reached %s through gateway %d", client, deniedName, g)
	}
}

// waitRoute waits until table's default route points at interface want.
func (e *haEnv) waitRoute(table, want string, within time.Duration) time.Time {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		r, ok := e.ec2.Route(table, "0.0.0.0/0")
		if ok && r.NetworkInterfaceID == want {
			for _, c := range slicesReverse(e.ec2.Changes()) {
				if c.RouteTableID == table && c.To.NetworkInterfaceID == want {
					return c.Time
				}
			}
			return time.Now()
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s still points at %s after %s, want %s; changes: %+v", table, r.NetworkInterfaceID, within, want, e.ec2.Changes())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func slicesReverse[T any](s []T) []T {
	out := make([]T, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

// routeMoves returns the "ha: route moved" log lines of a process once
// there are want of them (logs are flushed within 50 ms), or after 2 s.
func routeMoves(p *lab.Process, want int) []string {
	deadline := time.Now().Add(2 * time.Second)
	for {
		var out []string
		for _, l := range strings.Split(p.Output(), "\n") {
			if strings.Contains(l, `"message":"ha: route moved"`) {
				out = append(out, l)
			}
		}
		if len(out) >= want || time.Now().After(deadline) {
			return out
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHAFailoverAndFailback kills gw-a's egressd with SIGKILL: gw-b takes
// over gw-a's route table and client-a reaches allowed names through gw-b
// (denied names stay denied); the time from the kill to client-a's first
// successful request is printed. gw-a restarted takes its table back once
// it has been healthy for failback_after.
func TestHAFailoverAndFailback(t *testing.T) {
	t.Parallel()
	e := newHAEnv(t)
	e.start(0)
	e.start(1)
	e.waitPeersHealthy()
	e.mustVia(0, 0)
	e.mustVia(1, 1)
	e.mustBeDenied(0)

	// Client-a asks every 50 ms from the moment of the kill.
	killed := time.Now()
	if err := e.procs[0].Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var served time.Time
	for served.IsZero() {
		g, err := e.get(ctx, 0, allowedName, 500*time.Millisecond)
		switch {
		case err == nil && g == 1:
			served = time.Now()
		case ctx.Err() != nil:
			t.Fatalf("client-a never got through gw-b after gw-a's egressd was killed: %v", err)
		default:
			time.Sleep(50 * time.Millisecond)
		}
	}
	moved := e.waitRoute(haTable[0], haInterface[1], time.Second)
	t.Logf("failover: kill -9 -> route moved %v, -> first successful request %v (check_interval 500ms, fail_after 4)",
		moved.Sub(killed).Round(time.Millisecond), served.Sub(killed).Round(time.Millisecond))
	fmt.Printf("HA failover (kill -9 to first successful request): %v\n", served.Sub(killed).Round(time.Millisecond))
	e.mustVia(0, 1)
	e.mustVia(1, 1)
	e.mustBeDenied(0)
	if moves := routeMoves(e.procs[1], 1); len(moves) != 1 || !strings.Contains(moves[0], `"route_table":"`+haTable[0]+`"`) ||
		!strings.Contains(moves[0], `"reason":"takeover"`) || !strings.Contains(moves[0], `"from":"`+haInterface[0]) {
		t.Errorf("gw-b's route change logs: %q, want one takeover of %s from %s", moves, haTable[0], haInterface[0])
	}
	if n := len(e.ec2.Changes()); n != 1 {
		t.Errorf("%d route changes, want 1: %+v", n, e.ec2.Changes())
	}

	// Fail-back: gw-a's egressd again; it waits failback_after.
	restarted := time.Now()
	e.start(0)
	back := e.waitRoute(haTable[0], haInterface[0], haFailbackAfter+10*time.Second)
	t.Logf("fail-back: restart -> route back %v (failback_after %v)", back.Sub(restarted).Round(time.Millisecond), haFailbackAfter)
	fmt.Printf("HA fail-back (restart to route back, failback_after %v): %v\n", haFailbackAfter, back.Sub(restarted).Round(time.Millisecond))
	if d := back.Sub(restarted); d < haFailbackAfter {
		t.Errorf("gw-a took its table back %v after its restart, before failback_after (%v)", d, haFailbackAfter)
	}
	e.mustVia(0, 0)
	e.mustVia(1, 1)
	e.mustBeDenied(0)
	if moves := routeMoves(e.procs[0], 1); len(moves) != 1 || !strings.Contains(moves[0], `"reason":"failback"`) {
		t.Errorf("restarted gw-a's route change logs: %q, want one failback", moves)
	}
	if n := len(e.ec2.Changes()); n != 2 {
		t.Errorf("%d route changes, want 2: %+v", n, e.ec2.Changes())
	}
	for _, p := range e.procs {
		if err := p.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
}
