package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/egressd/egressd/gateway/dnscache"
	"github.com/egressd/egressd/gateway/splice"
	"github.com/egressd/egressd/nat"
	"github.com/egressd/egressd/policy"
)

// UpstreamMode says which address an allowed connection is dialed to.
type UpstreamMode string

const (
	// Resolve dials one of the allowed name's own addresses.
	Resolve UpstreamMode = "resolve"
	// Original dials the client's original destination, only when it is one
	// of the name's addresses.
	Original UpstreamMode = "original"
)

// Settings are what a reload may change. A Settings value is never modified
// after it is handed to the gateway.
type Settings struct {
	Policy         *policy.Policy
	UpstreamMode   UpstreamMode
	DialTimeout    time.Duration
	SniffTimeout   time.Duration
	IdleTimeout    time.Duration
	MaxConnections int
}

// Resolver looks up a name's addresses (gateway/dnscache in production).
type Resolver interface {
	Lookup(ctx context.Context, name string, family dnscache.Family) ([]netip.Addr, error)
}

// Options are the gateway's dependencies.
type Options struct {
	Log      zerolog.Logger // access log and errors
	Metrics  *Metrics       // nil: a private, unregistered set
	Resolver Resolver
	// Dial opens upstream connections; nil uses net.Dialer. It must return
	// a *net.TCPConn for the splice path.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// OriginalDst returns the destination the client dialed before the
	// redirect; nil uses nat.OriginalDst (SO_ORIGINAL_DST).
	OriginalDst func(*net.TCPConn) (netip.AddrPort, error)
	// Engine relays allowed TLS connections from epoll loops, so that an
	// idle connection holds two fds and no goroutine. nil: a goroutine
	// pair per connection (relay.go).
	Engine *splice.Engine
	// ForbiddenUpstream reports addresses never dialed whatever the
	// policy says; nil: loopback, link-local (instance metadata),
	// multicast and unspecified addresses. Tests on loopback relax it.
	ForbiddenUpstream func(netip.Addr) bool
}

// Gateway serves redirected connections. Create it with New.
type Gateway struct {
	opts     Options
	log      zerolog.Logger
	metrics  *Metrics
	settings atomic.Pointer[Settings]

	active atomic.Int64 // connections being served, both protocols

	mu    sync.Mutex
	flows map[*flow]struct{}
	wg    sync.WaitGroup

	refusedLog rateLimiter
}

// New returns a gateway using s until the next Update.
func New(opts Options, s *Settings) *Gateway {
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.Dial == nil {
		// Keep-alive off, as on the listeners: idle_timeout ends silent
		// connections without per-socket setsockopt calls.
		d := net.Dialer{KeepAlive: -1}
		opts.Dial = d.DialContext
	}
	if opts.ForbiddenUpstream == nil {
		opts.ForbiddenUpstream = forbiddenUpstream
	}
	if opts.OriginalDst == nil {
		opts.OriginalDst = nat.OriginalDst
	}
	g := &Gateway{opts: opts, log: opts.Log, metrics: opts.Metrics, flows: make(map[*flow]struct{})}
	g.settings.Store(s)
	return g
}

// Settings returns the settings new connections use.
func (g *Gateway) Settings() *Settings { return g.settings.Load() }

// Active is the number of connections being served.
func (g *Gateway) Active() int64 { return g.active.Load() }

// Update swaps in new settings: new connections use them at once, open
// connections keep theirs, except those whose destination the new policy no
// longer permits, which are closed (reason policy_revoked). It returns how
// many connections were revoked.
func (g *Gateway) Update(s *Settings) int {
	g.settings.Store(s)
	var revoke []*flow
	g.mu.Lock()
	for f := range g.flows {
		if f.decided.Load() && !s.Policy.Decide(f.src.Addr(), f.name, f.dst.Addr()).Permit() {
			revoke = append(revoke, f)
		}
	}
	g.mu.Unlock()
	for _, f := range revoke {
		f.revoke()
		g.metrics.Revoked.Inc()
	}
	return len(revoke)
}

// ServeTLS accepts TLS connections from ln until ctx is done or ln fails.
func (g *Gateway) ServeTLS(ctx context.Context, ln net.Listener) error {
	return g.serve(ctx, ln, protoTLS, g.handleTLS)
}

// ServeHTTP accepts plain-HTTP connections from ln until ctx is done.
func (g *Gateway) ServeHTTP(ctx context.Context, ln net.Listener) error {
	return g.serve(ctx, ln, protoHTTP, g.handleHTTP)
}

const (
	protoTLS  = "tls"
	protoHTTP = "http"
)

func (g *Gateway) serve(ctx context.Context, ln net.Listener, proto string, handle func(context.Context, *flow)) error {
	active := g.metrics.Active.WithLabelValues(proto) // once, not per connection
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if isTemporaryAcceptError(err) {
				// Out of file descriptors: the kernel keeps the client in
				// the backlog. Back off instead of spinning, and say so.
				g.metrics.Refused.WithLabelValues("accept_error").Inc()
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				if g.refusedLog.allow() {
					g.log.Warn().Err(err).Str("proto", proto).Dur("retry_in", backoff).
						Msg("accept failed; raise the open-file limit (LimitNOFILE) or lower limits.max_connections")
				}
				select {
				case <-time.After(backoff):
				case <-ctx.Done():
					return nil
				}
				continue
			}
			return fmt.Errorf("accepting %s connections on %s: %w", proto, ln.Addr(), err)
		}
		backoff = 0
		tc, ok := c.(*net.TCPConn)
		if !ok {
			c.Close()
			continue
		}
		s := g.settings.Load()
		if n := g.active.Add(1); s.MaxConnections > 0 && n > int64(s.MaxConnections) {
			g.active.Add(-1)
			g.metrics.Refused.WithLabelValues("max_connections").Inc()
			if g.refusedLog.allow() {
				g.log.Warn().Str("src", c.RemoteAddr().String()).Int("max_connections", s.MaxConnections).
					Msg("connection refused: limits.max_connections reached")
			}
			reset(tc)
			continue
		}
		f := g.newFlow(tc, proto, s)
		g.wg.Add(1)
		active.Inc()
		f.release = func() {
			active.Dec()
			g.forget(f)
			g.active.Add(-1)
			g.wg.Done()
		}
		go func() {
			// Not the listener's context: a stop lets connections finish (Drain).
			handle(context.Background(), f)
			if !f.handedOff {
				f.release()
			}
		}()
	}
}

// Drain waits for open connections to finish until ctx is done, then closes
// the rest. Call it after the listeners have stopped.
func (g *Gateway) Drain(ctx context.Context) (closed int) {
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
		return 0
	case <-ctx.Done():
	}
	g.mu.Lock()
	for f := range g.flows {
		f.abort(errDrained)
		closed++
	}
	g.mu.Unlock()
	<-done
	return closed
}

var (
	errRevoked = errors.New("policy_revoked")
	errDrained = errors.New("drain_timeout")
)

func isTemporaryAcceptError(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) ||
		errors.Is(err, syscall.ECONNABORTED)
}

// reset closes c with a TCP RST instead of a FIN: a refused or denied
// client fails at once instead of waiting for data that never comes.
func reset(c *net.TCPConn) {
	_ = c.SetLinger(0)
	_ = c.Close()
}

// rateLimiter lets one event through per second, so that a flood of
// refusals is visible in the log without drowning it.
type rateLimiter struct{ last atomic.Int64 }

func (r *rateLimiter) allow() bool {
	now := time.Now().UnixNano()
	last := r.last.Load()
	return now-last >= int64(time.Second) && r.last.CompareAndSwap(last, now)
}
