// Package failover makes two egressd instances a highly available pair on
// AWS. Each instance owns its home route tables (their default routes point
// at its network interface), checks its peer's health endpoint over the
// VPC, and when the peer has failed it points the peer's route tables'
// 0.0.0.0/0 and ::/0 at itself with ec2:ReplaceRoute. When an instance has
// been healthy again for FailbackAfter, and its peer agrees that it is, it
// takes its home tables back.
//
// Split brain is avoided by acting only on evidence. A check that is
// refused (the peer's host is up and nothing listens: the process died),
// connected but never answered (the process hangs), or answered "not
// ready" is proof. Silence (a timeout before connecting, an unreachable
// host) is not: a dead instance and a cut link between two healthy
// instances look the same from here, so before taking over a silent peer
// the controller asks EC2 whether the instance is still running and
// passing its status checks (ec2:DescribeInstanceStatus, at most once per
// StatusEvery). A route is only replaced when it points at the failed peer
// or at nothing, after reading it: never one an operator pointed elsewhere,
// and never again one the peer has taken back (the pair disagrees: it
// stops fighting and says so).
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
	// (table installed, listeners up, resolver answering). No takeover or
	// fail-back happens without it, and the health endpoint reports it.
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
	// FailbackAfter is the good health an instance needs before it takes
	// its home tables back. It is also the grace given to a peer never yet
	// seen healthy (both starting together) before its refusals count.
	FailbackAfter time.Duration
	// StatusEvery bounds ec2:DescribeInstanceStatus calls while the peer is
	// silent (default 5s); ReconcileEvery is how often the routes are read
	// anyway (default 30s), to notice changes made by others.
	StatusEvery    time.Duration
	ReconcileEvery time.Duration
	// APITimeout bounds each EC2 call, retries included (default 10s).
	// After a failed call the next waits RetryAfter (default 2s), doubling
	// up to ReconcileEvery while calls keep failing.
	APITimeout time.Duration
	RetryAfter time.Duration
	// ContestedAfter (default 10s): a route this instance took over that
	// shows the peer again later than this was taken back by the peer (not
	// an EC2 read lagging the change), and is not fought over.
	ContestedAfter time.Duration
	// Client makes the health checks (default: no keep-alives, so that each
	// check tells about the peer's process now, not about an old connection).
	Client *http.Client
}

// Route change reasons, in logs and in egressd_ha_route_changes_total.
const (
	ReasonTakeover = "takeover" // the peer failed; its routes (or ours it held) now point here
	ReasonFailback = "failback" // healthy for FailbackAfter and the peer agrees: home routes point here again
	ReasonClaim    = "claim"    // a home route pointed at nothing
)

// Roles, for egressd_ha_role and the health answer.
const (
	RoleStandby  = "standby"  // no route table points here
	RoleActive   = "active"   // home route tables point here
	RoleTakeover = "takeover" // the peer's route tables point here too
)

// Controller runs the failover of one member of a pair.
type Controller struct {
	opts    Options
	log     zerolog.Logger
	metrics *metrics
	started time.Time

	mu          sync.Mutex // guards the fields below, read by the health handler
	peer        Identity
	role        string
	selfErr     error // the last self-check
	selfChecked bool
	peerHealthy bool // the last check of the peer succeeded

	// Loop state (Run's goroutine only).
	fails         int // peer checks failed in a row
	lastCheck     checkResult
	peerSeen      bool      // the peer has answered healthy at least once
	peerAgrees    bool      // the peer's last answer said it sees this instance healthy
	peerDown      bool      // the peer has failed (with proof or EC2's word)
	statusAt      time.Time // last DescribeInstanceStatus
	statusSaid    string    // the last status verdict logged
	readySince    time.Time // own health good since (zero: not ready)
	lastReconcile time.Time
	lastStep      time.Time // when the last step ended
	retryAt       time.Time // after a failed EC2 call
	retryDelay    time.Duration
	lastAPIError  string
	failbackDone  bool                 // this stretch of good health has reclaimed the home tables
	failbackHeld  bool                 // ...or would have, but the peer did not agree then
	takeoverDone  bool                 // this failure of the peer has been acted on
	moved         map[string]time.Time // routes this instance took while the peer was failed, and when
	warned        map[string]bool      // warnOnce keys
	lastSelfError string
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
	if opts.ContestedAfter <= 0 {
		opts.ContestedAfter = 10 * time.Second
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	}
	c := &Controller{
		opts:   opts,
		log:    opts.Log.With().Str("component", "ha").Logger(),
		peer:   opts.Peer,
		role:   RoleStandby,
		moved:  map[string]time.Time{},
		warned: map[string]bool{},
	}
	c.metrics = newMetrics(opts.Metrics)
	c.metrics.setRole(RoleStandby)
	return c, nil
}

// Run checks the peer every CheckInterval and moves routes until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	c.started = time.Now()
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
	if stalled := now.Sub(c.lastStep); !c.lastStep.IsZero() && stalled > time.Duration(c.opts.FailAfter+1)*c.opts.CheckInterval {
		c.log.Warn().Dur("stalled", stalled).Msg("ha: this instance did not run for a while; the peer may have taken over its route tables: fail-back timer restarted")
		c.readySince, c.failbackDone = time.Time{}, false
	}
	defer func() { c.lastStep = time.Now() }() // the gap is measured between steps, not across slow EC2 calls

	selfReady := c.checkSelf(ctx, now)
	c.checkPeer(ctx, now, selfReady)
	if ctx.Err() != nil || now.Before(c.retryAt) {
		return
	}
	readyLong := selfReady && now.Sub(c.readySince) >= c.opts.FailbackAfter
	due := c.peerDown && selfReady && !c.takeoverDone ||
		readyLong && !c.failbackDone ||
		now.Sub(c.lastReconcile) >= c.opts.ReconcileEvery
	if !due {
		return
	}
	reason := "" // read only
	switch {
	case c.peerDown && selfReady:
		reason = ReasonTakeover
	case readyLong && c.lastCheck == checkOK && c.peerAgrees:
		reason = ReasonFailback
	case selfReady:
		// Home routes pointing at nothing are claimed at once; those the
		// peer holds wait until it agrees this instance is healthy.
		reason = ReasonClaim
	}
	if err := c.reconcile(ctx, now, reason); err != nil {
		c.retryDelay = min(max(2*c.retryDelay, c.opts.RetryAfter), c.opts.ReconcileEvery)
		c.retryAt = now.Add(c.retryDelay)
		if msg := err.Error(); msg != c.lastAPIError {
			c.lastAPIError = msg
			c.log.Error().Err(err).Dur("retry_in", c.retryDelay).Msg("ha: EC2 call failed; will retry (backing off while it fails)")
		}
		return
	}
	if c.lastAPIError != "" {
		c.log.Info().Msg("ha: EC2 calls succeed again")
	}
	c.retryDelay, c.lastAPIError = 0, ""
	if reason == ReasonTakeover {
		c.takeoverDone = true
	}
	if readyLong {
		// Until the peer agrees (checkPeer then clears it) or the next
		// periodic read.
		c.failbackDone = true
		c.failbackHeld = reason != ReasonFailback
	}
}

// checkSelf runs the readiness checks and keeps the verdict for the
// health endpoint.
func (c *Controller) checkSelf(ctx context.Context, now time.Time) bool {
	err := c.opts.Ready(ctx)
	c.mu.Lock()
	c.selfErr, c.selfChecked = err, true
	c.mu.Unlock()
	if err != nil {
		if msg := err.Error(); msg != c.lastSelfError {
			c.lastSelfError = msg
			c.log.Warn().Err(err).Msg("ha: this instance is not ready: it answers its peer \"not ready\", and the peer takes over its route tables if it can")
		}
		c.readySince, c.failbackDone = time.Time{}, false
		return false
	}
	if c.readySince.IsZero() {
		c.readySince, c.lastSelfError = now, ""
		c.log.Info().Dur("failback_after", c.opts.FailbackAfter).Msg("ha: this instance is ready; it takes back home route tables its peer holds once it has stayed ready for failback_after and the peer agrees")
	}
	return true
}

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

// learnPeer fills in what is unknown of the peer's identity. A current
// source (the peer's own answer; the instance EC2 shows behind the peer's
// interface) also replaces what was learned before, as when the peer
// instance was replaced behind the same interface; what the config sets is
// never replaced.
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
		ev := c.log.Info()
		if strings.HasPrefix(from, "route table") {
			ev = ev.Str("hint", "if that is not the peer (an old NAT instance?), set ha.peer_network_interface")
		}
		ev.Str("peer_instance", c.peer.InstanceID).Str("peer_interface", c.peer.NetworkInterfaceID).
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

// warnOnce runs warn the first time key is seen.
func (c *Controller) warnOnce(key string, warn func()) {
	if !c.warned[key] {
		c.warned[key] = true
		warn()
	}
}

func joinNonEmpty(parts ...string) string {
	return strings.Join(slices.DeleteFunc(parts, func(s string) bool { return s == "" }), " ")
}

// HandOver is for a planned stop, after Run has returned and the health
// endpoint is closed (so the peer's checks are refused): it waits until no
// default route points at this instance any more, the peer having taken
// them over, so that the caller can keep serving until then. It returns
// false at once if the peer was not healthy at the last check (nobody
// would take over) or nothing points here, and when ctx ends first.
func (c *Controller) HandOver(ctx context.Context) bool {
	c.mu.Lock()
	healthy := c.peerHealthy
	c.mu.Unlock()
	if !healthy || !c.peerAgrees {
		c.log.Warn().Msg("ha: stopping while the peer is not healthy (or has not seen this instance healthy): nobody takes over this instance's route tables")
		return false
	}
	tick := time.NewTicker(c.opts.CheckInterval)
	defer tick.Stop()
	for first := true; ; first = false {
		routes, err := c.readRoutes(ctx)
		if err == nil && roleOf(routes) == RoleStandby {
			if first {
				return false // nothing points here: nothing to hand over
			}
			c.setRole(RoleStandby)
			c.log.Info().Msg("ha: the peer has taken over this instance's route tables")
			return true
		}
		if first {
			c.log.Info().Msg("ha: stopping: health endpoint closed; serving until the peer has taken over the route tables")
		}
		select {
		case <-ctx.Done():
			c.log.Warn().Err(err).Msg("ha: the peer did not take over in time; stopping anyway")
			return false
		case <-tick.C:
		}
	}
}
