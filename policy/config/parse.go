package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/egressd/egressd/policy"
)

// parser walks one file's yaml.Node tree into cfg, collecting every problem.
type parser struct {
	file  string
	cfg   *Config
	errs  Errors
	lines map[string]int // key path -> line of the key, for keys that were set

	entries []entryRef // allow entries, checked once allow_public_suffixes is known
	// Nodes kept for the checks that relate several settings.
	sources    []located[netip.Prefix]      // intercept.sources that parsed
	sourcesOK  bool                         // every intercept source parsed
	groupSrc   []located[netip.Prefix]      // group sources that parsed
	rootOK     bool                         // the file is a mapping (or empty)
	noMissing  map[string]bool              // keys not to report missing: an unknown key was taken for them, or their section is broken
	ports      map[string][]located[uint16] // the port lists that were set
	emptyPorts map[string]bool              // port lists set to []
}

// located is a parsed value with the key and line it came from.
type located[T any] struct {
	v    T
	key  string
	line int
}

// entryRef is one allow entry as written.
type entryRef struct {
	list string // "policy.allow" or "policy.groups[i].allow": duplicates are per list
	key  string
	line int
	text string
}

// field is one key of a mapping and the function that reads its value.
type field struct {
	key  string
	read func(key string, v *yaml.Node)
}

// sections lists every section's keys in file order, to point at the
// right section when a key is written in the wrong one.
var sections = []struct {
	name string
	keys []string
}{
	{"listen", []string{"http", "tls", "admin"}},
	{"intercept", []string{"sources", "http_ports", "tls_ports", "other", "nftables"}},
	{"upstream", []string{"mode", "resolver", "dial_timeout"}},
	{"limits", []string{"sniff_timeout", "max_connections", "idle_timeout", "drain_timeout"}},
	{"policy", []string{"mode", "allow", "allow_public_suffixes", "groups"}},
	{"log", []string{"level", "format"}},
	{"ha", []string{"provider", "listen", "peer", "route_tables", "peer_route_tables", "instance_id", "network_interface",
		"peer_instance_id", "peer_network_interface", "region", "endpoint", "check_interval", "fail_after", "failback_after"}},
}

func (p *parser) errorf(line int, key, format string, args ...any) {
	if line < 1 {
		line = 1
	}
	p.errs = append(p.errs, Error{File: p.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// parse reads data into p.cfg.
func (p *parser) parse(data []byte) {
	root, ok := p.document(data)
	if !ok {
		return
	}
	p.noMissing = map[string]bool{}
	p.rootOK = p.mapping(root, "", []field{
		{"listen", p.listen},
		{"intercept", p.intercept},
		{"upstream", p.upstream},
		{"limits", p.limits},
		{"policy", p.policy},
		{"log", p.log},
		{"ha", p.ha},
	})
	p.checkIntercept()
	p.checkListen()
	p.checkEntries()
}

// document parses the YAML and returns the root mapping (nil for an empty
// file). ok is false after a syntax error.
func (p *parser) document(data []byte) (root *yaml.Node, ok bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, true
		}
		p.syntaxError(err, data)
		return nil, false
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		p.errorf(next.Line, "", "a second YAML document starts here (after ---): egressd reads one document; remove the separator or the extra document")
		return nil, false
	case !errors.Is(err, io.EOF):
		p.syntaxError(err, data)
		return nil, false
	}
	if len(doc.Content) == 0 {
		return nil, true
	}
	return doc.Content[0], true
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError reports a YAML syntax error with its line. The YAML parser
// names the line for most errors; for the others the line is found by
// parsing ever longer beginnings of the file.
func (p *parser) syntaxError(err error, data []byte) {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		p.errs = append(p.errs, Error{File: p.file, Line: line, Msg: "invalid YAML: " + m[2]})
		return
	}
	p.errs = append(p.errs, Error{File: p.file, Line: syntaxErrorLine(data, msg), Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")})
}

// syntaxErrorLine finds the first line whose inclusion makes the file fail
// with msg, by binary search over the file's first lines; 0 if not found.
func syntaxErrorLine(data []byte, msg string) int {
	var ends []int // offsets just past each line
	for i, c := range data {
		if c == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(data) {
		ends = append(ends, len(data))
	}
	fails := func(lines int) bool {
		dec := yaml.NewDecoder(bytes.NewReader(data[:ends[lines-1]]))
		for {
			var n yaml.Node
			err := dec.Decode(&n)
			if err == nil {
				continue
			}
			return !errors.Is(err, io.EOF) && err.Error() == msg
		}
	}
	lo, hi := 1, len(ends)
	for lo < hi {
		mid := (lo + hi) / 2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	if fails(lo) {
		return lo
	}
	return 0
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// describe names a node's YAML type for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	if isNull(n) {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		switch n.ShortTag() {
		case "!!str":
			return fmt.Sprintf("a string (%q)", v)
		case "!!int", "!!float":
			return "a number (" + v + ")"
		case "!!bool":
			return "a boolean (" + v + ")"
		}
		return fmt.Sprintf("a %s value (%q)", n.ShortTag(), v)
	}
	return "an unexpected YAML node"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// mapping reads a mapping node whose keys are fields. A null value is an
// empty mapping. Unknown and repeated keys are errors.
func (p *parser) mapping(n *yaml.Node, path string, fields []field) bool {
	n = resolve(n)
	if isNull(n) {
		return true
	}
	if n.Kind != yaml.MappingNode {
		keys := make([]string, len(fields))
		for i, f := range fields {
			keys[i] = f.key
		}
		what := "the sections " + strings.Join(keys, ", ")
		if path != "" {
			what = "the keys " + strings.Join(keys, ", ")
		}
		p.errorf(n.Line, path, "expected a mapping of %s, got %s", what, describe(n))
		return false
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		key := join(path, k.Value)
		switch {
		case k.Kind != yaml.ScalarNode:
			p.errorf(k.Line, path, "a key must be a plain name, got %s", describe(k))
			continue
		case k.ShortTag() == "!!merge":
			p.errorf(k.Line, key, "merge keys (<<) are not supported: write the keys out")
			continue
		}
		if first, dup := seen[k.Value]; dup {
			p.errorf(k.Line, key, "duplicate key (first set at line %d): keep one", first)
			continue
		}
		seen[k.Value] = k.Line
		var f *field
		for j := range fields {
			if fields[j].key == k.Value {
				f = &fields[j]
			}
		}
		if f == nil {
			hint, meant := unknownKeyHint(path, k.Value, fields)
			if meant != "" {
				p.noMissing[join(path, meant)] = true
			}
			p.errorf(k.Line, key, "unknown key (%s)", hint)
			continue
		}
		p.lines[key] = k.Line
		f.read(key, v)
	}
	return true
}

// unknownKeyHint suggests the key that was probably meant: a close one in
// the same section, the same key in another section, or the valid keys.
// meant is the close key of this section, if any.
func unknownKeyHint(path, key string, fields []field) (hint, meant string) {
	valid := make([]string, len(fields))
	for i, f := range fields {
		valid[i] = f.key
	}
	if s := closest(key, valid); s != "" {
		return fmt.Sprintf("did you mean %q?", s), s
	}
	if !strings.HasPrefix(path, "policy.groups[") {
		var elsewhere []string
		for _, sec := range sections {
			if sec.name != path && slices.Contains(sec.keys, key) {
				elsewhere = append(elsewhere, sec.name+"."+key)
			}
		}
		if len(elsewhere) > 0 {
			return "did you mean " + strings.Join(elsewhere, " or ") + "? it belongs in that section", ""
		}
	}
	return "valid keys here: " + strings.Join(valid, ", "), ""
}

// closest returns the candidate nearest to s by edit distance, if it is
// near enough to be a typo.
func closest(s string, candidates []string) string {
	best, bestD := "", 3
	ls := strings.ToLower(s)
	for _, c := range candidates {
		d := editDistance(ls, c)
		if d < bestD && d < len(c) {
			best, bestD = c, d
		}
	}
	if bestD > 1 && len(s) <= 3 {
		return "" // two edits in a short word say little
	}
	return best
}

// editDistance is the Levenshtein distance between two short strings.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// str reads a string scalar. want describes a valid value for messages. A
// null value is "" when nullOK.
func (p *parser) str(key string, n *yaml.Node, want string, nullOK bool) (string, bool) {
	if isNull(n) {
		if nullOK {
			return "", true
		}
		p.errorf(n.Line, key, "missing value: expected %s", want)
		return "", false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		p.errorf(n.Line, key, "expected %s, got %s", want, describe(n))
		return "", false
	}
	return n.Value, true
}

// enum reads a string that must be one of valid.
func (p *parser) enum(key string, n *yaml.Node, valid ...string) (string, bool) {
	list := strings.Join(valid, ", ")
	s, ok := p.str(key, n, "one of "+list, false)
	if !ok {
		return "", false
	}
	for _, v := range valid {
		if s == v {
			return s, true
		}
	}
	hint := ""
	if c := closest(s, valid); c != "" {
		hint = fmt.Sprintf(" (did you mean %q?)", c)
	}
	p.errorf(n.Line, key, "%q is not valid: use one of %s%s", s, list, hint)
	return "", false
}

func (p *parser) boolean(key string, n *yaml.Node) (bool, bool) {
	var b bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		p.errorf(n.Line, key, "expected true or false, got %s", describe(n))
		return false, false
	}
	return b, true
}

func (p *parser) integer(key string, n *yaml.Node, want string) (int64, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		p.errorf(n.Line, key, "expected %s, got %s", want, describe(n))
		return 0, false
	}
	var v int64
	if err := n.Decode(&v); err != nil {
		p.errorf(n.Line, key, "%s is out of range: expected %s", n.Value, want)
		return 0, false
	}
	return v, true
}

// duration reads a positive duration written as "5s", "1m30s", "15m".
func (p *parser) duration(key string, n *yaml.Node) (time.Duration, bool) {
	const want = `a duration such as "5s", "1m30s" or "15m"`
	if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!int" || n.ShortTag() == "!!float") {
		p.errorf(n.Line, key, "expected %s, got a number (%s): add a unit, as in \"%ss\"", want, n.Value, n.Value)
		return 0, false
	}
	s, ok := p.str(key, n, want, false)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		p.errorf(n.Line, key, "%q is not %s", s, want)
		return 0, false
	}
	if d <= 0 {
		p.errorf(n.Line, key, "%q: must be more than 0 (e.g. \"5s\")", s)
		return 0, false
	}
	return d, true
}

// durationInto returns a field reader storing a valid duration in dst.
func (p *parser) durationInto(dst *time.Duration) func(string, *yaml.Node) {
	return func(key string, n *yaml.Node) {
		if d, ok := p.duration(key, n); ok {
			*dst = d
		}
	}
}

// seq reads a list node. A null value is an empty list when nullOK.
func (p *parser) seq(key string, n *yaml.Node, what string, nullOK bool) ([]*yaml.Node, bool) {
	if isNull(n) {
		if nullOK {
			return nil, true
		}
		p.errorf(n.Line, key, "missing value: expected %s", what)
		return nil, false
	}
	if n.Kind != yaml.SequenceNode {
		hint := ""
		if n.Kind == yaml.ScalarNode {
			hint = fmt.Sprintf(" (write [%s], or one \"- item\" per line)", n.Value)
		}
		p.errorf(n.Line, key, "expected %s, got %s%s", what, describe(n), hint)
		return nil, false
	}
	items := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		items[i] = resolve(c)
	}
	return items, true
}

func index(key string, i int) string { return fmt.Sprintf("%s[%d]", key, i) }

// --- sections ---

func (p *parser) listen(key string, n *yaml.Node) {
	l := &p.cfg.Listen
	addr := func(dst *string, emptyOK bool) func(string, *yaml.Node) {
		return func(key string, n *yaml.Node) {
			want := `"host:port" such as ":15080" or "127.0.0.1:15080"`
			if emptyOK {
				want += `, or "" to turn it off`
			}
			if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
				p.errorf(n.Line, key, "expected %s, got a number (%s): did you mean \":%s\"?", want, n.Value, n.Value)
				return
			}
			s, ok := p.str(key, n, want, emptyOK)
			if !ok {
				return
			}
			if s == "" && emptyOK {
				*dst = ""
				return
			}
			if _, _, err := splitListen(s); err != nil {
				p.errorf(n.Line, key, "%q: %v: expected %s", s, err, want)
				return
			}
			*dst = s
		}
	}
	p.mapping(n, key, []field{
		{"http", addr(&l.HTTP, false)},
		{"tls", addr(&l.TLS, false)},
		{"admin", addr(&l.Admin, true)},
	})
}

// splitListen checks a listen address: an optional IP or "localhost" host
// and a port from 1 to 65535.
func splitListen(s string) (host string, port uint16, err error) {
	host, ps, err := net.SplitHostPort(s)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return "", 0, errors.New(ae.Err)
		}
		return "", 0, err
	}
	port, err = parsePort(ps)
	if err != nil {
		return "", 0, err
	}
	if host != "" && host != "localhost" {
		if _, err := netip.ParseAddr(host); err != nil {
			return "", 0, fmt.Errorf("host %q is not an IP address (leave it empty for every address)", host)
		}
	}
	return host, port, nil
}

func parsePort(s string) (uint16, error) {
	v, err := strconv.ParseUint(s, 10, 16)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", s)
	}
	return uint16(v), nil
}

func (p *parser) intercept(key string, n *yaml.Node) {
	ic := &p.cfg.Intercept
	defer func(n *yaml.Node) {
		if !isNull(n) && n.Kind != yaml.MappingNode {
			p.noMissing[key+".sources"] = true // "expected a mapping" says it all
		}
	}(n)
	p.mapping(n, key, []field{
		{"sources", func(key string, n *yaml.Node) {
			ic.Sources = nil
			items, ok := p.seq(key, n, "a list of CIDRs such as [10.0.0.0/16]", false)
			if !ok {
				return
			}
			if len(items) == 0 {
				p.errorf(n.Line, key, "empty: list the client networks whose traffic egressd filters, e.g. [10.0.0.0/16]")
				return
			}
			p.sourcesOK = true
			for i, it := range items {
				pfx, ok := p.prefix(index(key, i), it)
				if !ok {
					p.sourcesOK = false
					continue
				}
				ic.Sources = append(ic.Sources, pfx)
				p.sources = append(p.sources, located[netip.Prefix]{pfx, index(key, i), it.Line})
			}
		}},
		{"http_ports", func(key string, n *yaml.Node) { ic.HTTPPorts = p.portList(key, n) }},
		{"tls_ports", func(key string, n *yaml.Node) { ic.TLSPorts = p.portList(key, n) }},
		{"other", func(key string, n *yaml.Node) {
			if s, ok := p.enum(key, n, string(OtherDrop), string(OtherReject), string(OtherMasquerade)); ok {
				ic.Other = Other(s)
			}
		}},
		{"nftables", func(key string, n *yaml.Node) {
			if b, ok := p.boolean(key, n); ok {
				ic.NFTables = b
			}
		}},
	})
}

// prefix reads one CIDR (or single address) list item.
func (p *parser) prefix(key string, n *yaml.Node) (netip.Prefix, bool) {
	s, ok := p.str(key, n, "a CIDR such as 10.0.0.0/16 or 2001:db8::/56", false)
	if !ok {
		return netip.Prefix{}, false
	}
	pfx, err := policy.ParsePrefix(s)
	if err != nil {
		p.errorf(n.Line, key, "%v", err)
		return netip.Prefix{}, false
	}
	return pfx, true
}

// portList reads a list of distinct ports.
func (p *parser) portList(key string, n *yaml.Node) []uint16 {
	const want = "a port number from 1 to 65535"
	items, ok := p.seq(key, n, "a list of port numbers such as [80]", true)
	if !ok {
		return nil
	}
	ports := []uint16{}
	first := map[uint16]string{}
	if p.ports == nil {
		p.ports = map[string][]located[uint16]{}
		p.emptyPorts = map[string]bool{}
	}
	p.ports[key] = nil
	p.emptyPorts[key] = len(items) == 0
	for i, it := range items {
		v, ok := p.integer(index(key, i), it, want)
		if !ok {
			continue
		}
		if v < 1 || v > 65535 {
			p.errorf(it.Line, index(key, i), "%d is not %s", v, want)
			continue
		}
		port := uint16(v)
		if at, dup := first[port]; dup {
			p.errorf(it.Line, index(key, i), "port %d is listed twice (first as %s): keep one", port, at)
			continue
		}
		first[port] = index(key, i)
		ports = append(ports, port)
		p.ports[key] = append(p.ports[key], located[uint16]{port, index(key, i), it.Line})
	}
	return ports
}

func (p *parser) upstream(key string, n *yaml.Node) {
	u := &p.cfg.Upstream
	p.mapping(n, key, []field{
		{"mode", func(key string, n *yaml.Node) {
			if s, ok := p.enum(key, n, string(Resolve), string(Original)); ok {
				u.Mode = UpstreamMode(s)
			}
		}},
		{"resolver", func(key string, n *yaml.Node) {
			const want = `"ip:port" of a DNS server such as "10.0.0.2:53" or "[2001:db8::53]:53", or "" for the first nameserver in /etc/resolv.conf`
			s, ok := p.str(key, n, want, true)
			if !ok {
				return
			}
			if err := checkResolver(s); err != nil {
				p.errorf(n.Line, key, "%q: %v", s, err)
				return
			}
			u.Resolver = s
		}},
		{"dial_timeout", p.durationInto(&u.DialTimeout)},
	})
}

// checkResolver accepts "" or "ip:port" with an IP address (IPv6 in
// brackets) and a port from 1 to 65535.
func checkResolver(s string) error {
	if s == "" {
		return nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return fmt.Errorf("missing port: did you mean %q?", netip.AddrPortFrom(a, 53).String())
	}
	host, ps, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf(`not "ip:port" (write "10.0.0.2:53", IPv6 as "[2001:db8::53]:53")`)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return fmt.Errorf("%q is not an IP address: the resolver must be an address, not a name", host)
	}
	if _, err := parsePort(ps); err != nil {
		return err
	}
	return nil
}

func (p *parser) limits(key string, n *yaml.Node) {
	l := &p.cfg.Limits
	p.mapping(n, key, []field{
		{"sniff_timeout", p.durationInto(&l.SniffTimeout)},
		{"max_connections", func(key string, n *yaml.Node) {
			const want = "a number of connections above 0, such as 50000"
			v, ok := p.integer(key, n, want)
			if !ok {
				return
			}
			if v < 1 || int64(int(v)) != v {
				p.errorf(n.Line, key, "%d is not %s", v, want)
				return
			}
			l.MaxConnections = int(v)
		}},
		{"idle_timeout", p.durationInto(&l.IdleTimeout)},
		{"drain_timeout", p.durationInto(&l.DrainTimeout)},
	})
}

func (p *parser) policy(key string, n *yaml.Node) {
	pol := &p.cfg.Policy
	p.mapping(n, key, []field{
		{"mode", func(key string, n *yaml.Node) {
			if s, ok := p.enum(key, n, policy.Enforce.String(), policy.Monitor.String()); ok {
				pol.Mode, _ = policy.ParseMode(s)
			}
		}},
		{"allow", func(key string, n *yaml.Node) {
			pol.Allow = p.entryList(key, n)
		}},
		{"allow_public_suffixes", func(key string, n *yaml.Node) {
			if b, ok := p.boolean(key, n); ok {
				pol.AllowPublicSuffixes = b
			}
		}},
		{"groups", p.groups},
	})
}

// entryList reads a list of allow entries; they are checked by checkEntries.
func (p *parser) entryList(key string, n *yaml.Node) []string {
	items, ok := p.seq(key, n, "a list of names, .domains, *.domains and IP/CIDRs", true)
	if !ok {
		return nil
	}
	list := make([]string, 0, len(items))
	for i, it := range items {
		s, ok := p.str(index(key, i), it, "a name (naver.com), .domain, *.domain, or an IP/CIDR", false)
		if !ok {
			continue
		}
		list = append(list, s)
		p.entries = append(p.entries, entryRef{list: key, key: index(key, i), line: it.Line, text: s})
	}
	return list
}

func (p *parser) groups(key string, n *yaml.Node) {
	items, ok := p.seq(key, n, "a list of groups (each with name, sources and allow)", true)
	if !ok {
		return
	}
	names := map[string]int{}
	for i, it := range items {
		gkey := index(key, i)
		var g policy.Group
		var hasName, hasSources, hasAllow bool
		ok := p.mapping(it, gkey, []field{
			{"name", func(key string, n *yaml.Node) {
				hasName = true
				s, ok := p.str(key, n, "a group name such as ci", false)
				if !ok {
					return
				}
				if err := checkGroupName(s); err != nil {
					p.errorf(n.Line, key, "%q: %v", s, err)
					return
				}
				if line, dup := names[s]; dup {
					p.errorf(n.Line, key, "group name %q is already used at line %d: give each group its own name", s, line)
					return
				}
				names[s] = n.Line
				g.Name = s
			}},
			{"sources", func(key string, n *yaml.Node) {
				hasSources = true
				items, ok := p.seq(key, n, "a list of CIDRs such as [10.0.3.0/24]", false)
				if !ok {
					return
				}
				if len(items) == 0 {
					p.errorf(n.Line, key, "empty: list the client networks this group applies to, e.g. [10.0.3.0/24]")
					return
				}
				first := map[netip.Prefix]string{}
				for j, it := range items {
					pfx, ok := p.prefix(index(key, j), it)
					if !ok {
						continue
					}
					if at, dup := first[pfx]; dup {
						p.errorf(it.Line, index(key, j), "%s is listed twice (first as %s): keep one", pfx, at)
						continue
					}
					first[pfx] = index(key, j)
					g.Sources = append(g.Sources, pfx)
					p.groupSrc = append(p.groupSrc, located[netip.Prefix]{pfx, index(key, j), it.Line})
				}
			}},
			{"allow", func(key string, n *yaml.Node) {
				hasAllow = true
				if isNull(n) || (n.Kind == yaml.SequenceNode && len(n.Content) == 0) {
					p.errorf(n.Line, key, "empty: list what this group may reach, e.g. [.github.com]")
					return
				}
				g.Allow = p.entryList(key, n)
			}},
		})
		if !ok || isNull(it) {
			if isNull(it) {
				p.errorf(it.Line, gkey, "empty group: write name, sources and allow")
			}
			continue
		}
		var missing []string
		for _, m := range []struct {
			key string
			has bool
		}{{"name", hasName}, {"sources", hasSources}, {"allow", hasAllow}} {
			if !m.has && !p.noMissing[join(gkey, m.key)] {
				missing = append(missing, m.key)
			}
		}
		if len(missing) > 0 {
			p.errorf(it.Line, gkey, "missing %s: a group needs a name, sources and allow", strings.Join(missing, " and "))
		}
		p.cfg.Policy.Groups = append(p.cfg.Policy.Groups, g)
	}
}

// checkGroupName accepts names made of letters, digits, '-', '_' and '.'.
func checkGroupName(s string) error {
	if s == "" {
		return errors.New("empty: name the group, e.g. ci")
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("invalid character %q: use letters, digits, '-', '_' and '.'", c)
		}
	}
	return nil
}

func (p *parser) log(key string, n *yaml.Node) {
	l := &p.cfg.Log
	p.mapping(n, key, []field{
		{"level", func(key string, n *yaml.Node) {
			if s, ok := p.enum(key, n, "debug", "info", "warn", "error"); ok {
				l.Level = s
			}
		}},
		{"format", func(key string, n *yaml.Node) {
			if s, ok := p.enum(key, n, "json", "console"); ok {
				l.Format = s
			}
		}},
	})
}

// --- checks across settings ---

func (p *parser) checkIntercept() {
	if _, set := p.lines["intercept.sources"]; !set && p.rootOK && !p.noMissing["intercept.sources"] {
		p.errorf(p.lines["intercept"], "intercept.sources", "required: list the client networks whose traffic egressd filters, e.g. sources: [10.0.0.0/16]")
	}
	for j, b := range p.sources {
		for _, a := range p.sources[:j] {
			if a.v.Overlaps(b.v) {
				p.errorf(b.line, b.key, "%s overlaps %s (%s, line %d): list each network once", b.v, a.v, a.key, a.line)
				break
			}
		}
	}
	if p.sourcesOK {
		for _, g := range p.groupSrc {
			inside := false
			for _, s := range p.sources {
				if s.v.Overlaps(g.v) {
					inside = true
					break
				}
			}
			if !inside {
				p.errorf(g.line, g.key, "%s is outside intercept.sources, so its traffic never reaches egressd: add it to intercept.sources or correct it", g.v)
			}
		}
	}
	ic := p.cfg.Intercept
	if p.emptyPorts["intercept.http_ports"] && p.emptyPorts["intercept.tls_ports"] {
		line := p.lines["intercept.tls_ports"]
		p.errorf(line, "intercept.tls_ports", "intercept.http_ports and intercept.tls_ports are both empty: nothing would be intercepted (the defaults are [80] and [443])")
	}
	httpPorts := map[uint16]located[uint16]{}
	for _, l := range p.portsOf("intercept.http_ports", ic.HTTPPorts) {
		httpPorts[l.v] = l
	}
	for _, l := range p.portsOf("intercept.tls_ports", ic.TLSPorts) {
		if h, both := httpPorts[l.v]; both {
			where := fmt.Sprintf("%s, line %d", h.key, h.line)
			if h.line == 0 {
				where = "the default http_ports: [80]"
			}
			p.errorf(l.line, l.key, "port %d is also in intercept.http_ports (%s): a port is intercepted either as HTTP or as TLS", l.v, where)
		}
	}
}

// portsOf returns the located ports of a list, or its defaults with line 0.
func (p *parser) portsOf(key string, ports []uint16) []located[uint16] {
	if l, set := p.ports[key]; set {
		return l
	}
	var out []located[uint16]
	for i, port := range ports {
		out = append(out, located[uint16]{port, index(key, i), 0})
	}
	return out
}

// checkListen refuses two listeners on the same port and address.
func (p *parser) checkListen() {
	l := p.cfg.Listen
	addrs := []struct{ key, addr string }{{"listen.http", l.HTTP}, {"listen.tls", l.TLS}, {"listen.admin", l.Admin}}
	if p.cfg.HA.Enabled {
		addrs = append(addrs, struct{ key, addr string }{"ha.listen", p.cfg.HA.Listen})
	}
	for j, b := range addrs {
		if b.addr == "" {
			continue
		}
		bh, bp, err := splitListen(b.addr)
		if err != nil {
			continue
		}
		for _, a := range addrs[:j] {
			ah, ap, err := splitListen(a.addr)
			if err != nil || a.addr == "" || ap != bp || !hostsOverlap(ah, bh) {
				continue
			}
			key, other := b.key, a
			if _, set := p.lines[key]; !set {
				key, other = a.key, b
			}
			p.errorf(p.lines[key], key, "%q uses the same port as %s (%q): give each listener its own port", p.listenValue(key), other.key, other.addr)
			break
		}
	}
}

func (p *parser) listenValue(key string) string {
	switch key {
	case "listen.http":
		return p.cfg.Listen.HTTP
	case "listen.tls":
		return p.cfg.Listen.TLS
	case "ha.listen":
		return p.cfg.HA.Listen
	}
	return p.cfg.Listen.Admin
}

func hostsOverlap(a, b string) bool {
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return a == b || wild(a) || wild(b)
}

// checkEntries parses every allow entry now that allow_public_suffixes is
// known, and refuses duplicates within one list.
func (p *parser) checkEntries() {
	type id struct {
		list string
		kind policy.EntryKind
		name string
		pfx  netip.Prefix
	}
	first := map[id]entryRef{}
	for _, r := range p.entries {
		e, err := policy.ParseEntry(r.text, p.cfg.Policy.AllowPublicSuffixes)
		if err != nil {
			p.errorf(r.line, r.key, "%v", err)
			continue
		}
		k := id{r.list, e.Kind, e.Name, e.Prefix}
		if f, dup := first[k]; dup {
			p.errorf(r.line, r.key, "%q is the same entry as %q (%s, line %d): keep one", r.text, f.text, f.key, f.line)
			continue
		}
		first[k] = r
	}
}
