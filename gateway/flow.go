package gateway

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/egressd/egressd/gateway/splice"
)

// flow is one client connection being served.
type flow struct {
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
	cause    error // why the gateway aborted the flow; nil while it runs
	upstream net.Conn
	pair     *splice.Pair // set when the relay engine owns the sockets

	// handedOff is set by the handler before it returns when the relay
	// engine took the connection; release then runs from the engine's
	// done callback instead of after the handler.
	handedOff bool
	release   func()
}

// newFlow registers a connection. A flow holds no context or timer: an
// idle spliced connection should cost little more than its two sockets.
func (g *Gateway) newFlow(c *net.TCPConn, proto string, s *Settings) *flow {
	f := &flow{client: c, proto: proto, settings: s, start: time.Now(), src: addrPort(c.RemoteAddr())}
	g.mu.Lock()
	g.flows[f] = struct{}{}
	g.mu.Unlock()
	return f
}

// forget unregisters a flow whose handler (or relay) is done, and closes
// the client socket if the handler left it open (a normal close).
func (g *Gateway) forget(f *flow) {
	g.mu.Lock()
	delete(g.flows, f)
	g.mu.Unlock()
	f.mu.Lock()
	pair := f.pair
	f.mu.Unlock()
	if pair == nil {
		f.client.Close()
	}
}

// setDecided records what the decision was about, for revocation checks.
func (f *flow) setDecided(name string, dst netip.AddrPort) {
	f.name, f.dst = name, dst
	f.decided.Store(true)
}

// setUpstream records the upstream socket so that an abort closes it; an
// upstream dialed after an abort is closed at once.
func (f *flow) setUpstream(c net.Conn) {
	f.mu.Lock()
	f.upstream = c
	aborted := f.cause != nil
	f.mu.Unlock()
	if aborted {
		c.Close()
	}
}

// setPair records that the engine owns the sockets; a flow aborted
// meanwhile is aborted in the engine too.
func (f *flow) setPair(p *splice.Pair) {
	f.mu.Lock()
	f.pair = p
	aborted := f.cause != nil
	f.mu.Unlock()
	if aborted {
		p.Abort()
	}
}

func (f *flow) revoke() { f.abort(errRevoked) }

// abort ends the flow now: the client gets a reset (it must not mistake
// the end for a clean one), the upstream is closed, and any blocked read,
// write or splice returns at once.
func (f *flow) abort(cause error) {
	f.mu.Lock()
	if f.cause != nil {
		f.mu.Unlock()
		return
	}
	f.cause = cause
	up, pair := f.upstream, f.pair
	f.mu.Unlock()
	if pair != nil {
		pair.Abort() // the engine owns the sockets: only it may close them
		return
	}
	reset(f.client)
	if up != nil {
		up.Close()
	}
}

// aborted reports whether the gateway has aborted the flow.
func (f *flow) aborted() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cause != nil
}

// abortReason is the access-log reason for a flow ended by the gateway
// (revocation, drain), or "" when it ended by itself.
func (f *flow) abortReason() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cause == errRevoked || f.cause == errDrained {
		return f.cause.Error()
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
