package squidconf

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/egressd/egressd/policy"
)

// rule is one http_access line.
type rule struct {
	stmt  stmt
	allow bool
	terms []term
	bad   string // why the line itself is malformed

	// Set by evaluate.
	out      outcome
	why      string
	src      []netip.Prefix // nil: any client
	srcNames []string       // the src acls, for group names
	dst      *aclDef
	done     bool // reported or translated; nothing more to say
	// translated: finalize turned it into allow entries.
	translated bool
}

// term is one acl reference on an http_access line, "NAME" or "!NAME".
type term struct {
	ref string
	neg bool
	acl *aclDef
}

func parseRule(s stmt) *rule {
	r := &rule{stmt: s}
	if len(s.fields) < 2 || (s.fields[1] != "allow" && s.fields[1] != "deny") {
		r.bad = "expected http_access allow|deny ACL…: Squid would refuse this line"
		return r
	}
	r.allow = s.fields[1] == "allow"
	if len(s.fields) < 3 {
		r.bad = "names no acl: Squid would refuse this line"
		return r
	}
	for _, ref := range s.fields[2:] {
		name, neg := strings.CutPrefix(ref, "!")
		r.terms = append(r.terms, term{ref: ref, neg: neg, acl: &aclDef{name: name}})
	}
	return r
}

// The traffic egressd intercepts, in two classes: TLS to port 443 (a Squid
// forward proxy saw it as CONNECT host:443) and plain HTTP to port 80.
const (
	classTLS = iota
	classHTTP
)

var classPort = [2]int{443, 80}

// truth is what a term or a line says about one traffic class.
type truth uint8

const (
	tTrue       truth = iota // always matches
	tFalse                   // never matches
	tConstraint              // matches some clients or destinations: a src or destination acl
	tUnknown                 // depends on something egressd cannot see or express
)

// outcome is what a whole http_access line means for egressd.
type outcome uint8

const (
	oMatch   outcome = iota // translatable: applies to both classes with src/dst constraints only
	oNever                  // matches nothing egressd intercepts
	oPartial                // applies to one class only
	oUnknown                // depends on something egressd cannot express
	oBad                    // malformed, or names an undefined or broken acl
)

// judge says what one term means for each traffic class, and why when it
// is false or unknown there.
func judge(tm term) (on [2]truth, why [2]string) {
	a := tm.acl
	both := func(t truth, w string) ([2]truth, [2]string) { return [2]truth{t, t}, [2]string{w, w} }
	neg := func(b bool) truth {
		if b != tm.neg {
			return tTrue
		}
		return tFalse
	}
	if a.name == "all" && a.predefined {
		return both(neg(true), "!all never matches")
	}
	if a.typ == "manager" || a.typ == "proto" && onlyValue(a, "cache_object") {
		return both(neg(false), fmt.Sprintf("acl %s matches only requests for Squid's own cache manager", a.name))
	}
	switch a.typ {
	case "src", "dst", "dstdomain":
		if a.typ == "src" && tm.neg {
			if _, whole := a.clients(); whole {
				return both(tFalse, fmt.Sprintf("%s matches no client", tm.ref))
			}
		}
		if tm.neg {
			return both(tUnknown, fmt.Sprintf("negated acl %s: egressd has no negation (it only allows), so this cannot be expressed", tm.ref))
		}
		if a.typ == "src" && loopbackOnly(a) {
			return both(tFalse, fmt.Sprintf("acl %s holds only loopback addresses, the proxy host itself; egressd filters forwarded traffic, not the gateway's own", a.name))
		}
		return both(tConstraint, "")
	case "port":
		ports, err := a.ports()
		if err != nil {
			return both(tUnknown, err.Error())
		}
		for c, port := range classPort {
			on[c] = neg(ports.contains(port))
			why[c] = fmt.Sprintf("%s is false for port %d", tm.ref, port)
		}
		return on, why
	case "method":
		onlyConnect := true
		hasConnect := false
		for _, v := range a.values {
			if strings.EqualFold(v.text, "CONNECT") {
				hasConnect = true
			} else {
				onlyConnect = false
			}
		}
		on[classTLS] = neg(hasConnect)
		why[classTLS] = fmt.Sprintf("%s is false for TLS (Squid saw it as CONNECT)", tm.ref)
		if onlyConnect {
			on[classHTTP] = neg(false)
			why[classHTTP] = fmt.Sprintf("%s is false for plain HTTP requests", tm.ref)
		} else {
			on[classHTTP] = tUnknown
			why[classHTTP] = fmt.Sprintf("acl %s has type method: egressd cannot allow or deny by HTTP method", a.name)
		}
		return on, why
	}
	return both(tUnknown, fmt.Sprintf("acl %s (%s:%d) has type %s: %s", a.name, a.pos.file, a.pos.line, a.typ, typeHint(a.typ)))
}

// onlyValue reports whether every value of a is v (and there is one).
func onlyValue(a *aclDef, v string) bool {
	for _, x := range a.values {
		if !strings.EqualFold(x.text, v) {
			return false
		}
	}
	return len(a.values) > 0
}

// loopbackOnly reports whether a src acl holds addresses and all of them
// are local to the proxy host (loopback, 0.0.0.0/8).
func loopbackOnly(a *aclDef) bool {
	ps, _, _ := a.prefixes()
	for _, p := range ps {
		if !isLocal(p) {
			return false
		}
	}
	return len(ps) > 0
}

// typeHint explains why an acl type cannot be expressed.
func typeHint(typ string) string {
	switch typ {
	case "url_regex", "urlpath_regex", "urllogin", "rep_mime_type", "req_mime_type", "rep_header", "req_header", "http_status":
		return "egressd decides by name and address only; it does not see URLs or headers inside TLS"
	case "dstdom_regex":
		return "egressd has no regular expressions: list the names (.domain for a domain and its subdomains)"
	case "time":
		return "egressd has no time-of-day rules"
	case "proxy_auth", "proxy_auth_regex", "ident", "ident_regex", "ext_user", "ext_user_regex", "external", "user_cert", "ca_cert", "note", "tag", "annotate_transaction", "annotate_client":
		return "egressd does not authenticate or label clients; use a group with the clients' networks instead"
	case "srcdomain", "srcdom_regex":
		return "egressd matches clients by address: use a group with the clients' networks"
	case "ssl::server_name", "ssl::server_name_regex", "ssl_error", "server_cert_fingerprint", "at_step", "ssl_bump":
		return "it belongs to ssl_bump rules, which egressd does not have: egressd reads the SNI and splices"
	case "proto", "localport", "localip", "myportname", "myip", "myport":
		return "egressd intercepts TLS on 443 and HTTP on 80 only and cannot tell Squid's ports apart"
	case "manager":
		return "the cache manager is Squid's own"
	case "maxconn", "max_user_ip", "random", "browser", "referer_regex", "hier_code", "peername", "peername_regex", "arp", "eui64", "clientside_mark", "client_connection_mark", "transaction_initiator", "has", "any-of", "all-of", "adaptation_service", "squid_error", "connections_encrypted":
		return "egressd has no such condition"
	}
	return "egressd cannot express it"
}

// evaluate judges every http_access line in order.
func (t *translator) evaluate() {
	terminal := -1 // the first line that matches everything egressd sees
	for i, r := range t.rules {
		if terminal >= 0 {
			tr := t.rules[terminal]
			r.out, r.done = oNever, true
			t.skipStmt(r.stmt, fmt.Sprintf("comes after http_access %s at line %d, which matches everything: Squid never reaches it", strings.Join(tr.stmt.fields[1:], " "), tr.stmt.pos.line), false)
			continue
		}
		t.judgeRule(r)
		if r.out == oMatch && r.src == nil && r.dst == nil && !r.srcSeen() {
			terminal = i
		}
	}
	if len(t.rules) == 0 {
		return
	}
	last := t.rules[len(t.rules)-1]
	if terminal < 0 && !last.allow && last.bad == "" {
		// Squid's default when no line matches is the opposite of the
		// last line: here, allow.
		last.done = true
		t.skipStmt(last.stmt, "the last http_access line is a deny, so Squid allows whatever no line matches; egressd denies it. If Squid's implicit allow is not wanted, end the Squid config with http_access deny all", true)
	}
}

// srcSeen reports whether a src acl was among the terms (a src acl holding
// every address leaves src nil).
func (r *rule) srcSeen() bool { return len(r.srcNames) > 0 }

// judgeRule sets the outcome of one line from its terms.
func (t *translator) judgeRule(r *rule) {
	if r.bad != "" {
		r.out, r.why = oBad, r.bad
		return
	}
	for i := range r.terms {
		tm := &r.terms[i]
		a := t.acls[tm.acl.name]
		if a == nil {
			r.out, r.why = oBad, fmt.Sprintf("acl %s is not defined: Squid would refuse this line", tm.acl.name)
			return
		}
		if a.broken != "" {
			r.out, r.why = oBad, fmt.Sprintf("acl %s cannot be translated: %s", a.name, a.broken)
			return
		}
		tm.acl = a
	}
	var (
		never, unknown [2]string
		dsts           []*aclDef
	)
	r.src = nil
	for _, tm := range r.terms {
		on, why := judge(tm)
		for c := range on {
			switch on[c] {
			case tFalse:
				if never[c] == "" {
					never[c] = why[c]
				}
			case tUnknown:
				if unknown[c] == "" {
					unknown[c] = why[c]
				}
			}
		}
		if on[0] != tConstraint {
			continue
		}
		switch tm.acl.typ {
		case "src":
			_, bad, whys := tm.acl.prefixes()
			t.reportValues(tm.acl, bad, whys)
			specific, whole := tm.acl.clients()
			if whole {
				break // holds every address: no constraint
			}
			r.srcNames = append(r.srcNames, tm.acl.name)
			if r.src == nil {
				r.src = specific
			} else {
				r.src = intersect(r.src, specific)
			}
			if len(r.src) == 0 {
				r.src = []netip.Prefix{} // no client at all, not any client
			}
		default:
			dsts = append(dsts, tm.acl)
		}
	}
	switch {
	case never[classTLS] != "" && never[classHTTP] != "":
		r.out, r.why = oNever, "never matches the traffic egressd intercepts: "+never[classTLS]
		if never[classHTTP] != never[classTLS] {
			r.why = fmt.Sprintf("never matches the traffic egressd intercepts: for TLS to port 443, %s; for HTTP to port 80, %s", never[classTLS], never[classHTTP])
		}
	case unknown[classTLS] != "" && never[classTLS] == "":
		r.out, r.why = oUnknown, unknown[classTLS]
	case unknown[classHTTP] != "" && never[classHTTP] == "":
		r.out, r.why = oUnknown, unknown[classHTTP]
	case never[classTLS] != "":
		r.out, r.why = oPartial, "applies to plain HTTP only ("+never[classTLS]+"), but egressd allows a name for TLS and HTTP alike"
	case never[classHTTP] != "":
		r.out, r.why = oPartial, "applies to TLS only (CONNECT to port 443), but egressd allows a name for TLS and HTTP alike"
	case len(dsts) > 1:
		names := make([]string, len(dsts))
		for i, d := range dsts {
			names[i] = d.name
		}
		r.out, r.why = oUnknown, fmt.Sprintf("requires several destination acls at once (%s): egressd cannot express that", strings.Join(names, " and "))
	default:
		r.out = oMatch
		if len(dsts) == 1 {
			r.dst = dsts[0]
		}
	}
}

// reportValues reports acl values that cannot be translated, once each.
func (t *translator) reportValues(a *aclDef, bad []aclValue, whys []string) {
	for i, v := range bad {
		key := v.pos
		key.file += "\x00" + v.text
		if t.reported[key] {
			continue
		}
		t.reported[key] = true
		t.skip(v.seq, v.pos, v.line, fmt.Sprintf("acl %s: %s; the other values are translated", a.name, whys[i]), true)
	}
}

// chooseSources sets intercept.sources: --sources, or else the networks
// of the src acls on http_access allow lines (loopback and "all" left out).
func (t *translator) chooseSources(given []netip.Prefix) {
	if len(given) > 0 {
		t.sources, t.sourcesFrom = given, "from --sources"
		return
	}
	var ps []netip.Prefix
	var names []string
	for _, r := range t.rules {
		if !r.allow || r.out == oNever || r.out == oBad {
			continue
		}
		for _, tm := range r.terms {
			if tm.neg || tm.acl.typ != "src" || slices.Contains(names, tm.acl.name) {
				continue
			}
			all, _, _ := tm.acl.prefixes()
			used := false
			for _, p := range all {
				if !isWhole(p) && !isLocal(p) {
					ps, used = append(ps, p), true
				}
			}
			if used {
				names = append(names, tm.acl.name)
			}
		}
	}
	t.sources = outermost(ps)
	t.sourcesFrom = "from the src acls of the http_access allow lines: " + strings.Join(names, ", ")
}

// finalize turns the translatable allow lines into entries and groups, and
// reports every other line.
func (t *translator) finalize() {
	type clientSet struct {
		clients []netip.Prefix
		all     bool // all of intercept.sources
	}
	memo := map[string]clientSet{} // by src acl names: many lines share them
	lastTranslated := -1
	for i, r := range t.rules {
		if r.done || !r.allow {
			continue
		}
		switch r.out {
		case oNever:
			t.skipStmt(r.stmt, r.why, false)
			continue
		case oBad, oUnknown, oPartial:
			t.skipStmt(r.stmt, r.why, true)
			continue
		}
		if r.dst == nil {
			t.skipStmt(r.stmt, "allows every destination, which an allowlist cannot express: list the names these clients need (egressd suggest proposes them from a monitor-mode log)", true)
			continue
		}
		memoKey := strings.Join(r.srcNames, "\x00")
		cs, ok := memo[memoKey]
		if !ok {
			cs = clientSet{t.sources, true}
			if r.src != nil {
				cs.clients = intersect(r.src, t.sources)
				cs.all = covers(cs.clients, t.sources)
			}
			memo[memoKey] = cs
		}
		clients := cs.clients
		if len(clients) == 0 {
			switch {
			case len(r.src) == 0:
				t.skipStmt(r.stmt, "its src acls leave no client address (values not translated, or networks that do not overlap)", true)
			case !slices.ContainsFunc(r.src, func(p netip.Prefix) bool { return !isLocal(p) }):
				t.skipStmt(r.stmt, "applies only to the proxy host itself (loopback): egressd filters forwarded traffic, not the gateway's own", false)
			default:
				t.skipStmt(r.stmt, fmt.Sprintf("its clients (%s) are outside intercept.sources: add them to --sources to keep this rule", prefixList(r.src)), true)
			}
			continue
		}
		entries := t.entries(r)
		if len(entries.items) == 0 {
			if len(r.dst.values) == 0 {
				t.skipStmt(r.stmt, fmt.Sprintf("acl %s has no values, so the line matches nothing", r.dst.name), false)
			}
			continue
		}
		r.translated, lastTranslated = true, i
		if cs.all {
			t.allow.add(entries.items...)
			continue
		}
		t.addGroup(r, clients, memoKey, entries)
	}
	nextTranslated := make([]int, len(t.rules)) // index of the next translated allow, or -1
	next := -1
	for i := len(t.rules) - 1; i >= 0; i-- {
		nextTranslated[i] = next
		if t.rules[i].translated {
			next = i
		}
	}
	for i, r := range t.rules {
		if r.done || r.allow {
			continue
		}
		switch {
		case r.out == oBad:
			t.skipStmt(r.stmt, r.why, true)
		case r.out == oNever:
			t.skipStmt(r.stmt, r.why, false)
		case i < lastTranslated:
			next := t.rules[nextTranslated[i]]
			t.skipStmt(r.stmt, fmt.Sprintf("a deny before the allow at line %d: egressd has no deny rules, so what this line blocks would be allowed if that allow matches it; remove such names from the allow entries", next.stmt.pos.line), true)
		case r.out == oMatch && r.src == nil && r.dst == nil && !r.srcSeen():
			// http_access deny all after the last allow: egressd's default.
		default:
			t.skipStmt(r.stmt, "not needed: no translated allow follows it, and egressd denies what it does not allow", false)
		}
	}
}

// entry is one translated allow entry with where it came from.
type entry struct {
	text string
	key  string // kind, name or prefix: one key per distinct entry
	from string // comment: file:line and acl
}

// entryList is a list of distinct entries in the order first added.
type entryList struct {
	items []entry
	keys  map[string]bool
}

func (l *entryList) add(es ...entry) {
	if l.keys == nil {
		l.keys = map[string]bool{}
	}
	for _, e := range es {
		if !l.keys[e.key] {
			l.keys[e.key] = true
			l.items = append(l.items, e)
		}
	}
}

// entries translates the values of a line's destination acl, reporting
// those egressd refuses.
func (t *translator) entries(r *rule) entryList {
	a := r.dst
	if a.entries != nil {
		return *a.entries
	}
	a.entries = new(entryList)
	out := a.entries
	var bad []aclValue
	var whys []string
	fail := func(v aclValue, why string) { bad, whys = append(bad, v), append(whys, why) }
	for _, v := range a.values {
		var texts []string
		switch a.typ {
		case "dstdomain":
			s := strings.ToLower(v.text)
			if strings.Contains(s, "*") {
				fail(v, fmt.Sprintf("%q: '*' is not a Squid dstdomain wildcard; write .domain for a domain and its subdomains", v.text))
				continue
			}
			texts = []string{s}
		case "dst":
			ps, err := parseAddrs(v.text)
			if err != nil {
				fail(v, err.Error())
				continue
			}
			for _, p := range ps {
				if isWhole(p) {
					fail(v, fmt.Sprintf("%q is every address: an allowlist cannot allow everything", v.text))
					continue
				}
				if p.IsSingleIP() {
					texts = append(texts, p.Addr().String())
				} else {
					texts = append(texts, p.String())
				}
			}
		}
		for _, s := range texts {
			e, err := policy.ParseEntry(s, false)
			if err != nil {
				fail(v, "not translated: "+err.Error())
				continue
			}
			key := fmt.Sprintf("%v %s %v", e.Kind, e.Name, e.Prefix)
			out.add(entry{text: s, key: key, from: fmt.Sprintf("%s:%d acl %s", v.pos.file, v.pos.line, a.name)})
		}
	}
	t.reportValues(a, bad, whys)
	return *out
}

// group is a policy.groups entry: the allowances of some clients.
type group struct {
	name    string
	sources []netip.Prefix
	from    []string // the http_access lines
	allow   entryList
}

// addGroup adds a line's entries to the group of its clients. Lines with
// the same src acls (memoKey) have the same clients; lines whose different
// src acls leave the same clients share a group too.
func (t *translator) addGroup(r *rule, clients []netip.Prefix, memoKey string, entries entryList) {
	if t.groupBy == nil {
		t.groupBy, t.groupNames = map[string]*group{}, map[string]bool{}
	}
	from := fmt.Sprintf("%s:%d %s", r.stmt.pos.file, r.stmt.pos.line, r.stmt.text)
	g := t.groupBy["acls "+memoKey]
	if g == nil {
		key := "clients " + prefixList(clients)
		if g = t.groupBy[key]; g == nil {
			name := groupName(r.srcNames)
			base := name
			for n := 2; t.groupNames[name]; n++ {
				name = fmt.Sprintf("%s-%d", base, n)
			}
			t.groupNames[name] = true
			g = &group{name: name, sources: clients}
			t.groupBy[key] = g
			t.groups = append(t.groups, g)
		}
		t.groupBy["acls "+memoKey] = g
	}
	g.allow.add(entries.items...)
	g.from = append(g.from, from)
}

// groupName makes a valid egressd group name (letters, digits, '-', '_',
// '.') from acl names.
func groupName(names []string) string {
	n := strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' {
			return c
		}
		return '_'
	}, strings.Join(names, "-"))
	if n == "" {
		return "clients"
	}
	return n
}

func prefixList(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, " ")
}
