// Package lab builds a throw-away network in Linux network namespaces for
// egressd's integration tests, `egressd demo` and benchmarks:
//
//	 client ns                    gateway ns                         internet ns
//	┌─────────────┐  veth   ┌─────────────────────────┐  veth   ┌──────────────────────────┐
//	│ c0          │─────────│ gin            gout     │─────────│ inet0                    │
//	│ 10.77.1.2   │         │ 10.77.1.1      .100.1   │         │ 198.51.100.2 (DNS :53)   │
//	│ 2001:db8:77:1::2      │ 2001:db8:77:1::1        │         │ 2001:db8:100::2          │
//	│ default via gateway   │ default via internet    │         │ origins on its lo:       │
//	└─────────────┘         └─────────────────────────┘         │ 203.0.113.10-.., 2001:db8:203::10-.. │
//	                                                             └──────────────────────────┘
//
// Only documentation ranges and 10.77.0.0/16 are used, nothing is routed
// to the host's namespace, and every socket a test opens from Go is opened
// inside a lab namespace (Netns.Listen, Netns.DialContext). Close kills the
// lab's processes by PID and deletes its namespaces; Sweep removes labs left
// by runs that died.
package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Addresses of the lab.
var (
	ClientAddr4          = netip.MustParseAddr("10.77.1.2")
	ClientAddr6          = netip.MustParseAddr("2001:db8:77:1::2")
	GatewayInsideAddr4   = netip.MustParseAddr("10.77.1.1")
	GatewayInsideAddr6   = netip.MustParseAddr("2001:db8:77:1::1")
	GatewayOutsideAddr4  = netip.MustParseAddr("198.51.100.1")
	GatewayOutsideAddr6  = netip.MustParseAddr("2001:db8:100::1")
	InternetAddr4        = netip.MustParseAddr("198.51.100.2")
	InternetAddr6        = netip.MustParseAddr("2001:db8:100::2")
	ClientNet4           = netip.MustParsePrefix("10.77.1.0/24")
	ClientNet6           = netip.MustParsePrefix("2001:db8:77:1::/64")
	DNSAddr4             = netip.AddrPortFrom(InternetAddr4, 53)
	DNSAddr6             = netip.AddrPortFrom(InternetAddr6, 53)
	firstOrigin4         = netip.MustParseAddr("203.0.113.10")
	firstOrigin6         = netip.MustParseAddr("2001:db8:203::10")
	GatewayInsideIf      = "gin"
	GatewayOutsideIf     = "gout"
	ClientIf             = "c0"
	InternetIf           = "inet0"
	OriginIf             = "lo" // origins live on the internet namespace's loopback
	defaultOriginsPerFam = 8
)

// Options shape a lab.
type Options struct {
	Origins int // addresses per family on the internet side (default 8)
}

// Lab is a client / gateway / internet namespace trio.
type Lab struct {
	Client, Gateway, Internet *Netns
	// Origins4 and Origins6 are the "internet" server addresses.
	Origins4, Origins6 []netip.Addr

	prefix string
	mu     sync.Mutex
	procs  []*Process
	closed bool
	extra  []*Netns
}

// New builds a lab. On error everything built so far is removed.
func New(ctx context.Context, opts Options) (_ *Lab, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("lab: network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, errors.New("lab: the ip command (iproute2) is missing")
	}
	Sweep()
	n := opts.Origins
	if n <= 0 {
		n = defaultOriginsPerFam
	}
	l := &Lab{prefix: namePrefix()}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	for _, p := range []struct {
		ns   **Netns
		role string
	}{{&l.Client, "client"}, {&l.Gateway, "gw"}, {&l.Internet, "inet"}} {
		ns, err := l.NewNetns(ctx, p.role)
		if err != nil {
			return nil, err
		}
		*p.ns = ns
	}
	a4, a6 := firstOrigin4, firstOrigin6
	for i := 0; i < n; i++ {
		l.Origins4 = append(l.Origins4, a4)
		l.Origins6 = append(l.Origins6, a6)
		a4, a6 = a4.Next(), a6.Next()
	}
	c, g, in := l.Client.Name, l.Gateway.Name, l.Internet.Name
	steps := [][]string{
		{"-n", c, "link", "add", ClientIf, "type", "veth", "peer", "name", GatewayInsideIf, "netns", g},
		{"-n", g, "link", "add", GatewayOutsideIf, "type", "veth", "peer", "name", InternetIf, "netns", in},
		{"-n", c, "addr", "add", ClientAddr4.String() + "/24", "dev", ClientIf},
		{"-n", c, "addr", "add", ClientAddr6.String() + "/64", "dev", ClientIf, "nodad"},
		{"-n", g, "addr", "add", GatewayInsideAddr4.String() + "/24", "dev", GatewayInsideIf},
		{"-n", g, "addr", "add", GatewayInsideAddr6.String() + "/64", "dev", GatewayInsideIf, "nodad"},
		{"-n", g, "addr", "add", GatewayOutsideAddr4.String() + "/24", "dev", GatewayOutsideIf},
		{"-n", g, "addr", "add", GatewayOutsideAddr6.String() + "/64", "dev", GatewayOutsideIf, "nodad"},
		{"-n", in, "addr", "add", InternetAddr4.String() + "/24", "dev", InternetIf},
		{"-n", in, "addr", "add", InternetAddr6.String() + "/64", "dev", InternetIf, "nodad"},
	}
	for i := range l.Origins4 {
		steps = append(steps,
			[]string{"-n", in, "addr", "add", l.Origins4[i].String() + "/32", "dev", OriginIf},
			[]string{"-n", in, "addr", "add", l.Origins6[i].String() + "/128", "dev", OriginIf, "nodad"})
	}
	for _, ns := range []string{c, g, in} {
		steps = append(steps, []string{"-n", ns, "link", "set", "lo", "up"})
	}
	steps = append(steps,
		[]string{"-n", c, "link", "set", ClientIf, "up"},
		[]string{"-n", g, "link", "set", GatewayInsideIf, "up"},
		[]string{"-n", g, "link", "set", GatewayOutsideIf, "up"},
		[]string{"-n", in, "link", "set", InternetIf, "up"},
		[]string{"-n", c, "route", "add", "default", "via", GatewayInsideAddr4.String()},
		[]string{"-n", c, "-6", "route", "add", "default", "via", GatewayInsideAddr6.String()},
		[]string{"-n", g, "route", "add", "default", "via", InternetAddr4.String()},
		[]string{"-n", g, "-6", "route", "add", "default", "via", InternetAddr6.String()},
		[]string{"-n", in, "route", "add", "10.77.0.0/16", "via", GatewayOutsideAddr4.String()},
		[]string{"-n", in, "-6", "route", "add", "2001:db8:77::/48", "via", GatewayOutsideAddr6.String()},
	)
	for _, s := range steps {
		if err := ip(ctx, s...); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// NewNetns adds one more namespace to the lab (deleted by Close).
func (l *Lab) NewNetns(ctx context.Context, role string) (*Netns, error) {
	name := l.prefix + "-" + role
	if err := ip(ctx, "netns", "add", name); err != nil {
		return nil, err
	}
	ns := &Netns{Name: name, lab: l}
	l.mu.Lock()
	l.extra = append(l.extra, ns)
	l.mu.Unlock()
	return ns, nil
}

// EnableKernelForwarding makes the gateway a plain router (no egressd):
// the baseline of benchmarks.
func (l *Lab) EnableKernelForwarding(ctx context.Context) error {
	_, err := l.Gateway.Run(ctx, "sh", "-c", "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1")
	return err
}

// Close kills every process the lab started and deletes its namespaces.
// It is safe to call more than once.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	procs := l.procs
	nss := l.extra
	l.mu.Unlock()
	for _, p := range procs {
		p.Kill()
	}
	var errs []error
	for _, ns := range nss {
		ns.closeHandle()
		if err := ip(context.Background(), "netns", "del", ns.Name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (l *Lab) track(p *Process) {
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
}

// namePrefix encodes the PID so that Sweep can tell dead runs.
func namePrefix() string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return "egd" + strconv.Itoa(os.Getpid()) + "x" + hex.EncodeToString(b[:])
}

// Sweep deletes the namespaces of labs whose creating process is gone.
func Sweep() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if !strings.HasPrefix(name, "egd") {
			continue
		}
		pidStr, _, ok := strings.Cut(strings.TrimPrefix(name, "egd"), "x")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil {
			continue
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil && pid != 0 {
			continue
		}
		_ = exec.Command("ip", "netns", "pids", name).Run()
		if pids, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil {
			for _, p := range strings.Fields(string(pids)) {
				if n, err := strconv.Atoi(p); err == nil {
					_ = syscallKill(n)
				}
			}
		}
		_ = exec.Command("ip", "netns", "del", name).Run()
	}
}

func ip(ctx context.Context, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
