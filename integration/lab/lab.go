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
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Interface names. They are the same in every lab (each lab has its own
// namespaces) and fit IFNAMSIZ.
const (
	ClientIf         = "c0"    // client's end of the client–gateway veth
	GatewayInsideIf  = "gin"   // gateway's end facing the clients
	GatewayOutsideIf = "gout"  // gateway's end facing the internet: its default route
	InternetIf       = "inet0" // internet's end of the gateway–internet veth
	OriginIf         = "lo"    // the internet namespace's interface holding the origin addresses
)

// The address plan (see the package documentation). These are fixed values
// shared by every lab; treat them as constants.
var (
	ClientAddr4         = netip.MustParseAddr("10.77.1.2")                 // the client, on ClientIf
	ClientAddr6         = netip.MustParseAddr("2001:db8:77:1::2")          // the client, on ClientIf
	OtherClientAddr4    = netip.MustParseAddr("10.77.1.3")                 // a second client address (secondary: never the default source)
	OtherClientAddr6    = netip.MustParseAddr("2001:db8:77:1::3")          // a second client address (deprecated: never the default source)
	ClientNet4          = netip.MustParsePrefix("10.77.1.0/24")            // the client link: egressd's intercept.sources
	ClientNet6          = netip.MustParsePrefix("2001:db8:77:1::/64")      // the client link: egressd's intercept.sources
	GatewayInsideAddr4  = netip.MustParseAddr("10.77.1.1")                 // the clients' default gateway, on GatewayInsideIf
	GatewayInsideAddr6  = netip.MustParseAddr("2001:db8:77:1::1")          // the clients' default gateway, on GatewayInsideIf
	GatewayOutsideAddr4 = netip.MustParseAddr("198.51.100.1")              // the gateway's address to the internet, on GatewayOutsideIf
	GatewayOutsideAddr6 = netip.MustParseAddr("2001:db8:100::1")           // the gateway's address to the internet, on GatewayOutsideIf
	InternetAddr4       = netip.MustParseAddr("198.51.100.2")              // the gateway's default route, on InternetIf
	InternetAddr6       = netip.MustParseAddr("2001:db8:100::2")           // the gateway's default route, on InternetIf
	DNSAddr4            = netip.MustParseAddrPort("198.51.100.53:53")      // for StartDNS and egressd's upstream.resolver
	DNSAddr6            = netip.MustParseAddrPort("[2001:db8:100::53]:53") // the same, IPv6
	FirstOrigin4        = netip.MustParseAddr("203.0.113.10")              // Lab.Origins4[0]; the others follow
	FirstOrigin6        = netip.MustParseAddr("2001:db8:203::10")          // Lab.Origins6[0]; the others follow
)

// DefaultOrigins is the number of origin addresses per family when
// Options.Origins is zero: 203.0.113.10–.19 and 2001:db8:203::10–::19.
const DefaultOrigins = 10

// maxOrigins keeps the IPv4 origins inside 203.0.113.10–.254.
const maxOrigins = 245

// Options shape a lab. The zero value is a complete lab.
type Options struct {
	// Origins is the number of origin addresses per family in the internet
	// namespace (default DefaultOrigins, at most 245).
	Origins int

	// Cleanup, when set, is given the lab's Close once the lab exists, so
	// that it is removed even if the caller fails later: pass t.Cleanup in
	// a test. (Close's error is dropped there; call Close yourself to see it.)
	Cleanup func(func())

	// failAt makes New fail before its n-th setup step (tests of cleanup).
	failAt int
}

// Lab is one client / gateway / internet trio of namespaces and everything
// started in it. Close removes all of it.
type Lab struct {
	// ID is the lab's name prefix, "egd<pid>x<random>"; every namespace of
	// the lab is named ID-role.
	ID string

	Client, Gateway, Internet *Netns

	// Origins4 and Origins6 are the "internet" server addresses, on the
	// internet namespace's loopback interface.
	Origins4, Origins6 []netip.Addr

	mu      sync.Mutex
	closed  bool
	nss     []*Netns
	procs   []*Process
	closers []func()
}

// Check reports why a lab cannot be built here: not root, or ip or one of
// tools missing from PATH. Tests skip with its message.
func Check(tools ...string) error {
	if os.Geteuid() != 0 {
		return errors.New("lab: needs root (network namespaces); run the tests as root, e.g. with sudo")
	}
	for _, t := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("lab: needs %s in PATH (install it, e.g. apt-get install iproute2 tcpdump)", t)
		}
	}
	return nil
}

// New builds a lab: the three namespaces, the veth pairs, the addresses and
// the routes of the address plan. It deletes the namespaces of dead runs
// first (Sweep). On error everything built so far is removed again.
func New(ctx context.Context, opts Options) (_ *Lab, err error) {
	l, err := emptyLab(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer l.closeOnError(&err)
	if l.Client, err = l.NewNetns(ctx, "client"); err != nil {
		return nil, err
	}
	if l.Gateway, err = l.NewNetns(ctx, "gw"); err != nil {
		return nil, err
	}
	if l.Internet, err = l.NewNetns(ctx, "inet"); err != nil {
		return nil, err
	}
	for i, step := range l.plan() {
		if opts.failAt > 0 && i+1 >= opts.failAt {
			return nil, fmt.Errorf("lab: setup step %d: failing on purpose (test)", i+1)
		}
		if err := ip(ctx, step...); err != nil {
			return nil, fmt.Errorf("lab: building the topology: %w", err)
		}
	}
	for ns, ifaces := range map[*Netns][]string{
		l.Client:   {ClientIf},
		l.Gateway:  {GatewayInsideIf, GatewayOutsideIf},
		l.Internet: {InternetIf},
	} {
		if err := ns.WaitLinksUp(ctx, ifaces...); err != nil {
			return nil, err
		}
	}
	if opts.Cleanup != nil {
		opts.Cleanup(func() { _ = l.Close() })
	}
	return l, nil
}

// emptyLab checks the options, sweeps dead labs and returns an empty lab
// with its ID and origin addresses, and no namespaces yet.
func emptyLab(ctx context.Context, opts Options) (*Lab, error) {
	if err := Check(); err != nil {
		return nil, err
	}
	n := opts.Origins
	if n == 0 {
		n = DefaultOrigins
	}
	if n < 0 || n > maxOrigins {
		return nil, fmt.Errorf("lab: Options.Origins is %d; want 1..%d", opts.Origins, maxOrigins)
	}
	_, _ = Sweep()
	l := &Lab{}
	var err error
	if l.ID, err = newID(ctx); err != nil {
		return nil, err
	}
	a4, a6 := FirstOrigin4, FirstOrigin6
	for range n {
		l.Origins4 = append(l.Origins4, a4)
		l.Origins6 = append(l.Origins6, a6)
		a4, a6 = a4.Next(), a6.Next()
	}
	return l, nil
}

// plan is the list of ip(8) invocations that build the topology. The links
// go up first: the kernel may take up to a second to declare a new veth's
// carrier up, which overlaps with the rest.
func (l *Lab) plan() [][]string {
	c, g, in := l.Client.Name, l.Gateway.Name, l.Internet.Name
	addr := func(ns, dev string, a netip.Addr, bits int, extra ...string) []string {
		s := []string{"-n", ns}
		if a.Is6() {
			s = append(s, "-6")
		}
		s = append(s, "addr", "add", netip.PrefixFrom(a, bits).String(), "dev", dev)
		if a.Is6() {
			s = append(s, "nodad")
		}
		return append(s, extra...)
	}
	var steps [][]string
	for _, ns := range []string{c, g, in} {
		// No duplicate address detection, for link-local addresses too:
		// while it runs (a second or more) neighbour discovery stalls.
		steps = append(steps, []string{"netns", "exec", ns, "sysctl", "-qw",
			"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"})
	}
	steps = append(steps,
		[]string{"-n", c, "link", "add", ClientIf, "type", "veth", "peer", "name", GatewayInsideIf, "netns", g},
		[]string{"-n", g, "link", "add", GatewayOutsideIf, "type", "veth", "peer", "name", InternetIf, "netns", in},
		[]string{"-n", c, "link", "set", ClientIf, "up"},
		[]string{"-n", g, "link", "set", GatewayInsideIf, "up"},
		[]string{"-n", g, "link", "set", GatewayOutsideIf, "up"},
		[]string{"-n", in, "link", "set", InternetIf, "up"},
	)
	for _, ns := range []string{c, g, in} {
		steps = append(steps, []string{"-n", ns, "link", "set", "lo", "up"})
	}
	steps = append(steps,
		addr(c, ClientIf, ClientAddr4, 24),
		addr(c, ClientIf, ClientAddr6, 64),
		// The other client address is secondary (IPv4) or deprecated (IPv6),
		// so the kernel never picks it as a source by itself.
		addr(c, ClientIf, OtherClientAddr4, 24),
		addr(c, ClientIf, OtherClientAddr6, 64, "preferred_lft", "0"),
		addr(g, GatewayInsideIf, GatewayInsideAddr4, 24),
		addr(g, GatewayInsideIf, GatewayInsideAddr6, 64),
		addr(g, GatewayOutsideIf, GatewayOutsideAddr4, 24),
		addr(g, GatewayOutsideIf, GatewayOutsideAddr6, 64),
		addr(in, InternetIf, InternetAddr4, 24),
		addr(in, InternetIf, InternetAddr6, 64),
		// The DNS addresses sit on the link (not on lo) so that the gateway
		// reaches them by neighbour discovery, without a route.
		addr(in, InternetIf, DNSAddr4.Addr(), 24),
		addr(in, InternetIf, DNSAddr6.Addr(), 64),
	)
	for i := range l.Origins4 {
		steps = append(steps,
			addr(in, OriginIf, l.Origins4[i], 32),
			addr(in, OriginIf, l.Origins6[i], 128))
	}
	return append(steps,
		[]string{"-n", c, "-4", "route", "add", "default", "via", GatewayInsideAddr4.String()},
		[]string{"-n", c, "-6", "route", "add", "default", "via", GatewayInsideAddr6.String()},
		[]string{"-n", g, "-4", "route", "add", "default", "via", InternetAddr4.String()},
		[]string{"-n", g, "-6", "route", "add", "default", "via", InternetAddr6.String()},
		[]string{"-n", in, "-4", "route", "add", "10.77.0.0/16", "via", GatewayOutsideAddr4.String()},
		[]string{"-n", in, "-6", "route", "add", "2001:db8:77::/48", "via", GatewayOutsideAddr6.String()},
	)
}

// WaitLinksUp waits until each named interface of ns is operationally up
// (carrier on). A new veth can take up to a second to get there, and until
// then the packets sent over it are lost. New waits for its own links;
// call this after Veth.
func (n *Netns) WaitLinksUp(ctx context.Context, ifaces ...string) error {
	var h *netlink.Handle
	if err := n.Do(func() (err error) {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	}); err != nil {
		return fmt.Errorf("lab: netlink in namespace %s: %w", n.Name, err)
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for _, name := range ifaces {
		for {
			link, err := h.LinkByName(name)
			if err != nil {
				return fmt.Errorf("lab: interface %s in namespace %s: %w", name, n.Name, err)
			}
			a := link.Attrs()
			if a.OperState == netlink.OperUp ||
				a.OperState == netlink.OperUnknown && a.RawFlags&unix.IFF_LOWER_UP != 0 { // lo, dummy
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("lab: interface %s in namespace %s is %s, not up: %w",
					name, n.Name, link.Attrs().OperState, ctx.Err())
			case <-tick.C:
			}
		}
	}
	return nil
}

// NewNetns adds a namespace named ID-role to the lab (for example a second
// gateway); Close deletes it. The namespace has only a loopback interface,
// down; connect it with Veth and configure it with Run("ip", ...).
func (l *Lab) NewNetns(ctx context.Context, role string) (*Netns, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errors.New("lab: NewNetns on a closed lab")
	}
	ns := &Netns{Name: l.ID + "-" + role, lab: l}
	if err := ip(ctx, "netns", "add", ns.Name); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	l.nss = append(l.nss, ns)
	return ns, nil
}

// Veth connects two namespaces of the lab with a veth pair, aIf in a and
// bIf in b, sets both ends up and waits for their carrier. The pair is created directly in the
// namespaces, never in the host's.
func (l *Lab) Veth(ctx context.Context, a *Netns, aIf string, b *Netns, bIf string) error {
	for _, name := range []string{aIf, bIf} {
		if len(name) == 0 || len(name) > 15 {
			return fmt.Errorf("lab: interface name %q: want 1..15 bytes", name)
		}
	}
	for _, step := range [][]string{
		{"-n", a.Name, "link", "add", aIf, "type", "veth", "peer", "name", bIf, "netns", b.Name},
		{"-n", a.Name, "link", "set", aIf, "up"},
		{"-n", b.Name, "link", "set", bIf, "up"},
	} {
		if err := ip(ctx, step...); err != nil {
			return fmt.Errorf("lab: %w", err)
		}
	}
	if err := a.WaitLinksUp(ctx, aIf); err != nil {
		return err
	}
	return b.WaitLinksUp(ctx, bIf)
}

// EnableKernelForwarding makes the gateway a plain router, with no egressd:
// the baseline of benchmarks. egressd turns forwarding on by itself.
func (l *Lab) EnableKernelForwarding(ctx context.Context) error {
	_, err := l.Gateway.Run(ctx, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	return err
}

// DisableKernelForwarding undoes EnableKernelForwarding.
func (l *Lab) DisableKernelForwarding(ctx context.Context) error {
	_, err := l.Gateway.Run(ctx, "sysctl", "-qw", "net.ipv4.ip_forward=0", "net.ipv6.conf.all.forwarding=0")
	return err
}

// Close stops everything the lab started — servers, captures, processes
// (by process group) and any other process still inside its namespaces (by
// PID) — and deletes the namespaces. It is safe to call more than once and
// on a lab whose New failed half-way; later calls return nil.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	procs, closers, nss := l.procs, l.closers, l.nss
	l.procs, l.closers, l.nss = nil, nil, nil
	l.mu.Unlock()

	for _, p := range procs {
		p.kill()
	}
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
	for _, p := range procs {
		p.waitKilled(5 * time.Second)
	}
	var errs []error
	for _, ns := range nss {
		killAll(ns.Name)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := ip(ctx, "netns", "del", ns.Name); err != nil {
			errs = append(errs, fmt.Errorf("lab: deleting namespace %s (remove it with `ip netns del %s`): %w", ns.Name, ns.Name, err))
		}
		cancel()
	}
	return errors.Join(errs...)
}

// closeOnError removes the lab if *err is set: deferred by the
// constructors, so that a failed build leaves nothing behind.
func (l *Lab) closeOnError(err *error) {
	if *err == nil {
		return
	}
	if cerr := l.Close(); cerr != nil {
		*err = fmt.Errorf("%w (and cleaning up: %v)", *err, cerr)
	}
}

// track registers p to be killed by Close; it fails if the lab is closed.
func (l *Lab) track(p *Process) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("lab: the lab is closed")
	}
	// Forget the processes that have ended: a long benchmark starts many.
	l.procs = slices.DeleteFunc(l.procs, (*Process).Exited)
	l.procs = append(l.procs, p)
	return nil
}

// onClose registers f to be run by Close, before the namespaces go.
func (l *Lab) onClose(f func()) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("lab: the lab is closed")
	}
	l.closers = append(l.closers, f)
	return nil
}

// namePrefix is "egd", the creating PID (so that Sweep can tell a dead run),
// "x" and a random part (so that labs of one process differ).
const namePrefix = "egd"

// newID picks an ID no existing namespace uses.
func newID(ctx context.Context) (string, error) {
	existing, err := listNetns(ctx)
	if err != nil {
		return "", err
	}
	for range 10 {
		var b [3]byte
		_, _ = rand.Read(b[:])
		id := namePrefix + strconv.Itoa(os.Getpid()) + "x" + hex.EncodeToString(b[:])
		clash := false
		for _, name := range existing {
			if strings.HasPrefix(name, id+"-") {
				clash = true
			}
		}
		if !clash {
			return id, nil
		}
	}
	return "", errors.New("lab: no free namespace name (too many labs of this process?)")
}

// Sweep deletes the namespaces of labs whose creating process is gone (a
// test binary that was killed before its cleanup ran), killing whatever
// still runs in them. It returns the names it deleted. New calls it.
func Sweep() ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	names, err := listNetns(ctx)
	if err != nil {
		return nil, err
	}
	var deleted []string
	var errs []error
	for _, name := range names {
		pid, ok := creatorPID(name)
		if !ok || processAlive(pid) {
			continue
		}
		killAll(name)
		if err := ip(ctx, "netns", "del", name); err != nil {
			errs = append(errs, fmt.Errorf("lab: sweeping stale namespace %s: %w", name, err))
			continue
		}
		deleted = append(deleted, name)
	}
	return deleted, errors.Join(errs...)
}

// creatorPID parses "egd<pid>x<hex>-<role>".
func creatorPID(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, namePrefix)
	if !ok {
		return 0, false
	}
	pidText, rest, ok := strings.Cut(rest, "x")
	if !ok {
		return 0, false
	}
	random, role, ok := strings.Cut(rest, "-")
	if !ok || role == "" || random == "" {
		return 0, false
	}
	if _, err := hex.DecodeString(random); err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(pidText)
	if err != nil || pid <= 0 || strconv.Itoa(pid) != pidText {
		return 0, false
	}
	return pid, true
}

func processAlive(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

// listNetns returns the names of the named network namespaces.
func listNetns(ctx context.Context) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err != nil {
		return nil, fmt.Errorf("lab: ip netns list: %w", err)
	}
	var names []string
	for line := range strings.Lines(string(out)) {
		if name, _, _ := strings.Cut(strings.TrimSpace(line), " "); name != "" {
			names = append(names, name)
		}
	}
	return names, nil
}

// killAll SIGKILLs every process inside the namespace, never this process
// or its parent (this process shows up there while one of its threads is
// inside the namespace).
func killAll(ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "pids", ns).Output()
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 1 || pid == os.Getpid() || pid == os.Getppid() {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// ip runs ip(8) with a deadline; the error carries its output.
func ip(ctx context.Context, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
