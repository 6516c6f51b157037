// Package sniff reads the first message of a connection — a TLS ClientHello
// or an HTTP/1.x request head — without losing a byte: the bytes consumed
// are returned (or kept in a bufio.Reader) so that the gateway can replay
// them upstream after deciding.
//
// Readers are bounded (64 KiB for a ClientHello, a caller-chosen limit for
// HTTP heads) and strict: what is malformed or ambiguous is an error, never
// guessed at, because a client that lies must not be able to make egressd
// check one name while the server acts on another. Errors are sentinel
// values (ErrNotTLS, ErrMalformed, ErrAmbiguous, ErrTooLarge, ErrTimeout,
// ErrTruncated) that errors.Is can test and Reason turns into a metric
// label.
package sniff

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
)

// Errors returned by the readers; each is wrapped with detail.
var (
	ErrNotTLS    = errors.New("not a TLS handshake")
	ErrMalformed = errors.New("malformed")
	ErrAmbiguous = errors.New("ambiguous")
	ErrTooLarge  = errors.New("too large")
	ErrTimeout   = errors.New("timed out")
	ErrTruncated = errors.New("connection ended before the message was complete")
)

// Reason returns a short label for err, for logs and metrics:
// not_tls, malformed, ambiguous, too_large, timeout, truncated, or io.
func Reason(err error) string {
	switch {
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
