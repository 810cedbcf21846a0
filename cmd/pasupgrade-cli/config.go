package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/pasops/pasupgrade/mgmtapi"
)

func init() { register(newConfigCmd) }

// defaultApplyTimeout is the wait the upgrade guide gives post-upgrade
// (--config-apply-timeout 20).
const defaultApplyTimeout = 20 * time.Second

func newConfigCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Export, import and apply the management component's configuration",
		Long: `The config commands do through the management REST API what the upgrade guide
does in the web UI: download the running configuration (Configuration Backup
page, Export "Running"), upload a configuration file (Upload), and run a
config apply (Changes page, Config Apply).

The admin password comes from --password-file, then $` + passwordEnv + `, then a
prompt without echo on the terminal. No flag takes the password itself.`,
	}
	cmd.AddCommand(newConfigExportCmd(a), newConfigImportCmd(a), newConfigApplyCmd(a))
	return cmd
}

func newConfigExportCmd(a *app) *cobra.Command {
	var (
		mf   mgmtFlags
		out  string
		kind string
	)
	cmd := &cobra.Command{
		Use:   "export [--out FILE|DIR]",
		Short: "Download the running configuration to a file",
		Long: `export downloads the running configuration. The file is written to a
temporary name beside the target and renamed into place only when it arrived
whole, so a failed export leaves no partial file. With --out DIR or without
--out, the file takes the name the server gives it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bar := &transferProgress{a: a, label: "exporting"}
			defer bar.finish()
			c, err := mf.client(cmd.Context(), a, mgmtapi.WithProgress(bar.update))
			if err != nil {
				return err
			}
			exp, path, err := c.ExportConfigFile(cmd.Context(), kind, out)
			bar.finish()
			if err != nil {
				return err
			}
			a.printer.Event("config_exported",
				fmt.Sprintf("%s configuration written to %s (%d bytes, sha256 %s)", kind, path, exp.Size, exp.SHA256),
				map[string]any{"kind": kind, "path": path, "bytes": exp.Size, "sha256": exp.SHA256})
			return nil
		},
	}
	addMgmtFlags(cmd, &mf)
	cmd.Flags().StringVarP(&out, "out", "o", ".", "`FILE` to write, or a directory for the server's file name")
	cmd.Flags().StringVar(&kind, "kind", mgmtapi.ExportKindRunning, "configuration `KIND` to export")
	return cmd
}

func newConfigImportCmd(a *app) *cobra.Command {
	var (
		mf     mgmtFlags
		yes    bool
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Upload a configuration file; it takes effect at the next config apply",
		Long: `import uploads FILE as the management component's new configuration. It
becomes a pending change that the next "config apply" activates. The upload
is sent once and never repeated automatically.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			info, err := os.Stat(path)
			if err != nil {
				return usageErrorf("invalid configuration file: %v", err)
			}
			if !info.Mode().IsRegular() {
				return usageErrorf("invalid configuration file %s: not a regular file", path)
			}

			bar := &transferProgress{a: a, label: "uploading"}
			defer bar.finish()
			c, err := mf.client(cmd.Context(), a, mgmtapi.WithProgress(bar.update))
			if err != nil {
				return err
			}
			if dryRun {
				a.printer.Event("dry_run", fmt.Sprintf("would upload %s (%d bytes) to %s", path, info.Size(),
					c.BaseURL()), map[string]any{"action": "import", "path": path, "bytes": info.Size()})
				return nil
			}
			question := fmt.Sprintf("Upload %s to %s as the pending configuration?", path, c.BaseURL())
			if err := confirmChange(a, yes, question); err != nil {
				return err
			}

			pending, err := c.ImportConfigFile(cmd.Context(), path)
			bar.finish()
			if err != nil {
				return err
			}
			a.printer.Event("config_imported",
				fmt.Sprintf("uploaded %s; %d pending change(s); run 'config apply' to activate", filepath.Base(path), pending),
				map[string]any{"path": path, "bytes": info.Size(), "pending_changes": pending})
			return nil
		},
	}
	addMgmtFlags(cmd, &mf)
	addChangeFlags(cmd, &yes, &dryRun)
	return cmd
}

func newConfigApplyCmd(a *app) *cobra.Command {
	var (
		mf      mgmtFlags
		timeout time.Duration
		yes     bool
		dryRun  bool
	)
	cmd := &cobra.Command{
		Use:   "apply [--timeout 20s]",
		Short: "Run a config apply and wait for every node to reload",
		Long: `apply activates the pending configuration on every node, as Config Apply on the
Changes page does, and waits at most --timeout for the result. It works with no
pending changes too, which the upgrade guide requires when a node reports
reload success FAILED. A failed or timed-out apply exits with code 1 and
names the nodes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if timeout <= 0 {
				return usageErrorf("invalid --timeout %s: must be positive", timeout)
			}
			c, err := mf.client(cmd.Context(), a)
			if err != nil {
				return err
			}
			if dryRun {
				return printWouldApply(a, cmd, c, timeout)
			}
			if err := confirmChange(a, yes, "Run a config apply on "+c.BaseURL()+"?"); err != nil {
				return err
			}
			return runApply(a, cmd, c, timeout)
		},
	}
	addMgmtFlags(cmd, &mf)
	cmd.Flags().DurationVar(&timeout, "timeout", defaultApplyTimeout, "maximum `DURATION` to wait for the apply")
	addChangeFlags(cmd, &yes, &dryRun)
	return cmd
}

// printWouldApply reports the apply that would run, with the pending
// changes it would activate.
func printWouldApply(a *app, cmd *cobra.Command, c *mgmtapi.Client, timeout time.Duration) error {
	changes, err := c.PendingChanges(cmd.Context())
	if err != nil {
		return err
	}
	a.printer.Event("dry_run", fmt.Sprintf("would run a config apply on %s with %d pending change(s), "+
		"waiting at most %s", c.BaseURL(), len(changes), timeout),
		map[string]any{"action": "apply", "pending_changes": changes, "timeout": timeout.String()})
	return nil
}

// runApply runs a config apply and prints the result of every node.
func runApply(a *app, cmd *cobra.Command, c *mgmtapi.Client, timeout time.Duration) error {
	a.printer.Infof("running a config apply on %s (waiting at most %s)", c.BaseURL(), timeout)
	job, err := c.Apply(cmd.Context(), timeout)
	for _, n := range job.Nodes {
		text := fmt.Sprintf("  %-20s %s", n.Name, n.ReloadSuccess)
		if n.Message != "" {
			text += ": " + n.Message
		}
		a.printer.Event("apply_node", text, n)
	}
	if err != nil {
		return err
	}
	a.printer.Event("config_applied", "config apply "+job.ID+" succeeded",
		map[string]any{"id": job.ID, "nodes": job.Nodes})
	return nil
}

// addChangeFlags adds --yes and --dry-run to a command that changes the
// management component's configuration.
func addChangeFlags(cmd *cobra.Command, yes, dryRun *bool) {
	cmd.Flags().BoolVarP(yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(dryRun, "dry-run", false, "log in and print what would change, without changing it")
}

// confirmChange prompts with question on the terminal unless yes is set. Without a
// terminal it fails with the flag to pass instead of prompting.
func confirmChange(a *app, yes bool, question string) error {
	return confirm(a, yes, question, "this command changes the management configuration", "cancelled")
}
