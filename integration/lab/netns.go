package lab

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/vishvananda/netns"
)

// Netns is one named network namespace of a lab (/run/netns/Name).
type Netns struct {
	// Name is the namespace's name, for `ip netns exec Name …` and
	// `ip -n Name …`.
	Name string

	lab *Lab
}

// Command returns a command that runs name with args inside the namespace
// (through `ip netns exec`, which also mounts the namespace's /sys). Run it
// like any exec.Cmd; to have the lab track and kill it, give it to
// StartCommand instead of starting it yourself.
func (n *Netns) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Run runs name with args inside the namespace and returns its combined
// output. The error includes the command and its output.
func (n *Netns) Run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := n.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s in namespace %s: %w: %s",
			strings.Join(append([]string{name}, args...), " "), n.Name, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Do runs f on an OS thread that is inside the namespace. Sockets f creates
// belong to the namespace for good, also once Do has returned: use the
// namespace's Listen, ListenPacket and DialContext, which are built on Do.
//
// f runs on a goroutine of its own, locked to its thread, which returns to
// the caller's namespace afterwards; if that fails the thread is not
// unlocked, so that the runtime ends it instead of reusing it. Goroutines
// that f starts run on other threads, outside the namespace, so f must open
// its sockets itself (this is why name resolution is not allowed here).
func (n *Netns) Do(f func() error) error {
	type result struct {
		err   error
		panic any
	}
	done := make(chan result, 1)
	go func() {
		var r result
		defer func() { done <- r }()
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			r.err = fmt.Errorf("lab: reading the current network namespace: %w", err)
			return
		}
		defer orig.Close()
		target, err := netns.GetFromName(n.Name)
		if err != nil {
			runtime.UnlockOSThread()
			r.err = fmt.Errorf("lab: opening namespace %s (was the lab closed?): %w", n.Name, err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			r.err = fmt.Errorf("lab: entering namespace %s: %w", n.Name, err)
			return
		}
		func() {
			defer func() { r.panic = recover() }()
			r.err = f()
		}()
		if err := netns.Set(orig); err != nil {
			// Stay locked: the thread exits with this goroutine rather
			// than running others in the wrong namespace.
			r.err = errors.Join(r.err, fmt.Errorf("lab: leaving namespace %s: %w", n.Name, err))
			return
		}
		runtime.UnlockOSThread()
	}()
	r := <-done
	if r.panic != nil {
		panic(r.panic)
	}
	return r.err
}

// literalHost rejects addresses whose host part would need name resolution.
func literalHost(network, addr string) error {
	if strings.HasPrefix(network, "unix") {
		return nil
	}
	host := addr
	if strings.HasPrefix(network, "tcp") || strings.HasPrefix(network, "udp") {
		h, _, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("lab: address %q: %w", addr, err)
		}
		host = h
	}
	if host == "" {
		return nil
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return fmt.Errorf("lab: address %q: use an IP address, not a name (names would be resolved outside the namespace)", addr)
	}
	return nil
}

// Listen opens a listener inside the namespace. addr must be an IP
// literal or empty host with a port, e.g. "203.0.113.10:443" or ":80".
func (n *Netns) Listen(network, addr string) (net.Listener, error) {
	if err := literalHost(network, addr); err != nil {
		return nil, err
	}
	var ln net.Listener
	err := n.Do(func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listening on %s %s in namespace %s: %w", network, addr, n.Name, err)
	}
	return ln, nil
}

// ListenPacket opens a packet listener (UDP, raw IP) inside the namespace.
// addr is an IP literal or empty host, as for Listen.
func (n *Netns) ListenPacket(network, addr string) (net.PacketConn, error) {
	if err := literalHost(network, addr); err != nil {
		return nil, err
	}
	var pc net.PacketConn
	err := n.Do(func() (err error) {
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listening on %s %s in namespace %s: %w", network, addr, n.Name, err)
	}
	return pc, nil
}

// DialContext connects from inside the namespace to addr, an IP literal
// with a port ("203.0.113.10:443", "[2001:db8:203::10]:443").
func (n *Netns) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return n.DialWith(ctx, &net.Dialer{}, network, addr)
}

// DialWith is DialContext with the caller's dialer: a LocalAddr to choose
// the source address (OtherClientAddr4, say), a Control function, keep-alive
// settings. The dialer's Resolver and fallback settings are not used.
func (n *Netns) DialWith(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
	if err := literalHost(network, addr); err != nil {
		return nil, err
	}
	dd := *d
	dd.FallbackDelay = -1 // one address, one goroutine: this one
	dd.Resolver = nil
	var c net.Conn
	err := n.Do(func() (err error) {
		c, err = dd.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// DialTLS connects from inside the namespace to addr (an IP literal with a
// port) and completes a TLS handshake with config: set config.ServerName to
// the SNI to send, and RootCAs (CA.Pool) to check the answer. Any address
// with any SNI: the way to test what the gateway does with a name that does
// not belong to the address dialed.
func (n *Netns) DialTLS(ctx context.Context, addr string, config *tls.Config) (*tls.Conn, error) {
	raw, err := n.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, config)
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

// HTTPClient returns an HTTP client whose connections start inside the
// namespace, that trusts roots (nil: the system's roots) and uses no proxy.
// URLs must name IP addresses; HTTPClientResolving maps names. Each request
// uses a new connection (no keep-alive), over HTTP/2 when the server offers
// it.
func (n *Netns) HTTPClient(roots *x509.CertPool) *http.Client {
	return n.HTTPClientResolving(roots, nil)
}

// HTTPClientResolving is HTTPClient with a static name table, like curl's
// --resolve: a URL host found in hosts is dialed at that address, while the
// Host header and the TLS SNI keep the name.
func (n *Netns) HTTPClientResolving(roots *x509.CertPool, hosts map[string]netip.Addr) *http.Client {
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if host, port, err := net.SplitHostPort(addr); err == nil {
				if a, ok := hosts[host]; ok {
					addr = net.JoinHostPort(a.String(), port)
				}
			}
			return n.DialContext(ctx, network, addr)
		},
		TLSClientConfig:     &tls.Config{RootCAs: roots},
		TLSHandshakeTimeout: 5 * time.Second,
		DisableKeepAlives:   true,
		ForceAttemptHTTP2:   true,
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}
