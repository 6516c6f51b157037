package sniff

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// Request is the head of one HTTP/1.x request.
type Request struct {
	Method, Target, Proto string
	// Host is the host the origin server will act on — from an
	// absolute-form target, else from the Host header — without its port
	// and without IPv6 brackets, as sent (not lower-cased).
	Host          string
	Port          string // "" when none was given
	ContentLength int64  // -1 when the request has no Content-Length
	Chunked       bool   // Transfer-Encoding: chunked
	Upgrade       bool   // an Upgrade header and "upgrade" in Connection
	Close         bool   // the client will send no further request
	Head          []byte // the exact bytes of the head, to forward
}

// BodyKind says how a response body is delimited (RFC 9112 §6.3).
type BodyKind uint8

// The body kinds.
const (
	BodyNone       BodyKind = iota // HEAD, 1xx, 204, 304
	BodyLength                     // Content-Length bytes
	BodyChunked                    // chunked transfer coding
	BodyUntilClose                 // everything until the server closes
)

// Response is the head of one HTTP/1.x response.
type Response struct {
	Status        int
	Proto         string
	ContentLength int64 // -1 when absent
	Chunked       bool  // chunked is the final transfer coding (even when Body is BodyNone, as for HEAD)
	Close         bool  // the server will close after this response
	Head          []byte
	body          BodyKind
}

// Body says how the response body that follows the head is delimited.
func (r *Response) Body() BodyKind { return r.body }

// header is one parsed field of a head.
type header struct{ name, value []byte }

// headLines bounds the lines of a head kept on the stack; a head with more
// lines (rare) makes the slice grow on the heap.
const headLines = 32

// readHead reads lines up to and including the empty line that ends a
// head. Lines must end in CRLF; obsolete line folding is refused. lines is
// the caller's (stack) storage for the lines found.
func readHead(r *bufio.Reader, limit int, lines [][]byte) (head []byte, _ [][]byte, err error) {
	start := 0
	for {
		line, err := r.ReadSlice('\n')
		if head == nil && len(line) > 0 {
			// One allocation in the usual case: the head is already in
			// the reader's buffer, up to its empty line.
			size := len(line) + r.Buffered()
			if rest, _ := r.Peek(r.Buffered()); len(rest) > 0 {
				if i := bytes.Index(rest, []byte("\r\n\r\n")); i >= 0 {
					size = len(line) + i + 4
				}
			}
			head = make([]byte, 0, max(min(size, limit+1), 0))
		}
		head = append(head, line...)
		if len(head) > limit {
			return nil, nil, fmt.Errorf("%w: head over %d bytes", ErrTooLarge, limit)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue // a line longer than the reader's buffer
		}
		if err != nil {
			if len(head) == 0 && errors.Is(err, io.EOF) {
				return nil, nil, io.EOF
			}
			return nil, nil, readError(err)
		}
		full := head[start:]
		if len(full) < 2 || full[len(full)-2] != '\r' {
			return nil, nil, malformed("line not ended by CRLF")
		}
		content := full[:len(full)-2]
		start = len(head)
		if len(content) == 0 {
			if len(lines) == 0 {
				// RFC 9112 §2.2: an empty line before the request line
				// may be ignored (a client's stray CRLF after a body).
				if len(head) > 8 {
					return nil, nil, malformed("empty lines before the start line")
				}
				continue
			}
			return head, lines, nil
		}
		if bytes.IndexByte(content, '\r') >= 0 {
			return nil, nil, malformed("bare CR in a line")
		}
		if len(lines) > 0 && (content[0] == ' ' || content[0] == '\t') {
			return nil, nil, malformed("obsolete line folding")
		}
		lines = append(lines, content)
	}
}

// parseHeaders splits field lines, strictly: a token name, the colon right
// after it, no control characters in the value. hs is the caller's
// (stack) storage.
func parseHeaders(lines [][]byte, hs []header) ([]header, error) {
	for _, l := range lines {
		i := bytes.IndexByte(l, ':')
		if i <= 0 {
			return nil, malformed("header line without a name: %q", truncate(l))
		}
		name := l[:i]
		for _, c := range name {
			if !isTokenChar(c) {
				return nil, malformed("invalid character %q in header name %q", c, truncate(name))
			}
		}
		value := bytes.Trim(l[i+1:], " \t")
		for _, c := range value {
			if (c < 0x20 && c != '\t') || c == 0x7f {
				return nil, malformed("control character in header %q", truncate(name))
			}
		}
		hs = append(hs, header{name, value})
	}
	return hs, nil
}

// parseFields parses the field lines of a head into its framing, with the
// fields parsed into a stack buffer (no allocation for a usual head).
func parseFields(lines [][]byte) (framing, error) {
	var buf [headLines]header
	hs, err := parseHeaders(lines, buf[:0])
	if err != nil {
		return framing{}, err
	}
	return parseFraming(hs)
}

// framing reads Content-Length, Transfer-Encoding and Connection.
type framing struct {
	contentLength int64
	connClose     bool
	connKeepAlive bool
	connUpgrade   bool
	upgradeHeader bool
	host          []byte   // the first Host value
	hosts         int      // how many Host fields there are
	te            [][]byte // the Transfer-Encoding field values, in order
}

func parseFraming(hs []header) (framing, error) {
	f := framing{contentLength: -1}
	for _, h := range hs {
		switch {
		case asciiEqualFold(h.name, "content-length"):
			// RFC 9112 §6.3: a list of identical values is one value.
			for elem, rest, more := nextElement(h.value); ; elem, rest, more = nextElement(rest) {
				n, ok := parseDigits(elem, 18)
				if !ok {
					return f, malformed("Content-Length %q", truncate(h.value))
				}
				if f.contentLength >= 0 && f.contentLength != n {
					return f, malformed("conflicting Content-Length values")
				}
				f.contentLength = n
				if !more {
					break
				}
			}
		case asciiEqualFold(h.name, "transfer-encoding"):
			f.te = append(f.te, h.value)
		case asciiEqualFold(h.name, "connection"):
			for tok, rest, more := nextElement(h.value); ; tok, rest, more = nextElement(rest) {
				switch {
				case asciiEqualFold(tok, "close"):
					f.connClose = true
				case asciiEqualFold(tok, "keep-alive"):
					f.connKeepAlive = true
				case asciiEqualFold(tok, "upgrade"):
					f.connUpgrade = true
				}
				if !more {
					break
				}
			}
		case asciiEqualFold(h.name, "upgrade"):
			f.upgradeHeader = true
		case asciiEqualFold(h.name, "host"):
			if f.hosts == 0 {
				f.host = h.value
			}
			f.hosts++
		}
	}
	if len(f.te) > 0 && f.contentLength >= 0 {
		return f, malformed("both Content-Length and Transfer-Encoding (request smuggling)")
	}
	return f, nil
}

// nextElement splits the first element off a comma-separated field value,
// without the whitespace around it; more says whether a comma followed.
func nextElement(v []byte) (elem, rest []byte, more bool) {
	elem, rest, more = bytes.Cut(v, []byte{','})
	return bytes.Trim(elem, " \t"), rest, more
}

// parseDigits parses 1 to maxDigits ASCII digits, nothing else (no sign,
// no space, no underscore).
func parseDigits(b []byte, maxDigits int) (int64, bool) {
	if len(b) == 0 || len(b) > maxDigits {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// requestChunked applies RFC 9112 §6.1 to a request, strictly: the only
// transfer coding accepted is a single "chunked", and none in HTTP/1.0,
// where it is faulty framing. Anything else could be read differently
// by the origin server than by egressd.
func (f *framing) requestChunked(proto string) (bool, error) {
	switch {
	case len(f.te) == 0:
		return false, nil
	case proto == "HTTP/1.0":
		return false, malformed("Transfer-Encoding in an HTTP/1.0 request")
	case len(f.te) > 1 || !asciiEqualFold(f.te[0], "chunked"):
		return false, malformed("Transfer-Encoding %q (only a single \"chunked\" is accepted)", truncate(bytes.Join(f.te, []byte(", "))))
	}
	return true, nil
}

// responseBody applies RFC 9112 §6.1 and §6.3 to the transfer codings of
// a response: chunked framing when chunked is the final coding, else the
// body runs until the server closes (egressd relays it verbatim either
// way). chunked twice, or before another coding, is malformed.
func (f *framing) responseBody(proto string) (BodyKind, error) {
	if len(f.te) == 0 {
		return BodyNone, nil
	}
	if proto == "HTTP/1.0" {
		return BodyUntilClose, nil // faulty framing: read until close
	}
	var codings, chunked int
	last := false
	for _, v := range f.te {
		for c, rest, more := nextElement(v); ; c, rest, more = nextElement(rest) {
			if len(c) > 0 { // empty list elements are ignored (RFC 9110 §5.6.1)
				codings++
				last = asciiEqualFold(c, "chunked")
				if last {
					chunked++
				}
			}
			if !more {
				break
			}
		}
	}
	switch {
	case codings == 0:
		return 0, malformed("empty Transfer-Encoding")
	case chunked > 1 || chunked == 1 && !last:
		return 0, malformed("Transfer-Encoding %q (chunked must be applied once, last)", truncate(bytes.Join(f.te, []byte(", "))))
	case last:
		return BodyChunked, nil
	}
	return BodyUntilClose, nil
}

// ReadRequest reads one request head from r, at most limit bytes. It
// returns io.EOF when the stream ends cleanly before the first byte.
func ReadRequest(r *bufio.Reader, limit int) (*Request, error) {
	var lineBuf [headLines][]byte
	head, lines, err := readHead(r, limit, lineBuf[:0])
	if err != nil {
		return nil, err
	}
	// request-line = method SP request-target SP HTTP-version, single
	// spaces (RFC 9112 §3).
	method, rest, ok1 := bytes.Cut(lines[0], []byte{' '})
	target, protoBytes, ok2 := bytes.Cut(rest, []byte{' '})
	if !ok1 || !ok2 || len(method) == 0 || len(target) == 0 {
		return nil, malformed("request line %q", truncate(lines[0]))
	}
	for _, c := range method {
		if !isTokenChar(c) {
			return nil, malformed("method %q", truncate(method))
		}
	}
	for _, c := range target {
		if c <= 0x20 || c >= 0x7f {
			return nil, malformed("request target with byte %#x", c)
		}
	}
	var proto string
	switch string(protoBytes) {
	case "HTTP/1.1":
		proto = "HTTP/1.1"
	case "HTTP/1.0":
		proto = "HTTP/1.0"
	default:
		return nil, malformed("protocol %q (HTTP/1.0 or HTTP/1.1 only)", truncate(protoBytes))
	}
	f, err := parseFields(lines[1:])
	if err != nil {
		return nil, err
	}
	if f.hosts != 1 {
		return nil, malformed("%d Host headers (exactly one is required)", f.hosts)
	}
	chunked, err := f.requestChunked(proto)
	if err != nil {
		return nil, err
	}
	authority := f.host
	switch {
	case target[0] == '/':
	case string(target) == "*" && string(method) == "OPTIONS":
	case hasPrefixFold(target, "http://"):
		// Absolute form: the origin server acts on this authority, not
		// on Host (RFC 9112 §3.2.2). Host must still be a valid field
		// value (RFC 9112 §3.2: else 400).
		if _, _, err := splitAuthority(authority); err != nil {
			return nil, malformed("Host %q beside the absolute-form target", truncate(authority))
		}
		// An absolute-URI has no fragment (RFC 9112 §3.2.2); were one
		// here, servers could disagree on where the authority ends.
		if bytes.IndexByte(target, '#') >= 0 {
			return nil, malformed("request target %q with a fragment", truncate(target))
		}
		rest := target[len("http://"):]
		end := bytes.IndexAny(rest, "/?")
		if end < 0 {
			end = len(rest)
		}
		authority = rest[:end]
	default:
		return nil, malformed("request target %q (origin or absolute form only)", truncate(target))
	}
	if string(method) == "CONNECT" {
		return nil, malformed("CONNECT is not relayed")
	}
	host, port, err := splitAuthority(authority)
	if err != nil {
		return nil, err
	}
	// Host and Port share one string; Method and Proto are constants for
	// the usual values.
	a := string(authority)
	return &Request{
		Method: methodString(method), Target: string(target), Proto: proto,
		Host: a[host[0]:host[1]], Port: a[port[0]:port[1]],
		ContentLength: f.contentLength, Chunked: chunked,
		Upgrade: f.upgradeHeader && f.connUpgrade,
		Close:   f.connClose || (proto == "HTTP/1.0" && !f.connKeepAlive),
		Head:    head,
	}, nil
}

// methodString returns the method as a string, without allocating for
// the common ones.
func methodString(m []byte) string {
	switch string(m) {
	case "GET":
		return "GET"
	case "HEAD":
		return "HEAD"
	case "POST":
		return "POST"
	case "PUT":
		return "PUT"
	case "DELETE":
		return "DELETE"
	case "OPTIONS":
		return "OPTIONS"
	case "PATCH":
		return "PATCH"
	}
	return string(m)
}

// splitAuthority parses host[:port] or [v6][:port] (RFC 3986 §3.2, no
// userinfo) and returns where the host (without brackets) and the port
// are in a, as [start, end) pairs; the port is empty when there is none.
func splitAuthority(a []byte) (host, port [2]int, err error) {
	if len(a) == 0 {
		return host, port, malformed("empty host")
	}
	if bytes.IndexByte(a, '@') >= 0 {
		return host, port, malformed("userinfo in host %q", truncate(a))
	}
	hostEnd, portStart := len(a), len(a)
	if a[0] == '[' {
		end := bytes.IndexByte(a, ']')
		if end < 0 {
			return host, port, malformed("unterminated IPv6 literal %q", truncate(a))
		}
		// An IP-literal is an IPv6 address (RFC 3986 §3.2.2), no zone.
		if addr, err := netip.ParseAddr(string(a[1:end])); err != nil || !addr.Is6() || addr.Zone() != "" {
			return host, port, malformed("invalid IPv6 literal %q", truncate(a))
		}
		host = [2]int{1, end}
		switch {
		case end+1 == len(a):
		case a[end+1] == ':':
			portStart = end + 2
			if portStart == len(a) {
				return host, port, malformed("empty port in %q", truncate(a))
			}
		default:
			return host, port, malformed("host %q", truncate(a))
		}
	} else {
		if i := bytes.LastIndexByte(a, ':'); i >= 0 {
			hostEnd, portStart = i, i+1
			if bytes.IndexByte(a[:i], ':') >= 0 {
				return host, port, malformed("host %q (IPv6 literals need brackets)", truncate(a))
			}
			if portStart == len(a) {
				return host, port, malformed("empty port in %q", truncate(a))
			}
		}
		if hostEnd == 0 {
			return host, port, malformed("empty host in %q", truncate(a))
		}
		host = [2]int{0, hostEnd}
	}
	port = [2]int{portStart, len(a)}
	if portStart < len(a) {
		if n, ok := parseDigits(a[portStart:], 5); !ok || n < 1 || n > 65535 {
			return host, port, malformed("port %q", truncate(a[portStart:]))
		}
	}
	return host, port, nil
}

// ReadResponse reads one response head from r. method is the method of the
// request it answers (a response to HEAD has no body).
func ReadResponse(r *bufio.Reader, limit int, method string) (*Response, error) {
	var lineBuf [headLines][]byte
	head, lines, err := readHead(r, limit, lineBuf[:0])
	if err != nil {
		return nil, err
	}
	// status-line = HTTP-version SP status-code SP [ reason-phrase ]; the
	// space before an empty reason is sometimes missing in the wild.
	sl := lines[0]
	var proto string
	switch {
	case bytes.HasPrefix(sl, []byte("HTTP/1.1 ")):
		proto = "HTTP/1.1"
	case bytes.HasPrefix(sl, []byte("HTTP/1.0 ")):
		proto = "HTTP/1.0"
	}
	if proto == "" || len(sl) < 12 || (len(sl) > 12 && sl[12] != ' ') {
		return nil, malformed("status line %q", truncate(sl))
	}
	status, ok := parseDigits(sl[9:12], 3)
	if !ok || status < 100 {
		return nil, malformed("status code in %q", truncate(sl))
	}
	for _, c := range sl[12:] { // reason-phrase: HTAB, SP, VCHAR, obs-text
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return nil, malformed("control character in the status line %q", truncate(sl))
		}
	}
	f, err := parseFields(lines[1:])
	if err != nil {
		return nil, err
	}
	te, err := f.responseBody(proto)
	if err != nil {
		return nil, err
	}
	resp := &Response{Status: int(status), Proto: proto, ContentLength: f.contentLength, Chunked: te == BodyChunked, Head: head,
		// RFC 9112 §6.1: after an HTTP/1.0 message with Transfer-Encoding
		// the connection closes.
		Close: f.connClose || (proto == "HTTP/1.0" && (!f.connKeepAlive || len(f.te) > 0))}
	switch {
	case strings.EqualFold(method, "HEAD"), status < 200, status == 204, status == 304:
		resp.body = BodyNone
	case te == BodyChunked:
		resp.body = BodyChunked
	case te == BodyUntilClose:
		resp.body = BodyUntilClose
		resp.Close = true
	case f.contentLength >= 0:
		resp.body = BodyLength
	default:
		resp.body = BodyUntilClose
		resp.Close = true
	}
	return resp, nil
}

// maxChunkLine bounds a chunk-size or trailer line.
const maxChunkLine = 4096

// CopyChunked passes a chunked body from src to dst verbatim — sizes,
// extensions, data and trailers — and returns the bytes copied.
func CopyChunked(dst io.Writer, src *bufio.Reader) (int64, error) {
	var total int64
	readLine := func() ([]byte, error) {
		var line []byte
		for {
			part, err := src.ReadSlice('\n')
			line = append(line, part...)
			if len(line) > maxChunkLine {
				return nil, fmt.Errorf("%w: chunk line over %d bytes", ErrTooLarge, maxChunkLine)
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if err != nil {
				return nil, readError(err)
			}
			if len(line) < 2 || line[len(line)-2] != '\r' {
				return nil, malformed("chunk line not ended by CRLF")
			}
			if bytes.IndexByte(line[:len(line)-2], '\r') >= 0 {
				return nil, malformed("bare CR in a chunk line")
			}
			return line, nil
		}
	}
	write := func(p []byte) error {
		n, err := dst.Write(p)
		total += int64(n)
		return err
	}
	for {
		line, err := readLine()
		if err != nil {
			return total, err
		}
		sizeField := line[:len(line)-2]
		if i := bytes.IndexByte(sizeField, ';'); i >= 0 {
			sizeField = sizeField[:i]
		}
		sizeField = bytes.TrimRight(sizeField, " \t")
		if len(sizeField) == 0 || len(sizeField) > 15 {
			return total, malformed("chunk size %q", truncate(sizeField))
		}
		size, err := strconv.ParseInt(string(sizeField), 16, 64)
		if err != nil || size < 0 || sizeField[0] == '+' || sizeField[0] == '-' {
			return total, malformed("chunk size %q", truncate(sizeField))
		}
		if err := write(line); err != nil {
			return total, err
		}
		if size == 0 {
			for { // trailers, then the empty line
				line, err := readLine()
				if err != nil {
					return total, err
				}
				if err := write(line); err != nil {
					return total, err
				}
				if len(line) == 2 {
					return total, nil
				}
			}
		}
		n, err := io.CopyN(dst, src, size)
		total += n
		if err != nil {
			return total, readError(err)
		}
		crlf, err := readLine()
		if err != nil {
			return total, err
		}
		if len(crlf) != 2 {
			return total, malformed("chunk data not followed by CRLF")
		}
		if err := write(crlf); err != nil {
			return total, err
		}
	}
}

func isTokenChar(c byte) bool {
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && asciiEqualFold(b[:len(prefix)], prefix)
}

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}
