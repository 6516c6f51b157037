package sniff

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadRequest(t *testing.T) {
	for _, tc := range []struct {
		name, in         string
		host, port       string
		cl               int64
		chunked, upgrade bool
		close            bool
		err              error
	}{
		{name: "origin form", in: "GET /a?b HTTP/1.1\r\nHost: Example.com\r\n\r\n", host: "Example.com", cl: -1},
		{name: "port stripped", in: "GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n", host: "example.com", port: "8080", cl: -1},
		{name: "IPv6 literal", in: "GET / HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\n\r\n", host: "2001:db8::1", port: "8080", cl: -1},
		{name: "absolute form wins over Host", in: "GET http://real.example/x HTTP/1.1\r\nHost: decoy.example\r\n\r\n", host: "real.example", cl: -1},
		{name: "absolute form with port", in: "GET HTTP://real.example:81 HTTP/1.1\r\nHost: real.example\r\n\r\n", host: "real.example", port: "81", cl: -1},
		{name: "OPTIONS *", in: "OPTIONS * HTTP/1.1\r\nHost: a.example\r\n\r\n", host: "a.example", cl: -1},
		{name: "content length", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n", host: "a", cl: 12},
		{name: "same content length twice", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n", host: "a", cl: 3},
		{name: "chunked", in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", host: "a", cl: -1, chunked: true},
		{name: "upgrade", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n", host: "a", cl: -1, upgrade: true},
		{name: "upgrade header without connection token", in: "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", host: "a", cl: -1},
		{name: "close", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", host: "a", cl: -1, close: true},
		{name: "HTTP/1.0 closes", in: "GET / HTTP/1.0\r\nHost: a\r\n\r\n", host: "a", cl: -1, close: true},
		{name: "stray CRLF before", in: "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", host: "a", cl: -1},
		{name: "absolute form, Host with another port", in: "GET http://real.example:8080/ HTTP/1.1\r\nHost: real.example:9999\r\n\r\n", host: "real.example", port: "8080", cl: -1},
		{name: "absolute form, IPv6", in: "GET http://[2001:db8::2]:81/x HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\n\r\n", host: "2001:db8::2", port: "81", cl: -1},
		{name: "absolute form without path", in: "GET http://real.example?q HTTP/1.1\r\nHost: decoy\r\n\r\n", host: "real.example", cl: -1},
		{name: "IPv6 without port", in: "GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n", host: "::1", cl: -1},
		{name: "lower-case header names, spaces around value", in: "GET / HTTP/1.1\r\nhost:  a.example \t\r\n\r\n", host: "a.example", cl: -1},
		{name: "HTTP/1.0 keep-alive", in: "GET / HTTP/1.0\r\nHost: a\r\nConnection: Keep-Alive\r\n\r\n", host: "a", cl: -1},
		{name: "connection upgrade without Upgrade", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n", host: "a", cl: -1},
		{name: "upgrade and close", in: "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade, close\r\n\r\n", host: "a", cl: -1, upgrade: true, close: true},
		{name: "zero content length", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", host: "a", cl: 0},
		{name: "content length with leading zeros", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0012\r\n\r\n", host: "a", cl: 12},
		{name: "chunked, odd case and spaces", in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  CHUNKED \r\n\r\n", host: "a", cl: -1, chunked: true},
		{name: "host as sent: case, trailing dot", in: "GET / HTTP/1.1\r\nHost: API.Example.COM.:443\r\n\r\n", host: "API.Example.COM.", port: "443", cl: -1},
		{name: "host with odd bytes is returned for policy to deny", in: "GET / HTTP/1.1\r\nHost: a_b!$\xff.example\r\n\r\n", host: "a_b!$\xff.example", cl: -1},
		{name: "IPv4 literal", in: "GET / HTTP/1.1\r\nHost: 203.0.113.5:8080\r\n\r\n", host: "203.0.113.5", port: "8080", cl: -1},
		{name: "port 65535", in: "GET / HTTP/1.1\r\nHost: a:65535\r\n\r\n", host: "a", port: "65535", cl: -1},
		{name: "IPv6 literal, IPv4-embedded", in: "GET / HTTP/1.1\r\nHost: [::ffff:203.0.113.5]\r\n\r\n", host: "::ffff:203.0.113.5", cl: -1},
		{name: "lower-case method token", in: "get / HTTP/1.1\r\nHost: a\r\n\r\n", host: "a", cl: -1},
		{name: "absolute form, odd case scheme, IPv6 Host", in: "GET hTtP://real.example HTTP/1.1\r\nHost: [2001:db8::1]\r\n\r\n", host: "real.example", cl: -1},
		{name: "absolute form, authority with a backslash is returned as sent", in: "GET http://a.example\\.evil.example/ HTTP/1.1\r\nHost: a\r\n\r\n", host: "a.example\\.evil.example", cl: -1},
		{name: "absolute form, query right after the authority", in: "GET http://a.example?.evil.example/ HTTP/1.1\r\nHost: a\r\n\r\n", host: "a.example", cl: -1},

		{name: "no Host", in: "GET / HTTP/1.1\r\n\r\n", err: ErrMalformed},
		{name: "absolute form without Host", in: "GET http://a.example/ HTTP/1.1\r\n\r\n", err: ErrMalformed},
		{name: "absolute form, two Hosts", in: "GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n", err: ErrMalformed},
		{name: "absolute form, invalid Host", in: "GET http://a.example/ HTTP/1.1\r\nHost: a.example@b.example\r\n\r\n", err: ErrMalformed},
		{name: "absolute form, empty Host", in: "GET http://a.example/ HTTP/1.1\r\nHost: \r\n\r\n", err: ErrMalformed},
		{name: "absolute form with a fragment", in: "GET http://a.example#.evil.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n", err: ErrMalformed},
		{name: "absolute form, empty authority", in: "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", err: ErrMalformed},
		{name: "absolute form, unterminated IPv6", in: "GET http://[::1/x HTTP/1.1\r\nHost: a\r\n\r\n", err: ErrMalformed},
		{name: "TE in HTTP/1.0", in: "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", err: ErrMalformed},
		{name: "TE chunked twice in one field", in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", err: ErrMalformed},
		{name: "TE with a parameter", in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x=1\r\n\r\n", err: ErrMalformed},
		{name: "TE with a vertical tab", in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \vchunked\r\n\r\n", err: ErrMalformed},
		{name: "CL with a space inside", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", err: ErrMalformed},
		{name: "CL over int64", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", err: ErrMalformed},
		{name: "CL hex", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", err: ErrMalformed},
		{name: "CL list with different values", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\n", err: ErrMalformed},
		{name: "tab before colon", in: "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", err: ErrMalformed},
		{name: "empty header name", in: "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", err: ErrMalformed},
		{name: "non-token header name", in: "GET / HTTP/1.1\r\nHost: a\r\nX(y): z\r\n\r\n", err: ErrMalformed},
		{name: "obs-fold right after the request line", in: "GET / HTTP/1.1\r\n Host: a\r\n\r\n", err: ErrMalformed},
		{name: "NUL in header value", in: "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", err: ErrMalformed},
		{name: "HTTP/1.2", in: "GET / HTTP/1.2\r\nHost: a\r\n\r\n", err: ErrMalformed},
		{name: "lower-case protocol", in: "GET / http/1.1\r\nHost: a\r\n\r\n", err: ErrMalformed},
		{name: "DEL in target", in: "GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", err: ErrMalformed},
		{name: "tab in request line", in: "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", err: ErrMalformed},
		{name: "empty port", in: "GET / HTTP/1.1\r\nHost: a:\r\n\r\n", err: ErrMalformed},
		{name: "IPv6 empty port", in: "GET / HTTP/1.1\r\nHost: [2001:db8::1]:\r\n\r\n", err: ErrMalformed},
		{name: "port 65536", in: "GET / HTTP/1.1\r\nHost: a:65536\r\n\r\n", err: ErrMalformed},
		{name: "negative port", in: "GET / HTTP/1.1\r\nHost: a:-1\r\n\r\n", err: ErrMalformed},
		{name: "port with letters", in: "GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n", err: ErrMalformed},
		{name: "not an IPv6 address in brackets", in: "GET / HTTP/1.1\r\nHost: [a.example]\r\n\r\n", err: ErrMalformed},
		{name: "IPv4 in brackets", in: "GET / HTTP/1.1\r\nHost: [203.0.113.5]\r\n\r\n", err: ErrMalformed},
		{name: "TLS on port 80", in: "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", err: ErrMalformed},
		{name: "HTTP/1.0 without Host", in: "GET / HTTP/1.0\r\n\r\n", err: ErrMalformed},
		{name: "two Hosts", in: "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", err: ErrMalformed},
		{name: "CL and TE", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", err: ErrMalformed},
		{name: "conflicting CL", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n", err: ErrMalformed},
		{name: "signed CL", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\n", err: ErrMalformed},
		{name: "TE gzip", in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", err: ErrMalformed},
		{name: "obs-fold", in: "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", err: ErrMalformed},
		{name: "bare LF", in: "GET / HTTP/1.1\nHost: a\n\n", err: ErrMalformed},
		{name: "space before colon", in: "GET / HTTP/1.1\r\nHost : a\r\n\r\n", err: ErrMalformed},
		{name: "userinfo", in: "GET / HTTP/1.1\r\nHost: allowed.example@evil.example\r\n\r\n", err: ErrMalformed},
		{name: "CONNECT", in: "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", err: ErrMalformed},
		{name: "HTTP/2 preface", in: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", err: ErrMalformed},
		{name: "bad port", in: "GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n", err: ErrMalformed},
		{name: "IPv6 without brackets", in: "GET / HTTP/1.1\r\nHost: 2001:db8::1\r\n\r\n", err: ErrMalformed},
		{name: "NUL in value", in: "GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n", err: ErrMalformed},
		{name: "bare CR", in: "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", err: ErrMalformed},
		{name: "bare LF in one header", in: "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", err: ErrMalformed},
		{name: "obs-fold of Host", in: "GET / HTTP/1.1\r\nHost: a\r\n\tb\r\n\r\n", err: ErrMalformed},
		{name: "TE gzip alone", in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", err: ErrMalformed},
		{name: "TE twice", in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", err: ErrMalformed},
		{name: "CL and TE, TE first", in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n", err: ErrMalformed},
		{name: "empty CL", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", err: ErrMalformed},
		{name: "userinfo in absolute form", in: "GET http://allowed.example@evil.example/ HTTP/1.1\r\nHost: allowed.example\r\n\r\n", err: ErrMalformed},
		{name: "empty Host", in: "GET / HTTP/1.1\r\nHost:\r\n\r\n", err: ErrMalformed},
		{name: "Host only a port", in: "GET / HTTP/1.1\r\nHost: :80\r\n\r\n", err: ErrMalformed},
		{name: "IPv6 zone", in: "GET / HTTP/1.1\r\nHost: [fe80::1%25eth0]\r\n\r\n", err: ErrMalformed},
		{name: "IPv6 junk after bracket", in: "GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", err: ErrMalformed},
		{name: "port 0", in: "GET / HTTP/1.1\r\nHost: a:0\r\n\r\n", err: ErrMalformed},
		{name: "https absolute form", in: "GET https://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n", err: ErrMalformed},
		{name: "authority form outside CONNECT", in: "GET a.example:80 HTTP/1.1\r\nHost: a.example\r\n\r\n", err: ErrMalformed},
		{name: "CONNECT origin form", in: "CONNECT / HTTP/1.1\r\nHost: a.example:443\r\n\r\n", err: ErrMalformed},
		{name: "two spaces in request line", in: "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", err: ErrMalformed},
		{name: "HTTP/0.9", in: "GET /\r\n\r\n", err: ErrMalformed},
		{name: "many empty lines first", in: "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", err: ErrMalformed},
		{name: "binary without a newline, then EOF", in: "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", err: ErrTruncated},
		{name: "truncated", in: "GET / HTTP/1.1\r\nHost: a\r\n", err: ErrTruncated},
		{name: "clean EOF", in: "", err: io.EOF},
		{name: "too large", in: "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 5000) + "\r\n\r\n", err: ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, oneByte := range []bool{false, true} {
				var r io.Reader = strings.NewReader(tc.in)
				if oneByte {
					r = iotest.OneByteReader(r)
				}
				req, err := ReadRequest(bufio.NewReader(r), 4096)
				if tc.err != nil {
					if !errors.Is(err, tc.err) {
						t.Fatalf("got %v, want %v", err, tc.err)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if req.Host != tc.host || req.Port != tc.port || req.ContentLength != tc.cl || req.Chunked != tc.chunked ||
					req.Upgrade != tc.upgrade || req.Close != tc.close || string(req.Head) != tc.in {
					t.Fatalf("got %+v", req)
				}
			}
		})
	}
}

func TestPipelinedRequests(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: b\r\n\r\n"))
	for _, want := range []string{"a", "b"} {
		req, err := ReadRequest(br, 4096)
		if err != nil || req.Host != want {
			t.Fatalf("%v %v", req, err)
		}
	}
	if _, err := ReadRequest(br, 4096); err != io.EOF {
		t.Fatalf("after the last request: %v, want io.EOF", err)
	}
}

// TestPipelinedWithBodies reads requests and their bodies back to back from
// one bufio.Reader, as the gateway does on a kept-alive connection, with
// the bytes arriving one at a time.
func TestPipelinedWithBodies(t *testing.T) {
	heads := []string{
		"GET /1 HTTP/1.1\r\nHost: a.example\r\n\r\n",
		"POST /2 HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\n\r\n",
		"POST /3 HTTP/1.1\r\nHost: b.example\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET http://c.example/4 HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
	}
	bodies := []string{"", "hello", "3;x\r\nabc\r\n0\r\nT: 1\r\n\r\n", ""}
	var in strings.Builder
	for i := range heads {
		in.WriteString(heads[i] + bodies[i])
	}
	br := bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(in.String())), 16)
	for i, want := range []string{"a.example", "a.example", "b.example", "c.example"} {
		req, err := ReadRequest(br, 4096)
		if err != nil || req.Host != want || string(req.Head) != heads[i] || req.Close != (i == 3) {
			t.Fatalf("request %d: %+v %v", i, req, err)
		}
		var body bytes.Buffer
		switch {
		case req.Chunked:
			_, err = CopyChunked(&body, br)
		case req.ContentLength > 0:
			_, err = io.CopyN(&body, br, req.ContentLength)
		}
		if err != nil || body.String() != bodies[i] {
			t.Fatalf("body %d: %q %v", i, body.String(), err)
		}
	}
	if _, err := ReadRequest(br, 4096); err != io.EOF {
		t.Fatalf("after the last request: %v, want io.EOF", err)
	}
}

func TestHeadLimit(t *testing.T) {
	prefix := "GET / HTTP/1.1\r\nHost: a\r\nX: "
	head := func(size int) string { // a head of exactly size bytes
		return prefix + strings.Repeat("x", size-len(prefix)-4) + "\r\n\r\n"
	}
	for _, tc := range []struct {
		size, limit, bufSize int
		err                  error
	}{
		{100, 100, 4096, nil},
		{101, 100, 4096, ErrTooLarge},
		{9000, 9000, 4096, nil}, // a line longer than the bufio buffer
		{9000, 8999, 4096, ErrTooLarge},
		{9000, 8999, 16, ErrTooLarge},
		{1 << 20, 8192, 4096, ErrTooLarge},
	} {
		in := head(tc.size)
		req, err := ReadRequest(bufio.NewReaderSize(strings.NewReader(in), tc.bufSize), tc.limit)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%d-byte head, limit %d: %v, want %v", tc.size, tc.limit, err, tc.err)
			}
			continue
		}
		if err != nil || string(req.Head) != in {
			t.Errorf("%d-byte head, limit %d: %v", tc.size, tc.limit, err)
		}
	}
	// An endless line without a newline is bounded as well.
	endless := io.MultiReader(strings.NewReader("GET /"), iotest.OneByteReader(infiniteReader('a')))
	if _, err := ReadRequest(bufio.NewReader(endless), 8192); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("endless request line: %v", err)
	}
}

type infiniteReader byte

func (r infiniteReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

func TestHeadTimeout(t *testing.T) {
	r := &errAfter{[]byte("GET / HTTP/1.1\r\nHo"), os.ErrDeadlineExceeded}
	if _, err := ReadRequest(bufio.NewReader(r), 4096); !errors.Is(err, ErrTimeout) || Reason(err) != "timeout" {
		t.Fatalf("request: %v", err)
	}
	r = &errAfter{[]byte("HTTP/1.1 200 OK\r\n"), netTimeout{}}
	if _, err := ReadResponse(bufio.NewReader(r), 4096, "GET"); !errors.Is(err, ErrTimeout) {
		t.Fatalf("response: %v", err)
	}
	r = &errAfter{[]byte("5\r\nab"), os.ErrDeadlineExceeded}
	if _, err := CopyChunked(io.Discard, bufio.NewReader(r)); !errors.Is(err, ErrTimeout) {
		t.Fatalf("chunked body: %v", err)
	}
}

func TestReadResponse(t *testing.T) {
	for _, tc := range []struct {
		in, method string
		status     int
		body       BodyKind
		close      bool
	}{
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "GET", 200, BodyLength, false},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "head", 200, BodyNone, false},
		{"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n", "GET", 204, BodyNone, false},
		{"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", 304, BodyNone, false},
		{"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n", "GET", 103, BodyNone, false},
		{"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "GET", 200, BodyLength, false},
		{"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n", "GET", 200, BodyLength, true},
		{"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n", "GET", 200, BodyLength, false},
		{"HTTP/1.0 200 OK\r\n\r\n", "GET", 200, BodyUntilClose, true},
		{"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n", "POST", 404, BodyChunked, false},
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD", 200, BodyNone, false},
		{"HTTP/1.1 204 No Content\r\n\r\n", "GET", 204, BodyNone, false},
		{"HTTP/1.1 304 Not Modified\r\n\r\n", "GET", 304, BodyNone, false},
		{"HTTP/1.1 100 Continue\r\n\r\n", "POST", 100, BodyNone, false},
		{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", "GET", 101, BodyNone, false},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", 200, BodyChunked, false},
		{"HTTP/1.1 200 OK\r\n\r\n", "GET", 200, BodyUntilClose, true},
		{"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", "GET", 200, BodyLength, true},
		{"HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n", "GET", 200, BodyLength, false},
		{"HTTP/1.1 200 \r\nContent-Length: 1\r\n\r\n", "GET", 200, BodyLength, false},
		{"HTTP/1.1 599 Nonstandard, but a reason: é\r\nContent-Length: 1\r\n\r\n", "GET", 599, BodyLength, false},
		// RFC 9112 §6.3: chunked as the final coding frames the body;
		// another final coding means the body runs until the close.
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "GET", 200, BodyChunked, false},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: Chunked\r\n\r\n", "GET", 200, BodyChunked, false},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "GET", 200, BodyUntilClose, true},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "HEAD", 200, BodyNone, false},
		// ... and in HTTP/1.0 it is faulty framing: until the close.
		{"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n", "GET", 200, BodyUntilClose, true},
		{"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n", "GET", 200, BodyLength, false},
	} {
		resp, err := ReadResponse(bufio.NewReader(strings.NewReader(tc.in)), 4096, tc.method)
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		if resp.Status != tc.status || resp.Body() != tc.body || resp.Close != tc.close || string(resp.Head) != tc.in {
			t.Errorf("%q %s: got %+v body %v", tc.in, tc.method, resp, resp.Body())
		}
	}
	for _, bad := range []string{
		"HTTP/2 200 OK\r\n\r\n",
		"HTTP/1.1 20 OK\r\n\r\n",
		"HTTP/1.1 200OK\r\n\r\n",
		"HTTP/1.1 099 Low\r\n\r\n",
		"HTTP/1.1 +20 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: gzip\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: , \r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nHost: a\r\nX: \x00\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX : 1\r\n\r\n",
		"HTTP/1.1 200 OK\rContent-Length: 1\r\n\r\n",
		"http/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 2000 OK\r\n\r\n",
		"HTTP/1.1 200 O\x00K\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
		"HTTP/1.1 200 OK\nContent-Length: 1\n\n",
		"HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n",
	} {
		if _, err := ReadResponse(bufio.NewReader(strings.NewReader(bad)), 4096, "GET"); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v, want malformed", bad, err)
		}
	}
	for in, want := range map[string]error{
		"":                              io.EOF,
		"HTTP/1.1 200 OK\r\nContent-Le": ErrTruncated,
		"HTTP/1.1 200 OK\r\nX: " + strings.Repeat("y", 200) + "\r\n\r\n": ErrTooLarge,
	} {
		if _, err := ReadResponse(bufio.NewReader(strings.NewReader(in)), 128, "GET"); !errors.Is(err, want) {
			t.Errorf("%.30q: %v, want %v", in, err, want)
		}
	}
}

// TestInterimResponses reads 1xx responses and the final one back to back.
func TestInterimResponses(t *testing.T) {
	in := "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n" +
		"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x00"
	br := bufio.NewReader(iotest.OneByteReader(strings.NewReader(in)))
	for _, want := range []int{100, 103, 201, 101} {
		resp, err := ReadResponse(br, 4096, "POST")
		if err != nil || resp.Status != want {
			t.Fatalf("want %d: %+v %v", want, resp, err)
		}
		if resp.Body() == BodyLength {
			if _, err := io.CopyN(io.Discard, br, resp.ContentLength); err != nil {
				t.Fatal(err)
			}
		}
	}
	// After 101 the bytes are the new protocol's, left unread for the splice.
	if rest, _ := io.ReadAll(br); string(rest) != "\x81\x00" {
		t.Fatalf("after 101: %q", rest)
	}
}

func TestCopyChunked(t *testing.T) {
	body := "4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nTrailer: x\r\n\r\n"
	src := bufio.NewReader(strings.NewReader(body + "NEXT"))
	var dst bytes.Buffer
	n, err := CopyChunked(&dst, src)
	if err != nil || dst.String() != body || n != int64(len(body)) {
		t.Fatalf("copied %d %q %v", n, dst.String(), err)
	}
	if rest, _ := io.ReadAll(src); string(rest) != "NEXT" {
		t.Fatalf("read past the body: %q", rest)
	}
	for bad, want := range map[string]error{
		"zz\r\n":                      ErrMalformed,
		"\r\n":                        ErrMalformed,
		" 4\r\nWiki\r\n0\r\n\r\n":     ErrMalformed,
		"0x4\r\nWiki\r\n0\r\n\r\n":    ErrMalformed,
		"+4\r\nWiki\r\n0\r\n\r\n":     ErrMalformed,
		"4\r\nWikiX\r\n":              ErrMalformed,
		"-1\r\n":                      ErrMalformed,
		"4\nWiki\r\n0\r\n\r\n":        ErrMalformed,
		"4;a=b\nWiki\r\n0\r\n\r\n":    ErrMalformed,
		"4;a\rb\r\nWiki\r\n0\r\n\r\n": ErrMalformed, // bare CR (RFC 9112 §2.2)
		"0\r\nT: a\rb\r\n\r\n":        ErrMalformed,
		"ffffffffffffffffff\r\n":      ErrMalformed,
		"4;" + strings.Repeat("e", 5000) + "\r\nWiki\r\n0\r\n\r\n": ErrTooLarge,
		"4\r\nWi":            ErrTruncated,
		"4\r\nWiki":          ErrTruncated,
		"4\r\nWiki\r\n0\r\n": ErrTruncated,
		"":                   ErrTruncated,
	} {
		if _, err := CopyChunked(io.Discard, bufio.NewReader(strings.NewReader(bad))); !errors.Is(err, want) {
			t.Errorf("%.40q: %v, want %v", bad, err, want)
		}
	}
}

// TestCopyChunkedByteExact passes a body with extensions, long lines,
// large chunks and trailers through a small buffer, one byte at a time.
func TestCopyChunkedByteExact(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 1000)
	body := "4 ;name=\"quoted;value\"\r\nWiki\r\n" +
		"3e80;" + strings.Repeat("long-extension=", 100) + "x\r\n" + big + "\r\n" +
		"00000001\r\n!\r\n" +
		"0;last\r\nExpires: never\r\nX-Checksum: 1234\r\n\r\n"
	for _, size := range []int{16, 4096} {
		src := bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(body+"GET /next")), size)
		var dst bytes.Buffer
		n, err := CopyChunked(&dst, src)
		if err != nil || dst.String() != body || n != int64(len(body)) {
			t.Fatalf("buffer %d: copied %d of %d, %v", size, n, len(body), err)
		}
		if rest, _ := io.ReadAll(src); string(rest) != "GET /next" {
			t.Fatalf("buffer %d: read past the body: %q", size, rest)
		}
	}
	// A failing writer stops the copy with its error.
	if _, err := CopyChunked(failWriter{}, bufio.NewReader(strings.NewReader(body))); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("write error: %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

func FuzzReadRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n",
		"GET http://a.example/ HTTP/1.1\r\nHost: b\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n",
		"GET / HTTP/1.0\r\nHost: a:8080\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.1\r\n",
		"\r\nOPTIONS * HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc",
		"GET http://[2001:db8::2]:81/x HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\nhost: b\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x\r\nabc\r\n0\r\n\r\n",
		"PUT http://a.example:8080 HTTP/1.0\r\nHost: a.example\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
		"GET http://a.example?.evil.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
		"GET HTTP://A.Example:0080/x?y HTTP/1.1\r\nHost: A.Example:80\r\n\r\n",
		"GET http://a.example#.evil.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		req, err := ReadRequest(bufio.NewReader(bytes.NewReader(in)), 8192)
		// The same bytes in one-byte reads through a tiny buffer give the
		// same answer.
		req2, err2 := ReadRequest(bufio.NewReaderSize(iotest.OneByteReader(bytes.NewReader(in)), 16), 8192)
		if (err == nil) != (err2 == nil) || Reason(err) != Reason(err2) {
			t.Fatalf("fragmentation changed the answer: %v / %v", err, err2)
		}
		if err != nil {
			if err != io.EOF && Reason(err) == "io" {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if !bytes.HasPrefix(in, req.Head) {
			t.Fatal("head is not a prefix of the input")
		}
		if req.Chunked && req.ContentLength >= 0 {
			t.Fatal("accepted both framings")
		}
		if req.Host == "" {
			t.Fatal("accepted a request without a host")
		}
		if bytes.Contains(req.Head, []byte("\n ")) || bytes.Contains(req.Head, []byte("\n\t")) {
			t.Fatal("accepted obsolete line folding")
		}
		// The host checked is in the head as sent, and there is only one
		// Host field for an origin server to act on.
		if !bytes.Contains(req.Head, []byte(req.Host)) || !bytes.Contains(req.Head, []byte(req.Port)) {
			t.Fatalf("host %q port %q are not in the head", req.Host, req.Port)
		}
		if n := bytes.Count(bytes.ToLower(req.Head), []byte("\nhost:")); n != 1 {
			t.Fatalf("accepted a head with %d Host fields", n)
		}
		// Where Go's own server also accepts the request, it acts on the
		// same host and frames the body the same way.
		if std, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(req.Head))); err == nil {
			want := req.Host
			if strings.Contains(want, ":") {
				want = "[" + want + "]"
			}
			if req.Port != "" {
				want += ":" + req.Port
			}
			if std.Host != want {
				t.Fatalf("net/http acts on host %q, egressd checks %q", std.Host, want)
			}
			if req.Chunked && (len(std.TransferEncoding) != 1 || std.TransferEncoding[0] != "chunked") ||
				req.ContentLength >= 0 && std.ContentLength != req.ContentLength {
				t.Fatalf("net/http frames the body as %v/%d, egressd as chunked=%v/%d",
					std.TransferEncoding, std.ContentLength, req.Chunked, req.ContentLength)
			}
		}
		if !bytes.Equal(req.Head, req2.Head) || req.Host != req2.Host || req.Port != req2.Port || req.Target != req2.Target ||
			req.ContentLength != req2.ContentLength || req.Chunked != req2.Chunked || req.Upgrade != req2.Upgrade || req.Close != req2.Close {
			t.Fatalf("fragmentation changed the request: %+v / %+v", req, req2)
		}
	})
}

func FuzzReadResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), false)
	f.Add([]byte("HTTP/1.1 101 Switching Protocols\r\n\r\n"), true)
	f.Add([]byte("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"), false)
	f.Add([]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"), false)
	f.Fuzz(func(t *testing.T, in []byte, head bool) {
		method := "GET"
		if head {
			method = "HEAD"
		}
		resp, err := ReadResponse(bufio.NewReader(bytes.NewReader(in)), 8192, method)
		resp2, err2 := ReadResponse(bufio.NewReaderSize(iotest.OneByteReader(bytes.NewReader(in)), 16), 8192, method)
		if (err == nil) != (err2 == nil) || Reason(err) != Reason(err2) {
			t.Fatalf("fragmentation changed the answer: %v / %v", err, err2)
		}
		if err != nil {
			return
		}
		if !bytes.HasPrefix(in, resp.Head) {
			t.Fatal("head is not a prefix of the input")
		}
		if resp.Body() == BodyChunked && !resp.Chunked || resp.Body() == BodyLength && resp.ContentLength < 0 ||
			resp.Body() == BodyUntilClose && !resp.Close || head && resp.Body() != BodyNone {
			t.Fatalf("inconsistent framing: %+v body %v", resp, resp.Body())
		}
		if resp.Status != resp2.Status || resp.Body() != resp2.Body() || resp.Close != resp2.Close {
			t.Fatalf("fragmentation changed the response: %+v / %+v", resp, resp2)
		}
	})
}

func FuzzCopyChunked(f *testing.F) {
	f.Add([]byte("4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nTrailer: x\r\n\r\n"))
	f.Add([]byte("a \t;x=\"y\"\r\n0123456789\r\n0\r\n\r\nGET / HTTP/1.1\r\n"))
	f.Add([]byte("1\r\nx\r\n0\r\nA: 1\r\nB: 2\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var dst bytes.Buffer
		r := bytes.NewReader(in)
		src := bufio.NewReaderSize(r, 16)
		n, err := CopyChunked(&dst, src)
		if int64(dst.Len()) != n || !bytes.HasPrefix(in, dst.Bytes()) {
			t.Fatalf("output is not the consumed input (n=%d, err=%v)", n, err)
		}
		if err != nil {
			if Reason(err) == "io" {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		// On success the output is exactly what was consumed: the next
		// message starts right after it.
		consumed := len(in) - r.Len() - src.Buffered()
		if !bytes.Equal(dst.Bytes(), in[:consumed]) {
			t.Fatalf("copied %d bytes, consumed %d", dst.Len(), consumed)
		}
		if !bytes.HasSuffix(dst.Bytes(), []byte("\r\n")) {
			t.Fatal("body does not end with CRLF")
		}
	})
}

func BenchmarkReadRequest(b *testing.B) {
	in := []byte("GET /simple/requests/ HTTP/1.1\r\nHost: pypi.org\r\nUser-Agent: pip/24.0\r\nAccept: */*\r\nAccept-Encoding: gzip\r\nConnection: keep-alive\r\n\r\n")
	r := bytes.NewReader(in)
	br := bufio.NewReader(r)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(in)
		br.Reset(r)
		if _, err := ReadRequest(br, 8192); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRequestAllocs pins the cost of a request head that is already in the
// reader's buffer: the head, the Request, the target and the authority.
func TestRequestAllocs(t *testing.T) {
	in := []byte("GET /simple/requests/ HTTP/1.1\r\nHost: pypi.org\r\nUser-Agent: pip/24.0\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n")
	r := bytes.NewReader(in)
	br := bufio.NewReader(r)
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset(in)
		br.Reset(r)
		if _, err := ReadRequest(br, 8192); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 4 {
		t.Fatalf("%.1f allocations per request head, want at most 4", allocs)
	}
}

func BenchmarkReadResponse(b *testing.B) {
	in := []byte("HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Wed, 25 Nov 2026 06:00:00 GMT\r\nContent-Type: text/html\r\nContent-Length: 5120\r\nConnection: keep-alive\r\n\r\n")
	r := bytes.NewReader(in)
	br := bufio.NewReader(r)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(in)
		br.Reset(r)
		if _, err := ReadResponse(br, 8192, "GET"); err != nil {
			b.Fatal(err)
		}
	}
}
