// Package policy decides whether a connection may leave: given the client's
// source address, the host name it sent (TLS SNI or HTTP Host) and its
// original destination address, Decide says allow or deny, why, and which
// rule made the decision.
//
// The package is pure: no I/O, no clocks, no global state. New compiles a
// Spec into an immutable index once; Decide then costs a few map lookups
// per label of the name and per prefix length present in the allowlist,
// whatever the size of the allowlist, and never allocates. A *Policy is
// safe for concurrent use, so the gateway swaps whole policies atomically
// on reload.
//
// Matching follows SPEC.md: names are compared case-insensitively with one
// trailing dot ignored, suffixes match only on label boundaries, a name
// that is not a valid host name is denied and never repaired, and IP/CIDR
// entries allow a destination address whatever name is sent. The YAML
// loader that builds a Spec from the config file is in policy/config.
package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Mode says whether denials are enforced.
type Mode uint8

const (
	// Enforce refuses what the policy denies. It is the zero value.
	Enforce Mode = iota
	// Monitor lets everything through but reports what would be denied,
	// to roll out a policy without breaking traffic.
	Monitor
)

// String returns "enforce" or "monitor".
func (m Mode) String() string {
	switch m {
	case Enforce:
		return "enforce"
	case Monitor:
		return "monitor"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// ParseMode parses "enforce" or "monitor".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "enforce":
		return Enforce, nil
	case "monitor":
		return Monitor, nil
	}
	return Enforce, fmt.Errorf("%q is not a policy mode (valid: enforce, monitor)", s)
}

// Group grants extra allow entries to some sources, on top of the
// top-level allow list.
type Group struct {
	Name    string         // shown in decisions: ".github.com (group ci)"
	Sources []netip.Prefix // client networks the group applies to
	Allow   []string       // entries as for Spec.Allow
}

// Spec is a policy as configured, before compilation.
type Spec struct {
	Mode                Mode
	Allow               []string // entries for every source; see ParseEntry
	Groups              []Group
	AllowPublicSuffixes bool // permit .x and *.x entries where x is a public suffix
}

// Rule is one compiled allow entry and where it came from.
type Rule struct {
	Entry Entry
	Group string // "" for the top-level allow list
}

// String returns the entry as written, with its group if any:
// "naver.com" or ".github.com (group ci)".
func (r *Rule) String() string {
	if r == nil {
		return ""
	}
	if r.Group == "" {
		return r.Entry.Text
	}
	return r.Entry.Text + " (group " + r.Group + ")"
}

// Reason says why a decision was made; it is the access log's reason field.
type Reason string

// The reasons Decide gives.
const (
	ReasonAllowedName    Reason = "allowed_name"    // the name matched an entry
	ReasonAllowedAddress Reason = "allowed_address" // the destination is in an IP/CIDR entry
	ReasonNotAllowed     Reason = "not_allowed"     // a valid name that no entry matches
	ReasonInvalidName    Reason = "invalid_name"    // a name that is not a valid host name
	ReasonNoName         Reason = "no_name"         // no name (or an IP literal) and no address entry matched
)

// Decision is the outcome of Decide.
type Decision struct {
	Allowed bool // a rule allows the connection
	// Enforced is true in Enforce mode; in Monitor mode a denial is let
	// through and logged with enforced: false.
	Enforced bool
	Reason   Reason
	Rule     *Rule // the rule that allowed the connection; nil on deny
	// ByAddress is true when an IP/CIDR entry allowed the connection: dial
	// the original destination, not a resolution of the name.
	ByAddress bool
}

// Permit reports whether the connection may proceed: it is allowed, or
// denied in Monitor mode. The zero Decision permits nothing.
func (d Decision) Permit() bool {
	return d.Allowed || (!d.Enforced && d.Reason != "")
}

// match is one rule in the index, with the sources it is limited to (nil
// for a top-level rule).
type match struct {
	rule    *Rule
	sources []netip.Prefix
}

// applies reports whether the rule applies to a connection from src.
func (m *match) applies(src netip.Addr) bool {
	if m.sources == nil {
		return true
	}
	for _, p := range m.sources {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// pick returns the first rule in ms that applies to src.
func pick(ms []match, src netip.Addr) *Rule {
	for i := range ms {
		if ms[i].applies(src) {
			return ms[i].rule
		}
	}
	return nil
}

// nameRules are the rules keyed by one normalised name, each list ordered
// by preference (top-level rules before group rules).
type nameRules struct {
	self  []match // rules matching the name itself: Exact, then Domain
	below []match // rules matching names under it: Domain and Subdomains
}

// v4Table and v6Table index the address rules of one prefix length by
// masked address.
type v4Table struct {
	bits int
	mask uint32
	m    map[uint32][]match
}

type v6Table struct {
	bits int
	mask [16]byte
	m    map[[16]byte][]match
}

// Policy is a compiled Spec. It is immutable and safe for concurrent use.
type Policy struct {
	mode  Mode
	rules []Rule                // storage the index points into
	names map[string]*nameRules // nil value: a suffix of longer entry names only
	v4    []v4Table             // longest prefix first
	v6    []v6Table             // longest prefix first
	// v4Blocks has a bit for every /16 holding an IPv4 entry of /16 or
	// longer, and v6Blocks every /32 holding an IPv6 entry of /32 or
	// longer: most destinations are in no entry, and one probe here saves
	// probing each long prefix length.
	v4Blocks *[1 << 16 / 64]uint64
	v6Blocks map[uint32]struct{}
}

const (
	v4BlockBits = 16
	v6BlockBits = 32
)

// New validates and compiles a Spec. The error lists every bad entry,
// group name and source, one per line.
func New(spec Spec) (*Policy, error) {
	var errs []error
	if spec.Mode > Monitor {
		errs = append(errs, fmt.Errorf("mode: %v is not a policy mode (valid: enforce, monitor)", spec.Mode))
	}
	type parsed struct {
		entry   Entry
		group   string
		sources []netip.Prefix
	}
	var all []parsed
	add := func(where, group string, sources []netip.Prefix, list []string) {
		for i, s := range list {
			e, err := ParseEntry(s, spec.AllowPublicSuffixes)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s[%d]: %w", where, i, err))
				continue
			}
			all = append(all, parsed{e, group, sources})
		}
	}
	add("allow", "", nil, spec.Allow)
	seen := make(map[string]bool, len(spec.Groups))
	for gi, g := range spec.Groups {
		where := fmt.Sprintf("groups[%d]", gi)
		switch {
		case g.Name == "":
			errs = append(errs, fmt.Errorf("%s: a group needs a name", where))
		case seen[g.Name]:
			errs = append(errs, fmt.Errorf("%s: group name %q is used twice; give each group its own name", where, g.Name))
		}
		seen[g.Name] = true
		if len(g.Sources) == 0 {
			errs = append(errs, fmt.Errorf("%s (%s): no sources: list the client networks the group applies to", where, g.Name))
		}
		for si, p := range g.Sources {
			if !p.IsValid() || p.Masked() != p || p.Addr().Zone() != "" || p.Addr().Is4In6() {
				errs = append(errs, fmt.Errorf("%s (%s).sources[%d]: %v is not a canonical prefix", where, g.Name, si, p))
			}
		}
		if len(g.Allow) == 0 {
			errs = append(errs, fmt.Errorf("%s (%s): no allow entries", where, g.Name))
		}
		// A copy: the policy must not change if the caller's slice does.
		add(where+".allow", g.Name, slices.Clone(g.Sources), g.Allow)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	p := &Policy{
		mode:     spec.Mode,
		rules:    make([]Rule, len(all)),
		names:    make(map[string]*nameRules),
		v4Blocks: new([1 << 16 / 64]uint64),
		v6Blocks: make(map[uint32]struct{}),
	}
	v4 := map[int]map[uint32][]match{}
	v6 := map[int]map[[16]byte][]match{}
	for i, pe := range all {
		p.rules[i] = Rule{Entry: pe.entry, Group: pe.group}
		m := match{rule: &p.rules[i], sources: pe.sources}
		e := pe.entry
		switch e.Kind {
		case Prefix:
			bits := e.Prefix.Bits()
			if e.Prefix.Addr().Is4() {
				t := v4[bits]
				if t == nil {
					t = map[uint32][]match{}
					v4[bits] = t
				}
				k := v4Key(e.Prefix.Addr())
				t[k] = append(t[k], m)
				if bits >= v4BlockBits {
					b := k >> (32 - v4BlockBits)
					p.v4Blocks[b/64] |= 1 << (b % 64)
				}
			} else {
				t := v6[bits]
				if t == nil {
					t = map[[16]byte][]match{}
					v6[bits] = t
				}
				k := e.Prefix.Addr().As16()
				t[k] = append(t[k], m)
				if bits >= v6BlockBits {
					p.v6Blocks[v6Block(k)] = struct{}{}
				}
			}
		default:
			nr := p.names[e.Name]
			if nr == nil {
				nr = &nameRules{}
				p.names[e.Name] = nr
			}
			// Mark every proper suffix so matchName can stop early.
			for s := e.Name; ; {
				i := strings.IndexByte(s, '.')
				if i < 0 {
					break
				}
				s = s[i+1:]
				if _, ok := p.names[s]; ok {
					break // it and its suffixes are already there
				}
				p.names[s] = nil
			}
			if e.Kind != Subdomains {
				nr.self = append(nr.self, m)
			}
			if e.Kind != Exact {
				nr.below = append(nr.below, m)
			}
		}
	}
	for _, nr := range p.names {
		if nr == nil {
			continue
		}
		// Exact before Domain at the name itself (exact is more specific),
		// top-level before group within each; stable keeps config order.
		slices.SortStableFunc(nr.self, func(a, b match) int {
			if ka, kb := a.rule.Entry.Kind == Exact, b.rule.Entry.Kind == Exact; ka != kb {
				if ka {
					return -1
				}
				return 1
			}
			return topFirst(a, b)
		})
		slices.SortStableFunc(nr.below, topFirst)
		nr.self = slices.Clip(nr.self)
		nr.below = slices.Clip(nr.below)
	}
	for bits, m := range v4 {
		for _, ms := range m {
			slices.SortStableFunc(ms, topFirst)
		}
		p.v4 = append(p.v4, v4Table{bits: bits, mask: v4Mask(bits), m: m})
	}
	for bits, m := range v6 {
		for _, ms := range m {
			slices.SortStableFunc(ms, topFirst)
		}
		p.v6 = append(p.v6, v6Table{bits: bits, mask: v6Mask(bits), m: m})
	}
	slices.SortFunc(p.v4, func(a, b v4Table) int { return b.bits - a.bits })
	slices.SortFunc(p.v6, func(a, b v6Table) int { return b.bits - a.bits })
	return p, nil
}

func topFirst(a, b match) int {
	ta, tb := a.sources == nil, b.sources == nil
	switch {
	case ta == tb:
		return 0
	case ta:
		return -1
	}
	return 1
}

func v4Key(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func v6Block(a [16]byte) uint32 {
	return uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
}

func v6Mask(bits int) [16]byte {
	var m [16]byte
	for i := range m {
		switch {
		case bits >= 8:
			m[i] = 0xff
			bits -= 8
		case bits > 0:
			m[i] = ^byte(0) << (8 - bits)
			bits = 0
		}
	}
	return m
}

func v4Mask(bits int) uint32 {
	if bits == 0 {
		return 0
	}
	return ^uint32(0) << (32 - bits)
}

// Mode returns the policy's mode.
func (p *Policy) Mode() Mode { return p.mode }

// Decide decides a connection from src that sent name (raw from the wire,
// "" for none) to the original destination dst (zero if unknown):
//
//  1. a name that is present but not a valid host name is denied
//     (invalid_name), whatever else matches;
//  2. a destination in an IP/CIDR entry is allowed (allowed_address,
//     ByAddress): dial the original destination;
//  3. a name matching an entry is allowed (allowed_name);
//  4. otherwise it is denied: no_name without a name, not_allowed with one.
//
// An IP address literal sent as the name is not a name: it is decided like
// no name, by the destination address. Entries from a group count only when
// src is in one of the group's sources; with a zero src only top-level
// entries count. The Rule reported is the most specific match (longest
// prefix; exact name, then longest suffix), preferring a top-level rule on
// ties. In Monitor mode every decision has Enforced false.
//
// Decide does not allocate, and its cost does not depend on the number of
// entries.
func (p *Policy) Decide(src netip.Addr, name string, dst netip.Addr) Decision {
	d := Decision{Enforced: p.mode == Enforce}
	var buf [MaxNameLen]byte
	n, st, _, _ := normalize(&buf, name)
	if st.invalid() {
		d.Reason = ReasonInvalidName
		return d
	}
	src = src.Unmap()
	if dst.IsValid() {
		if r := p.matchAddr(src, dst.Unmap()); r != nil {
			d.Allowed, d.Reason, d.Rule, d.ByAddress = true, ReasonAllowedAddress, r, true
			return d
		}
	}
	if st != nameValid {
		d.Reason = ReasonNoName
		return d
	}
	if r := p.matchName(src, buf[:n]); r != nil {
		d.Allowed, d.Reason, d.Rule = true, ReasonAllowedName, r
		return d
	}
	d.Reason = ReasonNotAllowed
	return d
}

// AllowsName reports whether a connection from src with this name is
// allowed by a name entry, whatever its destination. The gateway uses it to
// re-check open connections after a reload.
func (p *Policy) AllowsName(src netip.Addr, name string) bool {
	return p.Decide(src, name, netip.Addr{}).Allowed
}

// matchName walks the label suffixes of name (normalised) from the
// top-level domain to the whole name, so a later match is a more specific
// one. The index holds every suffix of every entry name, so the walk stops
// at the first suffix no entry ends with: a name under a domain the policy
// does not mention costs one lookup, whatever its number of labels.
func (p *Policy) matchName(src netip.Addr, name []byte) *Rule {
	var best *Rule
	for i := len(name) - 1; i >= -1; i-- {
		if i >= 0 && name[i] != '.' {
			continue
		}
		nr, ok := p.names[string(name[i+1:])]
		if !ok {
			break
		}
		if nr == nil {
			continue // only a suffix of longer entry names
		}
		list := nr.below
		if i < 0 {
			list = nr.self
		}
		if r := pick(list, src); r != nil {
			best = r
		}
	}
	return best
}

// matchAddr probes the address tables from the longest prefix length
// present to the shortest.
func (p *Policy) matchAddr(src, dst netip.Addr) *Rule {
	if dst.Is4() {
		k := v4Key(dst)
		b := k >> (32 - v4BlockBits)
		long := p.v4Blocks[b/64]&(1<<(b%64)) != 0
		for i := range p.v4 {
			t := &p.v4[i]
			if t.bits >= v4BlockBits && !long {
				continue
			}
			if r := pick(t.m[k&t.mask], src); r != nil {
				return r
			}
		}
		return nil
	}
	a := dst.As16()
	_, long := p.v6Blocks[v6Block(a)]
	for i := range p.v6 {
		t := &p.v6[i]
		if t.bits >= v6BlockBits && !long {
			continue
		}
		var k [16]byte
		for j := range k {
			k[j] = a[j] & t.mask[j]
		}
		if r := pick(t.m[k], src); r != nil {
			return r
		}
	}
	return nil
}
