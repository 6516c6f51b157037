package failover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// checkResult is what one health check of the peer found.
type checkResult string

const (
	checkOK          checkResult = "ok"
	checkRefused     checkResult = "refused"     // proof: the host answers, nothing listens
	checkNoAnswer    checkResult = "no_answer"   // proof: connected, but the process never answered
	checkNotReady    checkResult = "not_ready"   // proof: the peer says it cannot serve
	checkUnreachable checkResult = "unreachable" // no proof: no connection (timeout, no route)
)

// proof says whether a failed check proves the peer cannot serve, as
// opposed to silence, which a cut link between the pair also gives.
func (r checkResult) proof() bool {
	return r == checkRefused || r == checkNoAnswer || r == checkNotReady
}

// healthAnswer is the health endpoint's JSON body.
type healthAnswer struct {
	Ready bool `json:"ready"`
	Identity
	Role string `json:"role,omitempty"`
	// PeerHealthy is the answering instance's view of its own peer (the
	// asker): a fail-back waits until the peer agrees.
	PeerHealthy bool     `json:"peer_healthy"`
	Failing     []string `json:"failing,omitempty"`
}

// probe checks the peer's health endpoint once, within CheckInterval.
func (c *Controller) probe(ctx context.Context) (checkResult, string, *healthAnswer) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.CheckInterval)
	defer cancel()
	var connected atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		ConnectDone: func(_, _ string, err error) { connected.Store(err == nil) },
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.opts.PeerURL, nil)
	if err != nil {
		return checkUnreachable, err.Error(), nil
	}
	resp, err := c.opts.Client.Do(req)
	if err != nil {
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			return checkRefused, "connection refused", nil
		case connected.Load():
			// The link and the peer's kernel work; its egressd does not.
			return checkNoAnswer, "connected, but no answer within check_interval: " + err.Error(), nil
		}
		return checkUnreachable, err.Error(), nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return checkNoAnswer, "reading the answer: " + err.Error(), nil
	}
	var a healthAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return checkUnreachable, fmt.Sprintf("HTTP %d with an answer that is not egressd's (%v): is ha.peer the peer's ha.listen?", resp.StatusCode, err), nil
	}
	if self := c.opts.Self; a.NetworkInterfaceID != "" && a.NetworkInterfaceID == self.NetworkInterfaceID ||
		a.InstanceID != "" && a.InstanceID == self.InstanceID {
		return checkUnreachable, "the answer comes from this instance: ha.peer must be the other instance's ha.listen", nil
	}
	if want := c.opts.Peer.NetworkInterfaceID; want != "" && a.NetworkInterfaceID != want {
		return checkUnreachable, fmt.Sprintf("the answer comes from %q, not the peer's interface %s (ha.peer_network_interface): is ha.peer the peer's address?", a.NetworkInterfaceID, want), nil
	}
	if resp.StatusCode != http.StatusOK || !a.Ready {
		return checkNotReady, fmt.Sprintf("peer reports not ready: %v", a.Failing), &a
	}
	return checkOK, "", &a
}

// checkPeer checks the peer and updates whether it has failed.
func (c *Controller) checkPeer(ctx context.Context, now time.Time, selfReady bool) {
	res, detail, answer := c.probe(ctx)
	if ctx.Err() != nil {
		return
	}
	c.metrics.checks.WithLabelValues(string(res)).Inc()
	if answer != nil {
		c.learnPeer(answer.Identity, "its health answer", true)
	}
	c.lastCheck = res
	c.mu.Lock()
	c.peerHealthy = res == checkOK
	c.mu.Unlock()
	if res == checkOK {
		c.peerOK(answer)
		return
	}
	c.fails++
	c.metrics.peerHealthy.Set(0)
	if c.fails == 1 {
		c.log.Warn().Str("check", string(res)).Str("detail", detail).Msg("ha: peer check failed")
	}
	if c.fails < c.opts.FailAfter {
		return
	}
	wasDown := c.peerDown
	// A peer never seen healthy may just be starting (both instances
	// booting together): its refusals count once FailbackAfter has passed.
	proof := res.proof() && (c.peerSeen || now.Sub(c.started) >= c.opts.FailbackAfter)
	if proof {
		c.peerDown = true
	} else if !c.peerDown && (c.statusAt.IsZero() || now.Sub(c.statusAt) >= c.opts.StatusEvery) {
		// Silence: ask EC2 (rarely) whether the peer instance is still up.
		// A peer once failed stays failed until it answers.
		c.statusAt = now
		c.peerDown = c.askEC2(ctx, detail)
	}
	if c.peerDown && !wasDown {
		// A takeover is due now, whatever backoff earlier failures set.
		c.retryAt, c.retryDelay = time.Time{}, 0
		ev := c.log.Warn().Str("check", string(res)).Str("detail", detail).Int("failed_checks", c.fails)
		if selfReady {
			ev.Msg("ha: peer failed: taking over its route tables")
		} else {
			ev.Msg("ha: peer failed, but this instance is not ready either: not taking over")
		}
	}
}

// peerOK records a healthy answer.
func (c *Controller) peerOK(answer *healthAnswer) {
	recovered := c.fails >= c.opts.FailAfter || c.peerDown
	switch {
	case !c.peerSeen || recovered:
		c.log.Info().Str("peer", c.opts.PeerURL).Str("peer_role", answer.Role).Msg("ha: peer healthy")
	case c.fails > 0:
		c.log.Info().Int("failed_checks", c.fails).Msg("ha: peer healthy again before failing")
	}
	if recovered || answer.PeerHealthy && (!c.peerAgrees || c.failbackHeld) {
		c.failbackDone, c.failbackHeld = false, false // look at the home tables again now
	}
	c.peerSeen, c.peerAgrees = true, answer.PeerHealthy
	c.fails = 0
	c.peerDown, c.takeoverDone = false, false
	c.statusAt, c.statusSaid = time.Time{}, ""
	clear(c.moved)
	for k := range c.warned {
		if strings.HasPrefix(k, "contested:") {
			delete(c.warned, k) // a new disagreement is worth a new line
		}
	}
	c.metrics.peerHealthy.Set(1)
}

// askEC2 is the second signal about a silent peer: whether EC2 says its
// instance is down. An error or an unknown instance counts as up.
func (c *Controller) askEC2(ctx context.Context, detail string) bool {
	// The instance behind the peer's interface now: it may have been
	// replaced since its identity was learned.
	if c.peerIdentity().NetworkInterfaceID != "" && c.opts.Peer.InstanceID == "" {
		if _, err := c.readRoutes(ctx); err != nil {
			c.log.Debug().Err(err).Msg("ha: refreshing the peer's identity failed")
		}
	}
	dead, why, err := c.peerInstanceDown(ctx)
	say := func(verdict string, log func()) {
		if c.statusSaid != verdict {
			c.statusSaid = verdict
			log()
		}
	}
	switch {
	case err != nil:
		say("error: "+err.Error(), func() {
			c.log.Error().Err(err).Msg("ha: peer is silent and EC2 could not say whether it runs: not taking over")
		})
		return false
	case dead:
		say("down", func() {
			c.log.Warn().Str("ec2_status", why).Msg("ha: peer is silent and EC2 confirms it is down")
		})
		return true
	}
	say("running", func() {
		c.log.Warn().Str("detail", detail).Str("ec2_status", why).
			Msg("ha: peer is silent but EC2 reports it running and healthy: not taking over (is the link between the pair cut? check the security group rule for ha.listen)")
	})
	return false
}

// peerInstanceDown asks EC2 whether the peer instance is stopped, gone or
// failing its status checks.
func (c *Controller) peerInstanceDown(ctx context.Context) (down bool, why string, err error) {
	peer := c.peerIdentity()
	if peer.InstanceID == "" {
		return false, "", errors.New("the peer's instance ID is unknown (set ha.peer_instance_id)")
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.APITimeout)
	defer cancel()
	out, err := c.opts.EC2.DescribeInstanceStatus(ctx, &ec2.DescribeInstanceStatusInput{
		InstanceIds:         []string{peer.InstanceID},
		IncludeAllInstances: aws.Bool(true),
	})
	c.metrics.apiCall("DescribeInstanceStatus", err)
	if err != nil {
		var apiErr interface{ ErrorCode() string }
		if errors.As(err, &apiErr) && apiErr.ErrorCode() == "InvalidInstanceID.NotFound" {
			return true, "instance " + peer.InstanceID + " not found", nil
		}
		return false, "", fmt.Errorf("ec2:DescribeInstanceStatus %s: %w", peer.InstanceID, err)
	}
	for _, s := range out.InstanceStatuses {
		if aws.ToString(s.InstanceId) != peer.InstanceID {
			continue
		}
		state := types.InstanceStateName("")
		if s.InstanceState != nil {
			state = s.InstanceState.Name
		}
		why = fmt.Sprintf("instance %s: state %s", peer.InstanceID, state)
		if s.InstanceStatus != nil {
			why += fmt.Sprintf(", instance status %s", s.InstanceStatus.Status)
		}
		if s.SystemStatus != nil {
			why += fmt.Sprintf(", system status %s", s.SystemStatus.Status)
		}
		impaired := s.InstanceStatus != nil && s.InstanceStatus.Status == types.SummaryStatusImpaired ||
			s.SystemStatus != nil && s.SystemStatus.Status == types.SummaryStatusImpaired
		return state != types.InstanceStateNameRunning || impaired, why, nil
	}
	return true, "instance " + peer.InstanceID + " not listed", nil
}
