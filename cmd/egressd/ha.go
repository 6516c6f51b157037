package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/egressd/egressd/nat/failover"
	"github.com/egressd/egressd/policy/config"
)

// startHA starts the failover controller and the health endpoint the peer
// checks (ha section). stop ends both; the peer then sees its checks
// refused and takes over this instance's route tables.
//
// ctx bounds the start (a stop signal ends it); the controller runs until
// stop. stop's own ctx cuts the hand-over short (a second stop signal).
func (d *daemon) startHA(ctx, runParent context.Context, h config.HA) (stop func(context.Context), err error) {
	client, self, err := failover.NewAWS(ctx, failover.AWSOptions{
		Region:   h.Region,
		Endpoint: h.Endpoint,
		Self:     failover.Identity{InstanceID: h.InstanceID, NetworkInterfaceID: h.NetworkInterface},
	})
	if err != nil {
		return nil, err
	}
	refs := func(rs []config.RouteTableRef) []failover.TableRef {
		out := make([]failover.TableRef, len(rs))
		for i, r := range rs {
			out[i] = failover.TableRef{ID: r.ID, TagKey: r.TagKey, TagValue: r.TagValue}
		}
		return out
	}
	ctrl, err := failover.New(failover.Options{
		Log:           d.log,
		Metrics:       d.reg,
		EC2:           client,
		Ready:         d.ready.Err,
		Self:          self,
		Peer:          failover.Identity{InstanceID: h.PeerInstanceID, NetworkInterfaceID: h.PeerNetworkInterface},
		PeerURL:       "http://" + h.Peer.String() + failover.HealthPath,
		HomeTables:    refs(h.RouteTables),
		PeerTables:    refs(h.PeerRouteTables),
		CheckInterval: h.CheckInterval,
		FailAfter:     h.FailAfter,
		FailbackAfter: h.FailbackAfter,
	})
	if err != nil {
		return nil, err
	}
	ln, err := listen("ha.listen", h.Listen)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{
		Handler:           ctrl.HealthHandler(),
		ReadHeaderTimeout: 2 * time.Second,
		WriteTimeout:      5 * time.Second,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error().Err(err).Msg("ha health endpoint failed")
		}
	}()
	d.log.Info().Str("ha_listen", ln.Addr().String()).Str("peer", h.Peer.String()).
		Str("instance", self.InstanceID).Str("interface", self.NetworkInterfaceID).
		Msg(fmt.Sprintf("ha: health endpoint on %s", failover.HealthPath))

	runCtx, cancel := context.WithCancel(runParent)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = ctrl.Run(runCtx)
	}()
	var once sync.Once
	return func(stopCtx context.Context) {
		once.Do(func() {
			_ = srv.Close() // the peer's checks are refused from now on
			cancel()
			<-done
			// Keep serving until the peer has the routes, then a little
			// longer: EC2 applies a route change within seconds.
			hctx, hcancel := context.WithTimeout(stopCtx,
				time.Duration(h.FailAfter+2)*h.CheckInterval+10*time.Second)
			defer hcancel()
			if ctrl.HandOver(hctx) {
				select {
				case <-time.After(handoverLinger):
				case <-stopCtx.Done():
				}
			}
			d.log.Info().Msg("ha: stopped")
		})
	}, nil
}

// handoverLinger is how long a stopping instance keeps serving after its
// peer has taken over its routes, for the packets EC2 still sends it while
// the change spreads.
const handoverLinger = 5 * time.Second
