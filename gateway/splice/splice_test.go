//go:build linux

package splice

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// chain is one proxied connection inside the test process:
// cli ⇄ gwc (gateway's client side) … gwu (gateway's upstream side) ⇄ srv.
type chain struct {
	cli, gwc, gwu, srv *net.TCPConn
}

type lab struct {
	mu       sync.Mutex // Dial+Accept pairs must not interleave
	lnG, lnS *net.TCPListener
}

func newLab(t testing.TB) *lab {
	t.Helper()
	lnG, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	lnS, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lnG.Close(); lnS.Close() })
	return &lab{lnG: lnG, lnS: lnS}
}

func (lb *lab) chain(t testing.TB) *chain {
	t.Helper()
	lb.mu.Lock()
	defer lb.mu.Unlock()
	var c chain
	var err error
	if c.cli, err = net.DialTCP("tcp4", nil, lb.lnG.Addr().(*net.TCPAddr)); err != nil {
		t.Fatal(err)
	}
	if c.gwc, err = lb.lnG.AcceptTCP(); err != nil {
		t.Fatal(err)
	}
	if c.gwu, err = net.DialTCP("tcp4", nil, lb.lnS.Addr().(*net.TCPAddr)); err != nil {
		t.Fatal(err)
	}
	if c.srv, err = lb.lnS.AcceptTCP(); err != nil {
		t.Fatal(err)
	}
	return &c
}

// closeEnds closes the test's own two ends.
func (c *chain) closeEnds() { c.cli.Close(); c.srv.Close() }

func relay(t testing.TB, e *Engine, c *chain, idle time.Duration) (*Pair, chan Result) {
	t.Helper()
	ch := make(chan Result, 2)
	p, err := e.Relay(c.gwc, c.gwu, idle, func(r Result) { ch <- r })
	if err != nil {
		t.Fatal(err)
	}
	return p, ch
}

func wait(t testing.TB, ch chan Result, d time.Duration) Result {
	t.Helper()
	select {
	case r := <-ch:
		select {
		case r2 := <-ch:
			t.Fatalf("done called twice: %+v %+v", r, r2)
		case <-time.After(20 * time.Millisecond):
		}
		return r
	case <-time.After(d):
		t.Fatalf("done not called within %v", d)
	}
	panic("unreachable")
}

func newEngine(t testing.TB, o Options) *Engine {
	t.Helper()
	e, err := NewEngine(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

const chunk = 256 << 10

func chunkData(seed uint64, i int, buf []byte) {
	r := rand.NewPCG(seed, uint64(i))
	for j := 0; j+8 <= len(buf); j += 8 {
		binary.LittleEndian.PutUint64(buf[j:], r.Uint64())
	}
}

// send writes total bytes of the seeded stream, then half-closes.
func send(c *net.TCPConn, seed uint64, total int) error {
	buf := make([]byte, chunk)
	for i := 0; i < total/chunk; i++ {
		chunkData(seed, i, buf)
		if _, err := c.Write(buf); err != nil {
			return fmt.Errorf("write chunk %d: %w", i, err)
		}
	}
	return c.CloseWrite()
}

// verify reads exactly the seeded stream and then EOF. slow reads in small
// pieces with pauses, so that the relay's writes to this socket hit EAGAIN.
func verify(c *net.TCPConn, seed uint64, total int, slow bool) error {
	got := make([]byte, chunk)
	want := make([]byte, chunk)
	for i := 0; i < total/chunk; i++ {
		if slow {
			for off := 0; off < chunk; {
				n, err := c.Read(got[off:min(off+16<<10, chunk)])
				off += n
				if err != nil {
					return fmt.Errorf("slow read chunk %d at %d: %w", i, off, err)
				}
				if off%(64<<10) == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		} else if _, err := io.ReadFull(c, got); err != nil {
			return fmt.Errorf("read chunk %d: %w", i, err)
		}
		chunkData(seed, i, want)
		if !bytes.Equal(got, want) {
			k := 0
			for got[k] == want[k] {
				k++
			}
			return fmt.Errorf("chunk %d differs at byte %d (stream offset %d)", i, k, i*chunk+k)
		}
	}
	n, err := c.Read(got[:1])
	if n != 0 || err != io.EOF {
		return fmt.Errorf("after %d bytes: want EOF, got %d bytes, %v", total, n, err)
	}
	return nil
}

// twoWay streams total bytes each way at once through one pair.
func twoWay(t *testing.T, e *Engine, lb *lab, seed uint64, total int, slowCli, slowSrv bool) {
	c := lb.chain(t)
	defer c.closeEnds()
	// A slow reader with a small receive buffer: the relay's writes to
	// its socket soon hit EAGAIN.
	if slowCli {
		_ = c.cli.SetReadBuffer(64 << 10)
		_ = c.gwc.SetWriteBuffer(64 << 10)
	}
	if slowSrv {
		_ = c.srv.SetReadBuffer(64 << 10)
		_ = c.gwu.SetWriteBuffer(64 << 10)
	}
	_, ch := relay(t, e, c, time.Minute)
	errs := make(chan error, 4)
	go func() { errs <- send(c.cli, seed, total) }()
	go func() { errs <- send(c.srv, seed+1, total) }()
	go func() { errs <- verify(c.srv, seed, total, slowSrv) }()
	go func() { errs <- verify(c.cli, seed+1, total, slowCli) }()
	for i := 0; i < 4; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	r := wait(t, ch, 10*time.Second)
	if r.Up != int64(total) || r.Down != int64(total) || r.Failed || r.IdleTimedOut {
		t.Fatalf("result %+v, want Up=Down=%d clean", r, total)
	}
}

func TestIntegrityTwoWay(t *testing.T) {
	size := 64 << 20
	runs := 4
	if testing.Short() {
		size, runs = 8<<20, 2
	}
	e := newEngine(t, Options{})
	lb := newLab(t)
	for i := 0; i < runs; i++ {
		t.Run(fmt.Sprintf("run%d", i), func(t *testing.T) {
			twoWay(t, e, lb, uint64(1000+i), size, false, false)
		})
	}
	// Several pairs at once on the same loops.
	t.Run("parallel4", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t.Run(fmt.Sprint(i), func(t *testing.T) { twoWay(t, e, lb, uint64(2000+i), size/4, false, false) })
			}()
		}
		wg.Wait()
	})
}

func TestIntegritySlowReader(t *testing.T) {
	size := 16 << 20
	if testing.Short() {
		size = 4 << 20
	}
	// A small pipe makes the pipe→dst EAGAIN path and partial writes common.
	for _, o := range []Options{{}, {PipeSize: 64 << 10, MaxIdlePipes: 1, Loops: 1}} {
		e := newEngine(t, o)
		lb := newLab(t)
		for _, tc := range []struct {
			name             string
			slowCli, slowSrv bool
		}{{"slow-client", true, false}, {"slow-server", false, true}, {"both-slow", true, true}} {
			t.Run(fmt.Sprintf("pipe%d/%s", o.PipeSize, tc.name), func(t *testing.T) {
				before := e.stalls.Load()
				twoWay(t, e, lb, 77, size, tc.slowCli, tc.slowSrv)
				stalls := e.stalls.Load() - before
				t.Logf("waited for EPOLLOUT %d times", stalls)
				if stalls == 0 {
					t.Errorf("the slow reader never made the relay wait for EPOLLOUT")
				}
			})
		}
	}
}

func TestHalfClose(t *testing.T) {
	e := newEngine(t, Options{})
	lb := newLab(t)
	c := lb.chain(t)
	defer c.closeEnds()
	_, ch := relay(t, e, c, time.Minute)
	req := bytes.Repeat([]byte("request "), 100000)
	ans := bytes.Repeat([]byte("answer! "), 300000)
	srvErr := make(chan error, 1)
	go func() {
		got, err := io.ReadAll(c.srv) // until the client's half-close
		if err != nil {
			srvErr <- err
			return
		}
		if !bytes.Equal(got, req) {
			srvErr <- fmt.Errorf("server got %d bytes, want %d", len(got), len(req))
			return
		}
		if _, err := c.srv.Write(ans); err != nil {
			srvErr <- err
			return
		}
		srvErr <- c.srv.Close()
	}()
	if _, err := c.cli.Write(req); err != nil {
		t.Fatal(err)
	}
	if err := c.cli.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c.cli)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, ans) {
		t.Fatalf("client got %d bytes, want %d", len(got), len(ans))
	}
	if err := <-srvErr; err != nil {
		t.Fatal(err)
	}
	r := wait(t, ch, 5*time.Second)
	if r != (Result{Up: int64(len(req)), Down: int64(len(ans))}) {
		t.Fatalf("result %+v", r)
	}
}

// The other direction keeps flowing for a long time after one half-close.
func TestHalfCloseLongTail(t *testing.T) {
	e := newEngine(t, Options{})
	lb := newLab(t)
	c := lb.chain(t)
	defer c.closeEnds()
	_, ch := relay(t, e, c, time.Minute)
	if err := c.srv.CloseWrite(); err != nil { // the server says nothing at all
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	go func() { errs <- send(c.cli, 5, 8<<20) }()
	go func() { errs <- verify(c.srv, 5, 8<<20, false) }()
	n, err := c.cli.Read(make([]byte, 1))
	if n != 0 || err != io.EOF {
		t.Fatalf("client: want EOF, got %d %v", n, err)
	}
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	r := wait(t, ch, 5*time.Second)
	if r != (Result{Up: 8 << 20}) {
		t.Fatalf("result %+v", r)
	}
}

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

func TestResetFromServer(t *testing.T) {
	e := newEngine(t, Options{})
	lb := newLab(t)
	c := lb.chain(t)
	defer c.closeEnds()
	_, ch := relay(t, e, c, time.Minute)
	// Some traffic first.
	if _, err := c.cli.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c.srv, buf); err != nil {
		t.Fatal(err)
	}
	_ = c.srv.SetLinger(0)
	c.srv.Close() // RST to the gateway's upstream socket
	_ = c.cli.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.cli.Read(buf)
	if !isReset(err) {
		t.Fatalf("client read: want ECONNRESET, got %v", err)
	}
	r := wait(t, ch, 5*time.Second)
	if !r.Failed || r.IdleTimedOut || r.Up != 5 {
		t.Fatalf("result %+v", r)
	}
}

func TestResetFromClient(t *testing.T) {
	e := newEngine(t, Options{})
	lb := newLab(t)
	c := lb.chain(t)
	defer c.closeEnds()
	_, ch := relay(t, e, c, time.Minute)
	// The client half-closes first, so that only the RST (no read) can
	// tell the gateway something went wrong.
	if err := c.cli.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if n, err := c.srv.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("server: want EOF from half-close, got %d %v", n, err)
	}
	_ = c.cli.SetLinger(0)
	c.cli.Close()
	r := wait(t, ch, 5*time.Second)
	if !r.Failed {
		t.Fatalf("result %+v, want Failed", r)
	}
	// The upstream socket was closed: the server sees the end (FIN).
	_ = c.srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.srv.Read(buf); n != 0 || err == nil {
		t.Fatalf("server: want end of stream, got %d %v", n, err)
	}
}

// Writing into a reset peer: the relay fails, the other side sees RST.
func TestResetWhileStreaming(t *testing.T) {
	e := newEngine(t, Options{})
	lb := newLab(t)
	c := lb.chain(t)
	defer c.closeEnds()
	_, ch := relay(t, e, c, time.Minute)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := c.srv.Write(buf); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 64<<10)
	if _, err := io.ReadFull(c.cli, buf); err != nil {
		t.Fatal(err)
	}
	_ = c.cli.SetLinger(0)
	c.cli.Close()
	r := wait(t, ch, 5*time.Second)
	if !r.Failed || r.Down < 64<<10 {
		t.Fatalf("result %+v", r)
	}
}

func TestIdleTimeoutBothIdle(t *testing.T) {
	e := newEngine(t, Options{})
	lb := newLab(t)
	c := lb.chain(t)
	defer c.closeEnds()
	start := time.Now()
	_, ch := relay(t, e, c, 300*time.Millisecond)
	if _, err := c.cli.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	r := wait(t, ch, 3*time.Second)
	el := time.Since(start)
	if !r.IdleTimedOut || !r.Failed || r.Up != 1 {
		t.Fatalf("result %+v", r)
	}
	if el < 300*time.Millisecond {
		t.Fatalf("timed out after %v, before the idle period", el)
	}
	t.Logf("idle pair closed after %v (idle 300ms)", el)
	_, err := c.cli.Read(make([]byte, 1))
	if !isReset(err) {
		t.Fatalf("client: want RST after idle timeout, got %v", err)
	}
}

// A one-way download lasting 3 s with idle=1s is not cut: a silent client
// direction does not make the pair idle while the other one moves.
func TestIdleTimeoutOneWayDownload(t *testing.T) {
	if testing.Short() {
		t.Skip("3 s")
	}
	e := newEngine(t, Options{})
	lb := newLab(t)
	c := lb.chain(t)
	defer c.closeEnds()
	_, ch := relay(t, e, c, time.Second)
	var sent atomic.Int64
	go func() {
		buf := bytes.Repeat([]byte("d"), 1000)
		end := time.Now().Add(3 * time.Second)
		for time.Now().Before(end) {
			if _, err := c.srv.Write(buf); err != nil {
				return
			}
			sent.Add(int64(len(buf)))
			time.Sleep(200 * time.Millisecond)
		}
		c.srv.CloseWrite()
	}()
	got, err := io.ReadAll(c.cli)
	if err != nil {
		t.Fatalf("download cut after %d bytes: %v", len(got), err)
	}
	if err := c.cli.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	r := wait(t, ch, 5*time.Second)
	if r.IdleTimedOut || r.Failed || r.Down != int64(len(got)) || r.Down != sent.Load() {
		t.Fatalf("result %+v, client got %d, server sent %d", r, len(got), sent.Load())
	}
}

func TestAbort(t *testing.T) {
	e := newEngine(t, Options{})
	lb := newLab(t)
	c := lb.chain(t)
	defer c.closeEnds()
	p, ch := relay(t, e, c, time.Minute)
	if _, err := c.cli.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c.srv, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	p.Abort()
	p.Abort() // idempotent
	r := wait(t, ch, 5*time.Second)
	if !r.Failed || r.IdleTimedOut || r.Up != 4 {
		t.Fatalf("result %+v", r)
	}
	_ = c.cli.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.cli.Read(make([]byte, 1)); !isReset(err) {
		t.Fatalf("client: want RST, got %v", err)
	}
	_ = c.srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.srv.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("server: want EOF, got %d %v", n, err)
	}
	p.Abort() // after the end: no effect
}

func TestEngineClose(t *testing.T) {
	e, err := NewEngine(Options{Loops: 2})
	if err != nil {
		t.Fatal(err)
	}
	lb := newLab(t)
	var chs []chan Result
	for i := 0; i < 10; i++ {
		c := lb.chain(t)
		defer c.closeEnds()
		_, ch := relay(t, e, c, 0)
		chs = append(chs, ch)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ch := range chs {
		if r := wait(t, ch, 5*time.Second); !r.Failed {
			t.Fatalf("result %+v", r)
		}
	}
	c := lb.chain(t)
	defer c.closeEnds()
	defer c.gwc.Close()
	defer c.gwu.Close()
	if _, err := e.Relay(c.gwc, c.gwu, 0, func(Result) {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Relay after Close: %v", err)
	}
	_ = e.Close()
}

// Data sent before Relay (already in the socket buffers) is relayed: edge
// triggering alone would only report it if it arrived after registration.
func TestDataBeforeRelay(t *testing.T) {
	e := newEngine(t, Options{})
	lb := newLab(t)
	c := lb.chain(t)
	defer c.closeEnds()
	if _, err := c.cli.Write([]byte("early-up")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.srv.Write([]byte("early-down")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	_, ch := relay(t, e, c, time.Minute)
	b := make([]byte, 10)
	_ = c.srv.SetReadDeadline(time.Now().Add(3 * time.Second))
	_ = c.cli.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.ReadFull(c.srv, b[:8]); err != nil || string(b[:8]) != "early-up" {
		t.Fatalf("server got %q %v", b[:8], err)
	}
	if _, err := io.ReadFull(c.cli, b); err != nil || string(b) != "early-down" {
		t.Fatalf("client got %q %v", b, err)
	}
	c.cli.CloseWrite()
	c.srv.CloseWrite()
	if r := wait(t, ch, 5*time.Second); r != (Result{Up: 8, Down: 10}) {
		t.Fatalf("result %+v", r)
	}
}

func countFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents) - 1 // the directory's own fd
}

func settleGC() {
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
}

// Every way a pair can end gives back all of its fds and pipes.
func TestNoFDLeak(t *testing.T) {
	lb := newLab(t)
	warm := lb.chain(t) // make sure Go's netpoller exists before counting
	warm.closeEnds()
	warm.gwc.Close()
	warm.gwu.Close()
	settleGC()
	before := countFDs(t)

	e, err := NewEngine(Options{Loops: 2, MaxIdlePipes: 4})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 60; i++ {
		c := lb.chain(t)
		// Only the pairs meant to idle out get a short idle timeout: on
		// a loaded machine (CI, -race) a transfer may pause for a while.
		idle := time.Minute
		if i%4 == 3 {
			idle = 2 * time.Second
		}
		p, ch := relay(t, e, c, idle)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer c.closeEnds()
			// Traffic both ways, bigger than one pipe for some.
			n := (i%5 + 1) * 300 << 10
			errs := make(chan error, 4)
			go func() { errs <- send(c.cli, uint64(i), n/chunk*chunk) }()
			go func() { errs <- verify(c.srv, uint64(i), n/chunk*chunk, false) }()
			if err := <-errs; err != nil {
				t.Error(err)
			}
			if err := <-errs; err != nil {
				t.Error(err)
			}
			switch i % 4 {
			case 0: // clean end
				c.srv.CloseWrite()
			case 1: // reset
				c.srv.SetLinger(0)
				c.srv.Close()
			case 2: // abort
				p.Abort()
			case 3: // idle timeout
			}
			r := wait(t, ch, 20*time.Second)
			if (i%4 == 0) == r.Failed {
				t.Errorf("pair %d: %+v", i, r)
			}
		}(i)
	}
	wg.Wait()
	// Pairs left in the engine at Close: some with bytes stuck in a pipe.
	var chs []chan Result
	for i := 0; i < 6; i++ {
		c := lb.chain(t)
		defer c.closeEnds()
		_, ch := relay(t, e, c, 0)
		chs = append(chs, ch)
		go func() { _ = send(c.srv, 1, 16<<20) }() // nobody reads the client side
	}
	time.Sleep(200 * time.Millisecond)
	mid := countFDs(t)
	t.Logf("fds: %d before the engine, %d with 6 stuck pairs open", before, mid)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ch := range chs {
		wait(t, ch, 5*time.Second)
	}
	settleGC()
	// The test's own ends of the stuck pairs are still open (closed by the
	// defers): 2 each.
	after := countFDs(t) - 2*len(chs)
	t.Logf("fds: %d before, %d after (not counting the test's own ends)", before, after)
	if after != before {
		t.Fatalf("fd leak: %d before, %d after", before, after)
	}
}

func vmRSS(t testing.TB) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// pingPong moves one byte each way through a chain.
func pingPong(t testing.TB, c *chain) {
	b := []byte{1}
	if _, err := c.cli.Write(b); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c.srv, b); err != nil {
		t.Fatal(err)
	}
	if _, err := c.srv.Write(b); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c.cli, b); err != nil {
		t.Fatal(err)
	}
}

// 3,000 idle pairs hold their 2 sockets each and nothing else; RSS per pair
// is logged, next to the goroutine+ReadFrom relay for comparison.
func TestIdlePairs(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 300
	}
	lb := newLab(t)
	e := newEngine(t, Options{MaxIdlePipes: 4})
	chains := make([]*chain, n)
	for i := range chains {
		chains[i] = lb.chain(t)
	}
	settleGC()
	fd0, rss0 := countFDs(t), vmRSS(t)
	chs := make([]chan Result, n)
	for i, c := range chains {
		_, chs[i] = relay(t, e, c, time.Hour) // with an idle timer armed
		pingPong(t, c)
	}
	time.Sleep(100 * time.Millisecond)
	settleGC()
	fd1, rss1 := countFDs(t), vmRSS(t)
	extra := fd1 - fd0
	t.Logf("engine: %d idle pairs: fds %d → %d (+%d beyond the pairs' 2 sockets: pooled pipes) = %.3f fds per pair; VmRSS %d → %d KiB = %.2f KiB per pair",
		n, fd0, fd1, extra, 2+float64(extra)/float64(n), rss0, rss1, float64(rss1-rss0)/float64(n))
	if limit := 2 * 4 * len(e.loops); extra > limit {
		t.Errorf("idle pairs hold %d fds beyond their sockets, want ≤ %d (the pipe pools)", extra, limit)
	}
	for _, c := range chains {
		c.closeEnds()
	}
	for _, ch := range chs {
		select {
		case r := <-ch:
			if r.Failed || r.Up != 1 || r.Down != 1 {
				t.Errorf("result %+v", r)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("done not called")
		}
	}

	// The same with two goroutines per pair calling ReadFrom (gateway/relay.go).
	m := min(n, 1000)
	chains = chains[:m]
	for i := range chains {
		chains[i] = lb.chain(t)
	}
	settleGC()
	fd0, rss0 = countFDs(t), vmRSS(t)
	var wg sync.WaitGroup
	for _, c := range chains {
		wg.Add(2)
		go func() { defer wg.Done(); c.gwu.ReadFrom(c.gwc); c.gwu.CloseWrite() }()
		go func() { defer wg.Done(); c.gwc.ReadFrom(c.gwu); c.gwc.CloseWrite() }()
		pingPong(t, c)
	}
	time.Sleep(100 * time.Millisecond)
	settleGC()
	fd1, rss1 = countFDs(t), vmRSS(t)
	t.Logf("ReadFrom goroutines: %d idle pairs: +%d fds = %.2f fds per pair; VmRSS %d → %d KiB = %.2f KiB per pair",
		m, fd1-fd0, 2+float64(fd1-fd0)/float64(m), rss0, rss1, float64(rss1-rss0)/float64(m))
	for _, c := range chains {
		c.closeEnds()
	}
	wg.Wait()
	for _, c := range chains {
		c.gwc.Close()
		c.gwu.Close()
	}
}

// BenchmarkRelayThroughput pushes 1 MiB per op client→server through one or
// four pairs, relayed by the Engine or by io.Copy goroutines (splice via
// ReadFrom, as gateway/relay.go does).
func BenchmarkRelayThroughput(b *testing.B) {
	for _, conns := range []int{1, 4} {
		for _, mode := range []string{"engine", "iocopy"} {
			b.Run(fmt.Sprintf("%s/conns=%d", mode, conns), func(b *testing.B) {
				benchRelay(b, mode, conns)
			})
		}
	}
}

func benchRelay(b *testing.B, mode string, conns int) {
	lb := newLab(b)
	var e *Engine
	if mode == "engine" {
		e = newEngine(b, Options{})
	}
	chains := make([]*chain, conns)
	var relays sync.WaitGroup
	for i := range chains {
		c := lb.chain(b)
		chains[i] = c
		if e != nil {
			relay(b, e, c, 0)
		} else {
			relays.Add(2)
			go func() { defer relays.Done(); io.Copy(c.gwu, c.gwc); c.gwu.CloseWrite() }()
			go func() { defer relays.Done(); io.Copy(c.gwc, c.gwu); c.gwc.CloseWrite() }()
		}
	}
	const op = 1 << 20
	b.SetBytes(op)
	b.ResetTimer()
	var wg sync.WaitGroup
	for i, c := range chains {
		ops := b.N / conns
		if i < b.N%conns {
			ops++
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			buf := make([]byte, op)
			for j := 0; j < ops; j++ {
				if _, err := c.cli.Write(buf); err != nil {
					b.Error(err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			buf := make([]byte, op)
			for left := int64(ops) * op; left > 0; {
				n, err := c.srv.Read(buf[:min(left, op)])
				left -= int64(n)
				if err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	for _, c := range chains {
		c.closeEnds()
	}
	relays.Wait()
	for _, c := range chains {
		if e == nil {
			c.gwc.Close()
			c.gwu.Close()
		}
	}
}
