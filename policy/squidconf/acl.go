package squidconf

import (
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// aclDef is a Squid acl: every line with its name, accumulated.
type aclDef struct {
	name       string
	typ        string
	values     []aclValue
	pos        position // the first definition
	seq        int
	predefined bool
	// broken says why the acl cannot be used ("" when it can): a list file
	// that could not be read, or a redefinition with another type.
	broken string

	seen      map[aclValue]bool // values already added: a file included twice adds nothing
	seenLines map[position]bool // acl lines already read, for the same reason

	// Computed once, when rules are judged.
	parsed  bool
	ps      []netip.Prefix
	bad     []aclValue
	badWhy  []string
	entries *entryList
	outer   []netip.Prefix // clients(): non-nil once computed
	whole   bool
}

// aclValue is one value of an acl, with where it was written.
type aclValue struct {
	text string
	pos  position // the acl line, or the line of a list file
	line string   // that line as written
	seq  int
}

// predefined returns Squid's built-in acls (Squid 3.2 and later; to_linklocal
// since 6). A squid.conf that defines one of these names replaces it.
func predefined() map[string]*aclDef {
	def := func(name, typ string, values ...string) *aclDef {
		a := &aclDef{name: name, typ: typ, predefined: true, seq: -1, pos: position{"(built in)", 0}}
		for _, v := range values {
			a.values = append(a.values, aclValue{text: v, pos: a.pos, line: "acl " + name + " " + typ + " " + strings.Join(values, " ")})
		}
		return a
	}
	return map[string]*aclDef{
		"all":          def("all", "src", "0.0.0.0/0", "::/0"),
		"localhost":    def("localhost", "src", "127.0.0.1/32", "::1"),
		"to_localhost": def("to_localhost", "dst", "127.0.0.0/8", "0.0.0.0/32", "::/128"),
		"to_linklocal": def("to_linklocal", "dst", "169.254.0.0/16", "fe80::/10"),
		"manager":      def("manager", "manager"),
	}
}

// typesWithValues are the acl types whose values this package reads.
var typesWithValues = map[string]bool{"dstdomain": true, "src": true, "dst": true, "port": true, "method": true}

// defineAll processes the statements in order: acl lines define acls,
// http_access lines become rules, other directives are classified.
func (t *translator) defineAll() {
	for _, s := range t.stmts {
		switch s.fields[0] {
		case "include":
			// followed while reading
		case "acl":
			t.defineACL(s)
		case "http_access":
			t.rules = append(t.rules, parseRule(s))
		default:
			t.directive(s)
		}
	}
}

// defineACL adds an acl line: acl NAME TYPE [-flags] VALUE|"FILE" …
func (t *translator) defineACL(s stmt) {
	if len(s.fields) < 3 {
		t.skipStmt(s, "an acl line needs a name and a type (acl NAME TYPE VALUE…): Squid would refuse it", true)
		return
	}
	name, typ := s.fields[1], s.fields[2]
	a := t.acls[name]
	switch {
	case a == nil || a.predefined:
		a = &aclDef{name: name, typ: typ, pos: s.pos, seq: s.seq}
		t.acls[name] = a
	case a.typ != typ:
		t.skipStmt(s, fmt.Sprintf("acl %s was declared with type %s at %s:%d: Squid refuses a second type", name, a.typ, a.pos.file, a.pos.line), true)
		a.broken = fmt.Sprintf("it is declared with two types (%s and %s)", a.typ, typ)
		return
	}
	if !typesWithValues[typ] {
		return // judged where it is used; its values do not matter
	}
	if a.seenLines[s.pos] {
		return // the same line of a file included again
	}
	if a.seenLines == nil {
		a.seenLines = map[position]bool{}
	}
	a.seenLines[s.pos] = true
	values := s.fields[3:]
	for len(values) > 0 && len(values[0]) > 1 && (values[0][0] == '-' || values[0][0] == '+') {
		// Flags such as -i and -n change nothing here; "--" ends them.
		flag := values[0]
		values = values[1:]
		if flag == "--" {
			break
		}
	}
	for _, v := range values {
		if strings.HasPrefix(v, `"`) {
			file := unquote(v)
			list, err := t.readList(file)
			if err != nil {
				t.skipStmt(s, fmt.Sprintf("cannot read the list %q: %v; every http_access line using acl %s is left out (copy the list beside the squid.conf, keeping the path)", file, err, name), true)
				a.broken = fmt.Sprintf("its list %q could not be read", file)
				continue
			}
			for _, lv := range list {
				lv.seq = s.seq
				t.addValue(a, lv)
			}
			continue
		}
		t.addValue(a, aclValue{text: v, pos: s.pos, line: s.text, seq: s.seq})
	}
}

// addValue adds a value to an acl unless the same line of the same file
// already added it (an included file read twice).
func (t *translator) addValue(a *aclDef, v aclValue) {
	key := v
	key.seq = 0
	if a.seen == nil {
		a.seen = map[aclValue]bool{}
	}
	if a.seen[key] {
		return
	}
	a.seen[key] = true
	t.values++
	a.values = append(a.values, v)
}

// parseAddrs parses a Squid src or dst value into prefixes: an address
// (a /32 or /128), address/bits, a.b.c.d/m.m.m.m (a netmask), or a range
// first-last. Host bits beyond the length are cleared, as Squid does.
func parseAddrs(v string) ([]netip.Prefix, error) {
	if lo, hi, ok := strings.Cut(v, "-"); ok {
		if strings.Contains(hi, "/") {
			return nil, fmt.Errorf("%q: a range with a mask is not translated; write the networks as CIDRs", v)
		}
		a, err := parseAddr(lo)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", v, err)
		}
		b, err := parseAddr(hi)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", v, err)
		}
		if a.Is4() != b.Is4() || b.Less(a) {
			return nil, fmt.Errorf("%q is not a range from a lower to a higher address of one family", v)
		}
		return rangePrefixes(a, b), nil
	}
	addrText, mask, hasMask := strings.Cut(v, "/")
	a, err := parseAddr(addrText)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", v, err)
	}
	bits := a.BitLen()
	if hasMask {
		if bits, err = maskBits(mask, a); err != nil {
			return nil, fmt.Errorf("%q: %w", v, err)
		}
	}
	return []netip.Prefix{netip.PrefixFrom(a, bits).Masked()}, nil
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return netip.Addr{}, errors.New("not an IP address (host names are not translated: write the addresses)")
	case a.Zone() != "":
		return netip.Addr{}, errors.New("an IPv6 zone cannot be translated")
	}
	return a.Unmap(), nil
}

// maskBits reads "/24" or, for IPv4, "/255.255.255.0".
func maskBits(mask string, a netip.Addr) (int, error) {
	if n, err := strconv.Atoi(mask); err == nil && mask != "" && mask[0] != '+' && mask[0] != '-' {
		if n > a.BitLen() {
			return 0, fmt.Errorf("/%d is longer than an address", n)
		}
		return n, nil
	}
	m, err := netip.ParseAddr(mask)
	if err != nil || !m.Is4() || !a.Is4() {
		return 0, fmt.Errorf("/%s is neither a prefix length nor an IPv4 netmask", mask)
	}
	b := m.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n := 0
	for v&0x80000000 != 0 {
		n++
		v <<= 1
	}
	if v != 0 {
		return 0, fmt.Errorf("netmask %s is not contiguous: write the network as a CIDR", mask)
	}
	return n, nil
}

// rangePrefixes covers first..last with the fewest prefixes.
func rangePrefixes(first, last netip.Addr) []netip.Prefix {
	bitLen := first.BitLen()
	toInt := func(a netip.Addr) *big.Int { return new(big.Int).SetBytes(a.AsSlice()) }
	fromInt := func(n *big.Int) netip.Addr {
		b := make([]byte, bitLen/8)
		n.FillBytes(b)
		a, _ := netip.AddrFromSlice(b)
		return a
	}
	lo, hi := toInt(first), toInt(last)
	one := big.NewInt(1)
	var out []netip.Prefix
	for lo.Cmp(hi) <= 0 {
		// The largest block that starts at lo and stays within hi.
		size := 0
		for size < bitLen && lo.Bit(size) == 0 {
			end := new(big.Int).Add(lo, new(big.Int).Lsh(one, uint(size+1)))
			if end.Sub(end, one).Cmp(hi) > 0 {
				break
			}
			size++
		}
		out = append(out, netip.PrefixFrom(fromInt(lo), bitLen-size))
		lo.Add(lo, new(big.Int).Lsh(one, uint(size)))
	}
	return out
}

// prefixes returns the networks of a src or dst acl; each value that cannot
// be parsed is returned as a problem. It is computed once: acls are
// complete when rules are judged.
func (a *aclDef) prefixes() (ps []netip.Prefix, bad []aclValue, why []string) {
	if !a.parsed {
		a.parsed = true
		for _, v := range a.values {
			p, err := parseAddrs(v.text)
			if err != nil {
				a.bad, a.badWhy = append(a.bad, v), append(a.badWhy, err.Error())
				continue
			}
			a.ps = append(a.ps, p...)
		}
	}
	return a.ps, a.bad, a.badWhy
}

// clients returns a src acl's networks without the whole-family ones, as
// outermost prefixes, and whether it holds every address (Squid's all).
func (a *aclDef) clients() (specific []netip.Prefix, whole bool) {
	if a.outer == nil {
		ps, _, _ := a.prefixes()
		var spec []netip.Prefix
		for _, p := range ps {
			if isWhole(p) {
				a.whole = true
			} else {
				spec = append(spec, p)
			}
		}
		a.outer = outermost(spec)
		if a.outer == nil {
			a.outer = []netip.Prefix{}
		}
	}
	return a.outer, a.whole
}

// portSet is a port acl's values.
type portSet [][2]int

func (a *aclDef) ports() (portSet, error) {
	var s portSet
	for _, v := range a.values {
		lo, hi, isRange := strings.Cut(v.text, "-")
		if !isRange {
			hi = lo
		}
		l, err1 := strconv.Atoi(lo)
		h, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || l < 0 || h > 65535 || l > h {
			return nil, fmt.Errorf("port acl %s: %q is not a port or range of ports", a.name, v.text)
		}
		s = append(s, [2]int{l, h})
	}
	return s, nil
}

func (s portSet) contains(port int) bool {
	return slices.ContainsFunc(s, func(r [2]int) bool { return r[0] <= port && port <= r[1] })
}

// isWhole reports whether p is all addresses of its family (Squid's "all").
func isWhole(p netip.Prefix) bool { return p.Bits() == 0 }

// isLocal reports whether p holds only addresses that never reach egressd
// as forwarded clients: loopback, and the "this network" block 0.0.0.0/8.
func isLocal(p netip.Prefix) bool {
	for _, l := range localNets {
		if l.Bits() <= p.Bits() && l.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

var localNets = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("::/128"),
}

// intersect returns the addresses in both sets, as prefixes. Two prefixes
// either nest or are disjoint, so after outermost both lists are sorted
// disjoint ranges and one merge pass finds every overlap.
func intersect(a, b []netip.Prefix) []netip.Prefix {
	a, b = outermost(a), outermost(b)
	var out []netip.Prefix
	for i, j := 0, 0; i < len(a) && j < len(b); {
		p, q := a[i], b[j]
		if p.Overlaps(q) {
			if p.Bits() >= q.Bits() {
				out = append(out, p)
			} else {
				out = append(out, q)
			}
		}
		// Advance the range that ends first.
		if c := lastAddr(p).Compare(lastAddr(q)); c <= 0 {
			i++
		} else {
			j++
		}
	}
	return out
}

// lastAddr is the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As16()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	for i := bits; i < 128; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		return a.Unmap()
	}
	return a
}

// outermost drops duplicates and prefixes inside another one (egressd's
// source lists must not overlap), sorted IPv4 first. Sorted by address and
// then length, a prefix inside any kept one is inside the last kept one.
func outermost(ps []netip.Prefix) []netip.Prefix {
	sorted := slices.Clone(ps)
	slices.SortFunc(sorted, func(a, b netip.Prefix) int {
		if c := a.Masked().Addr().Compare(b.Masked().Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	var out []netip.Prefix
	for _, p := range sorted {
		if n := len(out); n > 0 && out[n-1].Bits() <= p.Bits() && out[n-1].Contains(p.Addr()) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// covers reports whether every prefix of want is inside one of have.
func covers(have, want []netip.Prefix) bool {
	return slices.Equal(intersect(have, want), outermost(want))
}
