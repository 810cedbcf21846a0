// Command pas-sample-tree writes a deterministic sample of a PAS 4.8.0
// management node's /opt/balasys tree under a directory, to try the
// backup commands on without a real node.
//
//	pas-sample-tree [-policies N] ROOT
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/pasops/pasupgrade/backup/backuptest"
)

func main() {
	policies := flag.Int("policies", 10, "number of extra policy files per component")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: pas-sample-tree [-policies N] ROOT\n\n"+
			"Writes ROOT/opt/balasys with configuration, certificates, the automation files,\n"+
			"the pas user's SSH directory and symbolic links. The same N always gives the same tree.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 || *policies < 0 {
		flag.Usage()
		os.Exit(2)
	}
	root := flag.Arg(0)
	if err := os.MkdirAll(root, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "error: creating %s: %v\n", root, err)
		os.Exit(1)
	}
	if err := backuptest.WriteTree(root, backuptest.TreeOptions{Policies: *policies}); err != nil {
		fmt.Fprintf(os.Stderr, "error: writing the sample tree under %s: %v\n", root, err)
		os.Exit(1)
	}
	fmt.Printf("sample PAS tree written under %s\n", root)
}
