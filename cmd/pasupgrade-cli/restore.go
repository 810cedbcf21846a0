package main

import (
	"github.com/spf13/cobra"
)

func init() { register(newRestoreCmd) }

func newRestoreCmd(a *app) *cobra.Command {
	var f planFlags
	cmd := &cobra.Command{
		Use:   "restore --backup DIR --deb-dir DIR",
		Short: "Return PAS to 4.8.0 from a backup set, as the vendor's guide describes",
		Long: `restore verifies the backup set and copies it aside before it deletes
anything, then stops every PAS service on every node (remote nodes over SSH
with the pas key from the backup set), purges the packages, removes the pas
user with its home, reinstalls the 4.8.0 packages from --deb-dir, restores the
bootstrap files as pas, starts the services, redeploys the remote nodes, and
uploads and applies the running configuration saved in the set.

The work directory (default: the backup set's parent) must lie outside
/opt/balasys, which the restore deletes. The admin password is the one the
backup was made with.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPlanCmd(cmd, a, &f, true)
		},
	}
	addPlanFlags(cmd, &f, true)
	return cmd
}
