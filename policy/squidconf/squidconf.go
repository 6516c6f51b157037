// Package squidconf translates a Squid access configuration (acl
// dstdomain/src/dst and http_access lines) into an egressd configuration,
// so that a team moving from a Squid forward proxy keeps its allowlist.
//
// Only what can be translated faithfully is: everything else is reported
// as Skipped with its line, and LeftOut says whether any of it could change
// who may reach what.
package squidconf

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/egressd/egressd/policy"
)

// Options tune a translation.
type Options struct {
	// Sources are the client networks when the Squid config has no src
	// acl (egressd needs intercept.sources).
	Sources []netip.Prefix
	// Open reads "file" acl lists; nil opens them relative to the
	// squid.conf's directory.
	Open func(path string) (io.ReadCloser, error)
}

// Skipped is a line that was not translated.
type Skipped struct {
	Line int
	Text string
	Why  string
}

// Result is a translation.
type Result struct {
	YAML    []byte    // a complete egressd config
	Skipped []Skipped // lines not translated
	LeftOut bool      // something that affects access was not translated
}

type acl struct {
	kind    string // dstdomain, src, dst, or another Squid type
	values  []string
	line    int
	invalid bool
}

// irrelevant directives configure Squid itself, not who may reach what.
var irrelevant = map[string]bool{
	"http_port": true, "https_port": true, "cache_dir": true, "coredump_dir": true, "refresh_pattern": true,
	"visible_hostname": true, "cache_mem": true, "access_log": true, "cache_log": true, "cache": true,
	"maximum_object_size": true, "pid_filename": true, "dns_nameservers": true, "shutdown_lifetime": true,
	"cache_effective_user": true, "logformat": true, "workers": true, "icp_access": true, "htcp_access": true,
}

// Translate reads a squid.conf from r (name is for messages and for
// relative "file" lists).
func Translate(name string, r io.Reader, opts Options) (Result, error) {
	if opts.Open == nil {
		dir := filepath.Dir(name)
		opts.Open = func(p string) (io.ReadCloser, error) {
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			return os.Open(p)
		}
	}
	var res Result
	skip := func(line int, text, why string, affects bool) {
		res.Skipped = append(res.Skipped, Skipped{line, text, why})
		res.LeftOut = res.LeftOut || affects
	}
	acls := map[string]*acl{}
	var allow []string
	type group struct {
		name           string
		sources, allow []string
	}
	var groups []group
	var usedSources []string
	sawDenyAll := false

	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		text := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = strings.TrimSpace(text[:i])
		}
		if text == "" {
			continue
		}
		f := strings.Fields(text)
		switch f[0] {
		case "acl":
			if len(f) < 4 {
				skip(lineNo, text, "acl needs a name, a type and values", true)
				continue
			}
			a := acls[f[1]]
			if a == nil {
				a = &acl{kind: f[2], line: lineNo}
				acls[f[1]] = a
			} else if a.kind != f[2] {
				skip(lineNo, text, fmt.Sprintf("acl %s was declared with type %s", f[1], a.kind), true)
				a.invalid = true
				continue
			}
			for _, v := range f[3:] {
				if strings.HasPrefix(v, "-") { // acl flags such as -i, -n
					continue
				}
				if strings.HasPrefix(v, `"`) && strings.HasSuffix(v, `"`) && len(v) > 2 {
					vals, err := readList(opts.Open, strings.Trim(v, `"`))
					if err != nil {
						skip(lineNo, text, "cannot read the list: "+err.Error(), true)
						a.invalid = true
						continue
					}
					a.values = append(a.values, vals...)
					continue
				}
				a.values = append(a.values, v)
			}
		case "http_access":
			if len(f) < 3 || (f[1] != "allow" && f[1] != "deny") {
				skip(lineNo, text, "expected http_access allow|deny ACL…", true)
				continue
			}
			names := f[2:]
			if f[1] == "deny" {
				if len(names) == 1 && names[0] == "all" {
					sawDenyAll = true // egressd denies what is not allowed
					continue
				}
				skip(lineNo, text, "egressd has no deny rules: it denies everything not allowed; remove the names from the allow entries instead", true)
				continue
			}
			if sawDenyAll {
				skip(lineNo, text, "after `http_access deny all`: Squid never reaches it", false)
				continue
			}
			var srcs, dsts []string
			ok := true
			for _, n := range names {
				if strings.HasPrefix(n, "!") {
					skip(lineNo, text, "negated acl "+n+": egressd has no negation", true)
					ok = false
					break
				}
				if n == "all" {
					continue
				}
				a := acls[n]
				switch {
				case a == nil:
					skip(lineNo, text, "acl "+n+" is not defined", true)
					ok = false
				case a.invalid:
					skip(lineNo, text, "acl "+n+" could not be translated", true)
					ok = false
				case a.kind == "src":
					srcs = append(srcs, a.values...)
				case a.kind == "dstdomain" || a.kind == "dst":
					if len(dsts) > 0 {
						skip(lineNo, text, "two destination acls on one line (Squid ANDs them)", true)
						ok = false
					}
					dsts = append(dsts, a.values...)
				default:
					skip(lineNo, text, fmt.Sprintf("acl %s has type %s, which egressd cannot express", n, a.kind), true)
					ok = false
				}
				if !ok {
					break
				}
			}
			if !ok {
				continue
			}
			entries := translateEntries(dsts, a2line(acls, names), skip)
			switch {
			case len(dsts) == 0:
				skip(lineNo, text, "allows every destination: egressd would have to allow everything", true)
			case len(srcs) == 0:
				allow = append(allow, entries...)
			default:
				prefixes := translateSources(srcs, lineNo, text, skip)
				usedSources = append(usedSources, prefixes...)
				groups = append(groups, group{name: groupName(names), sources: prefixes, allow: entries})
			}
		default:
			if irrelevant[f[0]] {
				skip(lineNo, text, "not relevant to egressd", false)
			} else {
				skip(lineNo, text, "directive "+f[0]+" is not translated", true)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return res, err
	}
	// The client networks: --sources when given, else the src acls used
	// by translated lines, else every src acl.
	var sources []string
	for _, p := range opts.Sources {
		sources = append(sources, p.String())
	}
	if len(sources) == 0 {
		sources = usedSources
	}
	if len(sources) == 0 {
		for _, a := range acls {
			if a.kind == "src" && !a.invalid {
				sources = append(sources, translateSources(a.values, a.line, "", nil)...)
			}
		}
	}
	sources = outermost(dedupe(sources))
	if len(sources) == 0 {
		return res, errors.New("no client networks: the Squid config has no src acl; pass --sources CIDR,… (e.g. --sources 10.0.0.0/16)")
	}
	doc := map[string]any{
		"intercept": map[string]any{"sources": sources},
		"policy": map[string]any{
			"mode":  "enforce",
			"allow": dedupe(allow),
		},
	}
	if len(groups) > 0 {
		var gs []map[string]any
		for _, g := range groups {
			gs = append(gs, map[string]any{"name": g.name, "sources": dedupe(g.sources), "allow": dedupe(g.allow)})
		}
		doc["policy"].(map[string]any)["groups"] = gs
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		return res, err
	}
	header := fmt.Sprintf("# generated by egressd import-squid from %s\n# review it, then: egressd check -c THIS_FILE\n", name)
	res.YAML = append([]byte(header), out...)
	return res, nil
}

func a2line(acls map[string]*acl, names []string) int {
	for _, n := range names {
		if a := acls[n]; a != nil && (a.kind == "dstdomain" || a.kind == "dst") {
			return a.line
		}
	}
	return 0
}

// translateEntries checks each destination with egressd's own rules;
// Squid's dstdomain ".example.com" already means what egressd's does.
func translateEntries(values []string, line int, skip func(int, string, string, bool)) []string {
	var out []string
	for _, v := range values {
		if _, err := policy.ParseEntry(v, false); err != nil {
			skip(line, v, "not a valid egressd entry: "+err.Error(), true)
			continue
		}
		out = append(out, v)
	}
	return out
}

func translateSources(values []string, line int, text string, skip func(int, string, string, bool)) []string {
	var out []string
	for _, v := range values {
		if v == "all" {
			continue
		}
		if addr, mask, ok := strings.Cut(v, "/"); ok && strings.Contains(mask, ".") {
			// a.b.c.d/255.255.0.0 netmask form
			if m, err := netip.ParseAddr(mask); err == nil && m.Is4() {
				bits := 0
				for _, b := range m.As4() {
					for ; b&0x80 != 0; b <<= 1 {
						bits++
					}
				}
				v = fmt.Sprintf("%s/%d", addr, bits)
			}
		}
		p, err := policy.ParsePrefix(v)
		if err != nil {
			if pp, perr := netip.ParsePrefix(v); perr == nil {
				p, err = pp.Masked(), nil // Squid accepts host bits; the network is meant
			}
		}
		if err != nil {
			if skip != nil {
				skip(line, text, "source "+v+": "+err.Error(), true)
			}
			continue
		}
		out = append(out, p.String())
	}
	return out
}

// outermost drops prefixes contained in another (egressd's source sets
// must not overlap), keeping the order.
func outermost(prefixes []string) []string {
	var out []string
	for i, a := range prefixes {
		pa := netip.MustParsePrefix(a)
		inside := false
		for j, b := range prefixes {
			pb := netip.MustParsePrefix(b)
			if i != j && pb.Bits() < pa.Bits() && pb.Contains(pa.Addr()) {
				inside = true
				break
			}
		}
		if !inside {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

func groupName(names []string) string {
	var parts []string
	for _, n := range names {
		if n != "all" {
			parts = append(parts, n)
		}
	}
	return strings.Join(parts, "-")
}

func dedupe(xs []string) []string {
	out := []string{}
	for _, x := range xs {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func readList(open func(string) (io.ReadCloser, error), path string) ([]string, error) {
	f, err := open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = strings.TrimSpace(l[:i])
		}
		if l != "" {
			out = append(out, strings.Fields(l)...)
		}
	}
	return out, sc.Err()
}
