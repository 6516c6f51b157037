package main

import (
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/egressd/egressd/policy"
	"github.com/egressd/egressd/policy/config"
)

func cmdExplain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", defaultConfigPath, "config file")
	source := fs.String("source", "", "client address the connection comes from (groups apply by source)")
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return exitError
	}
	if len(positional) != 1 {
		fmt.Fprintln(stderr, "usage: egressd explain [-c FILE] [--source IP] NAME_OR_IP")
		return exitError
	}
	target := positional[0]
	var src netip.Addr
	if *source != "" {
		if src, err = netip.ParseAddr(*source); err != nil {
			fmt.Fprintf(stderr, "egressd explain: --source %q is not an IP address (e.g. --source 10.0.3.7)\n", *source)
			return exitError
		}
	}
	cfg, err := config.Load(*path)
	if err != nil {
		printConfigError(stderr, err)
		return exitError
	}
	name, dst := target, netip.Addr{}
	if a, err := netip.ParseAddr(target); err == nil {
		name, dst = "", a.Unmap()
	} else if ascii, err := policy.ASCIIName(target); err == nil {
		name = ascii // a Unicode name as typed is checked as its xn-- form
	}
	d := cfg.Compiled.Decide(src, name, dst)
	fmt.Fprintln(stdout, describeDecision(d, target, src))
	if d.Allowed {
		return exitOK
	}
	return exitDeny
}

// describeDecision renders a decision as one line whose first word is
// allow or deny.
func describeDecision(d policy.Decision, target string, src netip.Addr) string {
	var b strings.Builder
	from := "any source"
	if src.IsValid() {
		from = src.String()
	}
	if d.Allowed {
		fmt.Fprintf(&b, "allow %s from %s: rule %s", target, from, d.Rule)
		if d.ByAddress {
			b.WriteString(" (destination address entry: egressd dials the original destination)")
		}
		return b.String()
	}
	fmt.Fprintf(&b, "deny %s from %s: %s", target, from, d.Reason)
	switch d.Reason {
	case policy.ReasonNotAllowed:
		b.WriteString(" (no allow entry or group of this source matches)")
	case policy.ReasonInvalidName:
		b.WriteString(" (not a valid host name: denied, never repaired)")
	case policy.ReasonNoName:
		b.WriteString(" (no name and no allowed destination address)")
	}
	if !src.IsValid() {
		b.WriteString("; groups were not considered: pass --source IP")
	}
	if !d.Enforced {
		b.WriteString("; monitor mode: it would be let through and logged with enforced: false")
	}
	return b.String()
}

// parseInterspersed parses flags that may come before or after the
// positional arguments, as operators type them.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}
