package nat

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Sysctls writes network sysctls under Root (normally /proc/sys), which is
// per network namespace for the calling process.
type Sysctls struct {
	Root string
}

// DefaultSysctls writes /proc/sys.
var defaultSysctls = Sysctls{Root: "/proc/sys"}

// Set writes value to key ("net.ipv4.ip_forward"). When /proc/sys is
// read-only (a container), a value that is already right is accepted;
// otherwise the error says which `sysctl -w` to run.
func (s Sysctls) Set(key, value string) error {
	path := filepath.Join(s.Root, strings.ReplaceAll(key, ".", "/"))
	err := os.WriteFile(path, []byte(value+"\n"), 0o644)
	if err == nil {
		return nil
	}
	if cur, rerr := os.ReadFile(path); rerr == nil && strings.TrimSpace(string(cur)) == value {
		return nil // read-only, but already right
	}
	if errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("cannot set %s=%s (%v): run `sysctl -w %s=%s` on the host, or give egressd CAP_NET_ADMIN and a writable /proc/sys", key, value, err, key, value)
	}
	return fmt.Errorf("setting %s=%s: %w", key, value, err)
}

// EnableForwarding turns IPv4 and IPv6 forwarding on and ICMP redirects
// off on all interfaces and on ifaces: a one-armed NAT instance would
// otherwise tell its clients to bypass it.
func EnableForwarding(ifaces []string) error { return defaultSysctls.EnableForwarding(ifaces) }

// DisableForwarding turns forwarding off: a stopped gateway forwards
// nothing (fail closed).
func DisableForwarding() error { return defaultSysctls.DisableForwarding() }

// EnableForwarding: see the package-level function.
func (s Sysctls) EnableForwarding(ifaces []string) error {
	var errs []error
	set := func(k, v string) { errs = append(errs, s.Set(k, v)) }
	set("net.ipv4.ip_forward", "1")
	set("net.ipv4.conf.all.send_redirects", "0")
	set("net.ipv4.conf.default.send_redirects", "0")
	for _, i := range ifaces {
		set("net.ipv4.conf."+i+".send_redirects", "0")
	}
	if _, err := os.Stat(filepath.Join(s.Root, "net/ipv6")); err == nil {
		set("net.ipv6.conf.all.forwarding", "1")
	}
	return errors.Join(errs...)
}

// DisableForwarding: see the package-level function.
func (s Sysctls) DisableForwarding() error {
	err := s.Set("net.ipv4.ip_forward", "0")
	if _, serr := os.Stat(filepath.Join(s.Root, "net/ipv6")); serr == nil {
		err = errors.Join(err, s.Set("net.ipv6.conf.all.forwarding", "0"))
	}
	return err
}
