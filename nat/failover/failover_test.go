package failover

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/egressd/egressd/integration/lab/ec2api"
)

// The tests run a real controller against the lab's EC2-compatible
// endpoint (through the real SDK) and a fake peer, all on loopback, with
// intervals short enough to run in a second or two.

var (
	self  = Identity{InstanceID: "i-0000000000000self", NetworkInterfaceID: "eni-0000000000000self"}
	peer  = Identity{InstanceID: "i-0000000000000peer", NetworkInterfaceID: "eni-0000000000000peer"}
	other = Identity{InstanceID: "i-000000000000other", NetworkInterfaceID: "eni-000000000000other"}
)

const (
	homeTable = "rtb-00000000000home"
	peerTable = "rtb-00000000000peer"
)

// peerMode is how the fake peer answers.
type peerMode int32

const (
	peerOK       peerMode = iota
	peerNotReady          // 503, as egressd answers when it cannot serve
	peerSilent            // never answers: a cut link or a hung host
	peerGone              // the port is closed: connection refused
)

type fakePeer struct {
	mode atomic.Int32
	srv  *httptest.Server
	id   Identity
}

func (p *fakePeer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch peerMode(p.mode.Load()) {
	case peerSilent:
		<-r.Context().Done()
		return
	case peerNotReady:
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(healthAnswer{Ready: false, Identity: p.id, Failing: []string{"resolver: timeout"}})
		return
	}
	_ = json.NewEncoder(w).Encode(healthAnswer{Ready: true, Identity: p.id, Role: RoleActive})
}

// syncBuffer is a log sink safe for the controller and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fixture struct {
	t       *testing.T
	ec2     *ec2api.Server
	peer    *fakePeer
	ready   atomic.Pointer[error]
	logs    *syncBuffer
	reg     *prometheus.Registry
	ctrl    *Controller
	peerURL string
}

// newFixture sets up the EC2 endpoint with both home tables pointing at
// their instances (IPv4 and IPv6 default routes), and a healthy peer.
// edit may change the options before the controller starts.
func newFixture(t *testing.T, edit func(*Options)) *fixture {
	t.Helper()
	f := &fixture{t: t, logs: &syncBuffer{}, reg: prometheus.NewRegistry(), peer: &fakePeer{id: peer}}
	f.ec2 = ec2api.New(ec2api.Options{AccessKeyID: "AKIDTEST"})
	for _, id := range []Identity{self, peer, other} {
		f.ec2.AddInstance(id.InstanceID, id.NetworkInterfaceID)
	}
	f.ec2.AddRouteTable(homeTable, map[string]string{"egressd-home": "self"},
		ec2api.Route{DestinationCIDR: "0.0.0.0/0", NetworkInterfaceID: self.NetworkInterfaceID},
		ec2api.Route{DestinationCIDR: "::/0", NetworkInterfaceID: self.NetworkInterfaceID},
		ec2api.Route{DestinationCIDR: "10.9.0.0/16", NetworkInterfaceID: other.NetworkInterfaceID})
	f.ec2.AddRouteTable(peerTable, map[string]string{"egressd-home": "peer"},
		ec2api.Route{DestinationCIDR: "0.0.0.0/0", NetworkInterfaceID: peer.NetworkInterfaceID},
		ec2api.Route{DestinationCIDR: "::/0", NetworkInterfaceID: peer.NetworkInterfaceID})
	api := httptest.NewServer(f.ec2)
	t.Cleanup(api.Close)
	f.peer.srv = httptest.NewServer(f.peer)
	t.Cleanup(f.peer.srv.Close)
	f.peerURL = f.peer.srv.URL + HealthPath
	var ok error
	f.ready.Store(&ok)

	opts := Options{
		Log:     zerolog.New(f.logs),
		Metrics: f.reg,
		EC2: ec2.New(ec2.Options{
			Region:           "us-east-1",
			BaseEndpoint:     aws.String(api.URL),
			Credentials:      credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
			RetryMaxAttempts: 1,
			HTTPClient:       api.Client(),
		}),
		Ready:          func(context.Context) error { return *f.ready.Load() },
		Self:           self,
		Peer:           peer,
		PeerURL:        f.peerURL,
		HomeTables:     []TableRef{{ID: homeTable}},
		PeerTables:     []TableRef{{TagKey: "egressd-home", TagValue: "peer"}},
		CheckInterval:  20 * time.Millisecond,
		FailAfter:      3,
		FailbackAfter:  300 * time.Millisecond,
		StatusEvery:    100 * time.Millisecond,
		ReconcileEvery: time.Hour,
		RetryAfter:     100 * time.Millisecond,
	}
	if edit != nil {
		edit(&opts)
	}
	ctrl, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	f.ctrl = ctrl
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = ctrl.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("controller log:\n%s", f.logs.String())
		}
	})
	return f
}

func (f *fixture) setPeer(m peerMode) {
	f.peer.mode.Store(int32(m))
	if m == peerGone {
		f.peer.srv.Close()
	}
}

func (f *fixture) setReady(err error) { f.ready.Store(&err) }

// target returns where a table's default route points.
func (f *fixture) target(table, cidr string) string {
	r, ok := f.ec2.Route(table, cidr)
	if !ok {
		f.t.Fatalf("no %s route in %s", cidr, table)
	}
	if r.State == "blackhole" {
		return "blackhole"
	}
	return r.NetworkInterfaceID
}

// waitTarget waits up to 3 s for a table's default route to point at want.
func (f *fixture) waitTarget(table, cidr, want string) {
	f.t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for f.target(table, cidr) != want {
		if time.Now().After(deadline) {
			f.t.Fatalf("%s %s points at %s, want %s", table, cidr, f.target(table, cidr), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitRole waits up to 3 s for the controller's role.
func (f *fixture) waitRole(want string) {
	f.t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for f.ctrl.Role() != want {
		if time.Now().After(deadline) {
			f.t.Fatalf("role %s, want %s", f.ctrl.Role(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitLog waits up to 3 s for a log line containing s.
func (f *fixture) waitLog(s string) {
	f.t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !strings.Contains(f.logs.String(), s) {
		if time.Now().After(deadline) {
			f.t.Fatalf("no log line with %q", s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// hold checks that no route changes for d.
func (f *fixture) holdNoChanges(d time.Duration) {
	f.t.Helper()
	time.Sleep(d)
	if c := f.ec2.Changes(); len(c) > 0 {
		f.t.Fatalf("route changes: %+v", c)
	}
}

func TestTakeoverWithProof(t *testing.T) {
	for name, mode := range map[string]peerMode{"refused": peerGone, "not ready": peerNotReady} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, nil)
			f.waitLog(`"message":"ha: peer healthy"`)
			f.setPeer(mode)
			f.waitTarget(peerTable, "0.0.0.0/0", self.NetworkInterfaceID)
			f.waitTarget(peerTable, "::/0", self.NetworkInterfaceID)
			// EC2 has the change before the controller has its answer.
			f.waitRole(RoleTakeover)
			if got := f.target(homeTable, "0.0.0.0/0"); got != self.NetworkInterfaceID {
				t.Errorf("home route points at %s", got)
			}
			if n := testutil.ToFloat64(f.ctrl.metrics.routeChanges.WithLabelValues(peerTable, ReasonTakeover)); n != 2 {
				t.Errorf("egressd_ha_route_changes_total{route_table=%q,reason=takeover} = %v, want 2", peerTable, n)
			}
			if n := testutil.ToFloat64(f.ctrl.metrics.peerHealthy); n != 0 {
				t.Errorf("egressd_ha_peer_healthy = %v, want 0", n)
			}
			if f.ctrl.Role() != RoleTakeover || testutil.ToFloat64(f.ctrl.metrics.role.WithLabelValues(RoleTakeover)) != 1 {
				t.Errorf("role %s, want takeover", f.ctrl.Role())
			}
			if n := f.ec2.Calls("DescribeInstanceStatus"); n != 0 {
				t.Errorf("%d DescribeInstanceStatus calls: proof needs no second signal", n)
			}
			f.waitLog(`"route_table":"` + peerTable + `","destination":"0.0.0.0/0","from":"` + peer.NetworkInterfaceID)
		})
	}
}

// A silent peer is taken over only once EC2 says its instance is down.
func TestSilentPeerNeedsEC2(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakIt func(*ec2api.Server)
	}{
		{"stopped", func(s *ec2api.Server) { s.SetInstanceState(peer.InstanceID, "stopped") }},
		{"impaired", func(s *ec2api.Server) { s.SetInstanceStatus(peer.InstanceID, "impaired") }},
		{"terminated", func(s *ec2api.Server) { s.SetInstanceState(peer.InstanceID, "terminated") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, nil)
			f.waitLog(`"message":"ha: peer healthy"`)
			f.setPeer(peerSilent)
			f.waitLog("EC2 reports it running and healthy: not taking over")
			f.holdNoChanges(500 * time.Millisecond)
			// 500 ms at one status call per 100 ms at most.
			if n := f.ec2.Calls("DescribeInstanceStatus"); n < 2 || n > 8 {
				t.Errorf("%d DescribeInstanceStatus calls in about 0.6 s, want one per StatusEvery (100 ms)", n)
			}
			tc.breakIt(f.ec2)
			f.waitTarget(peerTable, "0.0.0.0/0", self.NetworkInterfaceID)
			f.waitLog("EC2 confirms it is down")
		})
	}
}

func TestNoTakeoverWhileNotReady(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.setReady(errors.New("resolver: timeout"))
	f.waitLog("this instance is not ready")
	f.setPeer(peerGone)
	f.waitLog("ha: peer failed")
	f.holdNoChanges(200 * time.Millisecond)
	f.setReady(nil)
	f.waitTarget(peerTable, "0.0.0.0/0", self.NetworkInterfaceID)
}

// Routes that point at neither instance of the pair belong to someone else.
func TestForeignTargetLeftAlone(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.ec2.AddRouteTable(peerTable, map[string]string{"egressd-home": "peer"},
		ec2api.Route{DestinationCIDR: "0.0.0.0/0", NetworkInterfaceID: other.NetworkInterfaceID},
		ec2api.Route{DestinationCIDR: "::/0", NetworkInterfaceID: peer.NetworkInterfaceID})
	f.waitLog(`"message":"ha: peer healthy"`)
	f.setPeer(peerGone)
	f.waitTarget(peerTable, "::/0", self.NetworkInterfaceID)
	if got := f.target(peerTable, "0.0.0.0/0"); got != other.NetworkInterfaceID {
		t.Errorf("a route to a third instance was moved to %s", got)
	}
	f.waitLog("ha: route points at neither this instance nor its peer: leaving it alone")
}

// At start a home route pointing at nothing is claimed at once; one
// pointing at the (healthy) peer only after FailbackAfter.
func TestClaimAndFailback(t *testing.T) {
	t.Parallel()
	start := time.Now()
	f := newFixture(t, func(o *Options) {
		// Discover the peer from its answers instead.
		o.Peer = Identity{}
	})
	f.ec2.AddRouteTable(homeTable, nil,
		ec2api.Route{DestinationCIDR: "0.0.0.0/0", NetworkInterfaceID: "eni-0000000000000gone", State: "blackhole"},
		ec2api.Route{DestinationCIDR: "::/0", NetworkInterfaceID: peer.NetworkInterfaceID})
	f.waitTarget(homeTable, "0.0.0.0/0", self.NetworkInterfaceID)
	claimed := time.Since(start)
	f.waitTarget(homeTable, "::/0", self.NetworkInterfaceID)
	back := time.Since(start)
	if back < 300*time.Millisecond {
		t.Errorf("the home route held by a healthy peer came back after %v, before FailbackAfter (300ms)", back)
	}
	if claimed >= back {
		t.Errorf("the blackhole route was claimed after %v, not before the fail-back (%v)", claimed, back)
	}
	f.waitLog(`"reason":"claim"`)
	f.waitLog(`"reason":"failback"`)
	if n := len(f.ec2.Changes()); n != 2 {
		t.Errorf("%d changes, want 2: %+v", n, f.ec2.Changes())
	}
	if got := f.target(peerTable, "0.0.0.0/0"); got != peer.NetworkInterfaceID {
		t.Errorf("the healthy peer's table was moved to %s", got)
	}
	f.waitLog(`"message":"ha: learned the peer's identity"`)
}

func TestEC2ErrorsAreRetried(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.waitLog(`"message":"ha: peer healthy"`)
	f.ec2.FailNext("ReplaceRoute", "UnauthorizedOperation", 1)
	f.setPeer(peerGone)
	f.waitLog("ha: EC2 call failed; will retry")
	f.waitTarget(peerTable, "0.0.0.0/0", self.NetworkInterfaceID)
	f.waitTarget(peerTable, "::/0", self.NetworkInterfaceID)
}

func TestHealthHandler(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	get := func() (int, healthAnswer) {
		t.Helper()
		rec := httptest.NewRecorder()
		f.ctrl.HealthHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, HealthPath, nil))
		var a healthAnswer
		if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
			t.Fatalf("health answer %q: %v", rec.Body.String(), err)
		}
		return rec.Code, a
	}
	if code, a := get(); code != http.StatusOK || !a.Ready || a.Identity != self {
		t.Errorf("ready: HTTP %d %+v", code, a)
	}
	f.setReady(errors.New("nftables: table inet egressd is missing"))
	if code, a := get(); code != http.StatusServiceUnavailable || a.Ready || len(a.Failing) != 1 {
		t.Errorf("not ready: HTTP %d %+v", code, a)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	t.Parallel()
	base := Options{EC2: &ec2.Client{}, Ready: func(context.Context) error { return nil }, Self: self,
		PeerURL: "http://10.0.0.2:9902/health", HomeTables: []TableRef{{ID: homeTable}}, PeerTables: []TableRef{{ID: peerTable}},
		CheckInterval: time.Second, FailAfter: 1, FailbackAfter: time.Second}
	if _, err := New(base); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	for name, edit := range map[string]func(*Options){
		"no interface":   func(o *Options) { o.Self.NetworkInterfaceID = "" },
		"peer is self":   func(o *Options) { o.Peer = self },
		"no peer tables": func(o *Options) { o.PeerTables = nil },
		"no EC2":         func(o *Options) { o.EC2 = nil },
	} {
		o := base
		edit(&o)
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
