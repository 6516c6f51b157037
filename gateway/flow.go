package gateway

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/egressd/egressd/gateway/splice"
)

// flow is one client connection being served.
type flow struct {
	ctx      context.Context
	cancel   context.CancelCauseFunc
	client   *net.TCPConn
	proto    string
	settings *Settings // the snapshot this connection was accepted with
	start    time.Time
	src      netip.AddrPort

	// Set before decided becomes true; read by Update for revocation.
	dst     netip.AddrPort
	name    string // normalised name the decision was made on ("" if none)
	decided atomic.Bool

	mu       sync.Mutex
	upstream net.Conn
	pair     *splice.Pair // set when the relay engine owns the sockets

	// handedOff is set by the handler before it returns when the relay
	// engine took the connection; release then runs from the engine's
	// done callback instead of after the handler.
	handedOff bool
	release   func()
}

func (g *Gateway) newFlow(c *net.TCPConn, proto string, s *Settings) *flow {
	ctx, cancel := context.WithCancelCause(context.Background())
	f := &flow{ctx: ctx, cancel: cancel, client: c, proto: proto, settings: s, start: time.Now(),
		src: addrPort(c.RemoteAddr())}
	// Cancelling the flow closes its sockets, which ends any blocked read,
	// write or splice at once.
	context.AfterFunc(ctx, func() {
		f.mu.Lock()
		up, pair := f.upstream, f.pair
		f.mu.Unlock()
		if pair != nil {
			// The engine owns the sockets: only it may close them.
			if context.Cause(ctx) != context.Canceled {
				pair.Abort()
			}
			return
		}
		if context.Cause(ctx) == context.Canceled {
			f.client.Close() // the handler is done: a normal close
		} else {
			reset(f.client) // aborted: the client must not mistake it for a clean end
		}
		if up != nil {
			up.Close()
		}
	})
	g.mu.Lock()
	g.flows[f] = struct{}{}
	g.mu.Unlock()
	return f
}

func (g *Gateway) forget(f *flow) {
	g.mu.Lock()
	delete(g.flows, f)
	g.mu.Unlock()
	f.cancel(nil)
}

// setDecided records what the decision was about, for revocation checks.
func (f *flow) setDecided(name string, dst netip.AddrPort) {
	f.name, f.dst = name, dst
	f.decided.Store(true)
}

func (f *flow) setUpstream(c net.Conn) {
	f.mu.Lock()
	f.upstream = c
	f.mu.Unlock()
	if f.ctx.Err() != nil { // aborted while dialing
		c.Close()
	}
}

// setPair records that the engine owns the sockets; a flow aborted
// meanwhile is aborted in the engine too.
func (f *flow) setPair(p *splice.Pair) {
	f.mu.Lock()
	f.pair = p
	f.mu.Unlock()
	if err := context.Cause(f.ctx); err != nil && err != context.Canceled {
		p.Abort()
	}
}

func (f *flow) revoke()           { f.abort(errRevoked) }
func (f *flow) abort(cause error) { f.cancel(cause) }

// abortReason is the access-log reason for a flow ended by the gateway
// (revocation, drain), or "" when it ended by itself.
func (f *flow) abortReason() string {
	if err := context.Cause(f.ctx); err == errRevoked || err == errDrained {
		return err.Error()
	}
	return ""
}

func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
