package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pasops/pasupgrade/mgmtapi"
)

func init() { register(newStatusCmd) }

func newStatusCmd(a *app) *cobra.Command {
	var (
		mf      mgmtFlags
		fix     bool
		timeout time.Duration
		yes     bool
		dryRun  bool
	)
	cmd := &cobra.Command{
		Use:   "status [--fix]",
		Short: "Show every node's components and reload success; --fix runs a config apply",
		Long: `status prints every node of the installation with its components, their
versions and states, and the reload success of the last config apply, as the
Status page of the web UI shows them.

When any node reports reload success FAILED, status exits with code 3. The
upgrade guide then requires a config apply even with no pending changes:
--fix runs it, waits at most --timeout, and checks the status again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if timeout <= 0 {
				return usageErrorf("invalid --timeout %s: must be positive", timeout)
			}
			c, err := mf.client(cmd.Context(), a)
			if err != nil {
				return err
			}
			status, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			printStatus(a, status)

			failed := status.FailedReloads()
			if len(failed) == 0 {
				return nil
			}
			nodes := strings.Join(failed, ", ")
			if !fix {
				return withExitCode(exitCheckFailed, fmt.Errorf("reload success is FAILED on %s; "+
					"run 'pasupgrade-cli status --fix' to run a config apply", nodes))
			}
			if dryRun {
				return printWouldApply(a, cmd, c, timeout)
			}
			if err := confirmChange(a, yes, "Reload success is FAILED on "+nodes+". Run a config apply?"); err != nil {
				return err
			}
			if err := runApply(a, cmd, c, timeout); err != nil {
				return withExitCode(exitCheckFailed, err)
			}

			status, err = c.Status(cmd.Context())
			if err != nil {
				return err
			}
			printStatus(a, status)
			if failed := status.FailedReloads(); len(failed) > 0 {
				return withExitCode(exitCheckFailed, fmt.Errorf("reload success is still FAILED on %s "+
					"after a config apply; check the nodes' logs", strings.Join(failed, ", ")))
			}
			return nil
		},
	}
	addMgmtFlags(cmd, &mf)
	cmd.Flags().BoolVar(&fix, "fix", false, "run a config apply when any node reports reload success FAILED")
	cmd.Flags().DurationVar(&timeout, "timeout", defaultApplyTimeout, "maximum `DURATION` to wait for the apply of --fix")
	addChangeFlags(cmd, &yes, &dryRun)
	return cmd
}

// printStatus prints a table of the nodes' components, or one "status"
// event in JSON mode.
func printStatus(a *app, status mgmtapi.Status) {
	if a.json {
		// An empty list, not null, when no reload failed.
		failed := append([]string{}, status.FailedReloads()...)
		a.printer.Event("status", "", map[string]any{"nodes": status.Nodes, "failed_reloads": failed})
		return
	}
	tw := tabwriter.NewWriter(a.streams.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tCOMPONENT\tVERSION\tSTATE\tRELOAD SUCCESS")
	for _, n := range status.Nodes {
		if len(n.Components) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\n", n.Name, n.Role)
		}
		for _, comp := range n.Components {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, n.Role, comp.Name, comp.Version, comp.State,
				comp.ReloadSuccess)
		}
	}
	tw.Flush()
}
