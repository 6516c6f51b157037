package squidconf

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
)

const (
	// maxIncludeDepth is Squid's own limit on nested include lines.
	maxIncludeDepth = 16
	// maxStatement bounds one statement, continuation lines included.
	maxStatement = 1 << 20
	// maxIncludes bounds the included files read in all, so that includes
	// matching each other end quickly.
	maxIncludes = 256
	// maxTotal bounds the bytes of all statements read, includes and all.
	maxTotal = 64 << 20
	// maxValues bounds the acl values kept, list files included.
	maxValues = 4 << 20
)

// position is where something was written.
type position struct {
	file string
	line int
}

// stmt is one Squid statement: a line, or lines joined by a trailing '\'.
type stmt struct {
	pos    position
	seq    int      // index in input order, across included files
	text   string   // as written, without a trailing comment
	fields []string // tokens; a "quoted" token keeps its quotes
}

// skip is a Skipped with its place in the input order.
type skip struct {
	Skipped
	seq int
}

// translator holds one translation's state.
type translator struct {
	name    string
	opts    Options
	stmts   []stmt
	skipped []skip

	includes int                   // included files read so far
	total    int                   // bytes of statements read so far
	values   int                   // acl values kept so far
	lists    map[string]listResult // acl list files, read once each

	acls     map[string]*aclDef
	rules    []*rule
	reported map[position]bool // values already reported as untranslatable

	sources     []netip.Prefix      // intercept.sources
	sourcesFrom string              // comment: where they came from
	display     func(string) string // the name to report a file by
	allow       entryList           // policy.allow
	groups      []*group
	groupBy     map[string]*group // by "acls NAMES" and by "clients PREFIXES"
	groupNames  map[string]bool
}

func newTranslator(name string, opts Options) *translator {
	return &translator{name: name, opts: opts, acls: predefined(), reported: map[position]bool{}, display: func(s string) string { return s }}
}

// skip records a line that is not translated.
func (t *translator) skip(seq int, pos position, text, why string, affects bool) {
	t.skipped = append(t.skipped, skip{Skipped{File: pos.file, Line: pos.line, Text: text, Why: why, AffectsAccess: affects}, seq})
}

func (t *translator) skipStmt(s stmt, why string, affects bool) {
	t.skip(s.seq, s.pos, s.text, why, affects)
}

// read reads a configuration file into statements, following include
// lines. Like Squid, it drops lines whose first character is '#', joins a
// line ending in '\' with the next one, and ends a line at a '#' that starts
// a word.
func (t *translator) read(file string, r io.Reader, depth int) error {
	if depth > 0 {
		file = t.display(file)
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxStatement)
	var (
		pending   strings.Builder
		startLine int
		lineNo    int
	)
	flush := func() {
		if pending.Len() > 0 {
			t.statement(position{file, startLine}, pending.String(), depth)
			pending.Reset()
		}
	}
	for sc.Scan() {
		lineNo++
		raw := sc.Text()
		if raw == "" || raw[0] == '#' {
			continue
		}
		if pending.Len() == 0 {
			startLine = lineNo
		} else {
			raw = strings.TrimLeft(raw, " \t")
		}
		if t.total += len(raw); t.total > maxTotal {
			return fmt.Errorf("%s:%d: more than %d MiB of configuration with the included files: is this a squid.conf?", file, lineNo, maxTotal>>20)
		}
		if pending.Len()+len(raw) > maxStatement {
			return fmt.Errorf("%s:%d: a statement longer than %d bytes: is this a squid.conf?", file, startLine, maxStatement)
		}
		if strings.HasSuffix(raw, `\`) {
			pending.WriteString(raw[:len(raw)-1])
			continue
		}
		pending.WriteString(raw)
		flush()
	}
	flush()
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("%s:%d: a line longer than %d bytes: is this a squid.conf?", file, lineNo+1, maxStatement)
		}
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}

// statement tokenizes one statement and either follows an include or
// keeps the statement for later.
func (t *translator) statement(pos position, line string, depth int) {
	fields, text, err := tokenize(line)
	s := stmt{pos: pos, seq: len(t.stmts), text: text, fields: fields}
	if err != nil {
		t.skipStmt(s, err.Error()+": Squid would refuse this line", true)
		return
	}
	if len(fields) == 0 {
		return
	}
	if fields[0] == "include" {
		t.stmts = append(t.stmts, s) // keeps seq in input order
		t.include(s, depth)
		return
	}
	t.stmts = append(t.stmts, s)
}

// tokenize splits a statement into words separated by white space. A word
// starting with '"' runs to the next unescaped '"' and keeps its quotes; a
// word starting with '#' starts a comment. text is the statement without
// the comment.
func tokenize(line string) (fields []string, text string, err error) {
	i, end := 0, len(line)
	for i < len(line) {
		c := line[i]
		if c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v' {
			i++
			continue
		}
		if c == '#' {
			end = i
			break
		}
		start := i
		if c == '"' {
			i++
			for i < len(line) && line[i] != '"' {
				if line[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(line) {
				return nil, strings.TrimSpace(line), errors.New("a quoted word has no closing '\"'")
			}
			i++ // the closing quote
		}
		for i < len(line) && !strings.ContainsRune(" \t\r\f\v", rune(line[i])) {
			i++
		}
		fields = append(fields, line[start:i])
	}
	return fields, strings.TrimSpace(line[:end]), nil
}

// unquote removes the quotes of a "quoted" word and its backslash escapes.
func unquote(w string) string {
	w = strings.TrimPrefix(strings.TrimSuffix(w, `"`), `"`)
	if !strings.Contains(w, `\`) {
		return w
	}
	var b strings.Builder
	for i := 0; i < len(w); i++ {
		if w[i] == '\\' && i+1 < len(w) {
			i++
		}
		b.WriteByte(w[i])
	}
	return b.String()
}

// include reads the files an include line names (each may be a glob
// pattern), as Squid does, up to maxIncludeDepth levels deep.
func (t *translator) include(s stmt, depth int) {
	if len(s.fields) < 2 {
		t.skipStmt(s, "include names no file: Squid would refuse this line", true)
		return
	}
	for _, w := range s.fields[1:] {
		pattern := unquote(w)
		names := []string{pattern}
		if strings.ContainsAny(pattern, "*?[") {
			if t.opts.Glob == nil {
				t.skipStmt(s, fmt.Sprintf("cannot expand %q here: translate the included files and merge them by hand", pattern), true)
				continue
			}
			var err error
			names, err = t.opts.Glob(pattern)
			if err != nil {
				t.skipStmt(s, fmt.Sprintf("cannot expand %q: %v", pattern, err), true)
				continue
			}
			if len(names) == 0 {
				t.skipStmt(s, fmt.Sprintf("%q matches no file here: copy the included files beside the squid.conf (keeping the path), or run import-squid on the Squid host", pattern), true)
				continue
			}
			slices.Sort(names)
		}
		for _, name := range names {
			if t.includes++; t.includes > maxIncludes {
				t.skipStmt(s, fmt.Sprintf("more than %d included files (includes including each other?): %s not read", maxIncludes, name), true)
				continue
			}
			if depth+1 > maxIncludeDepth {
				t.skipStmt(s, fmt.Sprintf("includes nested more than %d levels deep (a loop?): %s not read", maxIncludeDepth, name), true)
				continue
			}
			f, err := t.opts.Open(name)
			if err != nil {
				t.skipStmt(s, fmt.Sprintf("cannot read the included file: %v (copy it beside the squid.conf, keeping the path, or run import-squid on the Squid host)", err), true)
				continue
			}
			err = t.read(name, f, depth+1)
			f.Close()
			if err != nil {
				t.skipStmt(s, fmt.Sprintf("cannot read the included file: %v", err), true)
			}
		}
	}
}

// listResult is a list file's values, or why it could not be read.
type listResult struct {
	values []aclValue
	err    error
}

// readList reads an acl list file: one value per line (words after the
// first are values too), blank lines and # comments ignored. Each file is
// read once.
func (t *translator) readList(name string) ([]aclValue, error) {
	if r, ok := t.lists[name]; ok {
		return slices.Clone(r.values), r.err
	}
	values, err := t.readListFile(name)
	if t.lists == nil {
		t.lists = map[string]listResult{}
	}
	t.lists[name] = listResult{values, err}
	return slices.Clone(values), err
}

func (t *translator) readListFile(name string) ([]aclValue, error) {
	f, err := t.opts.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []aclValue
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), maxStatement)
	for n := 1; sc.Scan(); n++ {
		fields, text, err := tokenize(sc.Text())
		if err != nil {
			// A list holds plain words; a lone quote is part of one.
			fields, text = strings.Fields(sc.Text()), strings.TrimSpace(sc.Text())
		}
		for _, v := range fields {
			out = append(out, aclValue{text: v, pos: position{t.display(name), n}, line: text})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
