// Command custom-steps inserts two in-house steps into the single node
// upgrade plan, around the window in which core is stopped. It runs the plan
// against the fakes of pasupgradetest, with an event sink that prints each
// step's duration and the core downtime.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pasops/pasupgrade/pasupgrade"
	"github.com/pasops/pasupgrade/pasupgrade/pasupgradetest"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(w io.Writer) error {
	report := &pasupgradetest.Reporter{W: w}
	work, err := os.MkdirTemp("", "custom-steps-")
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

	// In-house steps: take the node out of the load balancer before core
	// stops, and put it back once core runs again.
	balancer := func(id, title string) pasupgrade.Step {
		return pasupgrade.Step{
			ID: id, Title: title, Section: "in-house", User: pasupgrade.UserRoot,
			Action: "call the load balancer's API", Changes: "changes the load balancer pool",
			Run: func(_ context.Context, env *pasupgrade.Env) error {
				env.Infof("load balancer: %s", title)
				return nil
			},
		}
	}
	if err := plan.InsertBefore("stop-core", balancer("drain", "take the node out of the pool")); err != nil {
		return err
	}
	if err := plan.InsertAfter("start-core", balancer("undrain", "put the node back into the pool")); err != nil {
		return err
	}

	clock := pasupgradetest.NewClock(time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC), 250*time.Millisecond)
	sink := func(ev pasupgrade.Event) {
		switch ev.Kind {
		case pasupgrade.EventStepEnd:
			fmt.Fprintf(w, "%-22s %-8s %s\n", ev.Step.ID, ev.Outcome, ev.Duration)
		case pasupgrade.EventInfo:
			fmt.Fprintf(w, "  %s\n", ev.Message)
		case pasupgrade.EventSummary:
			fmt.Fprintf(w, "core down for %s\n", ev.Summary.Downtime)
		}
	}
	_, err = pasupgrade.Run(context.Background(), plan, sys.Deps(clock, pasupgrade.ConfigconvEditor{}),
		pasupgrade.RunConfig{Events: sink})
	if report.Close() {
		return errors.Join(err, errors.New("the fakes reported a failure"))
	}
	return err
}
