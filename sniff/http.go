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
	Chunked       bool
	Close         bool // the server will close after this response
	Head          []byte
	body          BodyKind
}

// Body says how the response body that follows the head is delimited.
func (r *Response) Body() BodyKind { return r.body }

// header is one parsed field of a head.
type header struct{ name, value []byte }

// readHead reads lines up to and including the empty line that ends a
// head. Lines must end in CRLF; obsolete line folding is refused.
func readHead(r *bufio.Reader, limit int) (head []byte, lines [][]byte, err error) {
	start := 0
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			head = append(head, line...)
			if len(head) > limit {
				return nil, nil, fmt.Errorf("%w: head over %d bytes", ErrTooLarge, limit)
			}
			continue
		}
		head = append(head, line...)
		if len(head) > limit {
			return nil, nil, fmt.Errorf("%w: head over %d bytes", ErrTooLarge, limit)
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
// after it, no control characters in the value.
func parseHeaders(lines [][]byte) ([]header, error) {
	hs := make([]header, 0, len(lines))
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
				return nil, malformed("control character in header %q", name)
			}
		}
		hs = append(hs, header{name, value})
	}
	return hs, nil
}

// framing reads Content-Length, Transfer-Encoding and Connection.
type framing struct {
	contentLength     int64
	chunked           bool
	connClose         bool
	connKeepAlive     bool
	connUpgrade       bool
	upgradeHeader     bool
	hosts             [][]byte
	transferEncodings int
}

func parseFraming(hs []header) (framing, error) {
	f := framing{contentLength: -1}
	for _, h := range hs {
		switch {
		case asciiEqualFold(h.name, "content-length"):
			for _, part := range bytes.Split(h.value, []byte(",")) {
				part = bytes.Trim(part, " \t")
				n, err := strconv.ParseInt(string(part), 10, 64)
				if err != nil || n < 0 || len(part) == 0 || part[0] == '+' {
					return f, malformed("Content-Length %q", truncate(h.value))
				}
				if f.contentLength >= 0 && f.contentLength != n {
					return f, malformed("conflicting Content-Length values")
				}
				f.contentLength = n
			}
		case asciiEqualFold(h.name, "transfer-encoding"):
			f.transferEncodings++
			if !asciiEqualFold(h.value, "chunked") || f.transferEncodings > 1 {
				return f, malformed("Transfer-Encoding %q (only a single \"chunked\" is accepted)", truncate(h.value))
			}
			f.chunked = true
		case asciiEqualFold(h.name, "connection"):
			for _, tok := range bytes.Split(h.value, []byte(",")) {
				tok = bytes.Trim(tok, " \t")
				switch {
				case asciiEqualFold(tok, "close"):
					f.connClose = true
				case asciiEqualFold(tok, "keep-alive"):
					f.connKeepAlive = true
				case asciiEqualFold(tok, "upgrade"):
					f.connUpgrade = true
				}
			}
		case asciiEqualFold(h.name, "upgrade"):
			f.upgradeHeader = true
		case asciiEqualFold(h.name, "host"):
			f.hosts = append(f.hosts, h.value)
		}
	}
	if f.chunked && f.contentLength >= 0 {
		return f, malformed("both Content-Length and Transfer-Encoding (request smuggling)")
	}
	return f, nil
}

// ReadRequest reads one request head from r, at most limit bytes. It
// returns io.EOF when the stream ends cleanly before the first byte.
func ReadRequest(r *bufio.Reader, limit int) (*Request, error) {
	head, lines, err := readHead(r, limit)
	if err != nil {
		return nil, err
	}
	parts := bytes.Split(lines[0], []byte(" "))
	if len(parts) != 3 {
		return nil, malformed("request line %q", truncate(lines[0]))
	}
	method, target, proto := parts[0], parts[1], parts[2]
	if len(method) == 0 || len(target) == 0 {
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
	if string(proto) != "HTTP/1.1" && string(proto) != "HTTP/1.0" {
		return nil, malformed("protocol %q (HTTP/1.0 or HTTP/1.1 only)", truncate(proto))
	}
	hs, err := parseHeaders(lines[1:])
	if err != nil {
		return nil, err
	}
	f, err := parseFraming(hs)
	if err != nil {
		return nil, err
	}
	if len(f.hosts) != 1 {
		return nil, malformed("%d Host headers (exactly one is required)", len(f.hosts))
	}
	req := &Request{
		Method: string(method), Target: string(target), Proto: string(proto),
		ContentLength: f.contentLength, Chunked: f.chunked,
		Upgrade: f.upgradeHeader && f.connUpgrade,
		Close:   f.connClose || (string(proto) == "HTTP/1.0" && !f.connKeepAlive),
		Head:    head,
	}
	authority := f.hosts[0]
	switch {
	case target[0] == '/':
	case string(target) == "*" && string(method) == "OPTIONS":
	case hasPrefixFold(target, "http://"):
		// Absolute form: the origin server acts on this authority, not
		// on Host (RFC 9112 §3.2.2).
		rest := target[len("http://"):]
		end := bytes.IndexAny(rest, "/?#")
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
	req.Host, req.Port, err = splitAuthority(authority)
	if err != nil {
		return nil, err
	}
	return req, nil
}

// splitAuthority parses host[:port] or [v6]:port; userinfo is refused.
func splitAuthority(a []byte) (host, port string, err error) {
	if len(a) == 0 {
		return "", "", malformed("empty host")
	}
	if bytes.IndexByte(a, '@') >= 0 {
		return "", "", malformed("userinfo in host %q", truncate(a))
	}
	var h, p []byte
	if a[0] == '[' {
		end := bytes.IndexByte(a, ']')
		if end < 0 {
			return "", "", malformed("unterminated IPv6 literal %q", truncate(a))
		}
		h = a[1:end]
		if _, err := netip.ParseAddr(string(h)); err != nil || bytes.IndexByte(h, '%') >= 0 {
			return "", "", malformed("invalid IPv6 literal %q", truncate(a))
		}
		rest := a[end+1:]
		if len(rest) > 0 {
			if rest[0] != ':' {
				return "", "", malformed("host %q", truncate(a))
			}
			p = rest[1:]
		}
	} else {
		h = a
		if i := bytes.LastIndexByte(a, ':'); i >= 0 {
			h, p = a[:i], a[i+1:]
			if bytes.IndexByte(h, ':') >= 0 {
				return "", "", malformed("host %q (IPv6 literals need brackets)", truncate(a))
			}
		}
		if len(h) == 0 {
			return "", "", malformed("empty host in %q", truncate(a))
		}
	}
	if p != nil {
		n, err := strconv.Atoi(string(p))
		if err != nil || n < 1 || n > 65535 || p[0] == '+' || p[0] == '-' {
			return "", "", malformed("port %q", truncate(p))
		}
	}
	return string(h), string(p), nil
}

// ReadResponse reads one response head from r. method is the method of the
// request it answers (a response to HEAD has no body).
func ReadResponse(r *bufio.Reader, limit int, method string) (*Response, error) {
	head, lines, err := readHead(r, limit)
	if err != nil {
		return nil, err
	}
	sl := lines[0]
	if len(sl) < 12 || (!bytes.HasPrefix(sl, []byte("HTTP/1.1 ")) && !bytes.HasPrefix(sl, []byte("HTTP/1.0 "))) ||
		(len(sl) > 12 && sl[12] != ' ') {
		return nil, malformed("status line %q", truncate(sl))
	}
	status, err := strconv.Atoi(string(sl[9:12]))
	if err != nil || status < 100 || status > 999 {
		return nil, malformed("status code in %q", truncate(sl))
	}
	hs, err := parseHeaders(lines[1:])
	if err != nil {
		return nil, err
	}
	f, err := parseFraming(hs)
	if err != nil {
		return nil, err
	}
	proto := string(sl[:8])
	resp := &Response{Status: status, Proto: proto, ContentLength: f.contentLength, Chunked: f.chunked, Head: head,
		Close: f.connClose || (proto == "HTTP/1.0" && !f.connKeepAlive)}
	switch {
	case strings.EqualFold(method, "HEAD"), status < 200, status == 204, status == 304:
		resp.body = BodyNone
	case f.chunked:
		resp.body = BodyChunked
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
