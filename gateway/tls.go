package gateway

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/inetaf/tcpproxy"

	"github.com/egressd/egressd/gateway/splice"
	"github.com/egressd/egressd/policy"
	"github.com/egressd/egressd/sniff"
)

// helloBuffers holds buffers for ClientHellos; a post-quantum hello is about
// 1.8 KiB, so 4 KiB covers nearly all without a second allocation.
var helloBuffers = sync.Pool{New: func() any { b := make([]byte, 4096); return &b }}

// handleTLS serves one redirected TLS connection: original destination →
// ClientHello → decision → reset, or dial and splice.
func (g *Gateway) handleTLS(ctx context.Context, f *flow) {
	s := f.settings
	rec := g.newRecord(f)
	defer func() {
		if !f.handedOff {
			g.finish(f, rec)
		}
	}()

	dst, ok := g.originalDst(f, rec)
	if !ok {
		reset(f.client)
		return
	}

	bufp := helloBuffers.Get().(*[]byte)
	defer helloBuffers.Put(bufp)
	_ = f.client.SetReadDeadline(time.Now().Add(s.SniffTimeout))
	hello, peeked, err := sniff.ReadClientHello(f.client, *bufp)
	_ = f.client.SetReadDeadline(time.Time{})
	rec.up = int64(len(peeked))
	if err != nil {
		reason := sniff.Reason(err)
		g.metrics.SniffFailures.WithLabelValues(protoTLS, reason).Inc()
		rec.deny("sniff_"+reason, s.Policy.Mode() == policy.Enforce)
		rec.err = err.Error()
		if rec.enforced || errors.Is(err, sniff.ErrTruncated) || f.aborted() {
			reset(f.client)
			return
		}
		// Monitor mode: not TLS, or not parseable, but let it through to
		// where the client was going, as SPEC asks.
		g.spliceTLS(ctx, f, rec, nil, "", dst, peeked)
		return
	}
	rec.host, rec.alpn, rec.ech = hello.ServerName, hello.ALPN, hello.ECH

	d := s.Policy.Decide(f.src.Addr(), hello.ServerName, dst.Addr())
	rec.decided(d)
	name, _ := policy.NormalizeName(hello.ServerName)
	if d.Reason == policy.ReasonInvalidName {
		name = ""
	}
	f.setDecided(name, dst)
	if !d.Permit() {
		reset(f.client)
		return
	}
	g.spliceTLS(ctx, f, rec, &d, name, dst, peeked)
}

// spliceTLS dials the upstream the decision allows, replays the peeked
// bytes and relays until both sides end. d is nil for a monitor-mode
// pass-through of a connection that could not be sniffed.
func (g *Gateway) spliceTLS(ctx context.Context, f *flow, rec *record, d *policy.Decision, name string, dst netip.AddrPort, peeked []byte) {
	s := f.settings
	addrs, err := g.dialable([]netip.AddrPort{dst})
	if d != nil {
		addrs, err = g.chooseUpstream(ctx, s, *d, name, dst)
	}
	if err != nil {
		var deny *errDeny
		if errors.As(err, &deny) {
			rec.deny(deny.reason, true)
		}
		rec.err = err.Error()
		reset(f.client)
		return
	}
	up, upAddr, err := g.dial(ctx, s, addrs)
	if err != nil {
		g.metrics.DialFailures.WithLabelValues(protoTLS).Inc()
		rec.err = err.Error()
		if rec.allowed {
			rec.reason = reasonDialFailed
		}
		reset(f.client)
		return
	}
	rec.upstream = upAddr
	f.setUpstream(up)
	// The client's bytes read so far go first, then the kernel splices.
	pc := &tcpproxy.Conn{HostName: name, Peeked: peeked, Conn: f.client}
	if _, err := up.Write(pc.Peeked); err != nil {
		rec.err = err.Error()
		reset(f.client)
		up.Close()
		return
	}
	client := tcpproxy.UnderlyingConn(pc).(*net.TCPConn)
	if g.opts.Engine != nil {
		// Hand the pair to the epoll engine and return: an idle
		// connection then holds its two sockets and nothing else.
		f.handedOff = true
		pair, err := g.opts.Engine.Relay(client, up, s.IdleTimeout, func(r splice.Result) {
			rec.up += r.Up
			rec.down = r.Down
			if r.IdleTimedOut {
				rec.err = reasonIdleTimeout
			}
			g.finish(f, rec)
			f.release()
		})
		if err == nil {
			f.setPair(pair)
			return
		}
		f.handedOff = false // engine closed: relay here instead
	}
	r := relay(client, up, s.IdleTimeout)
	rec.up += r.up
	rec.down = r.down
	if r.idleTimedOut {
		rec.err = reasonIdleTimeout
	}
	if r.failed {
		reset(client)
	} else {
		client.Close()
	}
	up.Close()
}

// originalDst finds where the client was going, and refuses connections
// that were not redirected (made straight to the listener): they would loop
// or reach ports no rule allows.
func (g *Gateway) originalDst(f *flow, rec *record) (netip.AddrPort, bool) {
	dst, err := g.opts.OriginalDst(f.client)
	if err != nil {
		rec.deny(reasonNoOriginalDst, true)
		rec.err = err.Error()
		return dst, false
	}
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	rec.dst = dst
	if local := addrPort(f.client.LocalAddr()); dst == local {
		rec.deny(reasonLoop, true)
		return dst, false
	}
	return dst, true
}

// finish writes the access-log line once the connection has ended.
func (g *Gateway) finish(f *flow, rec *record) {
	if reason := f.abortReason(); reason != "" {
		rec.reason = reason
	}
	g.metrics.ConnectionTime.WithLabelValues(f.proto).Observe(time.Since(f.start).Seconds())
	g.emit(rec)
}

var _ net.Conn = (*tcpproxy.Conn)(nil)
