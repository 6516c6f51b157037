package sniff

import (
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/cryptobyte"
)

// MaxHelloSize bounds the ClientHello handshake message. Real hellos are
// under 2 KiB (about 1.8 KiB with a post-quantum key share); 64 KiB leaves
// room for large extensions without letting a client make egressd buffer
// without end.
const MaxHelloSize = 64 << 10

const (
	recordHeaderLen    = 5
	maxRecordLen       = 1<<14 + 256 // plaintext limit, with slack for odd stacks
	recordTypeHandshke = 22
	handshakeTypeHello = 1

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

// String lists the versions, e.g. "1.2,1.3".
func (v Versions) String() string {
	var parts []string
	for i := 0; i < 4; i++ {
		if v&(1<<i) != 0 {
			parts = append(parts, fmt.Sprintf("1.%d", i))
		}
	}
	return strings.Join(parts, ",")
}

// ClientHello is what egressd needs from a TLS ClientHello.
type ClientHello struct {
	ServerName string   // the SNI host_name as sent; "" when there is none
	ALPN       string   // offered ALPN protocols, comma-separated, in order
	Versions   Versions // supported_versions, else the legacy version
	ECH        bool     // an encrypted_client_hello extension is present (its outer SNI is ServerName)
}

// ReadClientHello reads one complete ClientHello from r, across as many TCP
// segments and TLS records as it takes, and parses it. It returns every byte
// read from r — also on error — so that the caller can replay them; the
// slice aliases buf when buf has room. The caller sets r's deadline: a
// timeout is ErrTimeout.
func ReadClientHello(r io.Reader, buf []byte) (ClientHello, []byte, error) {
	raw := buf[:0]
	var err error
	// fill reads until raw holds at least n bytes.
	fill := func(n int) error {
		if len(raw) >= n {
			return nil
		}
		if n > cap(raw) {
			grown := make([]byte, len(raw), max(n, 2*cap(raw), 4096))
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
		if h[0] != recordTypeHandshke || h[1] != 3 {
			if nrecords == 0 {
				return ClientHello{}, raw, fmt.Errorf("%w: first bytes %q", ErrNotTLS, printable(h))
			}
			return ClientHello{}, raw, malformed("record of type %d inside the ClientHello", h[0])
		}
		n := int(h[3])<<8 | int(h[4])
		if n == 0 || n > maxRecordLen {
			return ClientHello{}, raw, malformed("record length %d", n)
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
		alpn       [8][]byte // first protocols offered; more are counted but not shown
		nalpn      int
		alpnLen    int
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
				if len(name) == 0 || strings.IndexByte(string(name), 0) >= 0 {
					return ClientHello{}, malformed("empty server name or NUL in it")
				}
				sni = name
			}
		case extALPN:
			var list cryptobyte.String
			if !data.ReadUint16LengthPrefixed(&list) || !data.Empty() || list.Empty() {
				return ClientHello{}, malformed("ALPN extension")
			}
			for !list.Empty() {
				var proto cryptobyte.String
				if !list.ReadUint8LengthPrefixed(&proto) || len(proto) == 0 {
					return ClientHello{}, malformed("ALPN protocol")
				}
				if nalpn < len(alpn) {
					alpn[nalpn] = proto
					alpnLen += len(proto) + 1
					nalpn++
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
	var scratch [512]byte
	joined := scratch[:0]
	joined = append(joined, sni...)
	for i := 0; i < nalpn; i++ {
		if i > 0 {
			joined = append(joined, ',')
		}
		joined = append(joined, alpn[i]...)
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
