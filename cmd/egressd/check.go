package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/egressd/egressd/policy/config"
)

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", defaultConfigPath, "config file")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "egressd check: unexpected argument %q (usage: egressd check [-c FILE])\n", fs.Arg(0))
		return exitError
	}
	cfg, err := config.Load(*path)
	if err != nil {
		printConfigError(stderr, err)
		return exitError
	}
	ha := ""
	if cfg.HA.Enabled {
		ha = fmt.Sprintf("; ha with peer %s, %d home and %d peer route table entries", cfg.HA.Peer, len(cfg.HA.RouteTables), len(cfg.HA.PeerRouteTables))
	}
	fmt.Fprintf(stdout, "%s: ok (%s mode, %d allow entries, %d groups, %d source networks%s)\n",
		*path, cfg.Policy.Mode, len(cfg.Policy.Allow), len(cfg.Policy.Groups), len(cfg.Intercept.Sources), ha)
	return exitOK
}

// printConfigError prints one located line per config error.
func printConfigError(w io.Writer, err error) {
	var errs config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintln(w, e.Error())
		}
		return
	}
	fmt.Fprintln(w, err)
}
