package lab

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
)

// Netns is one named network namespace of a lab.
type Netns struct {
	Name string
	lab  *Lab

	once   sync.Once
	handle netns.NsHandle
	err    error
}

func (n *Netns) open() (netns.NsHandle, error) {
	n.once.Do(func() { n.handle, n.err = netns.GetFromName(n.Name) })
	return n.handle, n.err
}

func (n *Netns) closeHandle() {
	if h, err := n.open(); err == nil {
		h.Close()
	}
}

// Command returns a command that runs inside the namespace.
func (n *Netns) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Run runs a command in the namespace and returns its combined output; the
// error includes the output.
func (n *Netns) Run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := n.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), n.Name, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Do runs f on an OS thread switched into the namespace. Sockets created
// by f stay in the namespace after f returns.
func (n *Netns) Do(f func() error) error {
	target, err := n.open()
	if err != nil {
		return fmt.Errorf("opening namespace %s: %w", n.Name, err)
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("entering namespace %s: %w", n.Name, err)
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: it dies with the goroutine instead of
		// running other goroutines in the wrong namespace.
		return errors.Join(ferr, fmt.Errorf("leaving namespace %s: %w", n.Name, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// Listen opens a listener inside the namespace.
func (n *Netns) Listen(network, addr string) (ln net.Listener, err error) {
	err = n.Do(func() error {
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// ListenPacket opens a packet listener inside the namespace.
func (n *Netns) ListenPacket(network, addr string) (pc net.PacketConn, err error) {
	err = n.Do(func() error {
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	return pc, err
}

// DialContext connects from inside the namespace. The socket is created in
// the namespace; the connect itself is waited for on the usual poller.
func (n *Netns) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	var c net.Conn
	err := n.Do(func() error {
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// HTTPClient returns a client whose connections start in the namespace,
// trusting roots, with no proxy.
func (n *Netns) HTTPClient(roots *x509.CertPool) *http.Client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         n.DialContext,
		TLSHandshakeTimeout: 5 * time.Second,
		DisableKeepAlives:   true,
	}
	tr.TLSClientConfig = tlsConfig(roots)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func syscallKill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }
