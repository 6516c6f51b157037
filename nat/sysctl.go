package nat

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ProcSys is where the kernel exposes sysctls. Its net/ subtree belongs to
// the network namespace of the thread that opens a file there.
const ProcSys = "/proc/sys"

// Sysctls reads and writes sysctls as files under Root. The zero value
// uses ProcSys; tests point Root at a directory of their own.
type Sysctls struct {
	Root string
}

// path maps a sysctl(8) key to its file: dots separate the components and
// a slash stands for a dot inside one (net.ipv4.conf.eth0/100.send_redirects
// is the VLAN interface eth0.100), as sysctl(8) has it.
func (s Sysctls) path(key string) string {
	root := s.Root
	if root == "" {
		root = ProcSys
	}
	parts := strings.Split(key, ".")
	for i, p := range parts {
		parts[i] = strings.ReplaceAll(p, "/", ".")
	}
	return filepath.Join(append([]string{root}, parts...)...)
}

// ifaceKey writes an interface name as one sysctl key component.
func ifaceKey(iface string) string { return strings.ReplaceAll(iface, ".", "/") }

// Get returns the value of key ("net.ipv4.ip_forward"), spaces trimmed.
func (s Sysctls) Get(key string) (string, error) {
	b, err := os.ReadFile(s.path(key))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("sysctl %s does not exist (no such interface, or the protocol is disabled?)", key)
		}
		return "", fmt.Errorf("reading sysctl %s: %w", key, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Set makes key hold value. A value that is already right is left alone,
// so a read-only /proc/sys (a container) is fine as long as whoever set it
// up set it right; otherwise the error names the `sysctl -w` to run.
func (s Sysctls) Set(key, value string) error {
	cur, err := s.Get(key)
	if err != nil {
		return err
	}
	if cur == value {
		return nil
	}
	err = os.WriteFile(s.path(key), []byte(value+"\n"), 0o644)
	if err == nil {
		return nil
	}
	if errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
		var perr *fs.PathError
		if errors.As(err, &perr) {
			err = perr.Err // the path is the key, said already
		}
		return fmt.Errorf("sysctl %s is %s and cannot be set here (%w): run `sysctl -w %s=%s` as root "+
			"in egressd's network namespace (docker: --sysctl %s=%s), or give egressd a writable /proc/sys",
			key, cur, err, key, value, key, value)
	}
	return fmt.Errorf("setting sysctl %s=%s: %w", key, value, err)
}

// EnableForwarding turns ICMP redirects off, then IPv4 and IPv6
// forwarding on, in the calling thread's network namespace. IPv6 is
// skipped when the kernel has it disabled.
//
// The kernel sends redirects out of an interface when its own
// send_redirects or the "all" one is 1, so both must be 0: for all,
// default (interfaces created later) and ifaces (those clients come in
// on) a value that cannot be set is an error; for the other interfaces
// present it is tried and not required (the table's output chain drops
// ICMP redirects anyway). A one-armed NAT instance that sends redirects
// tells its clients to bypass it.
func EnableForwarding(ifaces []string) error { return Sysctls{}.EnableForwarding(ifaces) }

// DisableForwarding turns IPv4 and IPv6 forwarding off: a stopped gateway
// forwards nothing (fail closed).
func DisableForwarding() error { return Sysctls{}.DisableForwarding() }

// EnableForwarding is the package function EnableForwarding under s.Root.
// It reports every failure, and leaves forwarding alone when redirects
// could not be turned off.
func (s Sysctls) EnableForwarding(ifaces []string) error {
	var errs []error
	set := func(k, v string) {
		if err := s.Set(k, v); err != nil {
			errs = append(errs, err)
		}
	}
	// Redirects off before forwarding on: never both.
	set("net.ipv4.conf.all.send_redirects", "0")
	set("net.ipv4.conf.default.send_redirects", "0")
	seen := map[string]bool{"all": true, "default": true}
	for _, i := range ifaces {
		if i == "" || seen[i] {
			continue
		}
		seen[i] = true
		set("net.ipv4.conf."+ifaceKey(i)+".send_redirects", "0")
	}
	for _, i := range s.interfaces() {
		if !seen[i] {
			_ = s.Set("net.ipv4.conf."+ifaceKey(i)+".send_redirects", "0") // best effort
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...) // fail closed: no forwarding with redirects on
	}
	set("net.ipv4.ip_forward", "1")
	if s.hasIPv6() {
		set("net.ipv6.conf.all.forwarding", "1")
	}
	return errors.Join(errs...)
}

// DisableForwarding is the package function DisableForwarding under
// s.Root. It tries both families whatever the first one does.
func (s Sysctls) DisableForwarding() error {
	err := s.Set("net.ipv4.ip_forward", "0")
	if s.hasIPv6() {
		err = errors.Join(err, s.Set("net.ipv6.conf.all.forwarding", "0"))
	}
	return err
}

// interfaces lists the interfaces of the network namespace, as the
// directories of net/ipv4/conf.
func (s Sysctls) interfaces() []string {
	entries, err := os.ReadDir(filepath.Dir(s.path("net.ipv4.conf.all")))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

// hasIPv6 reports whether the kernel has IPv6 (ipv6.disable=1 removes the
// whole net/ipv6 tree).
func (s Sysctls) hasIPv6() bool {
	_, err := os.Stat(s.path("net.ipv6.conf.all.forwarding"))
	return err == nil
}
