// Command pas-lab starts, inspects and removes simulated PAS labs. A lab is
// a set of Debian node containers where PAS 4.8.0, built from the lab's own
// packages, is installed and running. It serves the demo and trying the
// upgrade by hand.
//
//	pas-lab up [--name NAME] [--topology single|multi] [--ha] [--core-on-mgmt]
//	pas-lab status [--name NAME] [--json]
//	pas-lab down [--name NAME]
//	pas-lab list
//
// It talks to the Docker engine that DOCKER_HOST names (start one with
// 'make lab-engine-start') and must run as root inside the pasupgrade
// repository, because it builds the node image with debootstrap and the
// lab's commands with the go command.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/pasops/pasupgrade/internal/lab"
)

// Exit codes.
const (
	exitError = 1
	exitUsage = 2
)

// errUsage marks an error in the command line.
var errUsage = errors.New("usage")

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage), errors.Is(err, lab.ErrInvalidOptions):
		fmt.Fprintf(stderr, "pas-lab: %v\n", err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "pas-lab: %v\n", err)
		return exitError
	}
}

// globals are the flags every subcommand takes.
type globals struct {
	name, dir   string
	json, debug bool
	stdout      io.Writer
	stderr      io.Writer
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "pas-lab",
		Short:         "Start, inspect and remove simulated PAS labs",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return fmt.Errorf("%w: %v", errUsage, err)
	})
	flags := root.PersistentFlags()
	flags.StringVar(&g.name, "name", "default", "lab `NAME`: lowercase letters, digits and dashes; labs with different names run side by side")
	flags.StringVar(&g.dir, "dir", "", "lab `DIR` (default $PASUPGRADE_LAB_DIR/labs/NAME, or /var/cache/pasupgrade-lab/labs/NAME)")
	flags.BoolVar(&g.json, "json", false, "print the result as JSON")
	flags.BoolVar(&g.debug, "debug", false, "log debug detail to stderr")

	root.AddCommand(newUpCmd(g), newDownCmd(g), newStatusCmd(g), newListCmd(g))
	return root
}
