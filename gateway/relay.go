package gateway

import (
	"errors"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// relay copies both directions between client and upstream until both have
// ended, and returns the bytes copied each way.
//
// Both arguments are the bare *net.TCPConn, so that ReadFrom reaches Linux
// splice(2) and bytes move from socket to socket inside the kernel (see
// tcpproxy's proxyCopy, which egressd imitates). Unlike tcpproxy's
// DialProxy, the end of one direction only half-closes the other side
// (CloseWrite), so protocols that finish sending before they finish
// receiving keep working; an error on either side closes both.
//
// Idle timeout: each direction waits with a deadline; a direction that
// moved no byte for a whole period marks itself idle, and the connection is
// closed when both directions are idle (an ended direction counts as idle),
// so a long download with a silent client is not cut.
func relay(client, upstream *net.TCPConn, idle time.Duration) relayResult {
	var st relayState
	var r relayResult
	done := make(chan struct{})
	go func() {
		r.down = st.pipe(client, upstream, idle, &st.downIdle, &st.upIdle)
		close(done)
	}()
	r.up = st.pipe(upstream, client, idle, &st.upIdle, &st.downIdle)
	<-done
	r.idleTimedOut, r.failed = st.timedOut.Load(), st.failed.Load()
	return r
}

// relayResult is how a relay ended.
type relayResult struct {
	up, down     int64
	idleTimedOut bool // both directions were idle for idle_timeout
	failed       bool // an error (reset, timeout) ended it, not two clean ends
}

type relayState struct {
	upIdle, downIdle atomic.Bool
	timedOut         atomic.Bool
	failed           atomic.Bool
}

// pipe copies src to dst until EOF or an error; on EOF it half-closes dst.
func (st *relayState) pipe(dst, src *net.TCPConn, idle time.Duration, self, other *atomic.Bool) (total int64) {
	for {
		if idle > 0 {
			dl := time.Now().Add(idle)
			_ = src.SetReadDeadline(dl)
			_ = dst.SetWriteDeadline(dl)
		}
		n, err := dst.ReadFrom(src) // splice(2) between the two sockets
		total += n
		if n > 0 {
			self.Store(false)
		}
		switch {
		case err == nil: // EOF from src
			self.Store(true)
			if st.failed.Load() {
				return total
			}
			_ = dst.CloseWrite()
			return total
		case errors.Is(err, os.ErrDeadlineExceeded) && !st.failed.Load():
			if n > 0 {
				continue // still moving
			}
			self.Store(true)
			if other.Load() {
				st.timedOut.Store(true)
				st.fail(dst, src)
				return total
			}
			continue
		default:
			st.fail(dst, src)
			return total
		}
	}
}

// fail ends both directions at once: the peer of a reset connection must
// see a reset too, not a clean end of stream.
func (st *relayState) fail(a, b *net.TCPConn) {
	if st.failed.Swap(true) {
		return
	}
	now := time.Now()
	_ = a.SetDeadline(now)
	_ = b.SetDeadline(now)
}
