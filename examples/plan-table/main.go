// Command plan-table prints the upgrade and restore plans of every topology
// as Markdown tables: step id, guide section, user and action.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/pasops/pasupgrade/pasupgrade"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// topologies are the installations the guide describes.
var topologies = []struct {
	name string
	opts pasupgrade.Options
}{
	{"single node", pasupgrade.Options{Topology: pasupgrade.TopologySingle}},
	{"multi node", pasupgrade.Options{Topology: pasupgrade.TopologyMulti}},
	{"multi node, HA, core on the management node", pasupgrade.Options{
		Topology: pasupgrade.TopologyMulti, HA: true, CoreOnMgmt: true}},
}

func run(w io.Writer) error {
	for _, t := range topologies {
		opts := t.opts
		opts.WorkDir, opts.DebDir = "/var/lib/pas-upgrade", "/var/lib/pas-upgrade/debs"
		plan, err := pasupgrade.NewUpgradePlan(pasupgrade.Upgrade480To490, opts)
		if err != nil {
			return err
		}
		printPlan(w, "Upgrade, "+t.name, plan)

		opts.BackupDir = "/var/backups/pasupgrade/pas-backup-20261204T100000Z"
		plan, err = pasupgrade.NewRestorePlan(pasupgrade.Upgrade480To490, opts)
		if err != nil {
			return err
		}
		printPlan(w, "Restore, "+t.name, plan)
	}
	return nil
}

func printPlan(w io.Writer, title string, plan *pasupgrade.Plan) {
	fmt.Fprintf(w, "## %s\n\n| step | guide | user | action |\n| --- | --- | --- | --- |\n", title)
	for _, s := range plan.Steps {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", s.ID, s.Section, s.User, s.Action)
	}
	fmt.Fprintln(w)
}
