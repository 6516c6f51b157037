package nat

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeProcSys writes a /proc/sys-like tree: key -> value.
func fakeProcSys(t *testing.T, values map[string]string) Sysctls {
	t.Helper()
	s := Sysctls{Root: t.TempDir()}
	for k, v := range values {
		p := s.path(k)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func (s Sysctls) mustGet(t *testing.T, key string) string {
	t.Helper()
	v, err := s.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// readOnly runs f where s.Root is read-only, as /proc/sys is in a
// container: as root, in a private mount namespace on a thread of its own
// (root ignores file modes) where Root is bind-mounted read-only (EROFS);
// otherwise by taking write permission away (EACCES). f must not call
// t.Fatal (it may run on another goroutine).
func readOnly(t *testing.T, s Sysctls, f func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		_ = filepath.WalkDir(s.Root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				err = os.Chmod(p, 0o444)
			}
			return err
		})
		f()
		return
	}
	done := make(chan error)
	go func() {
		// Never unlocked: the thread ends with its mount namespace.
		runtime.LockOSThread()
		err := unix.Unshare(unix.CLONE_NEWNS)
		if err == nil {
			err = unix.Mount("", "/", "", unix.MS_PRIVATE|unix.MS_REC, "")
		}
		if err == nil {
			err = unix.Mount(s.Root, s.Root, "", unix.MS_BIND, "")
		}
		if err == nil {
			err = unix.Mount("", s.Root, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, "")
		}
		if err == nil {
			f()
		}
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatalf("making %s read-only: %v", s.Root, err)
	}
}

func TestSysctlsSet(t *testing.T) {
	t.Parallel()
	s := fakeProcSys(t, map[string]string{"net.ipv4.ip_forward": "0", "net.ipv4.conf.eth0/100.send_redirects": "1"})
	if err := s.Set("net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	if v := s.mustGet(t, "net.ipv4.ip_forward"); v != "1" {
		t.Errorf("ip_forward = %q after Set, want 1", v)
	}
	// sysctl(8) spelling: a slash for a dot inside an interface name.
	if err := s.Set("net.ipv4.conf.eth0/100.send_redirects", "0"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(s.Root, "net/ipv4/conf/eth0.100/send_redirects")); string(b) != "0\n" {
		t.Errorf("eth0.100 send_redirects = %q, want 0", b)
	}
	err := s.Set("net.ipv4.conf.eth9.send_redirects", "0")
	if err == nil || !strings.Contains(err.Error(), "sysctl net.ipv4.conf.eth9.send_redirects does not exist") {
		t.Errorf("Set of a missing key = %v, want it to say the key does not exist", err)
	}
}

func TestSysctlsReadOnly(t *testing.T) {
	t.Parallel()
	s := fakeProcSys(t, map[string]string{
		"net.ipv4.ip_forward":                  "1",
		"net.ipv6.conf.all.forwarding":         "0",
		"net.ipv4.conf.all.send_redirects":     "0",
		"net.ipv4.conf.default.send_redirects": "0",
		"net.ipv4.conf.eth0.send_redirects":    "0",
		"net.ipv4.conf.docker0.send_redirects": "1", // not asked for: best effort
	})
	readOnly(t, s, func() {
		if err := s.Set("net.ipv4.ip_forward", "1"); err != nil {
			t.Errorf("read-only but already right: %v", err)
		}
		err := s.Set("net.ipv6.conf.all.forwarding", "1")
		want := "sysctl net.ipv6.conf.all.forwarding is 0 and cannot be set here"
		if err == nil || !strings.Contains(err.Error(), want) ||
			!strings.Contains(err.Error(), "run `sysctl -w net.ipv6.conf.all.forwarding=1`") {
			t.Errorf("read-only and wrong: %v\nwant %q and the sysctl -w to run", err, want)
		}
		if !errors.Is(err, unix.EROFS) && !errors.Is(err, unix.EACCES) {
			t.Errorf("error does not wrap EROFS or EACCES: %v", err)
		}
		err = s.EnableForwarding([]string{"eth0"})
		if err == nil || !strings.Contains(err.Error(), "sysctl -w net.ipv6.conf.all.forwarding=1") {
			t.Errorf("EnableForwarding = %v, want only the IPv6 forwarding hint", err)
		} else if strings.Contains(err.Error(), "docker0") || strings.Contains(err.Error(), "ip_forward") {
			t.Errorf("EnableForwarding complains about more than IPv6 forwarding: %v", err)
		}
		err = s.DisableForwarding()
		if err == nil || !strings.Contains(err.Error(), "sysctl -w net.ipv4.ip_forward=0") {
			t.Errorf("DisableForwarding = %v, want the hint to turn IPv4 forwarding off", err)
		}
	})
}

func TestEnableForwardingFake(t *testing.T) {
	t.Parallel()
	all := map[string]string{
		"net.ipv4.ip_forward":                   "0",
		"net.ipv6.conf.all.forwarding":          "0",
		"net.ipv4.conf.all.send_redirects":      "1",
		"net.ipv4.conf.default.send_redirects":  "1",
		"net.ipv4.conf.eth0.send_redirects":     "1",
		"net.ipv4.conf.eth1.send_redirects":     "1",
		"net.ipv4.conf.vlan/7.send_redirects":   "1",
		"net.ipv6.conf.eth0.forwarding":         "0",
		"net.ipv6.conf.default.forwarding":      "0",
		"net.ipv4.conf.lo.send_redirects":       "1",
		"net.ipv4.conf.default.accept_redirect": "1",
	}
	s := fakeProcSys(t, all)
	if err := s.EnableForwarding([]string{"eth0", "vlan.7", "eth0"}); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"net.ipv4.ip_forward":                  "1",
		"net.ipv6.conf.all.forwarding":         "1",
		"net.ipv4.conf.all.send_redirects":     "0",
		"net.ipv4.conf.default.send_redirects": "0",
		"net.ipv4.conf.eth0.send_redirects":    "0",
		"net.ipv4.conf.eth1.send_redirects":    "0",
		"net.ipv4.conf.vlan/7.send_redirects":  "0",
		"net.ipv4.conf.lo.send_redirects":      "0",
	} {
		if got := s.mustGet(t, k); got != want {
			t.Errorf("%s = %s, want %s", k, got, want)
		}
	}
	if err := s.DisableForwarding(); err != nil {
		t.Fatal(err)
	}
	if a, b := s.mustGet(t, "net.ipv4.ip_forward"), s.mustGet(t, "net.ipv6.conf.all.forwarding"); a != "0" || b != "0" {
		t.Errorf("after DisableForwarding: ip_forward %s, ipv6 forwarding %s; want 0 0", a, b)
	}

	// An interface that does not exist: an error, and forwarding stays off
	// (redirects could not be turned off).
	err := s.EnableForwarding([]string{"eth7"})
	if err == nil || !strings.Contains(err.Error(), "net.ipv4.conf.eth7.send_redirects does not exist") {
		t.Errorf("EnableForwarding(eth7) = %v", err)
	}
	if got := s.mustGet(t, "net.ipv4.ip_forward"); got != "0" {
		t.Errorf("ip_forward = %s after a failed EnableForwarding, want 0", got)
	}

	// A kernel without IPv6 has no net/ipv6: skipped, not an error.
	s4 := fakeProcSys(t, map[string]string{"net.ipv4.ip_forward": "0", "net.ipv4.conf.all.send_redirects": "1",
		"net.ipv4.conf.default.send_redirects": "1"})
	if err := s4.EnableForwarding(nil); err != nil {
		t.Errorf("IPv4-only kernel: %v", err)
	}
	if err := s4.DisableForwarding(); err != nil {
		t.Errorf("IPv4-only kernel: %v", err)
	}
}

// TestForwardingInNetNS uses the real /proc/sys of a fresh network
// namespace: its net/ tree is the namespace's, not the host's.
func TestForwardingInNetNS(t *testing.T) {
	t.Parallel()
	ns := newNS(t)
	host := Sysctls{}
	hostBefore := host.mustGet(t, "net.ipv4.ip_forward")
	ns.do(t, func() {
		if err := EnableForwarding([]string{"lo"}); err != nil {
			t.Fatal(err)
		}
		for k, want := range map[string]string{
			"net.ipv4.ip_forward":                  "1",
			"net.ipv4.conf.all.send_redirects":     "0",
			"net.ipv4.conf.default.send_redirects": "0",
			"net.ipv4.conf.lo.send_redirects":      "0",
		} {
			if got := host.mustGet(t, k); got != want {
				t.Errorf("%s = %s in the namespace, want %s", k, got, want)
			}
		}
		if host.hasIPv6() {
			if got := host.mustGet(t, "net.ipv6.conf.all.forwarding"); got != "1" {
				t.Errorf("ipv6 forwarding = %s, want 1", got)
			}
		}
		if err := DisableForwarding(); err != nil {
			t.Fatal(err)
		}
		if got := host.mustGet(t, "net.ipv4.ip_forward"); got != "0" {
			t.Errorf("ip_forward = %s after DisableForwarding, want 0", got)
		}
	})
	if got := host.mustGet(t, "net.ipv4.ip_forward"); got != hostBefore {
		t.Errorf("the host's ip_forward changed from %s to %s", hostBefore, got)
	}
}
