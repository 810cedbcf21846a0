// Command pas-node is the simulated PAS node's multi-call binary: the lab's
// packages install it under several names, and the name it is started as
// picks what it does.
//
//	pas-core, pas-ha, pas-storage   run that component in the foreground
//	pas-mgmt                        start the management simulator
//	pas-update                      migrate the core and HA configuration
//	pas-mgmt-update                 migrate the management configuration
//	pas-storage-update              migrate the storage configuration
//	pas-mgmt-checkconfig            check the management configuration
//	pas-storage-checkconfig         check the storage configuration
//	pas-mgmt-deploy-core            deploy and restart remote core nodes over SSH
//
// The component names also take helper subcommands that the maintainer
// scripts call (see usage). Started as pas-node, the first argument is the
// name to act as, which is how the tests run it.
//
// Every path is under /opt/balasys or /lib/systemd as on a real node; the
// PAS_NODE_ROOT environment variable puts all of them under another
// directory for tests.
package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
)

// command is what the binary does when started under one name.
type command struct {
	run   func(env *environment, args []string) error
	usage string
}

var commands = map[string]command{
	"pas-core":                {runComponentCommand("core"), "pas-core [reset-config | set-listen-port PORT]"},
	"pas-ha":                  {runComponentCommand("ha"), "pas-ha [set-listen-port PORT]"},
	"pas-storage":             {runComponentCommand("storage"), "pas-storage [reset-config | set-listen-port PORT]"},
	"pas-mgmt":                {runMgmtCommand, "pas-mgmt [reset-config | set-password --scheme sha|bcrypt]"},
	"pas-update":              {updateCommand("core", "ha"), "pas-update [--image-tag TAG]"},
	"pas-mgmt-update":         {updateCommand("mgmt"), "pas-mgmt-update [--image-tag TAG]"},
	"pas-storage-update":      {updateCommand("storage"), "pas-storage-update [--image-tag TAG]"},
	"pas-mgmt-checkconfig":    {checkCommand("mgmt"), "pas-mgmt-checkconfig"},
	"pas-storage-checkconfig": {checkCommand("storage"), "pas-storage-checkconfig"},
	"pas-mgmt-deploy-core":    {runDeployCore, deployUsage},
}

// errUsage marks an error caused by wrong arguments; main exits with 2.
var errUsage = errors.New("usage")

func main() {
	env := &environment{
		root:   os.Getenv("PAS_NODE_ROOT"),
		uid:    os.Getuid(),
		stdin:  os.Stdin,
		stdout: os.Stdout,
		stderr: os.Stderr,
	}
	os.Exit(dispatch(env, os.Args))
}

// dispatch runs the command named by args[0] and returns the exit code.
func dispatch(env *environment, args []string) int {
	name := filepath.Base(args[0])
	rest := args[1:]
	if name == "pas-node" {
		if len(rest) == 0 {
			printUsage(env.stderr)
			return 2
		}
		name, rest = rest[0], rest[1:]
	}

	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(env.stderr, "pas-node: unknown command %q\n", name)
		printUsage(env.stderr)
		return 2
	}
	if len(rest) == 1 && (rest[0] == "-h" || rest[0] == "--help") {
		fmt.Fprintf(env.stdout, "usage: %s\n", cmd.usage)
		return 0
	}
	err := cmd.run(env, rest)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(env.stderr, "%s: %v\nusage: %s\n", name, err, cmd.usage)
		return 2
	default:
		fmt.Fprintf(env.stderr, "%s: %v\n", name, err)
		return 1
	}
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: pas-node NAME [ARGS], or run the binary under one of these names:")
	for _, name := range slices.Sorted(maps.Keys(commands)) {
		fmt.Fprintf(w, "  %s\n", commands[name].usage)
	}
}

// environment carries what commands read from the process, so tests can
// run them in-process against a temporary root.
type environment struct {
	root   string
	uid    int
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// path returns the node path p (absolute, as on a real node) under the
// environment's root.
func (e *environment) path(p string) string {
	if e.root == "" {
		return p
	}
	return filepath.Join(e.root, p)
}
