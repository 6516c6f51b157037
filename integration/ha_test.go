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
	"slices"
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
			subnet, gw := slices.Index(haTable[:], c.RouteTableID), slices.Index(haInterface[:], c.To.NetworkInterfaceID)
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

// newRunningHAEnv is newHAEnv with egressd running on both gateways, each
// having seen the other healthy.
func newRunningHAEnv(t *testing.T) *haEnv {
	t.Helper()
	e := newHAEnv(t)
	e.start(0)
	e.start(1)
	e.waitPeersHealthy()
	return e
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
			changes := e.ec2.Changes()
			for i := len(changes) - 1; i >= 0; i-- {
				if c := changes[i]; c.RouteTableID == table && c.To.NetworkInterfaceID == want {
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

// TestHAFailoverAndFailback kills gw-a's egressd with SIGKILL (and, in a
// second run, stops it with SIGTERM): gw-b takes over gw-a's route table
// and client-a reaches allowed names through gw-b (denied names stay
// denied); the time from the signal to client-a's first successful request
// is printed. gw-a restarted takes its table back once it has been healthy
// for failback_after.
func TestHAFailoverAndFailback(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			testFailoverAndFailback(t, sig)
		})
	}
}

func testFailoverAndFailback(t *testing.T, sig syscall.Signal) {
	e := newRunningHAEnv(t)
	e.mustVia(0, 0)
	e.mustVia(1, 1)
	e.mustBeDenied(0)

	// Client-a asks every 50 ms from the moment of the signal.
	killed := time.Now()
	if err := e.procs[0].Signal(sig); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var served time.Time
	viaA, failed := 0, 0
	for served.IsZero() {
		g, err := e.get(ctx, 0, allowedName, 500*time.Millisecond)
		switch {
		case err == nil && g == 1:
			served = time.Now()
		case ctx.Err() != nil:
			t.Fatalf("client-a never got through gw-b after gw-a's egressd got %v: %v", sig, err)
		case err == nil:
			viaA++
		default:
			failed++
		}
		if served.IsZero() {
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("after %v: %d requests served by gw-a, %d failed, before the first through gw-b", sig, viaA, failed)
	if sig == syscall.SIGTERM && viaA == 0 {
		t.Error("a stopping gw-a served nothing while its peer took over: the hand-over should keep it serving")
	}
	moved := e.waitRoute(haTable[0], haInterface[1], time.Second)
	t.Logf("failover: %v -> route moved %v, -> first successful request %v (check_interval 500ms, fail_after 4)",
		sig, moved.Sub(killed).Round(time.Millisecond), served.Sub(killed).Round(time.Millisecond))
	fmt.Printf("HA failover (%v to first successful request): %v\n", sig, served.Sub(killed).Round(time.Millisecond))
	if sig == syscall.SIGTERM {
		if err := e.procs[0].Wait(ctx); err != nil {
			t.Errorf("gw-a's egressd after SIGTERM: %v", err)
		}
		if !strings.Contains(e.procs[0].Output(), "ha: the peer has taken over this instance's route tables") {
			t.Error("the stopping gw-a did not see its peer take over before it stopped accepting")
		}
	}
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
	fmt.Printf("HA fail-back after %v (restart to route back, failback_after %v): %v\n", sig, haFailbackAfter, back.Sub(restarted).Round(time.Millisecond))
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

// haPartition is how long TestHAPartitionMakesNoRouteChanges cuts the link
// between the gateways: the 60 s, or 10 s with -short.
func haPartition() time.Duration {
	if testing.Short() {
		return 10 * time.Second
	}
	return 60 * time.Second
}

// TestHAPartitionMakesNoRouteChanges cuts the link between two healthy
// gateways (silently, as a security group would): each sees its peer
// silent, asks EC2, hears that the peer runs, and changes nothing. Both
// keep serving their own clients throughout.
func TestHAPartitionMakesNoRouteChanges(t *testing.T) {
	t.Parallel()
	e := newRunningHAEnv(t)
	ctx := context.Background()
	if err := e.pair.CutPair(ctx); err != nil {
		t.Fatal(err)
	}
	d := haPartition()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		e.mustVia(0, 0)
		e.mustVia(1, 1)
		time.Sleep(2 * time.Second)
	}
	if c := e.ec2.Changes(); len(c) != 0 {
		t.Fatalf("%d route changes during a %v partition between healthy gateways: %+v", len(c), d, c)
	}
	for i, p := range e.procs {
		if !strings.Contains(p.Output(), "EC2 reports it running and healthy: not taking over") {
			t.Errorf("gateway %d did not log why it held back", i)
		}
	}
	// One status call per 5 s per gateway at most, plus the first.
	calls := e.ec2.Calls("DescribeInstanceStatus")
	if limit := 2 * (int(d/(5*time.Second)) + 2); calls == 0 || calls > limit {
		t.Errorf("%d DescribeInstanceStatus calls in %v, want 1..%d", calls, d, limit)
	}
	t.Logf("partition of %v: 0 route changes, %d DescribeInstanceStatus calls, %d DescribeRouteTables calls",
		d, calls, e.ec2.Calls("DescribeRouteTables"))
	fmt.Printf("HA partition (%v): 0 route changes, %d ec2:DescribeInstanceStatus calls for the pair\n", d, calls)

	if err := e.pair.HealPair(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if c := e.ec2.Changes(); len(c) != 0 {
		t.Fatalf("route changes after the link came back: %+v", c)
	}
	e.mustVia(0, 0)
	e.mustVia(1, 1)
}

// TestHAHungProcessIsTakenOver freezes gw-b's egressd (SIGSTOP): its
// kernel still accepts the health check's connection, but nothing answers,
// which proves the process (not the link) has failed, so gw-a takes over
// without asking EC2. Resumed (SIGCONT), gw-b sees that it stalled and
// takes its table back after failback_after.
func TestHAHungProcessIsTakenOver(t *testing.T) {
	t.Parallel()
	e := newRunningHAEnv(t)
	frozen := time.Now()
	if err := e.procs[1].Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			_ = e.procs[1].Signal(syscall.SIGCONT) // so that the lab can stop it
		}
	})
	moved := e.waitRoute(haTable[1], haInterface[0], 10*time.Second)
	t.Logf("hung process: SIGSTOP -> route moved %v", moved.Sub(frozen).Round(time.Millisecond))
	e.mustVia(1, 0)
	e.mustVia(0, 0)
	if n := e.ec2.Calls("DescribeInstanceStatus"); n != 0 {
		t.Errorf("%d DescribeInstanceStatus calls: a connected check with no answer is proof enough", n)
	}
	if !strings.Contains(e.procs[0].Output(), `"check":"no_answer"`) {
		t.Error(`gw-a did not log a "no_answer" check`)
	}

	cont := time.Now()
	if err := e.procs[1].Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	back := e.waitRoute(haTable[1], haInterface[1], haFailbackAfter+10*time.Second)
	if d := back.Sub(cont); d < haFailbackAfter {
		t.Errorf("gw-b took its table back %v after it resumed, before failback_after (%v)", d, haFailbackAfter)
	}
	e.mustVia(1, 1)
	if !strings.Contains(e.procs[1].Output(), "ha: this instance did not run for a while") {
		t.Error("gw-b did not log that it had stalled")
	}
}

// TestHASilentPeerIsTakenOverOnlyOnceEC2SaysItIsDown cuts the link between
// the gateways: each sees the other silent and holds back while EC2 says
// the other runs. When EC2 reports gw-b stopped, gw-a takes over its
// table; with the link and gw-b back, gw-b takes its table back.
func TestHASilentPeerIsTakenOverOnlyOnceEC2SaysItIsDown(t *testing.T) {
	t.Parallel()
	e := newRunningHAEnv(t)
	ctx := context.Background()
	if err := e.pair.CutPair(ctx); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := e.procs[0].WaitFor(wctx, "EC2 reports it running and healthy: not taking over"); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	e.ec2.SetInstanceState(haInstance[1], "stopped")
	moved := e.waitRoute(haTable[1], haInterface[0], 15*time.Second)
	t.Logf("silent peer: EC2 state stopped -> route moved %v (status asked every 5 s while silent)", moved.Sub(stopped).Round(time.Millisecond))
	e.mustVia(1, 0)
	if moves := routeMoves(e.procs[0], 1); len(moves) != 1 || !strings.Contains(moves[0], `"peer_check":"unreachable"`) {
		t.Errorf("gw-a's moves: %q, want one takeover after unreachable checks", moves)
	}

	e.ec2.SetInstanceState(haInstance[1], "running")
	if err := e.pair.HealPair(ctx); err != nil {
		t.Fatal(err)
	}
	e.waitRoute(haTable[1], haInterface[1], 15*time.Second)
	e.mustVia(1, 1)
	if c := e.ec2.Changes(); len(c) != 2 {
		t.Errorf("%d route changes, want the takeover and the fail-back: %+v", len(c), c)
	}
}

// TestHABothRestartedEachReclaimsOnlyItsOwnTables stops both gateways
// with SIGKILL and leaves the tables as earlier failures would have:
// gw-a's table pointing at gw-b, gw-b's at nothing. Restarted, gw-b
// claims its table at once (nobody serves it), gw-a takes its own back
// after failback_after, and neither touches the other's.
func TestHABothRestartedEachReclaimsOnlyItsOwnTables(t *testing.T) {
	t.Parallel()
	e := newRunningHAEnv(t)
	for _, p := range e.procs {
		if err := p.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = p.Wait(context.Background())
	}
	ctx := context.Background()
	e.ec2.AddRouteTable(haTable[0], map[string]string{"egressd-home": "a"},
		ec2api.Route{DestinationCIDR: "0.0.0.0/0", NetworkInterfaceID: haInterface[1]})
	e.ec2.AddRouteTable(haTable[1], map[string]string{"egressd-home": "b"},
		ec2api.Route{DestinationCIDR: "0.0.0.0/0", NetworkInterfaceID: "eni-0ccccccccccccccc3", State: "blackhole"})
	if err := e.pair.PointSubnet(ctx, 0, 1); err != nil {
		t.Fatal(err)
	}
	if err := e.pair.PointSubnet(ctx, 1, -1); err != nil {
		t.Fatal(err)
	}

	started := time.Now()
	e.start(0)
	e.start(1)
	claimed := e.waitRoute(haTable[1], haInterface[1], 5*time.Second)
	back := e.waitRoute(haTable[0], haInterface[0], haFailbackAfter+10*time.Second)
	t.Logf("restart: gw-b claimed its blackholed table after %v, gw-a took its table back after %v (failback_after %v)",
		claimed.Sub(started).Round(time.Millisecond), back.Sub(started).Round(time.Millisecond), haFailbackAfter)
	if back.Sub(started) < haFailbackAfter {
		t.Errorf("gw-a took its table back from a healthy gw-b before failback_after")
	}
	e.mustVia(0, 0)
	e.mustVia(1, 1)
	e.mustBeDenied(1)
	if c := e.ec2.Changes(); len(c) != 2 {
		t.Errorf("%d route changes, want 2: %+v", len(c), c)
	}
	for i, p := range e.procs {
		moves := routeMoves(p, 1)
		if len(moves) != 1 || !strings.Contains(moves[0], `"route_table":"`+haTable[i]+`"`) {
			t.Errorf("gateway %d moved %q, want only its own table %s", i, moves, haTable[i])
		}
	}
	if moves := routeMoves(e.procs[1], 1); len(moves) == 1 && !strings.Contains(moves[0], `"reason":"claim"`) {
		t.Errorf("gw-b's move: %s, want reason claim", moves[0])
	}
}
