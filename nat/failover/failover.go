// Package failover makes two egressd instances a highly available pair on
// AWS. Each instance owns its home route tables (their default routes point
// at its network interface), checks its peer's health endpoint over the
// VPC, and when the peer has failed it points the peer's route tables'
// 0.0.0.0/0 and ::/0 at itself with ec2:ReplaceRoute. When an instance has
// been healthy again for FailbackAfter it takes its home tables back.
//
// Split brain is avoided by acting only on evidence. A check that is
// answered "connection refused" (the peer's host is up and nothing
// listens: the process died) or "not ready" (the peer says so itself) is
// proof. Silence (a timeout, an unreachable host) is not: a dead instance
// and a cut link between two healthy instances look the same from here, so
// before taking over a silent peer the controller asks EC2 whether the
// instance is still running and passing its status checks
// (ec2:DescribeInstanceStatus, at most once per StatusEvery). A route is
// only replaced when it points at the failed peer or at nothing, after
// reading it: never one that an operator pointed elsewhere.
package failover

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// EC2 is the part of the EC2 API the controller uses; *ec2.Client has it.
type EC2 interface {
	DescribeRouteTables(context.Context, *ec2.DescribeRouteTablesInput, ...func(*ec2.Options)) (*ec2.DescribeRouteTablesOutput, error)
	ReplaceRoute(context.Context, *ec2.ReplaceRouteInput, ...func(*ec2.Options)) (*ec2.ReplaceRouteOutput, error)
	DescribeInstanceStatus(context.Context, *ec2.DescribeInstanceStatusInput, ...func(*ec2.Options)) (*ec2.DescribeInstanceStatusOutput, error)
}

// Identity names an instance and the network interface its routes point at.
type Identity struct {
	InstanceID         string `json:"instance_id,omitempty"`
	NetworkInterfaceID string `json:"network_interface,omitempty"`
}

// TableRef names route tables by ID, or by a tag (every table with
// TagKey=TagValue).
type TableRef struct {
	ID               string
	TagKey, TagValue string
}

func (r TableRef) String() string {
	if r.ID != "" {
		return r.ID
	}
	return "tag:" + r.TagKey + "=" + r.TagValue
}

// Options configure a Controller.
type Options struct {
	Log     zerolog.Logger
	Metrics prometheus.Registerer // nil: no metrics
	EC2     EC2
	// Ready reports this instance's own health: nil when it can serve
	// (table installed, listeners up, resolver answering). The health
	// endpoint answers with it and no takeover happens without it.
	Ready func(context.Context) error

	Self Identity // NetworkInterfaceID is required
	// Peer may be partly or wholly empty: it is then learned from the
	// peer's health answers and from the peer tables' current targets.
	Peer Identity
	// PeerURL is the peer's health endpoint, e.g. "http://10.0.102.10:9902/health".
	PeerURL    string
	HomeTables []TableRef
	PeerTables []TableRef

	CheckInterval time.Duration // between checks of the peer; also each check's timeout
	FailAfter     int           // failed checks in a row before the peer has failed
	FailbackAfter time.Duration // own good health before taking home tables back
	// StatusEvery bounds ec2:DescribeInstanceStatus calls while the peer is
	// silent (default 5s); ReconcileEvery is how often the routes are read
	// anyway (default 30s), to notice changes made by others.
	StatusEvery    time.Duration
	ReconcileEvery time.Duration
	// APITimeout bounds each EC2 call, retries included (default 10s);
	// after a failed call the next waits RetryAfter (default 2s).
	APITimeout time.Duration
	RetryAfter time.Duration
	// Client makes the health checks (default: no keep-alives, so that each
	// check tells about the peer's process now, not about an old connection).
	Client *http.Client
}

// Route change reasons, in logs and in egressd_ha_route_changes_total.
const (
	ReasonTakeover = "takeover" // the peer failed; its routes (or ours it held) now point here
	ReasonFailback = "failback" // healthy for FailbackAfter: home routes point here again
	ReasonClaim    = "claim"    // a home route pointed at nothing
)

// Controller runs the failover of one member of a pair.
type Controller struct {
	opts    Options
	log     zerolog.Logger
	metrics *metrics

	mu   sync.Mutex // guards peer and role, read by the health handler
	peer Identity
	role string

	// Loop state (Run's goroutine only).
	fails          int // peer checks failed in a row
	lastCheck      checkResult
	peerSeen       bool      // the peer has answered healthy at least once
	peerDown       bool      // the peer has failed (with proof or EC2's word)
	silentLogged   bool      // the "silent but running" warning was logged
	statusAt       time.Time // last DescribeInstanceStatus
	statusDead     bool      // its verdict
	readySince     time.Time // own health good since (zero: not ready)
	lastReconcile  time.Time
	lastStep       time.Time       // when the last step ended
	retryAt        time.Time       // after a failed EC2 call
	failbackDone   bool            // this stretch of good health has reclaimed the home tables
	takeoverDone   bool            // this failure of the peer has been acted on
	warned         map[string]bool // warnOnce keys
	lastReadyError string
}

// New checks the options and returns a controller; Run starts it.
func New(opts Options) (*Controller, error) {
	switch {
	case opts.EC2 == nil:
		return nil, errors.New("failover: no EC2 client")
	case opts.Ready == nil:
		return nil, errors.New("failover: no readiness check")
	case opts.Self.NetworkInterfaceID == "":
		return nil, errors.New("failover: this instance's network interface is unknown: set ha.network_interface, or run on EC2 with instance metadata (IMDSv2) reachable")
	case opts.PeerURL == "":
		return nil, errors.New("failover: no peer health URL")
	case len(opts.HomeTables) == 0 || len(opts.PeerTables) == 0:
		return nil, errors.New("failover: home and peer route tables are both required")
	case opts.CheckInterval <= 0 || opts.FailAfter < 1 || opts.FailbackAfter <= 0:
		return nil, errors.New("failover: check interval, fail-after count and fail-back delay must be positive")
	case opts.Peer.NetworkInterfaceID != "" && opts.Peer.NetworkInterfaceID == opts.Self.NetworkInterfaceID:
		return nil, errors.New("failover: the peer's network interface is this instance's")
	}
	if opts.StatusEvery <= 0 {
		opts.StatusEvery = 5 * time.Second
	}
	if opts.ReconcileEvery <= 0 {
		opts.ReconcileEvery = 30 * time.Second
	}
	if opts.APITimeout <= 0 {
		opts.APITimeout = 10 * time.Second
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = 2 * time.Second
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	}
	c := &Controller{
		opts:   opts,
		log:    opts.Log.With().Str("component", "ha").Logger(),
		peer:   opts.Peer,
		role:   RoleStandby,
		warned: map[string]bool{},
	}
	c.metrics = newMetrics(opts.Metrics)
	c.metrics.setRole(RoleStandby)
	return c, nil
}

// Run checks the peer every CheckInterval and moves routes until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	c.log.Info().Str("instance", c.opts.Self.InstanceID).Str("interface", c.opts.Self.NetworkInterfaceID).
		Str("peer", c.opts.PeerURL).Str("home_tables", refsString(c.opts.HomeTables)).
		Str("peer_tables", refsString(c.opts.PeerTables)).Dur("check_interval", c.opts.CheckInterval).
		Int("fail_after", c.opts.FailAfter).Dur("failback_after", c.opts.FailbackAfter).
		Msg("ha: watching the peer")
	tick := time.NewTicker(c.opts.CheckInterval)
	defer tick.Stop()
	for {
		c.step(ctx, time.Now())
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// step is one round: own health, the peer's, then whatever routes that
// calls for.
func (c *Controller) step(ctx context.Context, now time.Time) {
	// A process that did not run for longer than the peer needs to
	// declare it failed (SIGSTOP, a paused VM) may have lost its tables:
	// its good health starts again from now.
	if stalled := now.Sub(c.lastStep); !c.lastStep.IsZero() && stalled > time.Duration(c.opts.FailAfter)*c.opts.CheckInterval+c.opts.CheckInterval {
		c.log.Warn().Dur("stalled", stalled).Msg("ha: this instance did not run for a while; the peer may have taken over its route tables: fail-back timer restarted")
		c.readySince, c.failbackDone = time.Time{}, false
	}
	defer func() { c.lastStep = time.Now() }() // the gap is measured between steps, not across slow EC2 calls
	selfReady := c.checkSelf(ctx, now)
	c.checkPeer(ctx, now)
	if ctx.Err() != nil || now.Before(c.retryAt) {
		return
	}
	var err error
	switch {
	case c.peerDown && selfReady && !c.takeoverDone:
		err = c.reconcile(ctx, now, ReasonTakeover)
		c.takeoverDone = err == nil
	case selfReady && !c.failbackDone && now.Sub(c.readySince) >= c.opts.FailbackAfter:
		err = c.reconcile(ctx, now, ReasonFailback)
		c.failbackDone = err == nil
	case now.Sub(c.lastReconcile) >= c.opts.ReconcileEvery:
		// A periodic read notices what others changed: home routes
		// pointed at nothing, or (after a long stretch of good health)
		// at the peer, are taken back.
		reason := ""
		switch {
		case selfReady && c.peerDown:
			reason = ReasonTakeover
		case selfReady && now.Sub(c.readySince) >= c.opts.FailbackAfter:
			reason = ReasonFailback
		case selfReady:
			reason = ReasonClaim
		}
		err = c.reconcile(ctx, now, reason)
	}
	if err != nil {
		c.retryAt = now.Add(c.opts.RetryAfter)
		c.log.Error().Err(err).Time("retry_at", c.retryAt).Msg("ha: EC2 call failed; will retry")
	}
}

func (c *Controller) checkSelf(ctx context.Context, now time.Time) bool {
	err := c.opts.Ready(ctx)
	if err != nil {
		if c.readySince.IsZero() && c.lastReadyError == err.Error() {
			return false
		}
		c.lastReadyError = err.Error()
		if !c.readySince.IsZero() || c.lastReconcile.IsZero() {
			c.log.Warn().Err(err).Msg("ha: this instance is not ready: the peer will take over its route tables")
		}
		c.readySince = time.Time{}
		c.failbackDone = false
		return false
	}
	if c.readySince.IsZero() {
		c.readySince = now
		c.lastReadyError = ""
		c.log.Info().Dur("failback_after", c.opts.FailbackAfter).Msg("ha: this instance is ready; it takes its home route tables back once it has stayed ready for failback_after")
	}
	return true
}

// Roles, for egressd_ha_role and the health answer.
const (
	RoleStandby  = "standby"  // no route table points here
	RoleActive   = "active"   // home route tables point here
	RoleTakeover = "takeover" // the peer's route tables point here too
)

func refsString(refs []TableRef) string {
	s := make([]string, len(refs))
	for i, r := range refs {
		s[i] = r.String()
	}
	return strings.Join(s, ",")
}

func (c *Controller) peerIdentity() Identity {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peer
}

// learnPeer fills in what is unknown of the peer's identity. The peer's
// own health answer (current) also replaces what was learned before, as
// when the peer instance was replaced behind the same interface; what the
// config sets is never replaced.
func (c *Controller) learnPeer(id Identity, from string, current bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := false
	learn := func(dst *string, configured, v, own string) {
		if configured != "" || v == "" || v == own || v == *dst || *dst != "" && !current {
			return
		}
		*dst, changed = v, true
	}
	learn(&c.peer.InstanceID, c.opts.Peer.InstanceID, id.InstanceID, c.opts.Self.InstanceID)
	learn(&c.peer.NetworkInterfaceID, c.opts.Peer.NetworkInterfaceID, id.NetworkInterfaceID, c.opts.Self.NetworkInterfaceID)
	if changed {
		c.log.Info().Str("peer_instance", c.peer.InstanceID).Str("peer_interface", c.peer.NetworkInterfaceID).
			Str("from", from).Msg("ha: learned the peer's identity")
	}
}

func (c *Controller) setRole(role string) {
	c.mu.Lock()
	old := c.role
	c.role = role
	c.mu.Unlock()
	if old != role {
		c.log.Info().Str("role", role).Str("was", old).Msg("ha: role changed")
		c.metrics.setRole(role)
	}
}

// Role returns the role seen at the last read of the route tables.
func (c *Controller) Role() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.role
}

func joinNonEmpty(parts ...string) string {
	return strings.Join(slices.DeleteFunc(parts, func(s string) bool { return s == "" }), " ")
}
