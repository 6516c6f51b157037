// Package squidconf translates the access rules of a Squid forward proxy
// (squid.conf) into a complete egressd configuration, so that a team
// replacing Squid with egressd keeps its allowlist.
//
// What is translated:
//
//   - acl lines of type dstdomain, src and dst, with inline values or
//     "quoted" list files (one value per line, # comments); several acl
//     lines with one name accumulate, as in Squid;
//   - http_access allow lines that AND one destination acl (dstdomain or
//     dst) with optional src acls: without a src acl the destinations go to
//     policy.allow, with one they form a policy.groups entry for those
//     clients (top-level policy.allow when the clients are all of
//     intercept.sources);
//   - include lines, followed through Options.Open (and Options.Glob);
//   - the final http_access deny all, which is egressd's default.
//
// Squid's dstdomain ".example.com" (the domain and every name under it) is
// egressd's ".example.com"; a name without the leading dot is that name
// only, in both.
//
// Squid decides by the first matching http_access line; egressd has only
// allowances and denies the rest. A line is translated only when the result
// allows exactly what Squid allowed. Everything else is reported as Skipped,
// with AffectsAccess saying whether leaving it out changes who may reach
// what: deny lines before a translated allow, negated acls, acl types
// egressd cannot express (url_regex, dstdom_regex, time, proxy_auth, …),
// entries egressd refuses (a public suffix such as .com is reported, never
// translated with allow_public_suffixes), ssl_bump, and directives this
// package does not know. Directives that only configure Squid itself
// (http_port, cache_dir, coredump_dir, refresh_pattern, …) are reported too,
// with AffectsAccess false, so that every line of the input is accounted
// for.
//
// Port and method acls are judged against the traffic egressd intercepts
// with its default ports: TLS to port 443 (which a Squid forward proxy saw
// as CONNECT to port 443) and plain HTTP to port 80. So the stock
// "http_access deny !Safe_ports" and "deny CONNECT !SSL_ports" lines, which
// never match such traffic, do not count as left out.
package squidconf

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
)

// Options tune a translation.
type Options struct {
	// Sources are the client networks (intercept.sources) given with
	// --sources. When empty they are taken from the src acls of the
	// http_access allow lines; when there are none either, Translate fails
	// and asks for --sources.
	Sources []netip.Prefix
	// Open opens a file named in the config: an acl list ("path") or an
	// included file. nil opens it from the file system, relative names
	// from the directory of the squid.conf.
	Open func(name string) (io.ReadCloser, error)
	// Glob expands an include pattern such as /etc/squid/conf.d/*.conf.
	// nil uses filepath.Glob (relative to the squid.conf's directory) when
	// Open is nil too; with a custom Open and no Glob, patterns are
	// reported as skipped.
	Glob func(pattern string) ([]string, error)
}

// Skipped is a line of the Squid configuration that was not translated.
type Skipped struct {
	// File is the file the line is in: the squid.conf as named to
	// Translate, an included file, or an acl list file.
	File string
	Line int
	Text string // the line as written (continuation lines joined)
	Why  string // why it was not translated, and what to do about it
	// AffectsAccess is true when leaving the line out makes egressd allow
	// or deny something Squid did not; false for lines about Squid itself
	// and for rules that cannot matter to egressd.
	AffectsAccess bool
}

// String formats the line as "FILE:LINE: TEXT: WHY".
func (s Skipped) String() string {
	return fmt.Sprintf("%s:%d: %s: %s", s.File, s.Line, s.Text, s.Why)
}

// Result is a translation.
type Result struct {
	// YAML is a complete egressd configuration that `egressd check`
	// accepts, commented, with the lines not translated listed at its end.
	YAML []byte
	// Skipped lists the lines not translated, in the order of the input.
	Skipped []Skipped
	// LeftOut reports whether any skipped line affects access (the CLI
	// exits 2 then).
	LeftOut bool
}

// Translate reads a squid.conf from r and translates its access rules. name
// is the file's name, used in messages and to find relative list and
// include files. The error is for input that cannot be read, and for a
// configuration without client networks (no --sources and no src acl).
func Translate(name string, r io.Reader, opts Options) (Result, error) {
	sources, err := checkSources(opts.Sources)
	if err != nil {
		return Result{}, err
	}
	var display func(string) string
	if opts.Open == nil {
		dir := filepath.Dir(name)
		resolve := func(p string) string {
			if filepath.IsAbs(p) {
				return p
			}
			return filepath.Join(dir, p)
		}
		opts.Open = func(p string) (io.ReadCloser, error) { return os.Open(resolve(p)) }
		display = resolve // report files by a name the user can open
		if opts.Glob == nil {
			opts.Glob = func(p string) ([]string, error) {
				matches, err := filepath.Glob(resolve(p))
				if filepath.IsAbs(p) {
					return matches, err
				}
				for i, m := range matches { // back to names relative to dir, as Open takes them
					if rel, err := filepath.Rel(dir, m); err == nil {
						matches[i] = rel
					}
				}
				return matches, err
			}
		}
	}
	t := newTranslator(name, opts)
	if display != nil {
		t.display = display
	}
	if err := t.read(name, r, 0); err != nil {
		return Result{}, err
	}
	t.defineAll()
	if t.values > maxValues {
		return Result{}, fmt.Errorf("%s: more than %d acl values, list files included: too large to translate", name, maxValues)
	}
	t.evaluate()
	t.chooseSources(sources)
	if len(t.sources) == 0 {
		return Result{Skipped: t.result()}, fmt.Errorf("no client networks: no http_access allow line names a src acl with a routable network; pass --sources CIDR,… (e.g. --sources 10.0.0.0/16), the networks whose traffic egressd filters")
	}
	t.finalize()
	res := Result{Skipped: t.result()}
	for _, s := range res.Skipped {
		res.LeftOut = res.LeftOut || s.AffectsAccess
	}
	res.YAML = t.render(res.Skipped)
	return res, nil
}

// checkSources validates --sources: canonical (masked), no zones or
// IPv4-mapped forms, nested networks folded into the outer one.
func checkSources(in []netip.Prefix) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, p := range in {
		switch {
		case !p.IsValid():
			return nil, fmt.Errorf("--sources: %v is not a valid CIDR (write it as 10.0.0.0/16)", p)
		case p.Addr().Zone() != "":
			return nil, fmt.Errorf("--sources: %v: write the network without an IPv6 zone", p)
		case p.Addr().Is4In6():
			return nil, fmt.Errorf("--sources: %v is an IPv4-mapped IPv6 prefix: write IPv4 networks in IPv4 form", p)
		}
		out = append(out, p.Masked())
	}
	return outermost(out), nil
}

// result returns the skipped lines in input order.
func (t *translator) result() []Skipped {
	slices.SortStableFunc(t.skipped, func(a, b skip) int { return a.seq - b.seq })
	out := make([]Skipped, len(t.skipped))
	for i, s := range t.skipped {
		out[i] = s.Skipped
	}
	return out
}
