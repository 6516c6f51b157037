package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"unicode/utf8"
)

// MaxNameLen is the longest host name accepted, in bytes, not counting one
// trailing dot (RFC 1035: 255 octets on the wire, 253 characters as text).
const MaxNameLen = 253

// maxLabelLen is the longest label accepted (RFC 1035).
const maxLabelLen = 63

// ErrInvalidName is wrapped by every error NormalizeName returns for a name
// that is not a valid host name.
var ErrInvalidName = errors.New("invalid host name")

// ErrAddressLiteral is returned by NormalizeName when the "name" is an IP
// address literal (an SNI or Host of 203.0.113.5 or 2001:db8::1). It is not
// a name: decide and dial by the destination address, as Decide does.
var ErrAddressLiteral = errors.New("an IP address, not a host name")

// nameStatus is what normalize found.
type nameStatus uint8

const (
	nameValid   nameStatus = iota // a valid host name, normalised
	nameNone                      // the empty string: no name was sent
	nameAddress                   // an IPv4 or IPv6 literal
	// Invalid names, one status per reason so that messages can say why.
	badEmptyLabel
	badLongLabel
	badLongName
	badNonASCII
	badChar
)

func (s nameStatus) invalid() bool { return s >= badEmptyLabel }

// why explains an invalid status; c is the offending byte for badChar.
func (s nameStatus) why(c byte) string {
	switch s {
	case badEmptyLabel:
		return "empty label (two dots in a row, a leading dot, or more than one trailing dot)"
	case badLongLabel:
		return fmt.Sprintf("a label is longer than %d bytes", maxLabelLen)
	case badLongName:
		return fmt.Sprintf("longer than %d bytes", MaxNameLen)
	case badNonASCII:
		return "non-ASCII byte (names on the wire are ASCII; internationalised names are sent as xn-- A-labels)"
	case badChar:
		return fmt.Sprintf("invalid character %q (a label holds only letters, digits, '-' and '_')", c)
	}
	return "invalid"
}

// normalize validates raw as a host name from the wire and writes its
// normalised form (lower case, without one trailing dot) into buf. It never
// allocates. For an invalid name it returns the status saying why and, for
// badChar and badNonASCII, the offending byte. For an address literal it
// returns the address.
func normalize(buf *[MaxNameLen]byte, raw string) (n int, st nameStatus, bad byte, addr netip.Addr) {
	if raw == "" {
		return 0, nameNone, 0, netip.Addr{}
	}
	s := raw
	if s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	if s == "" {
		return 0, badEmptyLabel, 0, netip.Addr{}
	}
	if len(s) > MaxNameLen {
		// An IPv6 literal is never this long; nothing else can be valid.
		return 0, badLongName, 0, netip.Addr{}
	}
	label := 0          // length of the current label
	lastNumeric := true // the current label is all digits so far
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', c == '-', c == '_':
			lastNumeric = false
		case '0' <= c && c <= '9':
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
			lastNumeric = false
		case c == '.':
			if label == 0 {
				return 0, badEmptyLabel, 0, netip.Addr{}
			}
			buf[i] = c
			label = 0
			lastNumeric = true
			continue
		case c == ':':
			// Only an IPv6 literal holds a colon (the sniffers strip
			// brackets and ports). A trailing dot is not part of one.
			if a, ok := parseIPv6(raw); ok {
				return 0, nameAddress, 0, a
			}
			return 0, badChar, c, netip.Addr{}
		case c >= 0x80:
			return 0, badNonASCII, c, netip.Addr{}
		default:
			return 0, badChar, c, netip.Addr{}
		}
		label++
		if label > maxLabelLen {
			return 0, badLongLabel, 0, netip.Addr{}
		}
		buf[i] = c
	}
	if label == 0 {
		return 0, badEmptyLabel, 0, netip.Addr{}
	}
	if lastNumeric {
		if a, ok := parseIPv4(s); ok {
			return 0, nameAddress, 0, a
		}
	}
	return len(s), nameValid, 0, netip.Addr{}
}

// NormalizeName validates a host name as sent on the wire (a TLS SNI or an
// HTTP Host without its port) and returns it in the form the policy
// compares: lower case, without one trailing dot. A valid name is ASCII,
// holds only letters, digits, '-' and '_' in labels of 1 to 63 bytes, and
// is at most 253 bytes long. Nothing is repaired: an invalid name is an
// error wrapping ErrInvalidName, and an IP address literal is
// ErrAddressLiteral. It does not allocate when raw is already normal.
func NormalizeName(raw string) (string, error) {
	var buf [MaxNameLen]byte
	n, st, bad, _ := normalize(&buf, raw)
	switch {
	case st == nameNone:
		return "", fmt.Errorf("%w: empty", ErrInvalidName)
	case st == nameAddress:
		return "", ErrAddressLiteral
	case st.invalid():
		return "", fmt.Errorf("%w %q: %s", ErrInvalidName, raw, st.why(bad))
	}
	if string(buf[:n]) == raw[:n] {
		return raw[:n], nil
	}
	return string(buf[:n]), nil
}

// parseIPv4 parses a dotted-quad IPv4 address exactly as netip.ParseAddr
// does (no leading zeros, four fields), without allocating on failure.
func parseIPv4(s string) (netip.Addr, bool) {
	var ip [4]byte
	field, val, digits := 0, 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9':
			if digits == 1 && val == 0 {
				return netip.Addr{}, false // leading zero
			}
			val = val*10 + int(c-'0')
			digits++
			if val > 255 {
				return netip.Addr{}, false
			}
		case c == '.':
			if digits == 0 || field == 3 {
				return netip.Addr{}, false
			}
			ip[field] = byte(val)
			field, val, digits = field+1, 0, 0
		default:
			return netip.Addr{}, false
		}
	}
	if digits == 0 || field != 3 {
		return netip.Addr{}, false
	}
	ip[3] = byte(val)
	return netip.AddrFrom4(ip), true
}

// parseIPv6 parses an IPv6 address without a zone as netip.ParseAddr
// does (hex groups, one "::", an optional trailing dotted quad), without
// allocating on failure.
func parseIPv6(s string) (netip.Addr, bool) {
	var ip [16]byte
	ellipsis := -1 // byte index in ip where "::" stands
	if len(s) >= 2 && s[0] == ':' && s[1] == ':' {
		ellipsis = 0
		s = s[2:]
		if s == "" {
			return netip.IPv6Unspecified(), true
		}
	}
	i := 0
	for i < 16 {
		// One group of up to four hex digits.
		off, acc := 0, 0
	digits:
		for ; off < len(s); off++ {
			c := s[off]
			var d int
			switch {
			case '0' <= c && c <= '9':
				d = int(c - '0')
			case 'a' <= c && c <= 'f':
				d = int(c-'a') + 10
			case 'A' <= c && c <= 'F':
				d = int(c-'A') + 10
			default:
				break digits
			}
			if off == 4 {
				return netip.Addr{}, false // more than four digits
			}
			acc = acc<<4 + d
		}
		if off < len(s) && s[off] == '.' {
			// A trailing dotted quad fills the last four bytes.
			if ellipsis < 0 && i != 12 || i+4 > 16 {
				return netip.Addr{}, false
			}
			a, ok := parseIPv4(s)
			if !ok {
				return netip.Addr{}, false
			}
			v4 := a.As4()
			copy(ip[i:], v4[:])
			i += 4
			s = ""
			break
		}
		if off == 0 {
			return netip.Addr{}, false
		}
		ip[i], ip[i+1] = byte(acc>>8), byte(acc)
		i += 2
		s = s[off:]
		if s == "" {
			break
		}
		if s[0] != ':' || len(s) == 1 {
			return netip.Addr{}, false
		}
		s = s[1:]
		if s[0] == ':' {
			if ellipsis >= 0 {
				return netip.Addr{}, false // a second "::"
			}
			ellipsis = i
			s = s[1:]
			if s == "" {
				break
			}
		}
	}
	if s != "" {
		return netip.Addr{}, false
	}
	if i < 16 {
		if ellipsis < 0 {
			return netip.Addr{}, false
		}
		n := 16 - i
		for j := i - 1; j >= ellipsis; j-- {
			ip[j+n] = ip[j]
		}
		for j := ellipsis + n - 1; j >= ellipsis; j-- {
			ip[j] = 0
		}
	} else if ellipsis >= 0 {
		return netip.Addr{}, false // "::" must stand for at least one group
	}
	return netip.AddrFrom16(ip), true
}

// ASCIIName converts a host name as a person writes it, possibly with
// Unicode labels ("bücher.example"), into the normalised A-label form that
// is sent on the wire and that Decide matches ("xn--bcher-kva.example"),
// with the same IDNA conversion as config entries. Use it for names typed
// by operators (egressd explain), never for names from the wire: there a
// Unicode name is invalid. The result is then checked like NormalizeName.
func ASCIIName(s string) (string, error) {
	if !isASCII(s) {
		if !utf8.ValidString(s) {
			return "", fmt.Errorf("%w %q: not valid UTF-8", ErrInvalidName, s)
		}
		a, err := toASCII(s)
		if err != nil {
			return "", fmt.Errorf("%w %q: %v", ErrInvalidName, s, err)
		}
		s = a
	}
	return NormalizeName(s)
}
