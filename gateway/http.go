package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/egressd/egressd/policy"
	"github.com/egressd/egressd/sniff"
)

// maxHeadBytes bounds a request or response head; larger ones are refused.
const maxHeadBytes = 64 << 10

// exchange is one request forwarded upstream and awaiting its response.
type exchange struct {
	rec     *record
	up      atomic.Int64 // request bytes forwarded so far (the body may still be moving when the answer is logged)
	method  string
	upgrade bool
	result  chan bool // for an upgrade: true when the server answered 101
}

// httpConn is the state of one plain-HTTP client connection.
type httpConn struct {
	g    *Gateway
	f    *flow
	dst  netip.AddrPort
	cr   *bufio.Reader // client, read only by the request loop
	cl   *deadlineConn // client socket with per-operation deadlines
	up   *net.TCPConn  // upstream, once dialed
	upc  *deadlineConn // upstream socket with per-operation deadlines
	host string        // normalised host of the first request

	pending  chan *exchange // forwarded requests, in order
	respDone chan struct{}  // closed when the response loop has ended
	inFlight atomic.Int64
	upgraded atomic.Bool
}

// handleHTTP serves one redirected plain-HTTP connection. Every request is
// checked: the first decides where the connection goes; a later request
// for another host is refused with 403 and the connection closes (SPEC).
// After a 101 answer to an Upgrade request the connection is spliced
// without further checks.
func (g *Gateway) handleHTTP(ctx context.Context, f *flow) {
	conn := &httpConn{g: g, f: f, cl: &deadlineConn{TCPConn: f.client, writeTimeout: f.settings.IdleTimeout}}
	conn.cr = bufio.NewReaderSize(conn.cl, 4096)
	defer func() { g.metrics.ConnectionTime.WithLabelValues(protoHTTP).Observe(time.Since(f.start).Seconds()) }()
	defer func() {
		if conn.up != nil {
			conn.up.Close()
		}
	}()

	rec := g.newRecord(f)
	dst, ok := g.originalDst(f, rec)
	if !ok {
		g.emit(rec)
		reset(f.client)
		return
	}
	conn.dst = dst
	conn.requestLoop(ctx)
}

func (h *httpConn) requestLoop(ctx context.Context) {
	s := h.f.settings
	first := true
	for {
		// Wait for the first byte of the next request. Between requests a
		// client may be silent as long as a response is still flowing.
		h.cl.timeout = s.IdleTimeout
		if first {
			h.cl.timeout = s.SniffTimeout
		}
		if _, err := h.cr.Peek(1); err != nil {
			if isTimeout(err) && !first && h.inFlight.Load() > 0 && !h.f.aborted() {
				continue
			}
			h.endRequests(ctx, err, first)
			return
		}
		// The head itself must arrive within the sniff timeout.
		h.cl.timeout = s.SniffTimeout
		req, err := sniff.ReadRequest(h.cr, maxHeadBytes)
		if err != nil {
			h.refuseMalformed(err, first)
			return
		}
		rec := h.g.newRecord(h.f)
		rec.start = time.Now()
		rec.dst, rec.host = h.dst, req.Host
		policyNow := h.g.settings.Load().Policy
		d := policyNow.Decide(h.f.src.Addr(), req.Host, h.dst.Addr())
		rec.decided(d)
		name, _ := policy.NormalizeName(req.Host)
		if d.Reason == policy.ReasonInvalidName {
			name = ""
		}
		if first {
			h.host = name
			h.f.setDecided(name, h.dst)
		} else if name != h.host {
			rec.deny(reasonHostChanged, policyNow.Mode() == policy.Enforce)
		}
		if !rec.allowed && rec.enforced {
			h.refuse(rec, 403, fmt.Sprintf("egressd: host %q is not allowed\n", req.Host))
			return
		}
		if first {
			if !h.connect(ctx, rec, d, name) {
				return
			}
			first = false
		}
		ex := &exchange{rec: rec, method: req.Method, upgrade: req.Upgrade, result: make(chan bool, 1)}
		rec.upstream = addrPort(h.up.RemoteAddr())
		h.inFlight.Add(1)
		select {
		case h.pending <- ex:
		case <-h.respDone:
			return
		}
		h.cl.timeout = s.IdleTimeout // a body may be slow; only silence counts
		n, err := h.forwardRequest(req)
		ex.up.Store(n)
		if err != nil {
			h.f.abort(err)
			return
		}
		if req.Upgrade {
			var ok, answered bool
			select {
			case ok = <-ex.result:
				answered = true
			case <-h.respDone:
				// The response loop ends right after a 101, so both may be
				// ready at once: the result decides, not select's pick.
				select {
				case ok = <-ex.result:
					answered = true
				default:
				}
			}
			if !answered {
				return
			}
			if ok {
				ex.rec.up = ex.up.Load()
				h.spliceUpgraded(ex.rec)
				return
			}
		}
		if req.Close {
			h.drainResponses()
			return
		}
	}
}

// connect dials the upstream for the first request and starts the response
// loop. On failure it answers 502 and returns false.
func (h *httpConn) connect(ctx context.Context, rec *record, d policy.Decision, name string) bool {
	s := h.f.settings
	addrs, err := h.g.chooseUpstream(ctx, s, d, name, h.dst)
	if err != nil {
		var deny *errDeny
		if errors.As(err, &deny) {
			rec.deny(deny.reason, true)
		}
		rec.err = err.Error()
		status, body := 403, fmt.Sprintf("egressd: host %q is not allowed (%s)\n", rec.host, rec.reason)
		if rec.reason == reasonResolveFailed {
			status, body = 502, fmt.Sprintf("egressd: cannot resolve %q\n", rec.host)
		}
		h.refuse(rec, status, body)
		return false
	}
	up, upAddr, err := h.g.dial(ctx, s, addrs)
	if err != nil {
		h.g.metrics.DialFailures.WithLabelValues(protoHTTP).Inc()
		rec.upstream, rec.err = netip.AddrPort{}, err.Error()
		if rec.allowed {
			rec.reason = reasonDialFailed
		}
		h.refuse(rec, 502, fmt.Sprintf("egressd: cannot reach %q\n", rec.host))
		return false
	}
	rec.upstream = upAddr
	h.up = up
	h.upc = &deadlineConn{TCPConn: up, timeout: s.IdleTimeout, writeTimeout: s.IdleTimeout}
	h.f.setUpstream(up)
	h.pending = make(chan *exchange, 64)
	h.respDone = make(chan struct{})
	go h.responseLoop()
	return true
}

// forwardRequest writes the head and the body, framed as the request says.
func (h *httpConn) forwardRequest(req *sniff.Request) (int64, error) {
	n, err := h.upc.Write(req.Head)
	total := int64(n)
	if err != nil {
		return total, err
	}
	var m int64
	switch {
	case req.Chunked:
		m, err = sniff.CopyChunked(h.upc, h.cr)
	case req.ContentLength > 0:
		m, err = io.CopyN(h.upc, h.cr, req.ContentLength)
	}
	return total + m, err
}

// responseLoop reads the upstream's responses in request order and passes
// them to the client, logging one line per request.
func (h *httpConn) responseLoop() {
	defer close(h.respDone)
	ur := bufio.NewReaderSize(h.upc, 4096)
	for ex := range h.pending {
		done, ok := h.relayResponse(ur, ex)
		h.inFlight.Add(-1)
		if h.upgraded.Load() {
			return // the request loop splices now and logs at the end
		}
		ex.rec.up = ex.up.Load()
		h.g.emit(ex.rec)
		if ex.upgrade {
			ex.result <- false
		}
		if !ok || done {
			if !ok {
				h.failPending()
			}
			if !h.upgraded.Load() {
				h.f.client.Close() // ends the request loop's read
			}
			return
		}
	}
}

// relayResponse copies one response (and any 1xx before it). ok is false
// when the exchange failed; done is true when the connection must end (the
// response was close-delimited, or the server closed) or was upgraded.
func (h *httpConn) relayResponse(ur *bufio.Reader, ex *exchange) (done, ok bool) {
	for {
		resp, err := sniff.ReadResponse(ur, maxHeadBytes, ex.method)
		if err != nil {
			ex.rec.err = "upstream: " + err.Error()
			if errors.Is(err, io.EOF) || errors.Is(err, sniff.ErrTruncated) {
				ex.rec.err = "upstream closed before answering"
			}
			ex.rec.status = 502
			h.writeStatus(502, "egressd: upstream failed to answer\n")
			return true, false
		}
		ex.rec.status = resp.Status
		if _, err := h.cl.Write(resp.Head); err != nil {
			ex.rec.err = err.Error()
			return true, false
		}
		ex.rec.down += int64(len(resp.Head))
		if resp.Status == 101 && ex.upgrade {
			// Hand what the server sent after the 101 to the client, then
			// the request loop splices both sockets.
			if n := ur.Buffered(); n > 0 {
				b, _ := ur.Peek(n)
				if _, err := h.cl.Write(b); err != nil {
					return true, false
				}
				ex.rec.down += int64(n)
			}
			h.upgraded.Store(true)
			ex.result <- true
			return true, true
		}
		if resp.Status >= 100 && resp.Status < 200 {
			continue // interim response; the final one follows
		}
		var n int64
		switch resp.Body() {
		case sniff.BodyChunked:
			n, err = sniff.CopyChunked(h.cl, ur)
		case sniff.BodyLength:
			n, err = io.CopyN(h.cl, ur, resp.ContentLength)
		case sniff.BodyUntilClose:
			n, err = io.Copy(h.cl, ur)
			ex.rec.down += n
			return true, err == nil
		}
		ex.rec.down += n
		if err != nil {
			ex.rec.err = err.Error()
			return true, false
		}
		return resp.Close, true
	}
}

// failPending logs the requests that were forwarded but will get no answer.
func (h *httpConn) failPending() {
	for {
		select {
		case ex, ok := <-h.pending:
			if !ok {
				return
			}
			h.inFlight.Add(-1)
			ex.rec.err = "connection ended before the response"
			ex.rec.up = ex.up.Load()
			h.g.emit(ex.rec)
			if ex.upgrade {
				ex.result <- false
			}
		default:
			return
		}
	}
}

// spliceUpgraded passes the connection through untouched after a 101.
func (h *httpConn) spliceUpgraded(rec *record) {
	defer h.g.emit(rec)
	<-h.respDone
	if n := h.cr.Buffered(); n > 0 {
		b, _ := h.cr.Peek(n)
		if _, err := h.up.Write(b); err != nil {
			return
		}
	}
	_ = h.f.client.SetDeadline(time.Time{})
	_ = h.up.SetDeadline(time.Time{})
	r := relay(h.f.client, h.up, h.f.settings.IdleTimeout)
	rec.up += r.up + int64(h.cr.Buffered())
	rec.down += r.down
	if r.idleTimedOut {
		rec.err = reasonIdleTimeout
	}
	if r.failed {
		reset(h.f.client)
	}
}

// endRequests handles the end of the client's requests: a clean close, an
// idle client, or a client that never sent a request in time.
func (h *httpConn) endRequests(ctx context.Context, err error, first bool) {
	if first {
		if errors.Is(err, io.EOF) || h.f.aborted() {
			return // connected and left: nothing to log
		}
		rec := h.g.newRecord(h.f)
		rec.dst = h.dst
		reason := "io"
		if isTimeout(err) {
			reason = "timeout"
		}
		h.g.metrics.SniffFailures.WithLabelValues(protoHTTP, reason).Inc()
		rec.deny("sniff_"+reason, true)
		rec.err = err.Error()
		h.g.emit(rec)
		reset(h.f.client)
		return
	}
	if errors.Is(err, io.EOF) && h.up != nil {
		_ = h.up.CloseWrite() // the client is done sending; answers may follow
	}
	h.drainResponses()
}

// refuseMalformed answers 400 (or 431) to a request head that cannot be
// trusted, after the answers already owed to the client.
func (h *httpConn) refuseMalformed(err error, first bool) {
	reason := sniff.Reason(err)
	h.g.metrics.SniffFailures.WithLabelValues(protoHTTP, reason).Inc()
	rec := h.g.newRecord(h.f)
	rec.dst = h.dst
	rec.deny("sniff_"+reason, true)
	rec.err = err.Error()
	switch {
	case errors.Is(err, sniff.ErrTooLarge):
		h.refuse(rec, 431, "egressd: request head too large\n")
	case errors.Is(err, sniff.ErrMalformed):
		h.refuse(rec, 400, "egressd: malformed request\n")
	default: // timeout, truncated: nobody to answer
		h.drainResponses()
		h.g.emit(rec)
		reset(h.f.client)
	}
}

// refuse answers status with a one-line body, logs rec, and closes.
func (h *httpConn) refuse(rec *record, status int, body string) {
	h.drainResponses()
	rec.status = status
	h.writeStatus(status, body)
	h.g.emit(rec)
	_ = h.f.client.CloseWrite()
	// Let the client read the answer before the socket goes away.
	_ = h.f.client.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.Copy(io.Discard, io.LimitReader(h.f.client, 64<<10))
	h.f.client.Close()
}

// drainResponses stops forwarding and waits until the answers already owed
// to the client have been passed on, so a refusal never interleaves with
// them.
func (h *httpConn) drainResponses() {
	if h.pending != nil {
		close(h.pending)
		<-h.respDone
		h.pending = nil
	}
}

func (h *httpConn) writeStatus(status int, body string) {
	text := map[int]string{400: "Bad Request", 403: "Forbidden", 431: "Request Header Fields Too Large", 502: "Bad Gateway"}[status]
	msg := fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, text, len(body), body)
	_, _ = h.cl.Write([]byte(msg))
}

// deadlineConn sets a fresh deadline before each read and write, so that
// timeout bounds the silence of the peer, not the length of a transfer.
type deadlineConn struct {
	*net.TCPConn
	timeout      time.Duration // for reads; changed only by the reading goroutine
	writeTimeout time.Duration // for writes; set before the conn is shared
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	if c.timeout > 0 {
		_ = c.SetReadDeadline(time.Now().Add(c.timeout))
	}
	return c.TCPConn.Read(p)
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	if c.writeTimeout > 0 {
		_ = c.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	}
	return c.TCPConn.Write(p)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, sniff.ErrTimeout) ||
		(errors.As(err, &ne) && ne.Timeout())
}
