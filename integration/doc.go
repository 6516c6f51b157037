// Package integration holds egressd's end-to-end tests: the real binary in
// a client / gateway / internet namespace lab (integration/lab), real
// nftables rules, real clients (curl, openssl, Go crypto/tls), a real DNS
// server and origin servers, and tcpdump on the gateway's outside interface.
// They need root and skip with a message otherwise.
package integration
