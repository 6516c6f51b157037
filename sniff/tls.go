package sniff

import (
	"bytes"
	"fmt"
	"io"

	"golang.org/x/crypto/cryptobyte"
)

// MaxHelloSize bounds the ClientHello handshake message. Real hellos are
// under 2 KiB (about 1.8 KiB with a post-quantum key share); 64 KiB leaves
// room for large extensions without letting a client make egressd buffer
// without end.
const MaxHelloSize = 64 << 10

// maxHelloRead bounds the bytes of the records that carry one ClientHello:
// the message, its 4-byte header and the 5-byte headers of its records.
// 4 KiB of headers allow some 800 records, more than even a hello cut into
// one-byte records needs, while a flood of tiny records stays bounded.
const maxHelloRead = MaxHelloSize + 4 + 4096

const (
	recordHeaderLen     = 5
	maxRecordLen        = 1<<14 + 256 // plaintext limit, with slack for odd stacks
	recordTypeHandshake = 22
	handshakeTypeHello  = 1

	extServerName        = 0
	extALPN              = 16
	extSupportedVersions = 43
	extECH               = 0xfe0d
	maxExtensions        = 128
)

// Versions is the set of TLS versions a client offers.
type Versions uint8

// The versions Versions can hold.
const (
	TLS10 Versions = 1 << iota
	TLS11
	TLS12
	TLS13
)

func versionBit(v uint16) Versions {
	switch v {
	case 0x0301:
		return TLS10
	case 0x0302:
		return TLS11
	case 0x0303:
		return TLS12
	case 0x0304:
		return TLS13
	}
	return 0
}

// Max returns the highest version offered as its wire value (0x0304 for
// TLS 1.3), or 0.
func (v Versions) Max() uint16 {
	for i := 3; i >= 0; i-- {
		if v&(1<<i) != 0 {
			return 0x0301 + uint16(i)
		}
	}
	return 0
}

// String lists the versions, e.g. "1.2,1.3"; "" when none is known.
func (v Versions) String() string {
	var b [16]byte
	out := b[:0]
	for i := 0; i < 4; i++ {
		if v&(1<<i) != 0 {
			if len(out) > 0 {
				out = append(out, ',')
			}
			out = append(out, '1', '.', byte('0'+i))
		}
	}
	return string(out)
}

// ClientHello is what egressd needs from a TLS ClientHello.
type ClientHello struct {
	ServerName string   // the SNI host_name as sent; "" when there is none
	ALPN       string   // offered ALPN protocols, comma-separated, in order
	Versions   Versions // supported_versions, else the legacy version
	ECH        bool     // an encrypted_client_hello extension is present (its outer SNI is ServerName)
}

// ReadClientHello reads one complete ClientHello from r, across as many TCP
// segments and TLS records as it takes (at most MaxHelloSize of handshake
// message), and parses it.
//
// It returns every byte read from r, in order — on error too, and including
// any bytes that came after the hello in the same read — so that the
// caller can write them upstream before splicing. That slice is buf[:n]
// when buf has the capacity (4 KiB holds any common hello), else a new
// one; buf may be nil. The strings in ClientHello do not alias it.
//
// The caller sets r's deadline; a timeout is ErrTimeout. A stream that ends
// early, even before its first byte, is ErrTruncated.
func ReadClientHello(r io.Reader, buf []byte) (ClientHello, []byte, error) {
	raw := buf[:0]
	var err error
	// fill reads until raw holds at least n bytes.
	fill := func(n int) error {
		if len(raw) >= n {
			return nil
		}
		if n > cap(raw) {
			// Never past the bound (n is within it): what is read ahead
			// of the hello is returned too, and must stay bounded.
			grown := make([]byte, len(raw), max(n, min(max(2*cap(raw), 4096), maxHelloRead+recordHeaderLen)))
			copy(grown, raw)
			raw = grown
		}
		m, err := io.ReadAtLeast(r, raw[len(raw):cap(raw)], n-len(raw))
		raw = raw[:len(raw)+m]
		if err != nil {
			return readError(err)
		}
		return nil
	}

	var (
		hs       []byte // the handshake stream; aliases raw while it is one record
		copied   bool
		hsLen    = -1
		off      = 0 // start of the next record in raw
		nrecords = 0
	)
	for {
		if err = fill(off + recordHeaderLen); err != nil {
			return ClientHello{}, raw, err
		}
		h := raw[off : off+recordHeaderLen]
		if h[0] != recordTypeHandshake || h[1] != 3 {
			if nrecords == 0 {
				return ClientHello{}, raw, fmt.Errorf("%w: first bytes %q", ErrNotTLS, printable(h))
			}
			return ClientHello{}, raw, malformed("record of type %d, version %d.%d, inside the ClientHello", h[0], h[1], h[2])
		}
		// The record version is 3.0 (SSL 3.0 compatible hellos) to 3.4;
		// anything else is not what a TLS stack sends.
		if h[2] > 4 {
			return ClientHello{}, raw, malformed("record version 3.%d", h[2])
		}
		n := int(h[3])<<8 | int(h[4])
		if n == 0 || n > maxRecordLen {
			return ClientHello{}, raw, malformed("record length %d", n)
		}
		if off+recordHeaderLen+n > maxHelloRead {
			return ClientHello{}, raw, fmt.Errorf("%w: ClientHello records over %d bytes", ErrTooLarge, maxHelloRead)
		}
		if err = fill(off + recordHeaderLen + n); err != nil {
			return ClientHello{}, raw, err
		}
		frag := raw[off+recordHeaderLen : off+recordHeaderLen+n]
		off += recordHeaderLen + n
		nrecords++
		if nrecords == 1 {
			hs = frag
		} else {
			if !copied {
				hs = append(make([]byte, 0, min(hsLen+4, MaxHelloSize+4)), hs...)
				copied = true
			}
			hs = append(hs, frag...)
		}
		if hsLen < 0 && len(hs) >= 4 {
			if hs[0] != handshakeTypeHello {
				return ClientHello{}, raw, malformed("handshake message type %d, not ClientHello", hs[0])
			}
			hsLen = int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3])
			if hsLen > MaxHelloSize {
				return ClientHello{}, raw, fmt.Errorf("%w: ClientHello of %d bytes (limit %d)", ErrTooLarge, hsLen, MaxHelloSize)
			}
		}
		if hsLen >= 0 && len(hs) >= 4+hsLen {
			if len(hs) > 4+hsLen {
				return ClientHello{}, raw, malformed("%d bytes of handshake data after the ClientHello", len(hs)-4-hsLen)
			}
			break
		}
		if len(hs) > MaxHelloSize+4 {
			return ClientHello{}, raw, fmt.Errorf("%w: ClientHello over %d bytes", ErrTooLarge, MaxHelloSize)
		}
	}
	hello, err := parseClientHello(hs[4:])
	return hello, raw, err
}

// parseClientHello parses the body of a ClientHello handshake message in
// the manner of crypto/tls: length-prefixed reads that fail instead of
// overrunning, each extension consumed exactly.
func parseClientHello(body []byte) (ClientHello, error) {
	var (
		hello        ClientHello
		legacy       uint16
		random       []byte
		sessionID    cryptobyte.String
		suites       cryptobyte.String
		compressions cryptobyte.String
	)
	s := cryptobyte.String(body)
	if !s.ReadUint16(&legacy) || !s.ReadBytes(&random, 32) ||
		!s.ReadUint8LengthPrefixed(&sessionID) || len(sessionID) > 32 ||
		!s.ReadUint16LengthPrefixed(&suites) || len(suites) == 0 || len(suites)%2 != 0 ||
		!s.ReadUint8LengthPrefixed(&compressions) || len(compressions) == 0 {
		return ClientHello{}, malformed("ClientHello fields")
	}
	if s.Empty() { // no extensions at all (very old clients)
		hello.Versions = versionBit(legacy)
		return hello, nil
	}
	var exts cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
		return ClientHello{}, malformed("extensions block")
	}
	var (
		seen       [maxExtensions]uint16
		nseen      int
		sni        []byte
		alpn       cryptobyte.String // the protocol_name_list, checked
		sawVersion bool
	)
	for !exts.Empty() {
		var typ uint16
		var data cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&data) {
			return ClientHello{}, malformed("extension header")
		}
		for _, t := range seen[:nseen] {
			if t == typ {
				return ClientHello{}, fmt.Errorf("%w: extension %d appears twice", ErrAmbiguous, typ)
			}
		}
		if nseen == maxExtensions {
			return ClientHello{}, malformed("more than %d extensions", maxExtensions)
		}
		seen[nseen] = typ
		nseen++
		switch typ {
		case extServerName:
			var list cryptobyte.String
			if !data.ReadUint16LengthPrefixed(&list) || !data.Empty() || list.Empty() {
				return ClientHello{}, malformed("server_name extension")
			}
			for !list.Empty() {
				var nameType uint8
				var name cryptobyte.String
				if !list.ReadUint8(&nameType) || !list.ReadUint16LengthPrefixed(&name) {
					return ClientHello{}, malformed("server_name entry")
				}
				if sni != nil {
					return ClientHello{}, fmt.Errorf("%w: more than one server name", ErrAmbiguous)
				}
				if nameType != 0 {
					return ClientHello{}, malformed("server name of type %d", nameType)
				}
				if len(name) == 0 || bytes.IndexByte(name, 0) >= 0 {
					return ClientHello{}, malformed("empty server name or NUL in it")
				}
				sni = name
			}
		case extALPN:
			var list cryptobyte.String
			if !data.ReadUint16LengthPrefixed(&list) || !data.Empty() || list.Empty() {
				return ClientHello{}, malformed("ALPN extension")
			}
			alpn = list
			for !list.Empty() {
				var proto cryptobyte.String
				if !list.ReadUint8LengthPrefixed(&proto) || len(proto) == 0 {
					return ClientHello{}, malformed("ALPN protocol")
				}
			}
		case extSupportedVersions:
			var list cryptobyte.String
			if !data.ReadUint8LengthPrefixed(&list) || !data.Empty() || len(list) == 0 || len(list)%2 != 0 {
				return ClientHello{}, malformed("supported_versions extension")
			}
			for !list.Empty() {
				var v uint16
				list.ReadUint16(&v)
				hello.Versions |= versionBit(v)
			}
			sawVersion = true
		case extECH:
			hello.ECH = true
		}
	}
	if !sawVersion {
		hello.Versions = versionBit(legacy)
	}
	// One allocation holds the name and the ALPN list; both are substrings.
	// The ALPN list was checked above, so it reads without failing here.
	var scratch [512]byte
	joined := append(scratch[:0], sni...)
	for first := true; !alpn.Empty(); first = false {
		var proto cryptobyte.String
		alpn.ReadUint8LengthPrefixed(&proto)
		if !first {
			joined = append(joined, ',')
		}
		joined = append(joined, proto...)
	}
	all := string(joined)
	hello.ServerName, hello.ALPN = all[:len(sni)], all[len(sni):]
	return hello, nil
}

// printable renders the first bytes of a non-TLS stream for an error.
func printable(b []byte) string {
	out := make([]byte, len(b))
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			c = '.'
		}
		out[i] = c
	}
	return string(out)
}
