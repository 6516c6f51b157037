package main

import (
	"fmt"
	"io"
	"os"

	"github.com/egressd/egressd/policy/suggest"
)

func cmdSuggest(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: egressd suggest LOGFILE… (- for standard input)")
		return exitError
	}
	a := suggest.NewAggregator()
	for _, path := range args {
		var r io.Reader = os.Stdin
		if path != "-" {
			f, err := os.Open(path)
			if err != nil {
				fmt.Fprintf(stderr, "egressd suggest: %v\n", err)
				return exitError
			}
			defer f.Close()
			r = f
		}
		if err := a.Read(r); err != nil {
			fmt.Fprintf(stderr, "egressd suggest: %s: %v\n", path, err)
			return exitError
		}
	}
	if a.Malformed > 0 {
		fmt.Fprintf(stderr, "egressd suggest: %d lines were not JSON and were skipped\n", a.Malformed)
	}
	if err := a.Write(stdout); err != nil {
		fmt.Fprintf(stderr, "egressd suggest: %v\n", err)
		return exitError
	}
	return exitOK
}
