package failover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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
	checkNotReady    checkResult = "not_ready"   // proof: the peer says it cannot serve
	checkUnreachable checkResult = "unreachable" // no proof: timeout, no route, broken answer
)

// proof says whether a failed check proves the peer cannot serve, as
// opposed to silence, which a cut link between the pair also gives.
func (r checkResult) proof() bool { return r == checkRefused || r == checkNotReady }

// healthAnswer is the health endpoint's JSON body.
type healthAnswer struct {
	Ready bool `json:"ready"`
	Identity
	Role    string   `json:"role,omitempty"`
	Failing []string `json:"failing,omitempty"`
}

// probe checks the peer's health endpoint once, within CheckInterval.
func (c *Controller) probe(ctx context.Context) (checkResult, string, *healthAnswer) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.CheckInterval)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.opts.PeerURL, nil)
	if err != nil {
		return checkUnreachable, err.Error(), nil
	}
	resp, err := c.opts.Client.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return checkRefused, "connection refused", nil
		}
		return checkUnreachable, err.Error(), nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return checkUnreachable, "reading the answer: " + err.Error(), nil
	}
	var a healthAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return checkUnreachable, fmt.Sprintf("HTTP %d with an answer that is not egressd's (%v): is ha.peer the peer's ha.listen?", resp.StatusCode, err), nil
	}
	if resp.StatusCode != http.StatusOK || !a.Ready {
		return checkNotReady, fmt.Sprintf("peer reports not ready: %v", a.Failing), &a
	}
	return checkOK, "", &a
}

// checkPeer checks the peer and updates whether it has failed.
func (c *Controller) checkPeer(ctx context.Context, now time.Time) {
	res, detail, answer := c.probe(ctx)
	if ctx.Err() != nil {
		return
	}
	c.metrics.checks.WithLabelValues(string(res)).Inc()
	if answer != nil {
		c.learnPeer(answer.Identity, "its health answer", true)
	}
	c.lastCheck = res
	if res == checkOK {
		if c.fails >= c.opts.FailAfter || !c.peerSeen {
			c.peerSeen = true
			c.log.Info().Str("peer", c.opts.PeerURL).Str("peer_role", answer.Role).Msg("ha: peer healthy")
		} else if c.fails > 0 {
			c.log.Info().Int("failed_checks", c.fails).Msg("ha: peer healthy again before failing")
		}
		c.fails = 0
		c.peerDown, c.takeoverDone, c.statusDead, c.silentLogged = false, false, false, false
		c.statusAt = time.Time{}
		c.metrics.peerHealthy.Set(1)
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
	if res.proof() {
		c.peerDown = true
	} else {
		// Silence: ask EC2 (rarely) whether the peer instance is still up.
		if c.statusAt.IsZero() || now.Sub(c.statusAt) >= c.opts.StatusEvery {
			c.statusAt = now
			dead, why, err := c.peerInstanceDown(ctx)
			switch {
			case err != nil:
				c.log.Error().Err(err).Msg("ha: peer is silent and EC2 could not say whether it runs: not taking over")
				dead = false
			case dead:
				c.log.Warn().Str("ec2_status", why).Msg("ha: peer is silent and EC2 confirms it is down")
			case !c.silentLogged:
				c.silentLogged = true
				c.log.Warn().Str("detail", detail).Str("ec2_status", why).
					Msg("ha: peer is silent but EC2 reports it running and healthy: not taking over (is the link between the pair cut? check the security group rule for ha.listen)")
			}
			c.statusDead = dead
		}
		c.peerDown = c.statusDead
	}
	if c.peerDown && !wasDown {
		c.log.Warn().Str("check", string(res)).Str("detail", detail).Int("failed_checks", c.fails).
			Msg("ha: peer failed: taking over its route tables")
	}
}

// peerInstanceDown asks EC2 whether the peer instance is stopped, gone or
// failing its status checks: the second, independent signal.
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
		var notFound interface{ ErrorCode() string }
		if errors.As(err, &notFound) && notFound.ErrorCode() == "InvalidInstanceID.NotFound" {
			return true, "instance not found", nil
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
		why = fmt.Sprintf("state %s", state)
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
	return true, "instance not listed", nil
}
