// Package nat is egressd's side of the kernel: the `inet egressd` nftables
// table that redirects the clients' web traffic to egressd and decides what
// happens to the rest, the sysctls a gateway needs (forwarding on, ICMP
// redirects off), the default routes, and the original destination of a
// redirected connection (SO_ORIGINAL_DST).
//
// The ruleset is a Go value (Ruleset) rendered to nftables objects with
// github.com/google/nftables and sent in one atomic netlink batch: no `nft`
// binary is needed at run time, and a stale table left by a crashed run is
// replaced in the same batch, never duplicated.
package nat
