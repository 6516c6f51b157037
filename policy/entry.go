package policy

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// EntryKind says what an allow entry matches.
type EntryKind uint8

const (
	// Exact matches one name: "naver.com".
	Exact EntryKind = iota
	// Domain matches a name and every name under it: ".example.org"
	// (Squid dstdomain and AWS Network Firewall style).
	Domain
	// Subdomains matches every name under a name but not the name itself:
	// "*.example.net".
	Subdomains
	// Prefix matches connections whose original destination address is in
	// an IP prefix: "203.0.113.0/24", or "203.0.113.7" for a single address.
	Prefix
)

// String returns "exact", "domain", "subdomains" or "prefix".
func (k EntryKind) String() string {
	switch k {
	case Exact:
		return "exact"
	case Domain:
		return "domain"
	case Subdomains:
		return "subdomains"
	case Prefix:
		return "prefix"
	}
	return fmt.Sprintf("EntryKind(%d)", uint8(k))
}

// Entry is one parsed allow entry.
type Entry struct {
	Kind EntryKind
	// Name is the normalised A-label form of the name the entry is about,
	// without the leading "." or "*.": "example.org" for ".example.org",
	// "xn--bcher-kva.example" for ".bücher.example". Empty for Prefix.
	Name string
	// Prefix is the destination prefix of a Prefix entry (an address
	// without a length is a /32 or /128).
	Prefix netip.Prefix
	// Text is the entry as written in the config.
	Text string
}

// String returns the entry as written.
func (e Entry) String() string { return e.Text }

// ParseEntry parses one allow entry: a name ("naver.com"), a domain with
// all its subdomains (".example.org"), only the subdomains
// ("*.example.net"), or a destination address or prefix ("203.0.113.0/24",
// "2001:db8::/48", "203.0.113.7").
//
// Names may be written in Unicode; they are converted to A-labels with the
// IDNA lookup profile. Prefixes must be canonical: "10.0.0.1/8" is an error
// that suggests "10.0.0.0/8". A Domain or Subdomains entry whose name is a
// public suffix (".com", ".github.io", "*.s3.amazonaws.com") lets anyone
// who registers a name under it through, so it is an error unless
// allowPublicSuffixes is true.
func ParseEntry(s string, allowPublicSuffixes bool) (Entry, error) {
	e := Entry{Text: s}
	if s == "" {
		return e, fmt.Errorf("empty entry: write a name (naver.com), .domain, *.domain, or an IP address or CIDR")
	}
	if i := strings.IndexAny(s, " \t\r\n"); i >= 0 {
		return e, fmt.Errorf("%q contains white space: write one name or address per entry", s)
	}
	if looksLikeAddress(s) {
		p, err := parsePrefix(s)
		if err != nil {
			return e, err
		}
		e.Kind, e.Prefix = Prefix, p
		return e, nil
	}

	name := s
	switch {
	case strings.HasPrefix(name, "*."):
		e.Kind, name = Subdomains, name[2:]
	case strings.HasPrefix(name, "."):
		e.Kind, name = Domain, name[1:]
	}
	if strings.Contains(name, "*") {
		return e, fmt.Errorf("%q: '*' may only be the whole first label, as in *.example.net (subdomains only) or .example.net (the domain and its subdomains)", s)
	}
	if !isASCII(name) {
		if !utf8.ValidString(name) {
			return e, fmt.Errorf("%q is not a valid internationalised name: not valid UTF-8", s)
		}
		a, err := toASCII(name)
		if err != nil {
			return e, fmt.Errorf("%q is not a valid internationalised name: %v", s, err)
		}
		name = a
	}
	var buf [MaxNameLen]byte
	n, st, bad, _ := normalize(&buf, name)
	switch {
	case st == nameNone:
		lead := s[:len(s)-len(name)]
		return e, fmt.Errorf("%q: a name must follow %q, as in %sexample.org", s, lead, lead)
	case st.invalid():
		return e, fmt.Errorf("%q is not a valid host name: %s", s, st.why(bad))
	case st == nameAddress:
		return e, fmt.Errorf("%q: an IP address cannot have a leading '.' or '*.'; write %s or a CIDR", s, name)
	}
	e.Name = string(buf[:n])
	if last := e.Name[strings.LastIndexByte(e.Name, '.')+1:]; isDigits(last) {
		return e, fmt.Errorf("%q: the last label %q is all digits, which no registered name has; write addresses as an IP or CIDR (203.0.113.7, 203.0.113.0/24)", s, last)
	}
	if e.Kind != Exact && !allowPublicSuffixes {
		if ps, icann := publicsuffix.PublicSuffix(e.Name); ps == e.Name {
			what := "a public suffix on the Public Suffix List"
			if !icann && !strings.Contains(e.Name, ".") {
				what = "a top-level domain"
			}
			return e, fmt.Errorf("%q: %s is %s, so anyone can register a name under it; allow a registered domain below it (e.g. .example.%s), or set policy.allow_public_suffixes: true", s, e.Name, what, e.Name)
		}
	}
	return e, nil
}

// looksLikeAddress reports whether an entry is meant as an address or
// prefix: it has a '/' or ':' or only digits and dots.
func looksLikeAddress(s string) bool {
	if strings.ContainsAny(s, "/:") {
		return true
	}
	return strings.Trim(s, "0123456789.") == "" && strings.ContainsAny(s, "0123456789")
}

// parsePrefix parses an IP address or a canonical CIDR. It is shared with
// the config loader (via ParsePrefix) so that sources and destinations
// follow the same rules.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "%") {
		return netip.Prefix{}, fmt.Errorf("%q: IPv6 zones are not allowed; write the address without %%zone", s)
	}
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a valid IP address or CIDR: %s", s, netipReason(err))
		}
		if a.Is4In6() {
			return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped IPv6 address: did you mean %s?", s, a.Unmap())
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a valid CIDR: %s (write it as 10.0.0.0/8 or 2001:db8::/32)", s, netipReason(err))
	}
	if p.Addr().Is4In6() {
		if p.Bits() >= 96 {
			u := netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96).Masked()
			return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped IPv6 prefix: did you mean %s?", s, u)
		}
		return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped IPv6 prefix: write IPv4 prefixes in IPv4 form", s)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("%q has bits set beyond the /%d prefix length: did you mean %s?", s, p.Bits(), m)
	}
	return p, nil
}

// ParsePrefix parses an IP address (a /32 or /128) or a canonical CIDR, IPv4
// or IPv6, with the same rules and messages as address entries: no zones,
// no IPv4-mapped IPv6 forms, and no bits beyond the prefix length
// ("10.0.0.1/8" suggests "10.0.0.0/8"). Use it for source networks.
func ParsePrefix(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, fmt.Errorf("empty: write an IP address or CIDR such as 10.0.3.0/24")
	}
	return parsePrefix(s)
}

// netipReason trims netip's error to the part after the quoted input,
// which the caller already shows.
func netipReason(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "\"): "); i >= 0 {
		return msg[i+4:]
	}
	return msg
}

// toASCII converts a name holding Unicode labels to A-labels, label by
// label so that ASCII labels (which may hold '_') are kept as written.
func toASCII(name string) (string, error) {
	labels := strings.Split(name, ".")
	for i, l := range labels {
		if isASCII(l) {
			continue
		}
		a, err := idna.Lookup.ToASCII(l)
		if err != nil {
			return "", err
		}
		labels[i] = a
	}
	return strings.Join(labels, "."), nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
