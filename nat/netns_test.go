package nat

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netns"
)

// testNS is a named network namespace made for one test (named, so that
// `ip netns exec` can run nft in it) and deleted when the test ends,
// whatever happened.
type testNS struct {
	name string
	fd   netns.NsHandle
}

// requireRoot skips tests that need CAP_NET_ADMIN.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) to create network namespaces: run `sudo go test ./nat/`")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2 (`ip`) to build network namespaces")
	}
}

// newNS creates a network namespace with lo up.
func newNS(t *testing.T) testNS {
	t.Helper()
	requireRoot(t)
	name := fmt.Sprintf("egdnat%08x", rand.Uint32())
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	fd, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("opening netns %s: %v", name, err)
	}
	t.Cleanup(func() { fd.Close() })
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return testNS{name: name, fd: fd}
}

// tables returns Tables bound to the namespace, skipping the test when
// the kernel has no nftables.
func (n testNS) tables(t *testing.T) *Tables {
	t.Helper()
	tb, err := New(WithNetNS(int(n.fd)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Installed(); err != nil {
		if errors.Is(err, ErrUnavailable) {
			t.Skipf("nftables unavailable: %v", err)
		}
		t.Fatal(err)
	}
	return tb
}

// do runs f on an OS thread switched into the namespace, so that sockets
// it opens and /proc/sys/net files it touches are the namespace's. The
// thread is switched back before it is released; if that fails the
// thread stays locked and dies with the goroutine.
func (n testNS) do(t *testing.T, f func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("netns.Get: %v", err)
	}
	defer orig.Close()
	if err := netns.Set(n.fd); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("entering netns %s: %v", n.name, err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			t.Errorf("leaving netns %s: %v (thread retired)", n.name, err)
			return
		}
		runtime.UnlockOSThread()
	}()
	if cur, err := netns.Get(); err != nil || !cur.Equal(n.fd) || cur.Equal(orig) {
		t.Fatalf("thread is not in netns %s (err %v): refusing to touch the host", n.name, err)
	} else {
		cur.Close()
	}
	f()
}

// nft runs the nft CLI in the namespace (tests only: the package never
// needs it).
func (n testNS) nft(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs the nft CLI to inspect the ruleset")
	}
	return run(t, append([]string{"ip", "netns", "exec", n.name, "nft"}, args...)...)
}

// ip runs `ip -n NS args...`.
func (n testNS) ip(t *testing.T, args ...string) string {
	t.Helper()
	return run(t, append([]string{"ip", "-n", n.name}, args...)...)
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
