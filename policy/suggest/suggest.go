// Package suggest turns egressd access logs into a proposed allowlist: the
// way a team rolls egressd out without breaking production — run in
// monitor mode for a week, review the suggestion, enforce.
//
// Names under one registrable domain (per the Public Suffix List) are
// grouped into one `.domain` entry when several distinct names were seen;
// a public suffix itself is never proposed.
package suggest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"golang.org/x/net/publicsuffix"

	"github.com/egressd/egressd/policy"
)

// maxSourcesShown bounds the sources listed per entry.
const maxSourcesShown = 5

type use struct {
	count   int
	sources map[string]int
	allowed bool // allowed while enforced: already on the list
}

// Aggregator collects access-log lines.
type Aggregator struct {
	names     map[string]*use // normalised host name
	addresses map[string]*use // destination IP, when no name was sent
	// Lines counts the access lines read; Malformed the lines that were
	// not JSON.
	Lines, Malformed int
}

// NewAggregator returns an empty aggregator.
func NewAggregator() *Aggregator {
	return &Aggregator{names: map[string]*use{}, addresses: map[string]*use{}}
}

type accessLine struct {
	Src      string `json:"src"`
	Dst      string `json:"dst"`
	Host     string `json:"host"`
	Decision string `json:"decision"`
	Enforced *bool  `json:"enforced"`
}

// Read adds the access lines of r (JSON lines; other lines such as
// start-up messages are ignored, malformed ones counted).
func (a *Aggregator) Read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var l accessLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			a.Malformed++
			continue
		}
		if l.Decision == "" {
			continue // not an access line
		}
		a.Lines++
		src := l.Src
		if ap, err := netip.ParseAddrPort(src); err == nil {
			src = ap.Addr().String()
		}
		allowed := l.Decision == "allow" && (l.Enforced == nil || *l.Enforced)
		if name, err := policy.NormalizeName(l.Host); err == nil {
			a.add(a.names, name, src, allowed)
			continue
		}
		if ap, err := netip.ParseAddrPort(l.Dst); err == nil {
			a.add(a.addresses, ap.Addr().String(), src, allowed)
		}
	}
	return sc.Err()
}

func (a *Aggregator) add(m map[string]*use, key, src string, allowed bool) {
	u := m[key]
	if u == nil {
		u = &use{sources: map[string]int{}}
		m[key] = u
	}
	u.count++
	if src != "" {
		u.sources[src]++
	}
	u.allowed = u.allowed || allowed
}

// entry is one proposed allow entry.
type entry struct {
	text    string
	names   []string
	count   int
	sources map[string]int
	allowed bool
}

func (a *Aggregator) entries() (names, addrs []entry) {
	byDomain := map[string][]string{}
	for n := range a.names {
		d, err := publicsuffix.EffectiveTLDPlusOne(n)
		if err != nil {
			d = n // a public suffix or a bare name: stays exact
		}
		byDomain[d] = append(byDomain[d], n)
	}
	for d, ns := range byDomain {
		slices.Sort(ns)
		if len(ns) >= 2 {
			names = append(names, merge("."+d, ns, a.names))
			continue
		}
		names = append(names, merge(ns[0], ns, a.names))
	}
	for ip, u := range a.addresses {
		addrs = append(addrs, merge(ip, []string{ip}, map[string]*use{ip: u}))
	}
	order := func(es []entry) {
		sort.Slice(es, func(i, j int) bool {
			if es[i].count != es[j].count {
				return es[i].count > es[j].count
			}
			return es[i].text < es[j].text
		})
	}
	order(names)
	order(addrs)
	return names, addrs
}

func merge(text string, names []string, m map[string]*use) entry {
	e := entry{text: text, names: names, sources: map[string]int{}, allowed: true}
	for _, n := range names {
		u := m[n]
		e.count += u.count
		for s, c := range u.sources {
			e.sources[s] += c
		}
		e.allowed = e.allowed && u.allowed
	}
	return e
}

// Write prints the suggestion: a policy section to paste into egressd.yaml.
func (a *Aggregator) Write(w io.Writer) error {
	names, addrs := a.entries()
	var b strings.Builder
	fmt.Fprintf(&b, "# egressd suggest: %d access lines, %d names, %d addresses without a name.\n", a.Lines, len(a.names), len(a.addresses))
	b.WriteString("# Review every entry before enforcing; counts are connections (HTTP: requests).\n")
	b.WriteString("policy:\n  mode: enforce\n  allow:\n")
	for _, e := range names {
		writeEntry(&b, e)
	}
	if len(addrs) > 0 {
		b.WriteString("    # destinations seen without a name (TLS without SNI, or an IP as Host):\n")
		for _, e := range addrs {
			writeEntry(&b, e)
		}
	}
	if len(names)+len(addrs) == 0 {
		b.WriteString("    [] # nothing seen\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeEntry(b *strings.Builder, e entry) {
	text := e.text
	if strings.HasPrefix(text, "*") {
		text = `"` + text + `"`
	}
	fmt.Fprintf(b, "    - %s", text)
	pad := max(1, 34-len(text))
	fmt.Fprintf(b, "%s# %d, from %s", strings.Repeat(" ", pad), e.count, topSources(e.sources))
	if len(e.names) > 1 {
		fmt.Fprintf(b, "; names: %s", strings.Join(e.names, ", "))
	}
	if e.allowed {
		b.WriteString("; already allowed")
	}
	b.WriteString("\n")
}

func topSources(m map[string]int) string {
	srcs := make([]string, 0, len(m))
	for s := range m {
		srcs = append(srcs, s)
	}
	sort.Slice(srcs, func(i, j int) bool {
		if m[srcs[i]] != m[srcs[j]] {
			return m[srcs[i]] > m[srcs[j]]
		}
		return srcs[i] < srcs[j]
	})
	more := ""
	if len(srcs) > maxSourcesShown {
		more = fmt.Sprintf(" and %d more", len(srcs)-maxSourcesShown)
		srcs = srcs[:maxSourcesShown]
	}
	return strings.Join(srcs, " ") + more
}
