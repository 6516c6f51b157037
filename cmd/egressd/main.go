// Command egressd is a transparent egress gateway: hosts whose default route
// points at it reach only the domains on an allowlist, over HTTPS and HTTP,
// with no proxy settings. See README.md and `egressd help`.
//
// This file only dispatches; each subcommand is a small function in its own
// file.
package main

import (
	"fmt"
	"io"
	"os"
)

// Exit statuses shared by the subcommands.
const (
	exitOK      = 0
	exitError   = 1 // bad usage, invalid config, runtime failure
	exitPartial = 2 // import-squid left something out
	exitDeny    = 3 // explain: the policy denies
)

const defaultConfigPath = "/etc/egressd/egressd.yaml"

type command struct {
	name, usage, summary string
	run                  func(args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"run", "run [-c FILE]", "install the nftables table, enable forwarding and serve", cmdRun},
		{"check", "check [-c FILE]", "validate the config; print every error as FILE:LINE: KEY: message", cmdCheck},
		{"explain", "explain [-c FILE] [--source IP] NAME_OR_IP", "print the decision for a name or address (exit 0 allow, 3 deny)", cmdExplain},
		{"import-squid", "import-squid [--sources CIDR,...] SQUID_CONF", "translate a Squid dstdomain/src/http_access config into an egressd config", cmdImportSquid},
		{"suggest", "suggest LOGFILE...", "read access logs (JSON lines, - for stdin) and propose an allowlist", cmdSuggest},
		{"demo", "demo", "build a throw-away namespace lab, show allowed, denied and spoofed traffic, clean up (root)", cmdDemo},
		{"version", "version", "print version and build information", cmdVersion},
	}
}

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return exitError
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "egressd: unknown command %q (run `egressd help` for the list)\n", args[0])
	return exitError
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "egressd — transparent egress gateway: only allowlisted domains leave the subnet.")
	fmt.Fprintln(w, "\nUsage:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  egressd %-45s %s\n", c.usage, c.summary)
	}
}
