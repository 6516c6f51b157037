package nat

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// soOriginalDst is SO_ORIGINAL_DST (linux/netfilter_ipv4.h, level SOL_IP)
// and IP6T_SO_ORIGINAL_DST (linux/netfilter_ipv6/ip6_tables.h, level
// SOL_IPV6): both are 80.
const soOriginalDst = 80

// OriginalDst returns the destination the client dialed before nftables
// redirected the connection to egressd, as conntrack recorded it. An IPv4
// client on a dual-stack listener (its local address IPv4-mapped) is asked
// at the IPv4 level and comes back as a plain IPv4 address.
//
// For a connection that was not redirected it is the listener's own
// address (compare with c.LocalAddr() to refuse connections made straight
// to egressd). It fails when conntrack does not track the connection.
func OriginalDst(c *net.TCPConn) (netip.AddrPort, error) {
	la, ok := c.LocalAddr().(*net.TCPAddr)
	if !ok || la == nil {
		return netip.AddrPort{}, fmt.Errorf("SO_ORIGINAL_DST: connection has no local TCP address")
	}
	is6 := la.IP.To4() == nil
	rc, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("SO_ORIGINAL_DST: %w", err)
	}
	var ap netip.AddrPort
	var serr error
	err = rc.Control(func(fd uintptr) {
		if is6 {
			ap, serr = originalDst6(int(fd))
		} else {
			ap, serr = originalDst4(int(fd))
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("SO_ORIGINAL_DST: %w (conntrack does not know the connection: was it redirected by nftables?)", err)
	}
	return ap, nil
}

func originalDst4(fd int) (netip.AddrPort, error) {
	var sa unix.RawSockaddrInet4
	size := uint32(unsafe.Sizeof(sa))
	if err := getsockopt(fd, unix.SOL_IP, soOriginalDst, unsafe.Pointer(&sa), &size); err != nil {
		return netip.AddrPort{}, err
	}
	if sa.Family != unix.AF_INET {
		return netip.AddrPort{}, fmt.Errorf("unexpected address family %d", sa.Family)
	}
	return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port(sa.Port)), nil
}

func originalDst6(fd int) (netip.AddrPort, error) {
	var sa unix.RawSockaddrInet6
	size := uint32(unsafe.Sizeof(sa))
	if err := getsockopt(fd, unix.SOL_IPV6, soOriginalDst, unsafe.Pointer(&sa), &size); err != nil {
		return netip.AddrPort{}, err
	}
	if sa.Family != unix.AF_INET6 {
		return netip.AddrPort{}, fmt.Errorf("unexpected address family %d", sa.Family)
	}
	return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port(sa.Port)), nil
}

// port reads a sockaddr port, which is in network byte order in memory.
func port(p uint16) uint16 {
	return binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&p))[:])
}

func getsockopt(fd, level, name int, val unsafe.Pointer, size *uint32) error {
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(name),
		uintptr(val), uintptr(unsafe.Pointer(size)), 0)
	if errno != 0 {
		return errno
	}
	return nil
}
