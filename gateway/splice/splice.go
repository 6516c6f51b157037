//go:build linux

// Package splice relays established TCP pairs with splice(2) from epoll loops: an idle pair holds only its two sockets — no goroutine, no buffer, no pipe.
//
// # Design
//
// An Engine owns Options.Loops event loops. Each loop is one goroutine with
// its own epoll instance, an eventfd to wake it, a command queue and a pool
// of spare pipes. Every piece of per-pair state (the raw fds, the pipe a
// direction holds, byte counts, the last-activity time) is owned by the
// pair's loop goroutine and is only ever touched there: Relay, Abort, the
// idle timer and Close reach the loop through its command queue. So a pair's
// fds are used and closed by one goroutine only, and cannot be used after
// close.
//
// Both sockets are registered with EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET.
// Edge-triggered mode is chosen over EPOLLONESHOT because the splice loop
// drains a socket until EAGAIN anyway (the contract of edge triggering), and
// it then needs no epoll_ctl re-arm per event — one syscall saved for every
// wake-up of a busy pair. EPOLLOUT is registered once too: with edge
// triggering it is only reported on a state change, and TCP only signals
// "write space" after a write hit EAGAIN (SOCK_NOSPACE), so a writable socket
// does not spin the loop. The EPOLLOUT bit that rides along with EPOLLIN
// wake-ups is ignored unless the direction writing to that socket holds
// bytes in its pipe.
//
// Go's own netpoller also has these fds registered (they belong to the
// *net.TCPConn values, which we keep referenced and close through). That is
// harmless because nothing ever blocks in Go's Read or Write on them.
package splice

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Options configures an Engine. Zero values pick the defaults.
type Options struct {
	Loops        int // epoll goroutines, default GOMAXPROCS
	PipeSize     int // F_SETPIPE_SZ for pipes, default 1 MiB, best effort
	MaxIdlePipes int // pooled spare pipes per loop, default 64
}

// Result is how a relayed pair ended.
type Result struct {
	Up, Down     int64 // bytes delivered client→upstream and upstream→client
	IdleTimedOut bool  // neither direction moved a byte for the idle period
	Failed       bool  // an error, a timeout, Abort or Close ended it, not two clean ends
}

// ErrClosed is returned by Relay after Close.
var ErrClosed = errors.New("splice: engine closed")

// Engine relays TCP pairs from a fixed set of epoll loops.
type Engine struct {
	loops  []*loop
	stalls atomic.Int64 // times a direction waited for EPOLLOUT (tests)
	next   atomic.Uint32
	nextID atomic.Uint64
	wg     sync.WaitGroup
	once   sync.Once
}

// Pair is one relayed client/upstream pair. Its fields other than the
// immutable ones are owned by its loop goroutine.
type Pair struct {
	l        *loop
	id       uint64
	client   *net.TCPConn
	upstream *net.TCPConn
	cfd, ufd int
	idle     time.Duration
	done     func(Result)
	abortReq atomic.Bool

	// Loop-owned state.
	up, down dir   // up: client→upstream, down: upstream→client
	last     int64 // loop clock (ns) of the last byte moved
	timer    *time.Timer
	closed   bool
	timedOut bool
}

// dir is one direction of a pair: bytes go from src through a pipe to dst.
type dir struct {
	src, dst int
	p        *pipe // held while bytes are in flight, nil when idle
	n        int   // bytes in p
	bytes    int64 // bytes delivered to dst
	eof      bool  // src returned EOF
	ended    bool  // EOF passed on: dst was shut down for writing
	blocked  bool  // dst returned EAGAIN with bytes in p: wait for EPOLLOUT
	queued   bool  // in the loop's run queue (budget exhausted)
}

type pipe struct{ r, w int }

const (
	cmdAdd = iota
	cmdAbort
	cmdIdle
	cmdClose
)

type cmd struct {
	op int
	p  *Pair
}

// loop is one epoll event loop.
type loop struct {
	e        *Engine
	epfd     int
	evfd     int
	pipeSize int
	maxIdle  int

	mu       sync.Mutex
	cmds     []cmd
	shutdown bool // no more commands are accepted

	// Owned by the loop goroutine.
	pairs map[uint64]*Pair
	pool  []*pipe
	runq  []*dir
	runqP []*Pair
	base  time.Time
	now   int64
}

// budget bounds the src→pipe splices one direction does per turn, so that a
// fast pair cannot starve the others sharing its loop. A direction that uses
// up its budget goes to the run queue (edge triggering would not report the
// data that is still waiting).
const budget = 16

const (
	sideClient   = 0
	sideUpstream = 1
	evfdKey      = ^uint64(0)
)

// NewEngine starts the loops.
func NewEngine(opts Options) (*Engine, error) {
	if opts.Loops <= 0 {
		opts.Loops = runtime.GOMAXPROCS(0)
	}
	if opts.PipeSize <= 0 {
		opts.PipeSize = 1 << 20
	}
	if opts.MaxIdlePipes < 0 {
		opts.MaxIdlePipes = 0
	} else if opts.MaxIdlePipes == 0 {
		opts.MaxIdlePipes = 64
	}
	e := &Engine{}
	for i := 0; i < opts.Loops; i++ {
		l, err := newLoop(e, opts)
		if err != nil {
			for _, l := range e.loops {
				l.closeFDs()
			}
			return nil, err
		}
		e.loops = append(e.loops, l)
	}
	for _, l := range e.loops {
		e.wg.Add(1)
		go l.run()
	}
	return e, nil
}

func newLoop(e *Engine, opts Options) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("splice: epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("splice: eventfd: %w", err)
	}
	l := &loop{e: e, epfd: epfd, evfd: evfd, pipeSize: opts.PipeSize, maxIdle: opts.MaxIdlePipes,
		pairs: make(map[uint64]*Pair), base: time.Now()}
	ev := unix.EpollEvent{Events: unix.EPOLLIN} // level-triggered: read until reset
	setKey(&ev, evfdKey)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		l.closeFDs()
		return nil, fmt.Errorf("splice: epoll_ctl eventfd: %w", err)
	}
	return l, nil
}

func (l *loop) closeFDs() {
	unix.Close(l.evfd)
	unix.Close(l.epfd)
}

// Close ends every pair (Failed, client reset) and stops the loops. It
// returns once every pair's sockets and every pipe are closed; done
// callbacks may still be running.
func (e *Engine) Close() error {
	e.once.Do(func() {
		for _, l := range e.loops {
			l.enqueue(cmd{op: cmdClose}, true)
		}
		e.wg.Wait()
	})
	return nil
}

// Relay takes ownership of both conns (any bytes the caller had to replay
// are already written). It returns at once. done is called exactly once,
// from some goroutine, after both sockets are closed, with the byte counts.
// When Relay returns an error the conns are untouched and still the
// caller's, and done is never called.
//
// idle > 0 closes the pair (IdleTimedOut and Failed) when neither direction
// moved a byte for idle.
func (e *Engine) Relay(client, upstream *net.TCPConn, idle time.Duration, done func(Result)) (*Pair, error) {
	if client == nil || upstream == nil || done == nil {
		return nil, errors.New("splice: Relay needs two conns and a done func")
	}
	cfd, err := rawFD(client)
	if err != nil {
		return nil, err
	}
	ufd, err := rawFD(upstream)
	if err != nil {
		return nil, err
	}
	l := e.loops[e.next.Add(1)%uint32(len(e.loops))]
	p := &Pair{
		l: l, id: e.nextID.Add(1), client: client, upstream: upstream,
		cfd: cfd, ufd: ufd, idle: idle, done: done,
		up:   dir{src: cfd, dst: ufd},
		down: dir{src: ufd, dst: cfd},
	}
	if !l.enqueue(cmd{op: cmdAdd, p: p}, false) {
		return nil, ErrClosed
	}
	return p, nil
}

// Abort closes both sockets now, the client's with a RST; done gets
// Failed=true. It does nothing if the pair has already ended.
func (p *Pair) Abort() {
	if p.abortReq.Swap(true) {
		return
	}
	p.l.enqueue(cmd{op: cmdAbort, p: p}, false)
}

func rawFD(c *net.TCPConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("splice: %w", err)
	}
	fd := -1
	if err := rc.Control(func(s uintptr) { fd = int(s) }); err != nil {
		return -1, fmt.Errorf("splice: %w", err)
	}
	return fd, nil
}

// enqueue hands a command to the loop and wakes it. It reports false once
// the loop has shut down (last marks the final, closing command).
func (l *loop) enqueue(c cmd, last bool) bool {
	l.mu.Lock()
	if l.shutdown {
		l.mu.Unlock()
		return false
	}
	l.shutdown = last
	l.cmds = append(l.cmds, c)
	wake := len(l.cmds) == 1
	l.mu.Unlock()
	if wake {
		var one = [8]byte{1, 0, 0, 0, 0, 0, 0, 0} // eventfd counter is host-endian; 1 in any order is non-zero
		for {
			_, err := unix.Write(l.evfd, one[:])
			if err != unix.EINTR {
				break
			}
		}
	}
	return true
}

func setKey(ev *unix.EpollEvent, k uint64) {
	ev.Fd = int32(uint32(k))
	ev.Pad = int32(uint32(k >> 32))
}

func getKey(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

func (l *loop) tick() { l.now = int64(time.Since(l.base)) }

func (l *loop) run() {
	defer l.e.wg.Done()
	events := make([]unix.EpollEvent, 256)
	var cmds []cmd
	for {
		timeout := -1
		if len(l.runq) > 0 {
			timeout = 0
		}
		n, err := unix.EpollWait(l.epfd, events, timeout)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			// Cannot happen with valid arguments; fail loudly rather than spin.
			panic(fmt.Sprintf("splice: epoll_wait: %v", err))
		}
		l.tick()
		for i := 0; i < n; i++ {
			ev := &events[i]
			k := getKey(ev)
			if k == evfdKey {
				var b [8]byte
				_, _ = unix.Read(l.evfd, b[:]) // EAGAIN is fine: a spurious wake
				continue
			}
			p := l.pairs[k>>1]
			if p == nil || p.closed {
				continue // ended earlier in this batch
			}
			l.handle(p, int(k&1), ev.Events)
		}
		// Commands: swap the queue out under the lock.
		l.mu.Lock()
		cmds, l.cmds = l.cmds, cmds[:0]
		l.mu.Unlock()
		for i, c := range cmds {
			if c.op == cmdClose {
				l.closeAll()
				return
			}
			l.command(c)
			cmds[i] = cmd{}
		}
		// Directions that used up their budget.
		if len(l.runq) > 0 {
			q, qp := l.runq, l.runqP
			l.runq, l.runqP = nil, nil
			for i, d := range q {
				d.queued = false
				if !qp[i].closed {
					l.pump(qp[i], d)
				}
			}
		}
	}
}

func (l *loop) command(c cmd) {
	p := c.p
	switch c.op {
	case cmdAdd:
		l.add(p)
	case cmdAbort:
		if !p.closed {
			l.finish(p, true)
		}
	case cmdIdle:
		if p.closed {
			return
		}
		if elapsed := time.Duration(l.now - p.last); elapsed >= p.idle {
			p.timedOut = true
			l.finish(p, true)
		} else {
			p.timer.Reset(p.idle - elapsed)
		}
	}
}

func (l *loop) add(p *Pair) {
	l.pairs[p.id] = p
	p.last = l.now
	for side, fd := range [2]int{p.cfd, p.ufd} {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET}
		setKey(&ev, p.id<<1|uint64(side))
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			if side == 1 {
				_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, p.cfd, nil)
			}
			p.cfd, p.ufd = -1, -1 // not registered: finish must not DEL
			l.finish(p, true)
			return
		}
	}
	if p.idle > 0 {
		p.timer = time.AfterFunc(p.idle, func() { p.l.enqueue(cmd{op: cmdIdle, p: p}, false) })
	}
	// Bytes that arrived before registration: edge triggering reports a
	// socket that is already readable at EPOLL_CTL_ADD, but do not rely on
	// it — splice now.
	l.pump(p, &p.up)
	if !p.closed {
		l.pump(p, &p.down)
	}
}

// handle dispatches one epoll event for one socket of a pair.
func (l *loop) handle(p *Pair, side int, events uint32) {
	fd := p.cfd
	rd, wr := &p.up, &p.down // direction reading from fd, direction writing to fd
	if side == sideUpstream {
		fd = p.ufd
		rd, wr = &p.down, &p.up
	}
	if events&unix.EPOLLERR != 0 {
		// A reset or a hard error: the pair fails even if neither
		// direction would touch this socket again soon.
		if soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || soerr != 0 {
			l.finish(p, true)
			return
		}
	}
	if events&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 && wr.blocked {
		wr.blocked = false
		l.pump(p, wr)
		if p.closed {
			return
		}
	}
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 && !rd.blocked {
		// A blocked direction skips this: it reads src again (until EAGAIN)
		// as soon as dst drains, and meanwhile TCP pushes back on the sender.
		l.pump(p, rd)
	}
}

// pump moves bytes for one direction until src has nothing more (EAGAIN),
// dst is full (EAGAIN with bytes in the pipe: wait for EPOLLOUT), the
// direction ends, the pair fails, or the budget is used up.
func (l *loop) pump(p *Pair, d *dir) {
	if d.ended || d.queued {
		return
	}
	for rounds := 0; ; {
		// Flush the pipe first.
		for d.n > 0 {
			n, err := unix.Splice(d.p.r, nil, d.dst, nil, d.n, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				d.blocked = true
				l.e.stalls.Add(1)
				return
			case err != nil:
				l.finish(p, true)
				return
			}
			d.n -= int(n)
			d.bytes += n
			p.last = l.now
		}
		if d.eof {
			l.release(d)
			d.ended = true
			if err := unix.Shutdown(d.dst, unix.SHUT_WR); err != nil && err != unix.ENOTCONN {
				l.finish(p, true)
				return
			}
			if p.up.ended && p.down.ended {
				l.finish(p, false)
			}
			return
		}
		if rounds == budget {
			d.queued = true
			l.runq = append(l.runq, d)
			l.runqP = append(l.runqP, p)
			return
		}
		if d.p == nil {
			pp, err := l.acquire()
			if err != nil {
				l.finish(p, true)
				return
			}
			d.p = pp
		}
		n, err := unix.Splice(d.src, nil, d.p.w, nil, l.pipeSize, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			l.release(d) // the pipe is empty: give it back
			return
		case err != nil:
			l.finish(p, true)
			return
		case n == 0:
			d.eof = true
		default:
			d.n = int(n)
			p.last = l.now
		}
		rounds++
	}
}

func (l *loop) acquire() (*pipe, error) {
	if k := len(l.pool); k > 0 {
		pp := l.pool[k-1]
		l.pool[k-1] = nil
		l.pool = l.pool[:k-1]
		return pp, nil
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return nil, err
	}
	pp := &pipe{r: fds[0], w: fds[1]}
	if sz, err := unix.FcntlInt(uintptr(pp.w), unix.F_SETPIPE_SZ, l.pipeSize); err == nil && sz > 0 && sz < l.pipeSize {
		// Best effort; the kernel may round up. Never ask for more
		// than fits, so that src→pipe returns EAGAIN only when src is
		// empty (the pipe is always empty then).
		l.pipeSize = sz
	} else if err != nil {
		if sz, err := unix.FcntlInt(uintptr(pp.w), unix.F_GETPIPE_SZ, 0); err == nil && sz > 0 && sz < l.pipeSize {
			l.pipeSize = sz
		}
	}
	return pp, nil
}

// release drops the direction's pipe: back to the pool when empty, closed
// when it still holds bytes (they can go nowhere now) or the pool is full.
func (l *loop) release(d *dir) {
	pp := d.p
	if pp == nil {
		return
	}
	d.p = nil
	if d.n == 0 && len(l.pool) < l.maxIdle {
		l.pool = append(l.pool, pp)
		return
	}
	d.n = 0
	unix.Close(pp.r)
	unix.Close(pp.w)
}

// finish ends a pair: deregister, return or close its pipes, close both
// sockets (the client's with a RST when failed), then report.
func (l *loop) finish(p *Pair, failed bool) {
	if p.closed {
		return
	}
	p.closed = true
	delete(l.pairs, p.id)
	if p.timer != nil {
		p.timer.Stop()
	}
	if p.cfd >= 0 {
		_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, p.cfd, nil)
		_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, p.ufd, nil)
	}
	l.release(&p.up)
	l.release(&p.down)
	if failed {
		_ = p.client.SetLinger(0)
	}
	_ = p.client.Close()
	_ = p.upstream.Close()
	p.abortReq.Store(true) // later Aborts need not reach the loop
	r := Result{Up: p.up.bytes, Down: p.down.bytes, IdleTimedOut: p.timedOut, Failed: failed}
	go p.done(r)
}

// closeAll ends every pair and frees the loop's fds.
func (l *loop) closeAll() {
	for _, p := range l.pairs {
		l.finish(p, true)
	}
	// Pairs whose add command was still queued behind close.
	l.mu.Lock()
	rest := l.cmds
	l.cmds = nil
	l.mu.Unlock()
	for _, c := range rest {
		if c.op == cmdAdd {
			l.finish(c.p, true)
		}
	}
	for _, pp := range l.pool {
		unix.Close(pp.r)
		unix.Close(pp.w)
	}
	l.pool = nil
	l.closeFDs()
}
