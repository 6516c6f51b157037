package suggest

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/publicsuffix"

	"github.com/egressd/egressd/policy"
)

// Options tune a suggestion.
type Options struct {
	// GroupBySubnet moves entries used only by clients in one /24 (IPv4)
	// or /64 (IPv6), while the log shows other clients too, into a
	// policy.groups entry for that subnet. Off by default (see the package
	// documentation).
	GroupBySubnet bool
	// MaxSources bounds the clients listed in an entry's comment; 0 means
	// 5.
	MaxSources int
}

// Count is a value seen in the log and how many connections had it.
type Count struct {
	Value string
	N     int
}

// Entry is one proposed allow entry and what the log says about it.
type Entry struct {
	// Allow is the entry as egressd writes it: "pypi.org", ".github.com",
	// "203.0.113.9".
	Allow string
	// Names are the names a .domain entry stands for, by count; nil for an
	// exact name or an address.
	Names   []Count
	Count   int     // connections (HTTP: requests)
	Allowed int     // of those, the ones the policy in force allowed
	Rules   []Count // the rules that allowed them
	Sources []Count // client addresses, by count
	// Subnet is the /24 or /64 holding every client of the entry, when the
	// log shows clients outside it too; zero otherwise.
	Subnet netip.Prefix
	Protos []string // "http", "tls"
	Ports  []uint16 // destination ports
	Note   string   // why names were not grouped, if they were not
}

// Group is a proposed policy.groups entry (Options.GroupBySubnet).
type Group struct {
	Name    string
	Sources []netip.Prefix
	Allow   []Entry
}

// NotProposed is traffic that no allow entry would let through.
type NotProposed struct {
	Count int
	What  string // e.g. "invalid names: bad_name!"
	Why   string
}

// Suggestion is a proposed policy section.
type Suggestion struct {
	Allow     []Entry // names, by count and then entry
	Addresses []Entry // destinations of connections without a name
	Groups    []Group // with Options.GroupBySubnet
	Left      []NotProposed

	Lines, Ignored, Malformed int       // from the Aggregator
	First, Last               time.Time // of the access lines, when logged
	MaxSources                int       // clients listed per entry
}

// sharedParents are registrable domains whose subdomains belong to many
// customers although the Public Suffix List does not say so for all of
// them; their names are never grouped.
var sharedParents = map[string]string{
	"amazonaws.com": "other AWS customers' endpoints (S3 buckets, API gateways) live under it",
	"windows.net":   "other Azure customers' endpoints (storage accounts, databases) live under it",
}

// Suggest turns what agg read into a proposed policy section.
func Suggest(agg *Aggregator, opts Options) Suggestion {
	s := Suggestion{
		Lines: agg.Lines, Ignored: agg.Ignored, Malformed: agg.Malformed,
		First: agg.first, Last: agg.last,
		MaxSources: cmp.Or(opts.MaxSources, 5),
	}
	s.Allow = suggestNames(agg.names, &s.Left)
	for addr, u := range agg.addrs {
		e := merge(addr.String(), []string{addr.String()}, map[string]*usage{addr.String(): u})
		e.Names = nil
		s.Addresses = append(s.Addresses, e)
	}
	sortEntries(s.Allow)
	sortEntries(s.Addresses)

	// Subnets: only meaningful when the log shows several of them.
	all := map[netip.Prefix]bool{}
	for _, es := range [][]Entry{s.Allow, s.Addresses} {
		for _, e := range es {
			for _, src := range e.Sources {
				if a, err := netip.ParseAddr(src.Value); err == nil {
					all[subnetOf(a)] = true
				}
			}
		}
	}
	for _, es := range [][]Entry{s.Allow, s.Addresses} {
		for i := range es {
			if p, ok := commonSubnet(es[i].Sources); ok && len(all) > 1 {
				es[i].Subnet = p
			}
		}
	}
	if opts.GroupBySubnet {
		s.Allow = s.group(s.Allow)
		s.Addresses = s.group(s.Addresses)
		slices.SortFunc(s.Groups, func(a, b Group) int {
			return cmp.Or(cmp.Compare(total(b.Allow), total(a.Allow)), strings.Compare(a.Name, b.Name))
		})
	}

	if len(agg.invalid) > 0 {
		n := 0
		var names []Count
		for h, c := range agg.invalid {
			n += c
			names = append(names, Count{h, c})
		}
		sortCounts(names)
		s.Left = append(s.Left, NotProposed{n, "invalid names: " + countList(names, 5), "egressd denies an invalid name whatever the allowlist says"})
	}
	for reason, n := range agg.unusable {
		why := "the connection was not TLS or HTTP that egressd could read, or never reached the policy; no entry changes that"
		if reason == "no_name_no_destination" {
			why = "the log line has neither a name nor a destination"
		}
		s.Left = append(s.Left, NotProposed{n, "reason " + reason, why})
	}
	slices.SortFunc(s.Left, func(a, b NotProposed) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.What, b.What))
	})
	return s
}

// suggestNames groups names by registrable domain: several names under one
// become a .domain entry, a lone name stays exact.
func suggestNames(names map[string]*usage, left *[]NotProposed) []Entry {
	type bucket struct {
		domain string // "" when the names must stay exact
		names  []string
		note   string
	}
	buckets := map[string]*bucket{}
	for n := range names {
		key, b := "="+n, &bucket{}
		if d, err := publicsuffix.EffectiveTLDPlusOne(n); err == nil {
			if why, shared := sharedParents[d]; shared {
				b.note = "not grouped as ." + d + ": " + why
			} else {
				key, b.domain = d, d
			}
		}
		if old := buckets[key]; old != nil {
			b = old
		} else {
			buckets[key] = b
		}
		b.names = append(b.names, n)
	}
	var out []Entry
	for _, b := range buckets {
		slices.Sort(b.names)
		if len(b.names) > 1 {
			text := "." + b.domain
			if _, err := policy.ParseEntry(text, false); err == nil {
				out = append(out, merge(text, b.names, names))
				continue
			}
		}
		for _, n := range b.names {
			if _, err := policy.ParseEntry(n, false); err != nil {
				*left = append(*left, NotProposed{names[n].count, "name " + n, err.Error()})
				continue
			}
			e := merge(n, []string{n}, names)
			e.Names, e.Note = nil, b.note
			out = append(out, e)
		}
	}
	return out
}

// merge sums the usage of names into one entry.
func merge(text string, names []string, m map[string]*usage) Entry {
	e := Entry{Allow: text}
	sources, protos, ports, rules := map[string]int{}, map[string]int{}, map[uint16]int{}, map[string]int{}
	for _, n := range names {
		u := m[n]
		e.Count += u.count
		e.Allowed += u.allowed
		e.Names = append(e.Names, Count{n, u.count})
		for k, v := range u.sources {
			sources[k] += v
		}
		for k, v := range u.protos {
			protos[k] += v
		}
		for k, v := range u.ports {
			ports[k] += v
		}
		for k, v := range u.rules {
			rules[k] += v
		}
	}
	sortCounts(e.Names)
	e.Sources, e.Rules = counts(sources), counts(rules)
	for p := range protos {
		e.Protos = append(e.Protos, p)
	}
	slices.Sort(e.Protos)
	for p := range ports {
		e.Ports = append(e.Ports, p)
	}
	slices.Sort(e.Ports)
	return e
}

// group moves the entries with a Subnet into groups.
func (s *Suggestion) group(es []Entry) []Entry {
	var keep []Entry
	for _, e := range es {
		if !e.Subnet.IsValid() {
			keep = append(keep, e)
			continue
		}
		i := slices.IndexFunc(s.Groups, func(g Group) bool { return g.Sources[0] == e.Subnet })
		if i < 0 {
			s.Groups = append(s.Groups, Group{Name: subnetName(e.Subnet), Sources: []netip.Prefix{e.Subnet}})
			i = len(s.Groups) - 1
		}
		s.Groups[i].Allow = append(s.Groups[i].Allow, e)
	}
	return keep
}

// subnetOf is the /24 or /64 of an address.
func subnetOf(a netip.Addr) netip.Prefix {
	if a.Is4() {
		return netip.PrefixFrom(a, 24).Masked()
	}
	return netip.PrefixFrom(a, 64).Masked()
}

// commonSubnet returns the /24 or /64 holding every source, if there is one.
func commonSubnet(sources []Count) (netip.Prefix, bool) {
	var p netip.Prefix
	for _, s := range sources {
		a, err := netip.ParseAddr(s.Value)
		if err != nil {
			return netip.Prefix{}, false
		}
		q := subnetOf(a)
		if p.IsValid() && q != p {
			return netip.Prefix{}, false
		}
		p = q
	}
	return p, p.IsValid()
}

// subnetName is a group name for a subnet: letters, digits, '-', '_', '.'.
func subnetName(p netip.Prefix) string {
	return "net-" + strings.NewReplacer(":", "-", "/", "_").Replace(p.String())
}

func total(es []Entry) int {
	n := 0
	for _, e := range es {
		n += e.Count
	}
	return n
}

func counts(m map[string]int) []Count {
	out := make([]Count, 0, len(m))
	for k, v := range m {
		out = append(out, Count{k, v})
	}
	sortCounts(out)
	return out
}

// sortCounts orders by count, descending, then by value; addresses by
// address rather than as text.
func sortCounts(cs []Count) {
	slices.SortFunc(cs, func(a, b Count) int {
		if c := cmp.Compare(b.N, a.N); c != 0 {
			return c
		}
		aa, errA := netip.ParseAddr(a.Value)
		ba, errB := netip.ParseAddr(b.Value)
		if errA == nil && errB == nil {
			return aa.Compare(ba)
		}
		return strings.Compare(a.Value, b.Value)
	})
}

func sortEntries(es []Entry) {
	slices.SortFunc(es, func(a, b Entry) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Allow, b.Allow))
	})
}

// countList writes "a (3), b (2), c" with at most max values.
func countList(cs []Count, max int) string {
	var parts []string
	for i, c := range cs {
		if i == max {
			parts = append(parts, fmt.Sprintf("and %d more", len(cs)-max))
			break
		}
		if c.N > 1 {
			parts = append(parts, fmt.Sprintf("%s (%d)", c.Value, c.N))
		} else {
			parts = append(parts, c.Value)
		}
	}
	return strings.Join(parts, ", ")
}
