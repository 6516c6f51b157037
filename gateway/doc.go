// Package gateway serves the connections nftables redirects to egressd.
//
// For each accepted connection it finds the original destination
// (SO_ORIGINAL_DST), sniffs the TLS ClientHello or the HTTP request head
// under a deadline, asks the policy, and then refuses the connection or dials
// the upstream that the upstream mode allows and splices the two sockets.
// The per-connection functions read top to bottom in that order (tls.go,
// http.go); the copy loop is in relay.go, the choice of upstream in
// upstream.go, and the access log in accesslog.go.
//
// Settings that a reload may change (policy, upstream, limits) live in an
// immutable Settings value swapped atomically: a connection uses the
// snapshot it started with, and a reload revokes open connections whose name
// the new policy no longer allows.
package gateway
