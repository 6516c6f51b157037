package config

import (
	"encoding/json"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Scalar renders s as a YAML string for generated configs (import-squid,
// suggest): plain when that reads back as the same
// string, else double-quoted (JSON escapes are valid YAML).
func Scalar(s string) string {
	if plainName(s) {
		return s
	}
	if s != "" && !strings.ContainsAny(s, "#\"'\\") {
		var back []any
		if err := yaml.Unmarshal([]byte("- "+s+" # x"), &back); err == nil && len(back) == 1 {
			if got, ok := back[0].(string); ok && got == s {
				return s
			}
		}
	}
	b, _ := json.Marshal(s) // a string: cannot fail
	return string(b)
}

// plainName reports whether s is a host name or .domain that YAML reads as
// a plain string: letters first, then letters, digits, '.', '-' and '_', and
// none of YAML's words for booleans, null and special floats.
func plainName(s string) bool {
	t := strings.TrimPrefix(s, ".")
	if t == "" || !(t[0] >= 'a' && t[0] <= 'z' || t[0] >= 'A' && t[0] <= 'Z') {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	switch strings.ToLower(s) {
	case "y", "yes", "n", "no", "true", "false", "on", "off", "null", ".inf", ".nan":
		return false
	}
	return true
}
