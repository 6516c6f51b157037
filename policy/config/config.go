// Package config loads egressd's YAML configuration file into validated
// values, with the defaults SPEC.md lists, and compiles its policy section
// into a *policy.Policy.
//
// The loader walks yaml.Node trees instead of decoding into structs, so that
// every problem is reported with its line, unknown keys are errors (with a
// suggestion of the key that was probably meant), and a wrong YAML type is
// named ("expected a list of CIDRs, got a string"). All the problems of a
// file are collected and returned at once as Errors, sorted by line, one
// `FILE:LINE: KEY: what is wrong and what would be valid` per problem.
package config

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/egressd/egressd/policy"
)

// Config is a validated egressd configuration.
type Config struct {
	File      string // the file it was read from, as given to Load or Parse
	Listen    Listen
	Intercept Intercept
	Upstream  Upstream
	Limits    Limits
	Policy    Policy
	Log       Log
	HA        HA // off unless the file has an ha section
	// Compiled is Policy compiled for the gateway; Load and Parse set it.
	Compiled *policy.Policy
}

// Listen holds the addresses egressd listens on, as "host:port".
type Listen struct {
	HTTP  string // redirected plain-HTTP connections arrive here
	TLS   string // redirected TLS connections arrive here
	Admin string // /metrics, /healthz, /readyz; "" turns it off
}

// Intercept says which traffic nftables sends to egressd.
type Intercept struct {
	Sources   []netip.Prefix // client networks; required
	HTTPPorts []uint16       // redirected to Listen.HTTP
	TLSPorts  []uint16       // redirected to Listen.TLS
	Other     Other          // other forwarded traffic from Sources
	NFTables  bool           // false: egressd installs no rules
}

// Other is what happens to forwarded traffic from the sources that is not
// redirected to egressd.
type Other string

// The values of intercept.other.
const (
	OtherDrop       Other = "drop"
	OtherReject     Other = "reject"
	OtherMasquerade Other = "masquerade"
)

// UpstreamMode says which address an allowed connection is dialed to.
type UpstreamMode string

// The values of upstream.mode (SPEC: Upstream modes).
const (
	// Resolve dials one of the allowed name's own addresses.
	Resolve UpstreamMode = "resolve"
	// Original dials the client's original destination, only when it is
	// one of the name's resolved addresses.
	Original UpstreamMode = "original"
)

// Upstream configures how allowed connections are dialed.
type Upstream struct {
	Mode UpstreamMode
	// Resolver is the DNS server as "ip:port"; "" means the first
	// nameserver in /etc/resolv.conf (see SystemResolver).
	Resolver    string
	DialTimeout time.Duration
}

// Limits bound time and connections.
type Limits struct {
	SniffTimeout   time.Duration // for the ClientHello or request head
	MaxConnections int
	IdleTimeout    time.Duration
	DrainTimeout   time.Duration // on stop
}

// Policy is the policy section as written (Compiled is its compiled form).
type Policy struct {
	Mode                policy.Mode
	Allow               []string
	AllowPublicSuffixes bool
	Groups              []policy.Group
}

// Log configures the log output.
type Log struct {
	Level  string // debug | info | warn | error
	Format string // json | console
}

// Default returns a configuration holding SPEC's default values. It has no
// intercept sources (the one required setting) and no compiled policy.
func Default() *Config {
	return &Config{
		Listen: Listen{
			HTTP:  ":15080",
			TLS:   ":15443",
			Admin: "127.0.0.1:9901",
		},
		Intercept: Intercept{
			HTTPPorts: []uint16{80},
			TLSPorts:  []uint16{443},
			Other:     OtherReject,
			NFTables:  true,
		},
		Upstream: Upstream{
			Mode:        Resolve,
			Resolver:    "",
			DialTimeout: 5 * time.Second,
		},
		Limits: Limits{
			SniffTimeout:   5 * time.Second,
			MaxConnections: 50000,
			IdleTimeout:    15 * time.Minute,
			DrainTimeout:   30 * time.Second,
		},
		Policy: Policy{Mode: policy.Enforce},
		Log:    Log{Level: "info", Format: "json"},
	}
}

// Load reads, validates and compiles the config file at path. A file that
// cannot be read is a plain error; a file with problems gives Errors
// listing all of them.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the config: %w (pass the file with -c FILE; cmd/egressd/egressd.example.yaml is a starting point)", err)
	}
	return Parse(path, data)
}

// Parse validates and compiles a config file's contents; file names it in
// errors and in Config.File. On failure the error is Errors, holding every
// problem found, sorted by line.
func Parse(file string, data []byte) (*Config, error) {
	p := &parser{file: file, cfg: Default(), lines: map[string]int{}}
	p.cfg.File = file
	p.parse(data)
	if len(p.errs) == 0 {
		compiled, err := policy.New(p.cfg.PolicySpec())
		if err != nil {
			// The entries were checked one by one above; this is a bug.
			p.errorf(p.lines["policy"], "policy", "%v", err)
		}
		p.cfg.Compiled = compiled
	}
	if len(p.errs) > 0 {
		slices.SortStableFunc(p.errs, func(a, b Error) int { return a.Line - b.Line })
		return nil, p.errs
	}
	return p.cfg, nil
}

// PolicySpec returns the policy section in the form policy.New compiles.
func (c *Config) PolicySpec() policy.Spec {
	return policy.Spec{
		Mode:                c.Policy.Mode,
		Allow:               c.Policy.Allow,
		Groups:              c.Policy.Groups,
		AllowPublicSuffixes: c.Policy.AllowPublicSuffixes,
	}
}

// RestartRequired lists the keys whose new values in c differ from old but
// take effect only after a restart (the listen, intercept and ha sections), as
// "listen.http", "intercept.sources", .... A live reload keeps the old
// values of those sections and logs the list. It is nil when nothing in
// them changed, or when old is nil.
func (c *Config) RestartRequired(old *Config) []string {
	if old == nil {
		return nil
	}
	var keys []string
	diff := func(key string, changed bool) {
		if changed {
			keys = append(keys, key)
		}
	}
	diff("listen.http", c.Listen.HTTP != old.Listen.HTTP)
	diff("listen.tls", c.Listen.TLS != old.Listen.TLS)
	diff("listen.admin", c.Listen.Admin != old.Listen.Admin)
	diff("intercept.sources", !slices.Equal(c.Intercept.Sources, old.Intercept.Sources))
	diff("intercept.http_ports", !slices.Equal(c.Intercept.HTTPPorts, old.Intercept.HTTPPorts))
	diff("intercept.tls_ports", !slices.Equal(c.Intercept.TLSPorts, old.Intercept.TLSPorts))
	diff("intercept.other", c.Intercept.Other != old.Intercept.Other)
	diff("intercept.nftables", c.Intercept.NFTables != old.Intercept.NFTables)
	diff("ha", !c.HA.equal(old.HA))
	return keys
}

// SystemResolver returns the first nameserver of a resolv.conf file (normally
// /etc/resolv.conf) as "ip:53", for an upstream.resolver of "".
func SystemResolver(resolvConfPath string) (string, error) {
	data, err := os.ReadFile(resolvConfPath)
	if err != nil {
		return "", fmt.Errorf("upstream.resolver is empty and %w: set upstream.resolver to the DNS server's \"ip:port\"", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(fields[1])
		if err != nil {
			continue
		}
		return netip.AddrPortFrom(a.Unmap(), 53).String(), nil
	}
	return "", fmt.Errorf("upstream.resolver is empty and %s has no usable nameserver line: set upstream.resolver to the DNS server's \"ip:port\" (on AWS the VPC resolver, e.g. \"10.0.0.2:53\")", resolvConfPath)
}
