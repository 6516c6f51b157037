// Package sniff reads the first message of a connection — a TLS ClientHello
// or an HTTP/1.x request head — so that egressd can decide on the name the
// client asked for before a single byte goes upstream, and then forward the
// connection as if egressd had never looked.
//
// Two properties make that safe.
//
// Lossless: nothing read is swallowed. ReadClientHello returns every byte it
// took from the connection, on success and on error, including bytes that
// arrived after the hello in the same read; the gateway writes them
// upstream first and then splices. The HTTP readers work on the caller's
// bufio.Reader: Request.Head and Response.Head are the exact bytes of the
// head, and whatever follows (a body, a pipelined request, the bytes after
// a 101) stays buffered in the reader. CopyChunked passes a chunked body
// through byte for byte, trailers included.
//
// Bounded and strict: a ClientHello may be split over many TCP segments and
// TLS records and is reassembled, but never beyond MaxHelloSize; HTTP heads
// are bounded by the caller's limit and chunk lines by a fixed one. The
// deadline is the caller's (set it on the connection); a timeout is
// ErrTimeout. Whatever is malformed or ambiguous — two server names, two
// Host fields, Content-Length beside Transfer-Encoding, obsolete line
// folding — is an error, never guessed at, because a client that lies must
// not make egressd check one name while the server acts on another. Names
// are returned as sent, neither lower-cased nor validated: the policy
// package normalises them and denies what is not a hostname.
//
// Errors are the sentinel values below, wrapped with detail; test them
// with errors.Is. Reason turns an error into a metric label. io.EOF (from
// the HTTP readers) means the connection ended cleanly before a message
// began.
package sniff

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
)

// Errors returned by the readers, wrapped with detail (test them with
// errors.Is). The gateway answers ErrMalformed and ErrAmbiguous in HTTP
// with 400 and in TLS with a reset; the others mean the client did not send
// a usable message in time or in size.
var (
	// ErrNotTLS: the first bytes on a TLS port are not a TLS handshake
	// record (plain HTTP, SSH, an SSLv2 hello...).
	ErrNotTLS = errors.New("not a TLS handshake")
	// ErrMalformed: the message breaks its protocol's syntax or framing
	// rules (bad lengths, trailing bytes, obsolete line folding, both
	// Content-Length and Transfer-Encoding...).
	ErrMalformed = errors.New("malformed")
	// ErrAmbiguous: a ClientHello that could be read as naming more than
	// one server (a repeated extension, several server names).
	ErrAmbiguous = errors.New("ambiguous")
	// ErrTooLarge: the message exceeds its bound (MaxHelloSize, the
	// caller's head limit, a chunk line over 4 KiB).
	ErrTooLarge = errors.New("too large")
	// ErrTimeout: the connection's deadline passed before the message was
	// complete. The error also wraps the underlying net error.
	ErrTimeout = errors.New("timed out")
	// ErrTruncated: the connection ended in the middle of the message
	// (for a ClientHello, also before its first byte).
	ErrTruncated = errors.New("connection ended before the message was complete")
)

// Reason returns a short label for err, for logs and metrics:
// not_tls, malformed, ambiguous, too_large, timeout, truncated, or io
// (any other error, io.EOF included); "" for nil.
func Reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrNotTLS):
		return "not_tls"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, ErrAmbiguous):
		return "ambiguous"
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	case errors.Is(err, ErrTimeout):
		return "timeout"
	case errors.Is(err, ErrTruncated):
		return "truncated"
	}
	return "io"
}

// readError classifies an error from the underlying reader.
func readError(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return ErrTruncated
	}
	return err
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}
