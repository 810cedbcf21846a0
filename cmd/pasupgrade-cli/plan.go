package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func init() { register(newPlanCmd) }

func newPlanCmd(a *app) *cobra.Command {
	var (
		f       planFlags
		restore bool
	)
	cmd := &cobra.Command{
		Use:   "plan [--restore]",
		Short: "Print the steps of the upgrade or restore, in the guide's order",
		Long: `plan prints one line per step of the upgrade (or, with --restore, of the
restore): its id, the section of the vendor's guide it implements, the user it
runs as, and the command, file edit or API call it runs. It reads nothing
from the node and changes nothing. The ids are what --resume reports and
what library users insert their own steps around.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if restore && f.restoreSet == "" {
				f.restoreSet = "/var/backups/pasupgrade/BACKUP-SET"
			}
			plan, err := f.buildPlan(cmd, a, restore)
			if err != nil {
				return err
			}
			if a.json {
				a.printer.Event("plan", "", map[string]any{"kind": plan.Kind, "steps": plan.Infos()})
				return nil
			}
			var b strings.Builder
			w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "STEP\tGUIDE\tUSER\tACTION")
			for _, s := range plan.Steps {
				action := s.Action
				if s.CoreStopped {
					action += "  [core down]"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", s.ID, s.Section, s.User, action)
			}
			w.Flush()
			a.printer.Event("plan", strings.TrimSuffix(b.String(), "\n"), nil)
			return nil
		},
	}
	addPlanFlags(cmd, &f, false)
	addRestoreFlags(cmd, &f, &restore, "print the restore plan instead of the upgrade plan")
	return cmd
}
