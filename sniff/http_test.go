package sniff

import (
	"bufio"
	"bytes"
	"errors"
	"io"
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

		{name: "no Host", in: "GET / HTTP/1.1\r\n\r\n", err: ErrMalformed},
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

func TestReadResponse(t *testing.T) {
	for _, tc := range []struct {
		in, method string
		status     int
		body       BodyKind
		close      bool
	}{
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "GET", 200, BodyLength, false},
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD", 200, BodyNone, false},
		{"HTTP/1.1 204 No Content\r\n\r\n", "GET", 204, BodyNone, false},
		{"HTTP/1.1 304 Not Modified\r\n\r\n", "GET", 304, BodyNone, false},
		{"HTTP/1.1 100 Continue\r\n\r\n", "POST", 100, BodyNone, false},
		{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", "GET", 101, BodyNone, false},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", 200, BodyChunked, false},
		{"HTTP/1.1 200 OK\r\n\r\n", "GET", 200, BodyUntilClose, true},
		{"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", "GET", 200, BodyLength, true},
		{"HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n", "GET", 200, BodyLength, false},
	} {
		resp, err := ReadResponse(bufio.NewReader(strings.NewReader(tc.in)), 4096, tc.method)
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		if resp.Status != tc.status || resp.Body() != tc.body || resp.Close != tc.close || string(resp.Head) != tc.in {
			t.Errorf("%q %s: got %+v body %v", tc.in, tc.method, resp, resp.Body())
		}
	}
	for _, bad := range []string{"HTTP/2 200 OK\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"} {
		if _, err := ReadResponse(bufio.NewReader(strings.NewReader(bad)), 4096, "GET"); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v, want malformed", bad, err)
		}
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
	for _, bad := range []string{"zz\r\n", "4\r\nWikiX\r\n", "-1\r\n", "4\nWiki\r\n0\r\n\r\n", "ffffffffffffffffff\r\n"} {
		if _, err := CopyChunked(io.Discard, bufio.NewReader(strings.NewReader(bad))); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzReadRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n",
		"GET http://a.example/ HTTP/1.1\r\nHost: b\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		req, err := ReadRequest(bufio.NewReader(bytes.NewReader(in)), 8192)
		if err != nil {
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
	})
}

func FuzzReadResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), false)
	f.Add([]byte("HTTP/1.1 101 Switching Protocols\r\n\r\n"), true)
	f.Fuzz(func(t *testing.T, in []byte, head bool) {
		method := "GET"
		if head {
			method = "HEAD"
		}
		resp, err := ReadResponse(bufio.NewReader(bytes.NewReader(in)), 8192, method)
		if err == nil && !bytes.HasPrefix(in, resp.Head) {
			t.Fatal("head is not a prefix of the input")
		}
	})
}

func FuzzCopyChunked(f *testing.F) {
	f.Add([]byte("4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nTrailer: x\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var dst bytes.Buffer
		n, err := CopyChunked(&dst, bufio.NewReader(bytes.NewReader(in)))
		if int64(dst.Len()) != n || !bytes.HasPrefix(in, dst.Bytes()) {
			t.Fatalf("output is not the consumed input (n=%d, err=%v)", n, err)
		}
	})
}

func BenchmarkReadRequest(b *testing.B) {
	in := []byte("GET /simple/requests/ HTTP/1.1\r\nHost: pypi.org\r\nUser-Agent: pip/24.0\r\nAccept: */*\r\nAccept-Encoding: gzip\r\nConnection: keep-alive\r\n\r\n")
	r := bytes.NewReader(in)
	br := bufio.NewReader(r)
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(in)
		br.Reset(r)
		if _, err := ReadRequest(br, 8192); err != nil {
			b.Fatal(err)
		}
	}
}
