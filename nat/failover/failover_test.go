package failover

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
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
	"golang.org/x/sys/unix"

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
	peerHung              // connects, never answers: a hung process
	peerSilent            // no connection at all: a cut link or a dead host
	peerGone              // the port is closed: connection refused
)

type fakePeer struct {
	mode atomic.Int32
	srv  *httptest.Server
	id   Identity
}

// dial connects to the fake peer, or, when it is silent, waits for the
// check's deadline without connecting, as a SYN into a cut link does.
func (p *fakePeer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if peerMode(p.mode.Load()) == peerSilent {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

func (p *fakePeer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch peerMode(p.mode.Load()) {
	case peerHung:
		<-r.Context().Done()
		return
	case peerNotReady:
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(healthAnswer{Ready: false, Identity: p.id, Failing: []string{"resolver: timeout"}})
		return
	}
	// A healthy peer that sees this instance healthy too.
	_ = json.NewEncoder(w).Encode(healthAnswer{Ready: true, Identity: p.id, Role: RoleActive, PeerHealthy: true})
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
	stop    func() // ends Run and waits for it
	peerURL string
}

// newFixture sets up the EC2 endpoint with both home tables pointing at
// their instances (IPv4 and IPv6 default routes), and a healthy peer.
// edit may change the options and the EC2 state before the controller
// starts.
func newFixture(t *testing.T, edit func(*fixture, *Options)) *fixture {
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
		CheckInterval:  50 * time.Millisecond,
		FailAfter:      3,
		FailbackAfter:  300 * time.Millisecond,
		StatusEvery:    100 * time.Millisecond,
		ReconcileEvery: time.Hour,
		RetryAfter:     100 * time.Millisecond,
		Client:         &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DialContext: f.peer.dial}},
	}
	if edit != nil {
		edit(f, &opts)
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
	var once sync.Once
	f.stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(func() {
		f.stop()
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

// waitTarget waits up to 6 s for a table's default route to point at want.
func (f *fixture) waitTarget(table, cidr, want string) {
	f.t.Helper()
	deadline := time.Now().Add(6 * time.Second)
	for f.target(table, cidr) != want {
		if time.Now().After(deadline) {
			f.t.Fatalf("%s %s points at %s, want %s", table, cidr, f.target(table, cidr), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitRole waits up to 6 s for the controller's role.
func (f *fixture) waitRole(want string) {
	f.t.Helper()
	deadline := time.Now().Add(6 * time.Second)
	for f.ctrl.Role() != want {
		if time.Now().After(deadline) {
			f.t.Fatalf("role %s, want %s", f.ctrl.Role(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitLog waits up to 6 s for a log line containing s.
func (f *fixture) waitLog(s string) {
	f.t.Helper()
	deadline := time.Now().Add(6 * time.Second)
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
	for name, mode := range map[string]peerMode{"refused": peerGone, "not ready": peerNotReady, "no answer": peerHung} {
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
	f := newFixture(t, func(f *fixture, _ *Options) {
		f.ec2.AddRouteTable(peerTable, map[string]string{"egressd-home": "peer"},
			ec2api.Route{DestinationCIDR: "0.0.0.0/0", NetworkInterfaceID: other.NetworkInterfaceID},
			ec2api.Route{DestinationCIDR: "::/0", NetworkInterfaceID: peer.NetworkInterfaceID})
	})
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
	f := newFixture(t, func(f *fixture, o *Options) {
		o.Peer = Identity{} // learned from its answers instead
		o.FailbackAfter = time.Second
		f.ec2.AddRouteTable(homeTable, nil,
			ec2api.Route{DestinationCIDR: "0.0.0.0/0", NetworkInterfaceID: "eni-0000000000000gone", State: "blackhole"},
			ec2api.Route{DestinationCIDR: "::/0", NetworkInterfaceID: peer.NetworkInterfaceID})
	})
	f.waitTarget(homeTable, "0.0.0.0/0", self.NetworkInterfaceID)
	claimed := time.Since(start)
	f.waitTarget(homeTable, "::/0", self.NetworkInterfaceID)
	back := time.Since(start)
	if claimed > 500*time.Millisecond {
		t.Errorf("the blackhole route was claimed after %v, not at once", claimed)
	}
	if back < time.Second {
		t.Errorf("the home route held by a healthy peer came back after %v, before FailbackAfter (1s)", back)
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
	f.waitLog(`"message":"ha: peer healthy"`) // a step has run
	if code, a := get(); code != http.StatusOK || !a.Ready || a.Identity != self || !a.PeerHealthy {
		t.Errorf("ready: HTTP %d %+v", code, a)
	}
	f.setReady(errors.New("nftables: table inet egressd is missing"))
	f.waitLog("this instance is not ready")
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

// A peer never seen healthy may be starting: its refusals count only after
// FailbackAfter.
func TestUnseenPeerGetsAGrace(t *testing.T) {
	t.Parallel()
	start := time.Now()
	f := newFixture(t, func(f *fixture, o *Options) {
		o.FailbackAfter = 600 * time.Millisecond
		f.setPeer(peerGone)
	})
	f.waitTarget(peerTable, "0.0.0.0/0", self.NetworkInterfaceID)
	if d := time.Since(start); d < 600*time.Millisecond {
		t.Errorf("a peer never seen healthy was taken over after %v, within its grace (600ms)", d)
	}
}

// The instance behind the peer's interface is asked about, not the one
// learned earlier: the peer may have been replaced.
func TestSilentPeerAskedAboutCurrentInstance(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(f *fixture, o *Options) {
		o.Peer = Identity{NetworkInterfaceID: peer.NetworkInterfaceID}
		f.peer.id = Identity{InstanceID: "i-00000000000000old", NetworkInterfaceID: peer.NetworkInterfaceID}
	})
	f.waitLog(`"peer_instance":"i-00000000000000old"`)
	f.setPeer(peerSilent)
	f.waitLog("EC2 reports it running and healthy: not taking over")
	f.waitLog(`"peer_instance":"` + peer.InstanceID + `"`)
	f.holdNoChanges(300 * time.Millisecond)
}

// A table tagged as home by both instances has no owner: left alone.
func TestTableInBothSetsLeftAlone(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(f *fixture, o *Options) {
		o.HomeTables = []TableRef{{TagKey: "egressd-home", TagValue: "self"}}
		o.PeerTables = []TableRef{{TagKey: "egressd-pair", TagValue: "x"}, {ID: peerTable}}
		f.ec2.AddRouteTable(homeTable, map[string]string{"egressd-home": "self", "egressd-pair": "x"},
			ec2api.Route{DestinationCIDR: "0.0.0.0/0", NetworkInterfaceID: peer.NetworkInterfaceID})
	})
	f.waitLog("is in both ha.route_tables and ha.peer_route_tables")
	f.setPeer(peerGone)
	f.waitTarget(peerTable, "0.0.0.0/0", self.NetworkInterfaceID)
	if got := f.target(homeTable, "0.0.0.0/0"); got != peer.NetworkInterfaceID {
		t.Errorf("the table in both sets was moved to %s", got)
	}
}

// pairMember is one controller of a two-controller test, with its health
// endpoint served on loopback.
type pairMember struct {
	ctrl   *Controller
	health *httptest.Server
	logs   *syncBuffer
}

// startPair runs two controllers against one EC2 endpoint. peerURL(i)
// says where member i checks its peer (given both health URLs).
func startPair(t *testing.T, api *ec2api.Server, peerURL func(i int, health [2]string) string) [2]*pairMember {
	t.Helper()
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	ids := [2]Identity{self, peer}
	tables := [2]string{homeTable, peerTable}
	var m [2]*pairMember
	var urls [2]string
	handlers := [2]http.Handler{}
	for i := range 2 {
		i := i
		m[i] = &pairMember{logs: &syncBuffer{}}
		m[i].health = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handlers[i].ServeHTTP(w, r) }))
		t.Cleanup(m[i].health.Close)
		urls[i] = m[i].health.URL + HealthPath
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if t.Failed() {
			for i := range 2 {
				t.Logf("member %d log:\n%s", i, m[i].logs.String())
			}
		}
	})
	for i := range 2 {
		ctrl, err := New(Options{
			Log: zerolog.New(m[i].logs),
			EC2: ec2.New(ec2.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
				Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""), RetryMaxAttempts: 1, HTTPClient: srv.Client()}),
			Ready:          func(context.Context) error { return nil },
			Self:           ids[i],
			Peer:           ids[1-i],
			PeerURL:        peerURL(i, urls),
			HomeTables:     []TableRef{{ID: tables[i]}},
			PeerTables:     []TableRef{{ID: tables[1-i]}},
			CheckInterval:  50 * time.Millisecond,
			FailAfter:      3,
			FailbackAfter:  200 * time.Millisecond,
			ReconcileEvery: 100 * time.Millisecond,
			RetryAfter:     50 * time.Millisecond,
			ContestedAfter: 300 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		m[i].ctrl = ctrl
		handlers[i] = ctrl.HealthHandler()
	}
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = m[i].ctrl.Run(ctx)
		}()
	}
	return m
}

func newPairAPI() *ec2api.Server {
	api := ec2api.New(ec2api.Options{AccessKeyID: "AKIDTEST"})
	api.AddInstance(self.InstanceID, self.NetworkInterfaceID)
	api.AddInstance(peer.InstanceID, peer.NetworkInterfaceID)
	api.AddRouteTable(homeTable, nil, ec2api.Route{DestinationCIDR: "0.0.0.0/0", NetworkInterfaceID: self.NetworkInterfaceID})
	api.AddRouteTable(peerTable, nil, ec2api.Route{DestinationCIDR: "0.0.0.0/0", NetworkInterfaceID: peer.NetworkInterfaceID})
	return api
}

// closedURL is a loopback URL whose port is bound but not listening, so
// connecting is refused, and no server of the test can get it.
func closedURL(t *testing.T) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d%s", sa.(*unix.SockaddrInet4).Port, HealthPath)
}

// When one member's checks of the other are refused while the other is
// healthy and sees its peer fine, the first takes over once and the other
// does not take its table back (its peer does not agree it is healthy):
// no flapping, however often they reconcile.
func TestPairDisagreementDoesNotFlap(t *testing.T) {
	t.Parallel()
	api := newPairAPI()
	refused := closedURL(t)
	startPair(t, api, func(i int, health [2]string) string {
		if i == 1 {
			return refused // member 1 cannot check member 0
		}
		return health[1]
	})
	deadline := time.Now().Add(6 * time.Second)
	for r, _ := api.Route(homeTable, "0.0.0.0/0"); r.NetworkInterfaceID != peer.NetworkInterfaceID; r, _ = api.Route(homeTable, "0.0.0.0/0") {
		if time.Now().After(deadline) {
			t.Fatalf("member 1 never took over member 0's table: %+v", api.Changes())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Second) // ten reconciles each
	if c := api.Changes(); len(c) != 1 {
		t.Errorf("%d route changes, want the one takeover: %+v", len(c), c)
	}
}

// When both members' checks are refused (each believes the other dead),
// they take each other's tables for a while (ContestedAfter), but stop
// once they see the other take a route back: the changes stop.
func TestPairMutualRefusalSettles(t *testing.T) {
	t.Parallel()
	api := newPairAPI()
	urls := [2]string{closedURL(t), closedURL(t)}
	startPair(t, api, func(i int, _ [2]string) string { return urls[i] })
	time.Sleep(2 * time.Second)
	settled := len(api.Changes())
	time.Sleep(time.Second)
	if n := len(api.Changes()); n != settled {
		t.Errorf("route changes went from %d to %d in a second: the pair keeps fighting: %+v", settled, n, api.Changes())
	}
}

// HandOver returns once the peer has the routes, and at once when the peer
// is not healthy or nothing points here.
func TestHandOver(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.waitLog(`"message":"ha: peer healthy"`)
	f.waitRole(RoleActive)
	f.stop() // as on a stop: Run has ended
	go func() {
		time.Sleep(300 * time.Millisecond)
		f.ec2.AddRouteTable(homeTable, nil,
			ec2api.Route{DestinationCIDR: "0.0.0.0/0", NetworkInterfaceID: peer.NetworkInterfaceID},
			ec2api.Route{DestinationCIDR: "::/0", NetworkInterfaceID: peer.NetworkInterfaceID})
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if !f.ctrl.HandOver(ctx) {
		t.Fatal("HandOver returned false although the peer took the routes")
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("HandOver returned after %v, before the peer took the routes", d)
	}
	start = time.Now()
	if f.ctrl.HandOver(ctx) || time.Since(start) > time.Second {
		t.Error("HandOver with nothing pointing here did not return false at once")
	}

	g := newFixture(t, nil)
	g.waitLog(`"message":"ha: peer healthy"`)
	g.setPeer(peerGone)
	deadline := time.Now().Add(6 * time.Second)
	for testutil.ToFloat64(g.ctrl.metrics.peerHealthy) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the peer never looked unhealthy")
		}
		time.Sleep(5 * time.Millisecond)
	}
	g.stop()
	start = time.Now()
	if g.ctrl.HandOver(ctx) || time.Since(start) > 100*time.Millisecond {
		t.Error("HandOver waited for a peer that is not healthy")
	}
}
