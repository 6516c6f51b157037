package config

import (
	"fmt"
	"strings"
)

// Error is one problem in a config file, located by line and key.
type Error struct {
	File string
	Line int    // 1-based; 0 if the YAML parser gave none
	Key  string // path of the setting: "policy.allow[2]", "policy.groups[0].sources[1]"; "" for YAML syntax errors
	Msg  string // what is wrong and what would be valid
}

// Error formats the problem as "FILE:LINE: KEY: msg".
func (e Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a config file, sorted by line. Parse and
// Load return it as their error; use errors.As to get at the list.
type Errors []Error

// Error returns one line per problem.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}
