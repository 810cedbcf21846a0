// Command own-runner runs the single node upgrade plan with its own
// runner.Runner, one that writes every command to a transcript, while the
// other dependencies come from pasupgradetest. It first does a dry run of
// the same plan, which reports what would change and changes nothing.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pasops/pasupgrade/pasupgrade"
	"github.com/pasops/pasupgrade/pasupgrade/pasupgradetest"
	"github.com/pasops/pasupgrade/runner"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// countingRunner counts the commands it passes on, by user. The preflight
// checks of both runs reach it too, the dry run's steps do not.
type countingRunner struct {
	next   runner.Runner
	byUser map[string]int
}

func (c *countingRunner) Run(ctx context.Context, cmd runner.Command) (runner.Result, error) {
	user := cmd.User
	if user == "" {
		user = "root"
	}
	c.byUser[user]++
	return c.next.Run(ctx, cmd)
}

func run(w io.Writer) error {
	report := &pasupgradetest.Reporter{W: w}
	work, err := os.MkdirTemp("", "own-runner-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	sys := pasupgradetest.NewSystem(report, pasupgrade.Upgrade480To490)
	plan, err := pasupgrade.NewUpgradePlan(pasupgrade.Upgrade480To490, pasupgrade.Options{
		Topology: pasupgrade.TopologySingle, WorkDir: work, DebDir: "/var/lib/pas-upgrade/debs",
		AdminPassword: sys.Password,
	})
	if err != nil {
		return err
	}
	clock := pasupgradetest.NewClock(time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC), time.Second)
	deps := sys.Deps(clock, pasupgrade.ConfigconvEditor{})

	var transcript strings.Builder
	counter := &countingRunner{next: deps.Runner, byUser: map[string]int{}}
	deps.Runner = &runner.Transcript{Runner: counter, W: &transcript, Now: clock.Now}

	would := 0
	_, err = pasupgrade.Run(context.Background(), plan, deps, pasupgrade.RunConfig{
		DryRun: true,
		Events: func(ev pasupgrade.Event) {
			if ev.Kind == pasupgrade.EventWould {
				would++
			}
		},
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "dry run: %d actions, %d changes made\n", would, len(sys.Log()))

	if _, err := pasupgrade.Run(context.Background(), plan, deps, pasupgrade.RunConfig{}); err != nil {
		return err
	}
	fmt.Fprintf(w, "commands as pas: %d, as root: %d\n", counter.byUser["pas"], counter.byUser["root"])
	fmt.Fprintf(w, "transcript has the password: %t\n", strings.Contains(transcript.String(), sys.Password))
	fmt.Fprintf(w, "transcript lines: %d\n", strings.Count(transcript.String(), "\n"))
	if report.Close() {
		return errors.New("the fakes reported a failure")
	}
	return nil
}
