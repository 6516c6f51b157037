// Package nat is egressd's side of the kernel: the `inet egressd`
// nftables table that redirects the clients' web traffic to egressd and
// decides what happens to the rest, the sysctls a gateway needs
// (forwarding on, ICMP redirects off), the default routes, and the
// original destination of a redirected connection (OriginalDst).
//
// The ruleset is a Go value (Ruleset) rendered to nftables objects with
// github.com/google/nftables and sent in one atomic netlink batch: no
// `nft` binary is needed at run time, a stale table left by a crashed run
// is replaced in the same batch, never duplicated, and a batch the kernel
// refuses changes nothing. After Install, `nft list table inet egressd`
// shows:
//
//   - sets sources4 and sources6 (intervals, Ruleset.Sources) and
//     http_ports and tls_ports;
//   - chain prerouting (nat, dstnat): traffic addressed to the gateway
//     itself (fib daddr type local) returns untouched; TCP from the sources
//     to http_ports / tls_ports is redirected to the listen ports;
//   - chain forward (filter, policy drop): established and related
//     packets accepted; the sources' other traffic dropped, rejected (TCP
//     reset, ICMP admin-prohibited) or accepted per Ruleset.Other;
//   - chain postrouting (nat, srcnat), with Other masquerade only: the
//     sources' forwarded traffic is masqueraded;
//   - chain output: ICMP and ICMPv6 redirects dropped;
//   - a named counter on every rule, read with Tables.Counters.
//
// Sysctls are files under /proc/sys, whose net/ tree belongs to the
// network namespace of the calling thread; Sysctls takes another root for
// tests. Everything here works in the caller's network namespace, or for
// Tables the one given with WithNetNS.
package nat
