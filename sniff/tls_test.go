package sniff

import (
	"bytes"
	"errors"
	"io"
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

func TestRealHellos(t *testing.T) {
	for _, name := range realHellos {
		t.Run(name, func(t *testing.T) {
			in := readHello(t, name)
			for _, variant := range []struct {
				name string
				data []byte
				r    func(io.Reader) io.Reader
			}{
				{"as captured", in, nil},
				{"one byte per read", in, iotest.OneByteReader},
				{"three records", reframe(t, in, len(in)/3+1), nil},
				{"tiny records, one byte per read", reframe(t, in, 7), iotest.OneByteReader},
			} {
				var r io.Reader = bytes.NewReader(variant.data)
				if variant.r != nil {
					r = variant.r(r)
				}
				h, raw, err := ReadClientHello(r, make([]byte, 0, 4096))
				if err != nil {
					t.Fatalf("%s: %v", variant.name, err)
				}
				if h.ServerName != "test.example" || h.Versions&TLS13 == 0 {
					t.Fatalf("%s: %+v", variant.name, h)
				}
				if !bytes.Equal(raw, variant.data) {
					t.Fatalf("%s: returned %d bytes, read %d: every byte must be returned for replay", variant.name, len(raw), len(variant.data))
				}
			}
		})
	}
	if pq := readHello(t, "hello-go-pq.bin"); len(pq) <= 1460 {
		t.Fatalf("the Go post-quantum hello is %d bytes; expected more than one TCP segment", len(pq))
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
	// No extensions at all: legacy version, no name.
	h, _, err = ReadClientHello(bytes.NewReader(records(helloBody()[:0:0], 100)), nil)
	if err == nil {
		t.Fatalf("empty body accepted: %+v", h)
	}
}

type timeoutReader struct{}

func (timeoutReader) Read([]byte) (int, error) { return 0, os.ErrDeadlineExceeded }

func TestHelloErrors(t *testing.T) {
	// A handshake header announcing a 70,000-byte ClientHello.
	big := []byte{22, 3, 1, 0, 4, 1, 0x01, 0x11, 0x70}
	// The extensions block claims one byte more than it holds.
	overlong := helloBody(sniExt("a.example"))
	overlong[42]++
	for _, tc := range []struct {
		name string
		in   []byte
		r    io.Reader
		want error
	}{
		{"http on 443", []byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), nil, ErrNotTLS},
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
	if got := Reason(ErrTimeout); got != "timeout" {
		t.Fatal(got)
	}
	if got := Reason(io.ErrClosedPipe); got != "io" {
		t.Fatal(got)
	}
	if !strings.Contains(Reason(ErrNotTLS), "not_tls") {
		t.Fatal()
	}
}

func FuzzReadClientHello(f *testing.F) {
	for _, name := range realHellos {
		h := readHello(f, name)
		f.Add(h)
		f.Add(reframe(f, h, 50))
		f.Add(h[:len(h)/2])
	}
	f.Add(records(helloBody(sniExt("a.example", "b.example")), 100))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		h, raw, err := ReadClientHello(bytes.NewReader(in), nil)
		if !bytes.HasPrefix(in, raw) {
			t.Fatalf("returned bytes are not a prefix of the input")
		}
		if err != nil {
			return
		}
		singleRecord := len(in) >= 5 && int(in[3])<<8|int(in[4]) == len(in)-5
		if singleRecord && h.ServerName != "" && !bytes.Contains(in, []byte(h.ServerName)) {
			t.Fatalf("server name %q is not in the input", h.ServerName)
		}
		// Accepting a hello is deterministic and fragmentation-proof.
		h2, _, err := ReadClientHello(iotest.OneByteReader(bytes.NewReader(in)), nil)
		if err != nil || h2 != h {
			t.Fatalf("one byte at a time: %+v %v, want %+v", h2, err, h)
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
