package sniff

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"testing/iotest"

	"golang.org/x/crypto/cryptobyte"
)

func readHello(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var realHellos = []string{"hello-curl.bin", "hello-openssl.bin", "hello-go-pq.bin"}

// ext is one extension for buildHello.
type ext struct {
	typ  uint16
	data []byte
}

func sniExt(names ...string) ext {
	var b cryptobyte.Builder
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, n := range names {
			b.AddUint8(0)
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(n)) })
		}
	})
	return ext{0, b.BytesOrPanic()}
}

func alpnExt(protos ...string) ext {
	var b cryptobyte.Builder
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, p := range protos {
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(p)) })
		}
	})
	return ext{16, b.BytesOrPanic()}
}

func versionsExt(vs ...uint16) ext {
	var b cryptobyte.Builder
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, v := range vs {
			b.AddUint16(v)
		}
	})
	return ext{43, b.BytesOrPanic()}
}

// helloBody builds a ClientHello body with the given extensions.
func helloBody(exts ...ext) []byte {
	var b cryptobyte.Builder
	b.AddUint16(0x0303)
	b.AddBytes(make([]byte, 32))
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) {})
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddUint16(0x1301) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddUint8(0) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, e := range exts {
			b.AddUint16(e.typ)
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(e.data) })
		}
	})
	return b.BytesOrPanic()
}

// records frames a ClientHello body as a handshake message split into
// records of at most chunk bytes.
func records(body []byte, chunk int) []byte {
	msg := append([]byte{1, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
	var out []byte
	for len(msg) > 0 {
		n := min(chunk, len(msg))
		out = append(out, 22, 3, 1, byte(n>>8), byte(n))
		out = append(out, msg[:n]...)
		msg = msg[n:]
	}
	return out
}

// reframe splits a captured single-record hello into records of chunk bytes.
func reframe(t testing.TB, hello []byte, chunk int) []byte {
	t.Helper()
	if hello[0] != 22 {
		t.Fatal("not a handshake record")
	}
	n := int(hello[3])<<8 | int(hello[4])
	msg := hello[5 : 5+n]
	return records(msg[4:], chunk)
}

// realHellos are the captured hellos (go run ./sniff/testdata/capture.go)
// with the ALPN each client offered.
var realHelloALPN = map[string]string{
	"hello-curl.bin":    "h2,http/1.1",
	"hello-openssl.bin": "", // s_client offers no ALPN unless told to
	"hello-go-pq.bin":   "h2,http/1.1",
}

// countRecords counts the complete TLS records at the start of b.
func countRecords(b []byte) int {
	n := 0
	for len(b) >= 5 && len(b) >= 5+(int(b[3])<<8|int(b[4])) {
		b = b[5+(int(b[3])<<8|int(b[4])):]
		n++
	}
	return n
}

func TestRealHellos(t *testing.T) {
	for _, name := range realHellos {
		t.Run(name, func(t *testing.T) {
			in := readHello(t, name)
			want, raw, err := ReadClientHello(bytes.NewReader(in), make([]byte, 0, 4096))
			if err != nil {
				t.Fatal(err)
			}
			if want.ServerName != "test.example" || want.ALPN != realHelloALPN[name] || want.Versions&TLS13 == 0 ||
				want.Versions.Max() != 0x0304 || want.ECH {
				t.Fatalf("parsed %+v", want)
			}
			if !bytes.Equal(raw, in) {
				t.Fatalf("returned %d bytes, read %d: every byte must be returned for replay", len(raw), len(in))
			}
			three := reframe(t, in, (len(in)-5+2)/3) // ceil(handshake message / 3)
			if got := countRecords(three); got != 3 {
				t.Fatalf("reframed into %d records, want 3", got)
			}
			for _, variant := range []struct {
				name string
				data []byte
				r    func(io.Reader) io.Reader
			}{
				{"as captured", in, nil},
				{"one byte per read", in, iotest.OneByteReader},
				{"three records", three, nil},
				{"three records, one byte per read", three, iotest.OneByteReader},
				{"three records, half-empty reads", three, iotest.HalfReader},
				{"tiny records, one byte per read", reframe(t, in, 7), iotest.OneByteReader},
				{"one-byte records", reframe(t, in, 1), nil},
			} {
				t.Run(variant.name, func(t *testing.T) {
					var r io.Reader = bytes.NewReader(variant.data)
					if variant.r != nil {
						r = variant.r(r)
					}
					for _, buf := range [][]byte{nil, make([]byte, 0, 16), make([]byte, 0, 4096)} {
						h, raw, err := ReadClientHello(r, buf)
						if err != nil {
							t.Fatal(err)
						}
						if h != want {
							t.Fatalf("parsed %+v, as captured %+v", h, want)
						}
						if !bytes.Equal(raw, variant.data) {
							t.Fatalf("returned %d bytes, read %d: every byte must be returned for replay", len(raw), len(variant.data))
						}
						r = bytes.NewReader(variant.data)
						if variant.r != nil {
							r = variant.r(r)
						}
					}
				})
			}
		})
	}
	if pq := readHello(t, "hello-go-pq.bin"); len(pq) <= 1500 {
		t.Fatalf("the Go post-quantum hello is %d bytes; expected more than one TCP segment (> 1500)", len(pq))
	}
}

// editHello parses a captured single-record hello, lets edit change its
// extension list, and frames the result as one record.
func editHello(t testing.TB, hello []byte, edit func([]ext) []ext) []byte {
	t.Helper()
	s := cryptobyte.String(hello[5+4:])
	var (
		preamble []byte
		sid      cryptobyte.String
		suites   cryptobyte.String
		comps    cryptobyte.String
		extBlock cryptobyte.String
	)
	start := s
	if !s.Skip(2+32) || !s.ReadUint8LengthPrefixed(&sid) || !s.ReadUint16LengthPrefixed(&suites) ||
		!s.ReadUint8LengthPrefixed(&comps) {
		t.Fatal("captured hello: preamble")
	}
	preamble = start[:len(start)-len(s)]
	if !s.ReadUint16LengthPrefixed(&extBlock) || !s.Empty() {
		t.Fatal("captured hello: extensions")
	}
	var exts []ext
	for !extBlock.Empty() {
		var e ext
		var data cryptobyte.String
		if !extBlock.ReadUint16(&e.typ) || !extBlock.ReadUint16LengthPrefixed(&data) {
			t.Fatal("captured hello: extension")
		}
		e.data = data
		exts = append(exts, e)
	}
	exts = edit(exts)
	var b cryptobyte.Builder
	b.AddBytes(preamble)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, e := range exts {
			b.AddUint16(e.typ)
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(e.data) })
		}
	})
	return records(b.BytesOrPanic(), 1<<14)
}

// replaceExt swaps extension typ for e, or appends e.
func replaceExt(exts []ext, e ext) []ext {
	out := append([]ext(nil), exts...)
	for i := range out {
		if out[i].typ == e.typ {
			out[i] = e
			return out
		}
	}
	return append(out, e)
}

func TestRealHelloVariants(t *testing.T) {
	for _, name := range realHellos {
		in := readHello(t, name)
		// The editor itself must round-trip the capture.
		if same := editHello(t, in, func(e []ext) []ext { return e }); !bytes.Equal(same[5:], in[5:]) {
			t.Fatalf("%s: editHello does not round-trip", name)
		}
		for _, tc := range []struct {
			name string
			edit func([]ext) []ext
			want error
			ech  bool
		}{
			{"duplicate supported_versions", func(e []ext) []ext { return append(e, versionsExt(0x0304)) }, ErrAmbiguous, false},
			{"duplicate server_name", func(e []ext) []ext { return append(e, sniExt("evil.example")) }, ErrAmbiguous, false},
			{"two host_name entries", func(e []ext) []ext { return replaceExt(e, sniExt("test.example", "evil.example")) }, ErrAmbiguous, false},
			{"empty SNI", func(e []ext) []ext { return replaceExt(e, sniExt("")) }, ErrMalformed, false},
			{"SNI of another type", func(e []ext) []ext {
				return replaceExt(e, ext{0, []byte{0, 4, 1, 0, 1, 'x'}})
			}, ErrMalformed, false},
			{"SNI length past its extension", func(e []ext) []ext {
				return replaceExt(e, ext{0, []byte{0, 9, 0, 0, 1, 'x'}})
			}, ErrMalformed, false},
			{"empty ALPN protocol", func(e []ext) []ext { return replaceExt(e, alpnExt("h2", "")) }, ErrMalformed, false},
			{"odd supported_versions", func(e []ext) []ext { return replaceExt(e, ext{43, []byte{3, 3, 4, 3}}) }, ErrMalformed, false},
			{"encrypted_client_hello", func(e []ext) []ext { return append(e, ext{0xfe0d, []byte{0, 0, 1, 0, 1}}) }, nil, true},
		} {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				mod := editHello(t, in, tc.edit)
				for _, data := range [][]byte{mod, reframe(t, mod, 100)} {
					h, raw, err := ReadClientHello(iotest.OneByteReader(bytes.NewReader(data)), nil)
					if !bytes.Equal(raw, data) {
						t.Fatalf("returned %d of %d bytes", len(raw), len(data))
					}
					if tc.want != nil {
						if !errors.Is(err, tc.want) {
							t.Fatalf("got %v, want %v", err, tc.want)
						}
						continue
					}
					if err != nil {
						t.Fatal(err)
					}
					if h.ECH != tc.ech || h.ServerName != "test.example" {
						t.Fatalf("parsed %+v", h)
					}
				}
			})
		}
	}
}

func TestHelloFields(t *testing.T) {
	h, _, err := ReadClientHello(bytes.NewReader(records(helloBody(sniExt("API.Example.com."), alpnExt("h2", "http/1.1"),
		versionsExt(0x0304, 0x0303, 0x7a7a), ext{0xfe0d, []byte{1, 2, 3}}), 1<<14)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if h.ServerName != "API.Example.com." || h.ALPN != "h2,http/1.1" || !h.ECH ||
		h.Versions != TLS12|TLS13 || h.Versions.Max() != 0x0304 || h.Versions.String() != "1.2,1.3" {
		t.Fatalf("%+v", h)
	}
	// No extensions block at all (very old clients): legacy version, no name.
	noExt := helloBody()
	noExt = noExt[:len(noExt)-2]
	h, _, err = ReadClientHello(bytes.NewReader(records(noExt, 100)), nil)
	if err != nil || h != (ClientHello{Versions: TLS12}) || h.Versions.String() != "1.2" {
		t.Fatalf("hello without extensions: %+v %v", h, err)
	}
	// An empty extensions block, GREASE-only supported_versions.
	h, _, err = ReadClientHello(bytes.NewReader(records(helloBody(versionsExt(0x0a0a)), 100)), nil)
	if err != nil || h.Versions != 0 || h.Versions.Max() != 0 || h.ServerName != "" {
		t.Fatalf("unknown versions only: %+v %v", h, err)
	}
	// An empty body is not a ClientHello.
	if h, _, err = ReadClientHello(bytes.NewReader(records(nil, 100)), nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("empty body: %+v %v", h, err)
	}
	// Bytes after the hello (a client that does not wait, or TLS early
	// data) are returned with it for replay, not lost.
	in := append(records(helloBody(sniExt("a.example")), 1<<14), 23, 3, 3, 0, 1, 'x')
	h, raw, err := ReadClientHello(bytes.NewReader(in), make([]byte, 0, 4096))
	if err != nil || h.ServerName != "a.example" || !bytes.Equal(raw, in) {
		t.Fatalf("hello followed by data: %+v %v, returned %d of %d bytes", h, err, len(raw), len(in))
	}
}

func TestHelloSizeLimit(t *testing.T) {
	base := len(helloBody(sniExt("a.example"), ext{21, nil}))
	padded := func(size int) []byte { // a ClientHello body of size bytes
		return helloBody(sniExt("a.example"), ext{21, make([]byte, size-base)})
	}
	if body := padded(MaxHelloSize); len(body) != MaxHelloSize {
		t.Fatalf("built %d bytes", len(body))
	}
	h, raw, err := ReadClientHello(bytes.NewReader(records(padded(MaxHelloSize), 1<<14)), nil)
	if err != nil || h.ServerName != "a.example" || len(raw) != MaxHelloSize+4+5*5 {
		t.Fatalf("a hello of exactly MaxHelloSize: %+v %v (%d bytes)", h, err, len(raw))
	}
	if _, _, err := ReadClientHello(bytes.NewReader(records(padded(MaxHelloSize+1), 1<<14)), nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("one byte over: %v", err)
	}
}

// TestHelloAllocs pins the cost of the hot path: with a caller's buffer
// that has room, only the strings of the result are allocated.
func TestHelloAllocs(t *testing.T) {
	in := readHello(t, "hello-go-pq.bin")
	buf := make([]byte, 0, 4096)
	r := bytes.NewReader(in)
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset(in)
		if _, _, err := ReadClientHello(r, buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 2 {
		t.Fatalf("%.1f allocations per hello, want at most 2", allocs)
	}
}

type timeoutReader struct{}

func (timeoutReader) Read([]byte) (int, error) { return 0, os.ErrDeadlineExceeded }

// netTimeout is a net.Error that says it is a timeout, without wrapping
// os.ErrDeadlineExceeded.
type netTimeout struct{}

func (netTimeout) Error() string   { return "i/o timeout" }
func (netTimeout) Timeout() bool   { return true }
func (netTimeout) Temporary() bool { return true }

var _ net.Error = netTimeout{}

// errAfter returns data, then err.
type errAfter struct {
	data []byte
	err  error
}

func (r *errAfter) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestHelloErrors(t *testing.T) {
	// A handshake header announcing a 70,000-byte ClientHello.
	big := []byte{22, 3, 1, 0, 4, 1, 0x01, 0x11, 0x70}
	// The extensions block claims one byte more than it holds.
	overlong := helloBody(sniExt("a.example"))
	overlong[42]++
	// A record holding the ClientHello and one more handshake byte.
	trailing := records(helloBody(sniExt("a.example")), 1<<14)
	trailing[4]++
	trailing = append(trailing, 0)
	for _, tc := range []struct {
		name string
		in   []byte
		r    io.Reader
		want error
	}{
		{"http on 443", []byte("GET / HTTP/1.1\r\n"), nil, ErrNotTLS},
		{"http on 443, whole head", []byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), nil, ErrNotTLS},
		{"SSLv2-style hello", []byte{0x80, 0x2e, 1, 3, 1, 0, 0x15}, nil, ErrNotTLS},
		{"application data first", []byte{23, 3, 3, 0, 1, 0}, nil, ErrNotTLS},
		{"empty record", []byte{22, 3, 1, 0, 0}, nil, ErrMalformed},
		{"record over 2^14+256", []byte{22, 3, 1, 0x41, 1}, nil, ErrMalformed},
		{"handshake data after the hello", trailing, nil, ErrMalformed},
		{"truncated mid-record", readHello(t, "hello-curl.bin")[:300], nil, ErrTruncated},
		{"truncated between records", reframe(t, readHello(t, "hello-openssl.bin"), 100)[:105], nil, ErrTruncated},
		{"empty input", []byte{}, nil, ErrTruncated},
		{"timeout mid-hello", nil, &errAfter{readHello(t, "hello-go-pq.bin")[:1000], os.ErrDeadlineExceeded}, ErrTimeout},
		{"net.Error timeout", nil, &errAfter{readHello(t, "hello-go-pq.bin")[:10], netTimeout{}}, ErrTimeout},
		{"ssh on 443", []byte("SSH-2.0-OpenSSH_9.2\r\n"), nil, ErrNotTLS},
		{"duplicate extension", records(helloBody(sniExt("a.example"), alpnExt("h2"), alpnExt("h2")), 1<<14), nil, ErrAmbiguous},
		{"two SNI extensions", records(helloBody(sniExt("a.example"), sniExt("b.example")), 1<<14), nil, ErrAmbiguous},
		{"two host names", records(helloBody(sniExt("a.example", "b.example")), 1<<14), nil, ErrAmbiguous},
		{"empty host name", records(helloBody(sniExt("")), 1<<14), nil, ErrMalformed},
		{"NUL in host name", records(helloBody(sniExt("a.example\x00.evil")), 1<<14), nil, ErrMalformed},
		{"empty server_name list", records(helloBody(ext{0, []byte{0, 0}}), 1<<14), nil, ErrMalformed},
		{"extensions block longer than the hello", records(overlong, 1<<14), nil, ErrMalformed},
		{"not a ClientHello", []byte{22, 3, 1, 0, 4, 2, 0, 0, 0}, nil, ErrMalformed},
		{"alert record inside", append(reframe(t, readHello(t, "hello-curl.bin"), 100)[:105], 21, 3, 3, 0, 2, 1, 0), nil, ErrMalformed},
		{"truncated", readHello(t, "hello-go-pq.bin")[:800], nil, ErrTruncated},
		{"truncated header", []byte{22, 3}, nil, ErrTruncated},
		{"too large", big, nil, ErrTooLarge},
		{"timeout", nil, timeoutReader{}, ErrTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.r
			if r == nil {
				r = bytes.NewReader(tc.in)
			}
			_, raw, err := ReadClientHello(r, nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tc.in != nil && !bytes.HasPrefix(tc.in, raw) {
				t.Fatal("returned bytes are not what was read")
			}
			if Reason(err) == "io" {
				t.Fatalf("no reason label for %v", err)
			}
		})
	}
}

func TestReasonLabels(t *testing.T) {
	timeout := readError(&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded})
	for err, want := range map[error]string{
		nil:                            "",
		ErrNotTLS:                      "not_tls",
		malformed("x %d", 1):           "malformed",
		ErrAmbiguous:                   "ambiguous",
		ErrTooLarge:                    "too_large",
		timeout:                        "timeout",
		readError(netTimeout{}):        "timeout",
		readError(io.ErrUnexpectedEOF): "truncated",
		io.EOF:                         "io",
		io.ErrClosedPipe:               "io",
	} {
		if got := Reason(err); got != want {
			t.Errorf("Reason(%v) = %q, want %q", err, got, want)
		}
	}
	// A timeout is both ErrTimeout and its cause.
	if !errors.Is(timeout, ErrTimeout) || !errors.Is(timeout, os.ErrDeadlineExceeded) {
		t.Fatalf("%v: the sentinel or the cause is lost", timeout)
	}
	var ne net.Error
	if !errors.As(timeout, &ne) || !ne.Timeout() {
		t.Fatalf("%v: not a net.Error timeout any more", timeout)
	}
}

// refHostNames is an independent, simple reading of a well-framed hello:
// it reassembles the handshake message from its records and returns it with
// every host_name entry of every server_name extension. ok is false when
// the input is not a framed, parseable ClientHello.
func refHostNames(in []byte) (msg []byte, names []string, ok bool) {
	for len(in) >= 5 {
		n := int(in[3])<<8 | int(in[4])
		if len(in) < 5+n {
			return nil, nil, false
		}
		msg = append(msg, in[5:5+n]...)
		in = in[5+n:]
		if len(msg) >= 4 && len(msg) >= 4+(int(msg[1])<<16|int(msg[2])<<8|int(msg[3])) {
			break
		}
	}
	if len(msg) < 4 {
		return nil, nil, false
	}
	s := cryptobyte.String(msg[4:])
	var skip, exts cryptobyte.String
	if !s.Skip(2+32) || !s.ReadUint8LengthPrefixed(&skip) || !s.ReadUint16LengthPrefixed(&skip) ||
		!s.ReadUint8LengthPrefixed(&skip) {
		return nil, nil, false
	}
	if s.Empty() {
		return msg, nil, true
	}
	if !s.ReadUint16LengthPrefixed(&exts) {
		return nil, nil, false
	}
	for !exts.Empty() {
		var typ uint16
		var data, list cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&data) {
			return nil, nil, false
		}
		if typ != 0 {
			continue
		}
		if !data.ReadUint16LengthPrefixed(&list) {
			return nil, nil, false
		}
		for !list.Empty() {
			var nameType uint8
			var name cryptobyte.String
			if !list.ReadUint8(&nameType) || !list.ReadUint16LengthPrefixed(&name) {
				return nil, nil, false
			}
			if nameType == 0 {
				names = append(names, string(name))
			}
		}
	}
	return msg, names, true
}

func FuzzReadClientHello(f *testing.F) {
	for _, name := range append(realHellos, "hello-go-ech.bin") {
		h := readHello(f, name)
		f.Add(h)
		f.Add(reframe(f, h, 50))
		f.Add(reframe(f, h, (len(h)-5+2)/3))
		f.Add(h[:len(h)/2])
		f.Add(editHello(f, h, func(e []ext) []ext { return replaceExt(e, sniExt("test.example", "evil.example")) }))
		f.Add(editHello(f, h, func(e []ext) []ext { return append(e, ext{0xfe0d, []byte{0}}) }))
	}
	f.Add(records(helloBody(sniExt("a.example", "b.example")), 100))
	f.Add(records(helloBody(sniExt("a.example"), sniExt("b.example")), 100))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{22, 3, 1, 0, 4, 1, 0x01, 0x11, 0x70})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		h, raw, err := ReadClientHello(r, nil)
		// Every byte taken from the reader is handed back, in order, for
		// the replay upstream: nothing more, nothing less.
		if consumed := len(in) - r.Len(); !bytes.Equal(raw, in[:consumed]) {
			t.Fatalf("returned %d bytes, but %d were read", len(raw), consumed)
		}
		if Reason(err) == "io" && err != nil {
			t.Fatalf("unclassified error %v", err)
		}
		if err != nil {
			return
		}
		msg, names, ok := refHostNames(in)
		if !ok {
			t.Fatalf("accepted %+v, but the reference reader cannot parse it", h)
		}
		// The name checked is the only name the server can see.
		if len(names) > 1 {
			t.Fatalf("accepted %d host names %q as %q", len(names), names, h.ServerName)
		}
		if (len(names) == 0) != (h.ServerName == "") || (len(names) == 1 && names[0] != h.ServerName) {
			t.Fatalf("ServerName %q, the hello holds %q", h.ServerName, names)
		}
		// ServerName is a substring of what was sent: of the input when it
		// is one record, of the reassembled message in any case.
		if !bytes.Contains(msg, []byte(h.ServerName)) {
			t.Fatalf("server name %q is not in the handshake message", h.ServerName)
		}
		if countRecords(in) == 1 && !bytes.Contains(in, []byte(h.ServerName)) {
			t.Fatalf("server name %q is not in the input", h.ServerName)
		}
		// Accepting a hello is deterministic and fragmentation-proof.
		h2, raw2, err := ReadClientHello(iotest.OneByteReader(bytes.NewReader(in)), make([]byte, 0, 8))
		if err != nil || h2 != h || !bytes.HasPrefix(raw, raw2) || countRecords(raw2) < 1 {
			t.Fatalf("one byte at a time: %+v %v, want %+v", h2, err, h)
		}
		if len(msg) >= 5 {
			re := records(msg[4:], len(msg)/2+1)
			if h3, _, err := ReadClientHello(bytes.NewReader(re), nil); err != nil || h3 != h {
				t.Fatalf("reframed: %+v %v, want %+v", h3, err, h)
			}
		}
	})
}

func BenchmarkReadClientHello(b *testing.B) {
	in := readHello(b, "hello-go-pq.bin")
	buf := make([]byte, 0, 4096)
	r := bytes.NewReader(in)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(in)
		if _, _, err := ReadClientHello(r, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRealECHHello reads a real Encrypted ClientHello from Go's crypto/tls:
// the server name egressd sees, and checks, is the outer one (the ECH
// config's public name); the name the client wants is encrypted.
func TestRealECHHello(t *testing.T) {
	in := readHello(t, "hello-go-ech.bin")
	for _, variant := range []struct {
		name string
		data []byte
		r    func(io.Reader) io.Reader
	}{
		{"as captured", in, nil},
		{"one byte per read", in, iotest.OneByteReader},
		{"records of 100 bytes", reframe(t, in, 100), iotest.HalfReader},
	} {
		t.Run(variant.name, func(t *testing.T) {
			var r io.Reader = bytes.NewReader(variant.data)
			if variant.r != nil {
				r = variant.r(r)
			}
			h, raw, err := ReadClientHello(r, nil)
			if err != nil {
				t.Fatal(err)
			}
			if h.ServerName != "public.example" || !h.ECH || h.ALPN != "h2,http/1.1" || h.Versions != TLS13 {
				t.Fatalf("parsed %+v", h)
			}
			if !bytes.Equal(raw, variant.data) {
				t.Fatalf("returned %d of %d bytes", len(raw), len(variant.data))
			}
		})
	}
	if bytes.Contains(in, []byte("test.example")) {
		t.Fatal("the inner server name is in the clear: not an ECH capture")
	}
}

func TestHelloRecordLayer(t *testing.T) {
	body := helloBody(sniExt("a.example"))
	withVersion := func(minor byte) []byte {
		in := records(body, 1<<14)
		in[2] = minor
		return in
	}
	for _, minor := range []byte{0, 1, 3, 4} {
		if h, _, err := ReadClientHello(bytes.NewReader(withVersion(minor)), nil); err != nil || h.ServerName != "a.example" {
			t.Errorf("record version 3.%d: %+v %v", minor, h, err)
		}
	}
	for _, minor := range []byte{5, 0x30, 0xff} {
		if _, _, err := ReadClientHello(bytes.NewReader(withVersion(minor)), nil); !errors.Is(err, ErrMalformed) {
			t.Errorf("record version 3.%d: %v, want malformed", minor, err)
		}
	}
	// A second record with another content type: change_cipher_spec,
	// application data, or a record claiming SSL 2.
	for _, typ := range []byte{20, 23} {
		in := records(body, 40)
		in[45] = typ
		if _, _, err := ReadClientHello(bytes.NewReader(in), nil); !errors.Is(err, ErrMalformed) {
			t.Errorf("record of type %d inside the hello: %v", typ, err)
		}
	}
	in := records(body, 40)
	in[46] = 2
	if _, _, err := ReadClientHello(bytes.NewReader(in), nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("second record of version 2.x: %v", err)
	}
	// A large hello in one-byte records: legal, but the record headers
	// count against the bound, so a flood of tiny records stays bounded.
	big := helloBody(sniExt("a.example"), ext{21, make([]byte, 2000)})
	if h, raw, err := ReadClientHello(bytes.NewReader(records(big, 1)), nil); err != nil || h.ServerName != "a.example" || len(raw) != 6*(len(big)+4) {
		t.Errorf("hello of %d bytes in one-byte records: %+v %v", len(big), h, err)
	}
	huge := helloBody(sniExt("a.example"), ext{21, make([]byte, 20000)})
	if _, raw, err := ReadClientHello(bytes.NewReader(records(huge, 1)), nil); !errors.Is(err, ErrTooLarge) || len(raw) > maxHelloRead+recordHeaderLen {
		t.Errorf("hello of %d bytes in one-byte records: %v after %d bytes", len(huge), err, len(raw))
	}
}

func TestHelloALPNList(t *testing.T) {
	protos := []string{"h2", "http/1.1", "spdy/3", "a", "b", "c", "d", "e", "f", "g", "acme-tls/1"}
	h, _, err := ReadClientHello(bytes.NewReader(records(helloBody(sniExt("a.example"), alpnExt(protos...)), 1<<14)), nil)
	if err != nil || h.ALPN != strings.Join(protos, ",") || h.ServerName != "a.example" {
		t.Fatalf("%+v %v", h, err)
	}
	// A name with bytes that are not a hostname is returned as sent: the
	// policy, not the parser, denies it.
	odd := "a b.example/\xff"
	if h, _, err := ReadClientHello(bytes.NewReader(records(helloBody(sniExt(odd)), 1<<14)), nil); err != nil || h.ServerName != odd {
		t.Fatalf("odd name: %+v %v", h, err)
	}
	for _, bad := range []ext{
		{16, []byte{0, 0}},            // empty protocol list
		{16, []byte{0, 3, 2, 'h'}},    // protocol longer than the list
		{16, []byte{0, 2, 1, 'h', 0}}, // bytes after the list
		{16, nil},                     // no list at all
	} {
		if _, _, err := ReadClientHello(bytes.NewReader(records(helloBody(bad), 1<<14)), nil); !errors.Is(err, ErrMalformed) {
			t.Errorf("ALPN % x: %v, want malformed", bad.data, err)
		}
	}
}

func TestVersionsString(t *testing.T) {
	for v, want := range map[Versions]string{0: "", TLS13: "1.3", TLS10 | TLS12 | TLS13: "1.0,1.2,1.3", TLS10 | TLS11 | TLS12 | TLS13: "1.0,1.1,1.2,1.3"} {
		if got := v.String(); got != want {
			t.Errorf("%08b: %q, want %q", uint8(v), got, want)
		}
	}
	if max := (TLS10 | TLS12).Max(); max != 0x0303 {
		t.Errorf("Max %#x", max)
	}
}
