package main

import (
	"fmt"
	"io"
)

func cmdImportSquid(args []string, stdout, stderr io.Writer) int {
	return notYet("import-squid", stderr)
}
func cmdSuggest(args []string, stdout, stderr io.Writer) int { return notYet("suggest", stderr) }

func notYet(name string, stderr io.Writer) int {
	fmt.Fprintf(stderr, "egressd %s: not available in this build yet\n", name)
	return exitError
}
