package lab

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// The ports an Origin serves on each of its addresses.
const (
	HTTPPort  = 80
	HTTPSPort = 443
	// EchoPort serves a TCP echo and a UDP echo: traffic that is neither
	// HTTP nor TLS, for intercept.other.
	EchoPort = 22
)

// Origin is a set of "internet" servers: on each of its addresses, HTTP on
// HTTPPort, HTTPS on HTTPSPort (HTTP/2 and HTTP/1.1, one certificate for all
// its names) and echo on EchoPort (TCP and UDP).
//
// Every HTTP answer names the address that served it, so a test can prove
// which address the gateway dialed:
//
//	origin=203.0.113.10 host=allowed.example proto=https sni=allowed.example alpn=h2 peer=198.51.100.1
//
// (origin: the local address; host: the Host header; sni and alpn: HTTPS
// only; peer: the address the connection came from.) The answer carries the
// origin in an X-Origin header too. Requests may ask for:
//
//	/?bytes=N        a body of N bytes instead (a repeating a–z pattern)
//	/?delay=1s       an answer delayed by a Go duration (for drain tests)
//	/upgrade         (HTTP/1.1) "101 Switching Protocols", Upgrade: echo,
//	                 then every byte sent is echoed back
//
// It counts accepted TCP connections per address and port (Accepted,
// AcceptedOn) and UDP datagrams per address (Datagrams), so a test can
// assert that an address was never reached.
type Origin struct {
	mu        sync.Mutex
	closed    bool
	accepted  map[netip.AddrPort]int
	datagrams map[netip.Addr]int
	closers   []io.Closer
	servers   []*http.Server
	conns     map[net.Conn]struct{} // echo and upgraded connections
}

// StartOrigin starts the servers on each of addrs inside ns (normally
// l.Internet with l.Origins4 and l.Origins6), with a certificate from ca
// for names. The lab's Close stops them.
func StartOrigin(ns *Netns, addrs []netip.Addr, ca *CA, names []string) (*Origin, error) {
	if len(names) == 0 {
		return nil, errors.New("lab: StartOrigin needs the names its certificate covers")
	}
	cert, err := ca.Issue(names...)
	if err != nil {
		return nil, err
	}
	o := &Origin{accepted: map[netip.AddrPort]int{}, datagrams: map[netip.Addr]int{}, conns: map[net.Conn]struct{}{}}
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	for _, a := range addrs {
		if err := o.serve(ns, a, tlsConf); err != nil {
			o.Close()
			return nil, err
		}
	}
	if ns.lab != nil {
		if err := ns.lab.onClose(o.Close); err != nil {
			o.Close()
			return nil, err
		}
	}
	return o, nil
}

func (o *Origin) serve(ns *Netns, a netip.Addr, tlsConf *tls.Config) error {
	listen := func(port uint16) (net.Listener, error) {
		ln, err := ns.Listen("tcp", netip.AddrPortFrom(a, port).String())
		if err != nil {
			return nil, err
		}
		o.addCloser(ln)
		return &countingListener{Listener: ln, o: o, at: netip.AddrPortFrom(a, port)}, nil
	}
	httpLn, err := listen(HTTPPort)
	if err != nil {
		return err
	}
	httpsLn, err := listen(HTTPSPort)
	if err != nil {
		return err
	}
	echoLn, err := listen(EchoPort)
	if err != nil {
		return err
	}
	pc, err := ns.ListenPacket("udp", netip.AddrPortFrom(a, EchoPort).String())
	if err != nil {
		return err
	}
	o.addCloser(pc)

	plain := &http.Server{Handler: o.handler("http"), ReadHeaderTimeout: 10 * time.Second}
	// ServeTLS adds to its config: one copy per server.
	secure := &http.Server{Handler: o.handler("https"), ReadHeaderTimeout: 10 * time.Second, TLSConfig: tlsConf.Clone()}
	o.mu.Lock()
	o.servers = append(o.servers, plain, secure)
	o.mu.Unlock()
	go func() { _ = plain.Serve(httpLn) }()
	go func() { _ = secure.ServeTLS(httpsLn, "", "") }()
	go o.echoTCP(echoLn)
	go o.echoUDP(pc, a)
	return nil
}

func (o *Origin) addCloser(c io.Closer) {
	o.mu.Lock()
	o.closers = append(o.closers, c)
	o.mu.Unlock()
}

// Accepted is the number of TCP connections addr accepted, on any port.
func (o *Origin) Accepted(addr netip.Addr) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for ap, k := range o.accepted {
		if ap.Addr() == addr {
			n += k
		}
	}
	return n
}

// AcceptedOn is the number of TCP connections accepted on one address and
// port.
func (o *Origin) AcceptedOn(ap netip.AddrPort) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.accepted[ap]
}

// Datagrams is the number of UDP datagrams addr received on EchoPort.
func (o *Origin) Datagrams(addr netip.Addr) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.datagrams[addr]
}

// Close stops the servers and closes their connections. Calling it again
// does nothing.
func (o *Origin) Close() {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	o.closed = true
	closers, servers, conns := o.closers, o.servers, o.conns
	o.conns = nil
	o.mu.Unlock()
	for _, s := range servers {
		_ = s.Close()
	}
	for _, c := range closers {
		_ = c.Close()
	}
	for c := range conns {
		_ = c.Close()
	}
}

// hold records a connection Close must close; false if already closed.
func (o *Origin) hold(c net.Conn) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return false
	}
	o.conns[c] = struct{}{}
	return true
}

func (o *Origin) release(c net.Conn) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.conns, c)
	_ = c.Close()
}

func (o *Origin) handler(proto string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := "?"
		if local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			if ap, err := netip.ParseAddrPort(local.String()); err == nil {
				origin = ap.Addr().Unmap().String()
			}
		}
		peer := r.RemoteAddr
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			peer = ap.Addr().Unmap().String()
		}
		w.Header().Set("X-Origin", origin)
		if r.URL.Path == "/upgrade" {
			o.upgrade(w, r)
			return
		}
		q := r.URL.Query()
		if s := q.Get("delay"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil {
				http.Error(w, "delay: "+err.Error(), http.StatusBadRequest)
				return
			}
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		if s := q.Get("bytes"); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 0 {
				http.Error(w, "bytes: want a count", http.StatusBadRequest)
				return
			}
			writePattern(w, n)
			return
		}
		line := fmt.Sprintf("origin=%s host=%s proto=%s", origin, r.Host, proto)
		if r.TLS != nil {
			line += fmt.Sprintf(" sni=%s alpn=%s", r.TLS.ServerName, r.TLS.NegotiatedProtocol)
		}
		fmt.Fprintf(w, "%s peer=%s\n", line, peer)
	})
}

// writePattern writes n bytes of "abc…z" repeated.
func writePattern(w http.ResponseWriter, n int64) {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	var buf [32 << 10]byte
	for i := range buf {
		buf[i] = 'a' + byte(i%26)
	}
	for n > 0 {
		// Each chunk starts at 'a' again: keep chunks a multiple of 26.
		k, err := w.Write(buf[:min(n, int64(len(buf)/26*26))])
		if err != nil {
			return
		}
		n -= int64(k)
	}
}

// upgrade answers 101 and echoes the connection's bytes.
func (o *Origin) upgrade(w http.ResponseWriter, r *http.Request) {
	hj, ok := w.(http.Hijacker)
	if !ok || r.ProtoMajor != 1 {
		http.Error(w, "upgrade needs HTTP/1.1", http.StatusHTTPVersionNotSupported)
		return
	}
	c, rw, err := hj.Hijack()
	if err != nil {
		return
	}
	if !o.hold(c) {
		c.Close()
		return
	}
	defer o.release(c)
	fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
	if rw.Flush() != nil {
		return
	}
	// rw.Reader holds whatever the client sent after the request head.
	_, _ = io.Copy(c, rw.Reader)
}

func (o *Origin) echoTCP(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if !o.hold(c) {
			c.Close()
			return
		}
		go func() {
			defer o.release(c)
			_, _ = io.Copy(c, bufio.NewReader(c))
		}()
	}
}

func (o *Origin) echoUDP(pc net.PacketConn, a netip.Addr) {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		o.mu.Lock()
		o.datagrams[a]++
		o.mu.Unlock()
		_, _ = pc.WriteTo(buf[:n], from)
	}
}

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	o  *Origin
	at netip.AddrPort
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.o.mu.Lock()
		l.o.accepted[l.at]++
		l.o.mu.Unlock()
	}
	return c, err
}
