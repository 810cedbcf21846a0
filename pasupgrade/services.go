package pasupgrade

import (
	"context"
	"fmt"
	"strings"

	"github.com/pasops/pasupgrade/runner"
)

// Systemctl is the ServiceManager of a node with systemd: it runs systemctl
// through Runner as root.
type Systemctl struct {
	Runner runner.Runner
}

// Start runs systemctl start unit.
func (s Systemctl) Start(ctx context.Context, unit string) error { return s.do(ctx, "start", unit) }

// Stop runs systemctl stop unit.
func (s Systemctl) Stop(ctx context.Context, unit string) error { return s.do(ctx, "stop", unit) }

// Restart runs systemctl restart unit.
func (s Systemctl) Restart(ctx context.Context, unit string) error {
	return s.do(ctx, "restart", unit)
}

func (s Systemctl) do(ctx context.Context, verb, unit string) error {
	_, err := s.Runner.Run(ctx, runner.Command{Argv: []string{"systemctl", verb, unit}})
	if err != nil {
		return fmt.Errorf("%s %s: %w", verb, unit, err)
	}
	return nil
}

// IsActive runs systemctl is-active unit. Exit code 3 with "inactive",
// "failed" or a similar word means not running; other failures are errors.
func (s Systemctl) IsActive(ctx context.Context, unit string) (bool, error) {
	res, err := s.Runner.Run(ctx, runner.Command{Argv: []string{"systemctl", "is-active", unit}})
	state := strings.TrimSpace(string(res.Stdout))
	switch {
	case err == nil:
		return true, nil
	case commandExitCode(err) == 3 || state == "inactive" || state == "failed":
		return false, nil
	}
	return false, fmt.Errorf("asking systemd whether %s runs: %w", unit, err)
}

// DeployCommand is the part of RemoteNodes that runs pas-mgmt-deploy-core:
// it runs the command as the pas user through Runner, whose SSH key and
// inventory reach the remote nodes.
type DeployCommand struct {
	Runner runner.Runner
	// Dir is the directory the command runs in; empty for the runner's.
	Dir string
}

// Deploy runs pas-mgmt-deploy-core with args as pas.
func (d DeployCommand) Deploy(ctx context.Context, args ...string) error {
	argv := append([]string{"pas-mgmt-deploy-core"}, args...)
	_, err := d.Runner.Run(ctx, runner.Command{Argv: argv, User: PASUser, Dir: d.Dir})
	return err
}
