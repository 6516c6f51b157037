package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/egressd/egressd/policy"
)

// TestTestdata loads every file in testdata/: each one holds one mistake
// or tricky case, and the table says which located messages it must give,
// in order (none for the valid_ files). Every file must be in the table.
func TestTestdata(t *testing.T) {
	t.Parallel()
	tests := map[string][]string{
		"valid_minimal.yaml":                 nil,
		"valid_full.yaml":                    nil,
		"valid_aliases.yaml":                 nil,
		"valid_public_suffixes_allowed.yaml": nil,
		"valid_deny_all.yaml":                nil,
		"valid_ha.yaml":                      nil,
		"valid_ha_minimal.yaml":              nil,

		"ha_missing_keys.yaml": {
			"ha_missing_keys.yaml:3: ha.provider: required when ha is on: add provider: aws",
			"ha_missing_keys.yaml:3: ha.peer: required when ha is on",
			"ha_missing_keys.yaml:3: ha.route_tables: required when ha is on",
			"ha_missing_keys.yaml:3: ha.peer_route_tables: required when ha is on",
		},
		"ha_bad_values.yaml": {
			`ha_bad_values.yaml:4: ha.provider: "gcp" is not valid: use one of aws`,
			`ha_bad_values.yaml:5: ha.peer: "ip-10-0-102-10:9902" is not the peer's ha.listen address as "ip:port"`,
			`ha_bad_values.yaml:6: ha.route_tables[0]: "rtb-xyz" is not one of route table IDs`,
			`ha_bad_values.yaml:6: ha.route_tables[1]: "tag:egressd-home": a tag filter is "tag:KEY=VALUE"`,
			`ha_bad_values.yaml:7: ha.peer_route_tables: empty: list at least one route table`,
			`ha_bad_values.yaml:8: ha.network_interface: "i-0123456789abcdef0" is not an ID such as "eni-0123456789abcdef0"`,
			`ha_bad_values.yaml:9: ha.region: "Ireland" is not an AWS region`,
			`ha_bad_values.yaml:10: ha.endpoint: "ec2.eu-west-1.amazonaws.com" is not an http(s) URL`,
			`ha_bad_values.yaml:11: ha.check_interval: expected a duration`,
			`ha_bad_values.yaml:12: ha.fail_after: 0 is not a number of failed checks in a row from 1 to 100`,
		},
		"ha_same_table.yaml": {
			"ha_same_table.yaml:7: ha.peer_route_tables[0]: rtb-0123456789abcdef0 is also in ha.route_tables: a route table has one home instance",
			"ha_same_table.yaml:8: ha.failback_after: 1s is shorter than fail_after × check_interval (2s)",
		},
		"ha_listen_same_port.yaml": {`ha_listen_same_port.yaml:4: listen.admin: ":9902" uses the same port as ha.listen (":9902")`},

		"syntax_tab.yaml":            {"syntax_tab.yaml:2: invalid YAML: found character that cannot start any token"},
		"syntax_no_line.yaml":        {"syntax_no_line.yaml:6: invalid YAML: mapping values are not allowed in this context"},
		"syntax_unknown_anchor.yaml": {"syntax_unknown_anchor.yaml:4: invalid YAML: unknown anchor 'common' referenced"},
		"two_documents.yaml":         {"two_documents.yaml:3: a second YAML document starts here"},
		"empty_file.yaml":            {"empty_file.yaml:1: intercept.sources: required: list the client networks"},
		"root_list.yaml":             {"root_list.yaml:1: expected a mapping of the sections listen, intercept, upstream, limits, policy, log, ha, got a list"},
		"section_not_a_mapping.yaml": {`section_not_a_mapping.yaml:3: upstream: expected a mapping of the keys mode, resolver, dial_timeout, got a string ("resolve")`},
		"intercept_not_a_mapping.yaml": {
			"intercept_not_a_mapping.yaml:1: intercept: expected a mapping of the keys sources, http_ports, tls_ports, other, nftables, got a list",
		},
		"merge_key.yaml": {
			"merge_key.yaml:1: defaults: unknown key (valid keys here: listen, intercept, upstream, limits, policy, log, ha)",
			"merge_key.yaml:6: log.<<: merge keys (<<) are not supported",
		},

		"unknown_key.yaml":               {`unknown_key.yaml:6: policy.alow: unknown key (did you mean "allow"?)`},
		"unknown_key_wrong_section.yaml": {"unknown_key_wrong_section.yaml:3: allow: unknown key (did you mean policy.allow? it belongs in that section)"},
		"unknown_section.yaml":           {"unknown_section.yaml:3: cluster: unknown key (valid keys here: listen, intercept"},
		"duplicate_key.yaml":             {"duplicate_key.yaml:5: policy.allow: duplicate key (first set at line 4)"},

		"sources_missing.yaml":       {"sources_missing.yaml:1: intercept.sources: required"},
		"sources_key_typo.yaml":      {`sources_key_typo.yaml:3: intercept.source: unknown key (did you mean "sources"?)`},
		"sources_empty.yaml":         {"sources_empty.yaml:2: intercept.sources: empty: list the client networks"},
		"sources_string.yaml":        {`sources_string.yaml:2: intercept.sources: expected a list of CIDRs such as [10.0.0.0/16], got a string ("10.77.0.0/16") (write [10.77.0.0/16]`},
		"sources_not_canonical.yaml": {"sources_not_canonical.yaml:4: intercept.sources[1]: \"10.0.0.1/8\" has bits set beyond the /8 prefix length: did you mean 10.0.0.0/8?"},
		"sources_ipv6_bad.yaml":      {"sources_ipv6_bad.yaml:3: intercept.sources[0]: \"2001:db8:77::1/48\" has bits set beyond the /48 prefix length: did you mean 2001:db8:77::/48?"},
		"sources_overlap.yaml":       {"sources_overlap.yaml:4: intercept.sources[1]: 10.77.3.0/24 overlaps 10.77.0.0/16 (intercept.sources[0], line 3)"},

		"port_range.yaml": {
			"port_range.yaml:3: intercept.http_ports[0]: 0 is not a port number from 1 to 65535",
			"port_range.yaml:4: intercept.tls_ports[1]: 70000 is not a port number from 1 to 65535",
		},
		"port_duplicate.yaml":       {"port_duplicate.yaml:3: intercept.tls_ports[2]: port 443 is listed twice (first as intercept.tls_ports[0])"},
		"port_http_and_tls.yaml":    {"port_http_and_tls.yaml:4: intercept.tls_ports[1]: port 8443 is also in intercept.http_ports (intercept.http_ports[1], line 3)"},
		"port_default_overlap.yaml": {"port_default_overlap.yaml:4: intercept.tls_ports[1]: port 80 is also in intercept.http_ports (the default http_ports: [80])"},
		"port_string.yaml":          {`port_string.yaml:3: intercept.http_ports[0]: expected a port number from 1 to 65535, got a string ("80")`},
		"ports_both_empty.yaml":     {"ports_both_empty.yaml:4: intercept.tls_ports: intercept.http_ports and intercept.tls_ports are both empty"},
		"other_invalid.yaml":        {`other_invalid.yaml:3: intercept.other: "rejct" is not valid: use one of drop, reject, masquerade (did you mean "reject"?)`},
		"nftables_yes.yaml":         {`nftables_yes.yaml:3: intercept.nftables: expected true or false, got a string ("yes")`},

		"upstream_mode.yaml":             {`upstream_mode.yaml:4: upstream.mode: "direct" is not valid: use one of resolve, original`},
		"resolver_no_port.yaml":          {`resolver_no_port.yaml:4: upstream.resolver: "10.0.0.2": missing port: did you mean "10.0.0.2:53"?`},
		"resolver_name.yaml":             {`resolver_name.yaml:4: upstream.resolver: "dns.example:53": "dns.example" is not an IP address`},
		"resolver_ipv6_no_brackets.yaml": {`resolver_ipv6_no_brackets.yaml:4: upstream.resolver: "2001:db8::53": missing port: did you mean "[2001:db8::53]:53"?`},
		"duration_number.yaml":           {`duration_number.yaml:4: upstream.dial_timeout: expected a duration such as "5s", "1m30s" or "15m", got a number (5): add a unit, as in "5s"`},
		"duration_zero.yaml":             {`duration_zero.yaml:4: limits.drain_timeout: "0s": must be more than 0`},
		"duration_negative.yaml":         {`duration_negative.yaml:4: limits.sniff_timeout: "-5s": must be more than 0`},
		"duration_words.yaml":            {`duration_words.yaml:4: limits.idle_timeout: "15 minutes" is not a duration such as "5s"`},
		"max_connections_zero.yaml":      {"max_connections_zero.yaml:4: limits.max_connections: 0 is not a number of connections above 0"},
		"max_connections_string.yaml":    {`max_connections_string.yaml:4: limits.max_connections: expected a number of connections above 0, such as 50000, got a string ("lots")`},

		"listen_number.yaml":    {`listen_number.yaml:4: listen.http: expected "host:port" such as ":15080" or "127.0.0.1:15080", got a number (15080): did you mean ":15080"?`},
		"listen_bad_port.yaml":  {`listen_bad_port.yaml:4: listen.tls: ":99999": port "99999" is not a number from 1 to 65535`},
		"listen_no_port.yaml":   {`listen_no_port.yaml:4: listen.admin: "127.0.0.1": missing port in address: expected "host:port" such as ":15080" or "127.0.0.1:15080", or "" to turn it off`},
		"listen_same_port.yaml": {`listen_same_port.yaml:4: listen.tls: "0.0.0.0:15080" uses the same port as listen.http (":15080")`},
		"log_level.yaml":        {`log_level.yaml:4: log.level: "verbose" is not valid: use one of debug, info, warn, error`},
		"log_format.yaml":       {`log_format.yaml:4: log.format: "text" is not valid: use one of json, console`},
		"policy_mode.yaml":      {`policy_mode.yaml:4: policy.mode: "Monitor" is not valid: use one of enforce, monitor (did you mean "monitor"?)`},

		"allow_not_a_list.yaml": {`allow_not_a_list.yaml:4: policy.allow: expected a list of names, .domains, *.domains and IP/CIDRs, got a string ("naver.com") (write [naver.com]`},
		"allow_public_suffix.yaml": {
			`allow_public_suffix.yaml:7: policy.allow[1]: ".github.io": github.io is a public suffix on the Public Suffix List`,
			`allow_public_suffix.yaml:8: policy.allow[2]: "*.s3.amazonaws.com": s3.amazonaws.com is a public suffix`,
			`allow_public_suffix.yaml:10: policy.allow[4]: ".githubusercontent.com": githubusercontent.com is a public suffix`,
		},
		"allow_host_bits.yaml":       {`allow_host_bits.yaml:6: policy.allow[1]: "198.51.100.7/24" has bits set beyond the /24 prefix length: did you mean 198.51.100.0/24?`},
		"allow_ipv4_mapped.yaml":     {`allow_ipv4_mapped.yaml:5: policy.allow[0]: "::ffff:203.0.113.0/120" is an IPv4-mapped IPv6 prefix: did you mean 203.0.113.0/24?`},
		"allow_wildcard_middle.yaml": {`allow_wildcard_middle.yaml:5: policy.allow[0]: "api.*.example.com": '*' may only be the whole first label`},
		"allow_invalid_name.yaml":    {`allow_invalid_name.yaml:5: policy.allow[0]: "api..github.com" is not a valid host name: empty label`},
		"allow_duplicate.yaml":       {`allow_duplicate.yaml:7: policy.allow[2]: "NAVER.com." is the same entry as "naver.com" (policy.allow[0], line 5)`},
		"allow_idn_duplicate.yaml":   {`allow_idn_duplicate.yaml:7: policy.allow[1]: ".xn--bcher-kva.example" is the same entry as ".bücher.example" (policy.allow[0], line 6)`},
		"allow_number.yaml":          {`allow_number.yaml:6: policy.allow[1]: expected a name (naver.com), .domain, *.domain, or an IP/CIDR, got a number (443)`},

		"group_missing_name.yaml":         {"group_missing_name.yaml:5: policy.groups[0]: missing name: a group needs a name, sources and allow"},
		"group_duplicate_name.yaml":       {`group_duplicate_name.yaml:8: policy.groups[1].name: group name "ci" is already used at line 5`},
		"group_empty_sources.yaml":        {"group_empty_sources.yaml:6: policy.groups[0].sources: empty: list the client networks this group applies to"},
		"group_duplicate_source.yaml":     {"group_duplicate_source.yaml:6: policy.groups[0].sources[1]: 10.77.3.0/24 is listed twice (first as policy.groups[0].sources[0])"},
		"group_source_outside.yaml":       {"group_source_outside.yaml:6: policy.groups[0].sources[1]: 10.99.0.0/24 is outside intercept.sources"},
		"group_source_not_canonical.yaml": {`group_source_not_canonical.yaml:8: policy.groups[0].sources[1]: "10.77.4.7/24" has bits set beyond the /24 prefix length: did you mean 10.77.4.0/24?`},
		"group_empty_allow.yaml":          {"group_empty_allow.yaml:7: policy.groups[0].allow: empty: list what this group may reach"},
		"group_unknown_key.yaml":          {`group_unknown_key.yaml:6: policy.groups[0].source: unknown key (did you mean "sources"?)`},
		"group_not_a_mapping.yaml":        {`group_not_a_mapping.yaml:5: policy.groups[0]: expected a mapping of the keys name, sources, allow, got a string ("ci")`},

		"three_mistakes.yaml": {
			`three_mistakes.yaml:6: intercept.other: "rejct" is not valid: use one of drop, reject, masquerade (did you mean "reject"?)`,
			`three_mistakes.yaml:8: policy.alow: unknown key (did you mean "allow"?)`,
			`three_mistakes.yaml:11: policy.allow[0]: ".com": com is a public suffix`,
		},
	}
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range files {
		if _, ok := tests[filepath.Base(path)]; !ok {
			t.Errorf("%s has no expectation in TestTestdata", path)
		}
	}
	for file, want := range tests {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(filepath.Join("testdata", file))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := Parse(file, data)
			if want == nil {
				if err != nil {
					t.Fatalf("unexpected error:\n%v", err)
				}
				if cfg.Compiled == nil || cfg.File != file {
					t.Fatalf("Parse returned %+v without a compiled policy", cfg)
				}
				return
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error %v (%T) is not Errors", err, err)
			}
			if cfg != nil {
				t.Errorf("Parse returned a config with errors")
			}
			if len(errs) != len(want) {
				t.Errorf("got %d errors, want %d:\n%v", len(errs), len(want), err)
			}
			for i := range min(len(errs), len(want)) {
				if !strings.HasPrefix(errs[i].Error(), want[i]) {
					t.Errorf("error %d:\n got %s\nwant %s...", i, errs[i].Error(), want[i])
				}
			}
		})
	}
}

// TestValidFull checks that every key of valid_full.yaml reaches Config.
func TestValidFull(t *testing.T) {
	t.Parallel()
	cfg, err := Load("testdata/valid_full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		File:   "testdata/valid_full.yaml",
		Listen: Listen{HTTP: "127.0.0.1:8080", TLS: "[::1]:8443", Admin: ""},
		Intercept: Intercept{
			Sources:   []netip.Prefix{netip.MustParsePrefix("10.77.0.0/16"), netip.MustParsePrefix("2001:db8:77::/48"), netip.MustParsePrefix("10.99.0.5/32")},
			HTTPPorts: []uint16{80, 8080},
			TLSPorts:  []uint16{443, 8443},
			Other:     OtherMasquerade,
			NFTables:  false,
		},
		Upstream: Upstream{Mode: Original, Resolver: "[2001:db8::53]:5353", DialTimeout: 1500 * time.Millisecond},
		Limits:   Limits{SniffTimeout: 2 * time.Second, MaxConnections: 1000, IdleTimeout: time.Hour, DrainTimeout: 90 * time.Second},
		Policy: Policy{
			Mode:  policy.Monitor,
			Allow: []string{"naver.com", ".example.org", "*.example.net", ".bücher.example", "203.0.113.0/24", "2001:db8:1::/48"},
			Groups: []policy.Group{
				{Name: "ci", Sources: []netip.Prefix{netip.MustParsePrefix("10.77.3.0/24"), netip.MustParsePrefix("2001:db8:77:3::/64")}, Allow: []string{".github.com", "raw.githubusercontent.com"}},
				{Name: "backup", Sources: []netip.Prefix{netip.MustParsePrefix("10.77.9.0/24")}, Allow: []string{"198.51.100.0/24"}},
			},
		},
		Log: Log{Level: "debug", Format: "console"},
	}
	compiled := cfg.Compiled
	cfg.Compiled = nil
	if !equalConfig(cfg, want) {
		t.Errorf("Load:\n got %+v\nwant %+v", cfg, want)
	}
	if compiled.Mode() != policy.Monitor {
		t.Errorf("compiled mode %v", compiled.Mode())
	}
	ci := netip.MustParseAddr("10.77.3.4")
	for name, allowed := range map[string]bool{
		"shop.xn--bcher-kva.example": true,
		"api.github.com":             true,
		"raw.githubusercontent.com":  true,
		"evil.githubusercontent.com": false,
	} {
		if d := compiled.Decide(ci, name, netip.Addr{}); d.Allowed != allowed {
			t.Errorf("Decide(%s, %s) = %+v, want allowed %v", ci, name, d, allowed)
		}
	}
}

func equalConfig(a, b *Config) bool {
	groupsEqual := slices.EqualFunc(a.Policy.Groups, b.Policy.Groups, func(x, y policy.Group) bool {
		return x.Name == y.Name && slices.Equal(x.Sources, y.Sources) && slices.Equal(x.Allow, y.Allow)
	})
	return a.File == b.File && a.Listen == b.Listen &&
		slices.Equal(a.Intercept.Sources, b.Intercept.Sources) &&
		slices.Equal(a.Intercept.HTTPPorts, b.Intercept.HTTPPorts) &&
		slices.Equal(a.Intercept.TLSPorts, b.Intercept.TLSPorts) &&
		a.Intercept.Other == b.Intercept.Other && a.Intercept.NFTables == b.Intercept.NFTables &&
		a.Upstream == b.Upstream && a.Limits == b.Limits &&
		a.Policy.Mode == b.Policy.Mode && slices.Equal(a.Policy.Allow, b.Policy.Allow) &&
		a.Policy.AllowPublicSuffixes == b.Policy.AllowPublicSuffixes && groupsEqual &&
		a.Log == b.Log
}

// TestDefaults checks that a file holding only intercept.sources gets
// SPEC's defaults, and that Default returns them.
func TestDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := Load("testdata/valid_minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.File = "testdata/valid_minimal.yaml"
	want.Intercept.Sources = []netip.Prefix{netip.MustParsePrefix("10.77.0.0/16")}
	cfg.Compiled = nil
	if !equalConfig(cfg, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", cfg, want)
	}
	d := Default()
	checks := []struct {
		key       string
		got, want any
	}{
		{"listen.http", d.Listen.HTTP, ":15080"},
		{"listen.tls", d.Listen.TLS, ":15443"},
		{"listen.admin", d.Listen.Admin, "127.0.0.1:9901"},
		{"intercept.http_ports", d.Intercept.HTTPPorts[0], uint16(80)},
		{"intercept.tls_ports", d.Intercept.TLSPorts[0], uint16(443)},
		{"intercept.other", d.Intercept.Other, OtherReject},
		{"intercept.nftables", d.Intercept.NFTables, true},
		{"upstream.mode", d.Upstream.Mode, Resolve},
		{"upstream.resolver", d.Upstream.Resolver, ""},
		{"upstream.dial_timeout", d.Upstream.DialTimeout, 5 * time.Second},
		{"limits.sniff_timeout", d.Limits.SniffTimeout, 5 * time.Second},
		{"limits.max_connections", d.Limits.MaxConnections, 50000},
		{"limits.idle_timeout", d.Limits.IdleTimeout, 15 * time.Minute},
		{"limits.drain_timeout", d.Limits.DrainTimeout, 30 * time.Second},
		{"policy.mode", d.Policy.Mode, policy.Enforce},
		{"policy.allow_public_suffixes", d.Policy.AllowPublicSuffixes, false},
		{"log.level", d.Log.Level, "info"},
		{"log.format", d.Log.Format, "json"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("default %s = %v, want %v", c.key, c.got, c.want)
		}
	}
	// Each call returns fresh values: changing one changes no other.
	d.Intercept.HTTPPorts[0] = 8080
	if Default().Intercept.HTTPPorts[0] != 80 {
		t.Error("Default shares its slices between calls")
	}
}

// TestExampleConfig loads the example config shipped for users, if it
// exists: it must be valid.
func TestExampleConfig(t *testing.T) {
	t.Parallel()
	const path = "../../cmd/egressd/egressd.example.yaml"
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		t.Skipf("%s does not exist", path)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("the example config is invalid:\n%v", err)
	}
	if cfg.Compiled == nil || len(cfg.Intercept.Sources) == 0 {
		t.Errorf("example config loaded without a policy or sources: %+v", cfg)
	}

	// Its commented-out ha section is valid once uncommented.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	start := slices.Index(lines, "# ha:")
	if start < 0 {
		t.Fatal(`the example has no commented "# ha:" section`)
	}
	for i := start; i < len(lines) && strings.HasPrefix(lines[i], "#"); i++ {
		lines[i] = strings.TrimPrefix(strings.TrimPrefix(lines[i], "#"), " ")
	}
	cfg, err = Parse(path, []byte(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatalf("the example's ha section is invalid:\n%v", err)
	}
	if !cfg.HA.Enabled || cfg.HA.FailAfter != 4 {
		t.Errorf("the example's ha section: %+v", cfg.HA)
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	_, err := Load("testdata/does-not-exist.yaml")
	var errs Errors
	if err == nil || errors.As(err, &errs) || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "-c FILE") {
		t.Errorf("Load of a missing file: %v", err)
	}
}

func TestErrorFormat(t *testing.T) {
	t.Parallel()
	es := Errors{
		{File: "egressd.yaml", Line: 14, Key: "policy.alow", Msg: `unknown key (did you mean "allow"?)`},
		{File: "egressd.yaml", Line: 3, Msg: "invalid YAML: x"},
		{File: "egressd.yaml", Msg: "invalid YAML: y"},
	}
	want := "egressd.yaml:14: policy.alow: unknown key (did you mean \"allow\"?)\n" +
		"egressd.yaml:3: invalid YAML: x\n" +
		"egressd.yaml: invalid YAML: y"
	if es.Error() != want {
		t.Errorf("Errors.Error() =\n%s\nwant\n%s", es.Error(), want)
	}
}

// TestErrorsSortedByLine checks that problems found in different passes
// (syntax of values, then entries, then cross-checks) come out in line order.
func TestErrorsSortedByLine(t *testing.T) {
	t.Parallel()
	data := []byte(`policy:
  allow:
    - .com
intercept:
  sources: [10.77.0.0/16, 10.77.1.0/24]
  other: nope
`)
	_, err := Parse("x.yaml", data)
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 3 {
		t.Fatalf("want 3 errors, got %v", err)
	}
	if !slices.IsSortedFunc(errs, func(a, b Error) int { return a.Line - b.Line }) {
		t.Errorf("errors not sorted by line:\n%v", err)
	}
}

func TestRestartRequired(t *testing.T) {
	t.Parallel()
	load := func(s string) *Config {
		t.Helper()
		cfg, err := Parse("x.yaml", []byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	old := load("intercept:\n  sources: [10.77.0.0/16]\npolicy:\n  allow: [naver.com]\n")
	same := load("intercept:\n  sources: [10.77.0.0/16]\npolicy:\n  allow: [.example.org]\nlog:\n  level: debug\n")
	if keys := same.RestartRequired(old); keys != nil {
		t.Errorf("policy and log changes need no restart, got %v", keys)
	}
	changed := load(`listen:
  http: ":16080"
  admin: ""
intercept:
  sources: [10.77.0.0/16, 10.78.0.0/16]
  tls_ports: [443, 8443]
  other: drop
  nftables: false
`)
	want := []string{"listen.http", "listen.admin", "intercept.sources", "intercept.tls_ports", "intercept.other", "intercept.nftables"}
	if keys := changed.RestartRequired(old); !slices.Equal(keys, want) {
		t.Errorf("RestartRequired = %v, want %v", keys, want)
	}
	if keys := changed.RestartRequired(nil); keys != nil {
		t.Errorf("RestartRequired(nil) = %v", keys)
	}
}

func TestSystemResolver(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		conf, want, err string
	}{
		{"# generated\nsearch ec2.internal\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n", "10.0.0.2:53", ""},
		{"; comment\nnameserver 2001:db8::53\n", "[2001:db8::53]:53", ""},
		{"nameserver   127.0.0.53\noptions edns0\n", "127.0.0.53:53", ""},
		{"nameserver bogus\nnameserver 10.0.0.2", "10.0.0.2:53", ""},
		{"search example.org\n", "", "set upstream.resolver"},
		{"", "", "set upstream.resolver"},
	}
	for i, tt := range tests {
		path := filepath.Join(dir, "resolv.conf"+string(rune('a'+i)))
		if err := os.WriteFile(path, []byte(tt.conf), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := SystemResolver(path)
		if got != tt.want || (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("SystemResolver(%q) = %q, %v; want %q, error with %q", tt.conf, got, err, tt.want, tt.err)
		}
	}
	if _, err := SystemResolver(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "set upstream.resolver") {
		t.Errorf("SystemResolver(missing) error = %v", err)
	}
}

func TestCloseKeys(t *testing.T) {
	t.Parallel()
	keys := []string{"mode", "allow", "allow_public_suffixes", "groups"}
	for in, want := range map[string]string{
		"alow":                  "allow",
		"Allow":                 "allow",
		"allows":                "allow",
		"group":                 "groups",
		"allow_public_suffix":   "allow_public_suffixes",
		"allow-public-suffixes": "allow_public_suffixes",
		"mod":                   "mode",
		"xyz":                   "",
		"sources":               "",
	} {
		if got := closest(in, keys); got != want {
			t.Errorf("closest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHA(t *testing.T) {
	t.Parallel()
	cfg, err := Load("testdata/valid_ha.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := HA{
		Enabled:          true,
		Provider:         "aws",
		Listen:           "10.77.101.10:9902",
		Peer:             netip.MustParseAddrPort("10.77.102.10:9902"),
		RouteTables:      []RouteTableRef{{ID: "rtb-0a0a0a0a0a0a0a0a0"}},
		PeerRouteTables:  []RouteTableRef{{TagKey: "egressd-home", TagValue: "b"}, {ID: "rtb-0b0b0b0b"}},
		InstanceID:       "i-0a0a0a0a0a0a0a0a0",
		NetworkInterface: "eni-0a0a0a0a0a0a0a0a0",
		Region:           "eu-west-1",
		Endpoint:         "http://198.51.100.80",
		CheckInterval:    200 * time.Millisecond,
		FailAfter:        3,
		FailbackAfter:    5 * time.Second,
	}
	if !cfg.HA.equal(want) {
		t.Errorf("ha:\n got %+v\nwant %+v", cfg.HA, want)
	}
	if got := want.PeerRouteTables[0].String(); got != "tag:egressd-home=b" {
		t.Errorf("tag ref String() = %q", got)
	}

	min, err := Load("testdata/valid_ha_minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if h := min.HA; h.Listen != DefaultHAListen || h.CheckInterval != DefaultHACheckInterval ||
		h.FailAfter != DefaultHAFailAfter || h.FailbackAfter != DefaultHAFailbackAfter {
		t.Errorf("ha defaults: got %+v", h)
	}
	off, err := Load("testdata/valid_minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if off.HA.Enabled {
		t.Error("ha is on without an ha section")
	}
	if keys := min.RestartRequired(off); !slices.Equal(keys, []string{"intercept.sources", "ha"}) {
		t.Errorf("turning ha on: RestartRequired = %v, want [intercept.sources ha]", keys)
	}
}
