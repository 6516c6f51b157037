package suggest

import (
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"

	"github.com/egressd/egressd/policy/config"
)

// Write prints s as a YAML policy section to paste into egressd.yaml: mode
// enforce, the allow list (and groups), every entry commented with its
// counts and clients, and what could not be proposed at the end.
func Write(w io.Writer, s Suggestion) error {
	var b strings.Builder
	header(&b, s)
	b.WriteString("policy:\n  mode: enforce\n")
	width := 0
	for _, es := range allEntries(s) {
		for _, e := range es {
			width = max(width, len(config.Scalar(e.Allow)))
		}
	}
	width = min(width, 40)
	if len(s.Allow)+len(s.Addresses) == 0 {
		b.WriteString("  allow: []\n")
	} else {
		b.WriteString("  allow:\n")
		writeEntries(&b, 2, s.Allow, width, s)
		if len(s.Addresses) > 0 {
			comment(&b, 2, "Destinations reached without a name (TLS without SNI, or an IP address")
			comment(&b, 2, "as the HTTP host): an address entry allows whatever name is sent to it.")
			writeEntries(&b, 2, s.Addresses, width, s)
		}
	}
	if len(s.Groups) > 0 {
		b.WriteString("  groups:\n")
		for _, g := range s.Groups {
			fmt.Fprintf(&b, "    - name: %s\n", config.Scalar(g.Name))
			srcs := make([]string, len(g.Sources))
			for i, p := range g.Sources {
				srcs[i] = p.String()
			}
			fmt.Fprintf(&b, "      sources: [%s]\n", strings.Join(srcs, ", "))
			b.WriteString("      allow:\n")
			writeEntries(&b, 4, g.Allow, width, s)
		}
	}
	if len(s.Left) > 0 {
		comment(&b, 0, "Not proposed: no allow entry would let these through.")
		for _, l := range s.Left {
			comment(&b, 0, fmt.Sprintf("  %s, %s: %s", plural(l.Count, "connection"), l.What, l.Why))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Write prints the suggestion with the default Options; see Suggest and
// the package function Write.
func (a *Aggregator) Write(w io.Writer) error { return Write(w, Suggest(a, Options{})) }

func header(b *strings.Builder, s Suggestion) {
	when := ""
	if !s.First.IsZero() {
		when = fmt.Sprintf(", %s to %s", s.First.UTC().Format(time.RFC3339), s.Last.UTC().Format(time.RFC3339))
	}
	comment(b, 0, fmt.Sprintf("egressd suggest: an allowlist proposed from %s%s.", plural(s.Lines, "access line"), when))
	var skipped []string
	if s.Malformed > 0 {
		skipped = append(skipped, plural(s.Malformed, "line")+" that "+were(s.Malformed)+" not JSON")
	}
	if s.Ignored > 0 {
		skipped = append(skipped, plural(s.Ignored, "other log line")+" (start-up messages and the like)")
	}
	if len(skipped) > 0 {
		comment(b, 0, "Skipped "+strings.Join(skipped, " and ")+".")
	}
	for _, l := range []string{
		"Names sharing a registrable domain (Public Suffix List) are proposed as",
		".domain, the domain and every name under it; a lone name stays exact.",
		"Counts are connections (HTTP: requests). Entries of the policy in force",
		"that saw no traffic are not listed: keep those you still need. Review",
		"every entry, paste this section into egressd.yaml, run egressd check.",
	} {
		comment(b, 0, l)
	}
}

func allEntries(s Suggestion) [][]Entry {
	out := [][]Entry{s.Allow, s.Addresses}
	for _, g := range s.Groups {
		out = append(out, g.Allow)
	}
	return out
}

func writeEntries(b *strings.Builder, level int, es []Entry, width int, s Suggestion) {
	for _, e := range es {
		if len(e.Names) > 1 {
			comment(b, level, e.Allow+" stands for "+countList(e.Names, 8))
		}
		if e.Note != "" {
			comment(b, level, e.Note)
		}
		text := config.Scalar(e.Allow)
		pad := strings.Repeat(" ", max(1, width+2-len(text)))
		line := fmt.Sprintf("%s- %s%s# %s", strings.Repeat("  ", level), text, pad, clean(describe(e, s.MaxSources)))
		b.WriteString(line + "\n")
	}
}

// describe is an entry's comment: count, protocols, clients, whether the
// policy in force already allows it.
func describe(e Entry, maxSources int) string {
	parts := []string{plural(e.Count, "connection")}
	if len(e.Protos) > 0 {
		parts[0] += ", " + strings.Join(e.Protos, "+")
	}
	if len(e.Names) == 0 && len(e.Ports) > 0 && isAddress(e.Allow) {
		ports := make([]string, len(e.Ports))
		for i, p := range e.Ports {
			ports[i] = fmt.Sprint(p)
		}
		parts[0] += " to port " + strings.Join(ports, ", ")
	}
	switch len(e.Sources) {
	case 0:
	case 1:
		parts = append(parts, "from "+e.Sources[0].Value)
	default:
		parts = append(parts, fmt.Sprintf("from %d clients: %s", len(e.Sources), countList(e.Sources, maxSources)))
	}
	if e.Subnet.IsValid() && len(e.Sources) > 1 {
		parts = append(parts, "only from "+e.Subnet.String())
	}
	switch {
	case e.Allowed == e.Count && e.Count > 0:
		parts = append(parts, "already allowed"+rules(e.Rules))
	case e.Allowed > 0:
		parts = append(parts, fmt.Sprintf("%d already allowed%s", e.Allowed, rules(e.Rules)))
	}
	return strings.Join(parts, "; ")
}

func rules(rs []Count) string {
	if len(rs) == 0 {
		return ""
	}
	names := make([]Count, len(rs))
	for i, r := range rs {
		names[i] = Count{r.Value, 1} // counts are in the entry already
	}
	return " by " + countList(names, 3)
}

func isAddress(s string) bool {
	return strings.ContainsAny(s, ":") || strings.Trim(s, "0123456789.") == ""
}

func were(n int) string {
	if n == 1 {
		return "was"
	}
	return "were"
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func comment(b *strings.Builder, level int, s string) {
	b.WriteString(strings.Repeat("  ", level) + "# " + clean(s) + "\n")
}

// clean makes s safe in a YAML comment: valid UTF-8, no line breaks or
// other control characters (log fields such as rule and host are not
// trusted).
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t':
			return ' '
		case r == ' ' || unicode.IsPrint(r) && r != '\uFEFF':
			return r
		}
		return '?'
	}, strings.ToValidUTF8(s, "?"))
}
