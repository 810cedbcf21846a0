package configconv

import (
	"context"
	"errors"
	"fmt"

	"github.com/pasops/pasupgrade/runner"
)

// DefaultHostCommand is the upgrade tool as the 4.9.0 management package
// installs it.
const DefaultHostCommand = "pas-mgmt-upgrade-config"

// HostRunner runs the upgrade tool as a command on the host, as the guide
// runs post-upgrade: "pas-mgmt-upgrade-config post-upgrade ..." in the
// working directory.
type HostRunner struct {
	// Runner runs the command, on this machine or in a lab container.
	Runner runner.Runner
	// Command is the tool's program. Empty means DefaultHostCommand.
	Command string
	// User is the account to run as, such as "pas". Empty means the
	// runner's own.
	User string
}

// Prepare implements ToolRunner. The host command needs no preparation.
func (h *HostRunner) Prepare(context.Context) error { return nil }

// Run implements ToolRunner. With a Terminal, the command is run as an
// interactive command of the Runner, which connects it to the runner's own
// terminal.
func (h *HostRunner) Run(ctx context.Context, inv Invocation) (int, error) {
	if h.Runner == nil {
		return -1, errors.New("configconv: HostRunner needs a Runner")
	}
	argv := append([]string{orDefault(h.Command, DefaultHostCommand)}, inv.Args...)
	cmd := runner.Command{
		Argv:        argv,
		Stdin:       inv.Stdin,
		Stdout:      inv.Stdout,
		Stderr:      inv.Stderr,
		User:        h.User,
		Dir:         inv.WorkDir,
		Secrets:     inv.Secrets,
		Interactive: inv.Terminal != nil,
	}
	res, err := h.Runner.Run(ctx, cmd)
	var exitErr *runner.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exitErr) && exitErr.ExitCode >= 0:
		return exitErr.ExitCode, nil
	case ctx.Err() != nil:
		return -1, fmt.Errorf("the upgrade tool was interrupted: %w", ctx.Err())
	default:
		return res.ExitCode, err
	}
}
