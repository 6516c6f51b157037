package main

import (
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

	"github.com/egressd/egressd/policy/squidconf"
)

func cmdImportSquid(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("import-squid", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sourcesFlag := fs.String("sources", "", "client networks (CIDR,…) when the Squid config has no src acl")
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return exitError
	}
	if len(positional) != 1 {
		fmt.Fprintln(stderr, "usage: egressd import-squid [--sources CIDR,…] SQUID_CONF")
		return exitError
	}
	var opts squidconf.Options
	if *sourcesFlag != "" {
		for _, s := range strings.Split(*sourcesFlag, ",") {
			p, err := netip.ParsePrefix(strings.TrimSpace(s))
			if err != nil {
				fmt.Fprintf(stderr, "egressd import-squid: --sources %q: not a CIDR (e.g. 10.0.0.0/16)\n", s)
				return exitError
			}
			opts.Sources = append(opts.Sources, p.Masked())
		}
	}
	path := positional[0]
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintf(stderr, "egressd import-squid: %v\n", err)
		return exitError
	}
	defer f.Close()
	res, err := squidconf.Translate(path, f, opts)
	if err != nil {
		fmt.Fprintf(stderr, "egressd import-squid: %s: %v\n", path, err)
		return exitError
	}
	for _, s := range res.Skipped {
		// FILE:LINE of the line itself: it may come from a list or an included file.
		fmt.Fprintln(stderr, s.String())
	}
	_, _ = stdout.Write(res.YAML)
	if res.LeftOut {
		fmt.Fprintln(stderr, "egressd import-squid: some access rules were left out (listed above); review before enforcing")
		return exitPartial
	}
	return exitOK
}
