package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/pasops/pasupgrade/backup"
	"github.com/pasops/pasupgrade/deb"
)

func init() { register(newBackupCmd) }

func newBackupCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Back up, verify, list and restore the bootstrap configuration",
		Long: `The backup commands save the bootstrap configuration that the upgrade guide
lists (/opt/balasys/etc, the automation files and, for a multi-node setup,
/opt/balasys/.ssh) into a backup set: a directory holding bootstrap.zip and
manifest.json with the SHA-256 of every member. Every path is resolved under
--root.`,
	}
	cmd.AddCommand(newBackupCreateCmd(a), newBackupVerifyCmd(a), newBackupListCmd(a),
		newBackupRestoreCmd(a))
	return cmd
}

// backupDir returns the --backup-dir value, or the default directory
// under --root.
func (a *app) backupDir(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	return a.pasPath(backup.DefaultDir)
}

func newBackupCreateCmd(a *app) *cobra.Command {
	var (
		topology, dir   string
		mf              mgmtFlags
		noRunningConfig bool
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Write a new backup set of the bootstrap configuration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			topo, err := backup.ParseTopology(topology)
			if err != nil {
				return usageErrorf("invalid --topology: %v", err)
			}
			// Log in before writing anything, so a wrong password fails
			// fast instead of after the zip.
			var exporter backup.Exporter
			if !noRunningConfig {
				client, err := mf.client(cmd.Context(), a)
				if err != nil {
					return fmt.Errorf("%w (or pass --no-running-config to back up only the files)", err)
				}
				exporter = runningConfigExporter{client: client}
			}
			limitBackupMemory()
			bar := newBackupProgress(a, "backing up")
			defer bar.finish()
			set, err := backup.Create(cmd.Context(), backup.Options{
				RunningConfig: exporter,
				Root:          a.root,
				Dir:           a.backupDir(dir),
				Topology:      topo,
				ToolVersion:   toolVersion(),
				Packages:      installedPASVersions(cmd.Context(), a),
				Progress:      bar.update,
				Logger:        a.warningsToPrinter(),
			})
			bar.finish()
			if errors.Is(err, backup.ErrUnsafeBackupDir) {
				return usageErrorf("%v", err)
			}
			if err != nil {
				return err
			}
			a.printer.Event("backup_created", "backup set written: "+set.Dir, map[string]any{
				"dir": set.Dir, "members": len(set.Manifest.Members),
				"archive_bytes": set.Manifest.Archive.Size, "warnings": set.Manifest.Warnings,
				"running_config": set.Manifest.RunningConfig,
			})
			return nil
		},
	}
	cmd.Flags().StringVar(&topology, "topology", string(backup.TopologySingle),
		"installation layout: single, or multi to include /opt/balasys/.ssh")
	cmd.Flags().StringVar(&dir, "backup-dir", "",
		"`DIR` that receives the set (default "+backup.DefaultDir+" under --root)")
	addMgmtFlags(cmd, &mf)
	cmd.Flags().BoolVar(&noRunningConfig, "no-running-config", false,
		"skip the export of the running configuration from the management API")
	return cmd
}

func newBackupVerifyCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "verify SET_DIR|SET_DIR/bootstrap.zip",
		Short: "Check every CRC and SHA-256 of a backup set against its manifest",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			setDir := args[0]
			if filepath.Base(setDir) == backup.ArchiveName {
				setDir = filepath.Dir(setDir)
			}
			err := backup.Verify(cmd.Context(), setDir)
			if err != nil {
				return withExitCode(exitCheckFailed, err)
			}
			a.printer.Event("backup_verified", "backup set is intact: "+setDir,
				map[string]string{"dir": setDir})
			return nil
		},
	}
}

func newBackupListCmd(a *app) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the backup sets in the backup directory",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sets, err := backup.List(a.backupDir(dir))
			if err != nil {
				return err
			}
			if a.json {
				for _, s := range sets {
					data := map[string]any{"set": s}
					if s.Err != nil {
						data["error"] = s.Err.Error()
					}
					a.printer.Event("backup_set", "", data)
				}
				return nil
			}
			tw := tabwriter.NewWriter(a.streams.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tCREATED\tTOPOLOGY\tTOOL\tPACKAGES")
			for _, s := range sets {
				if s.Err != nil {
					fmt.Fprintf(tw, "%s\tunreadable: %v\t\t\t\n", s.Name, s.Err)
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.Created.Format("2006-01-02 15:04:05Z"),
					s.Topology, s.ToolVersion, packagesText(s.Packages))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&dir, "backup-dir", "",
		"`DIR` to list (default "+backup.DefaultDir+" under --root)")
	return cmd
}

func packagesText(p map[string]string) string {
	if len(p) == 0 {
		return "unknown"
	}
	parts := make([]string, 0, len(p))
	for name, version := range p {
		parts = append(parts, name+"="+version)
	}
	return strings.Join(parts, ",")
}

func newBackupRestoreCmd(a *app) *cobra.Command {
	var opts backup.RestoreOptions
	var yes bool
	cmd := &cobra.Command{
		Use:   "restore-files ZIP|SET_DIR",
		Short: "Extract a bootstrap zip under --root, as unzip -o -d / does",
		Long: `restore-files extracts a bootstrap zip under --root after checking every
member: names, types, sizes and symbolic links. A rejected or damaged archive
leaves the destination as it was. Given a set directory, or a zip with
manifest.json beside it, the manifest's SHA-256 of every file is checked too,
and symbolic links that point outside /opt/balasys are restored when the
manifest records them.

Run as root, files get the owners stored in the zip; run as the pas user, as
the upgrade guide does, they belong to pas.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			zipPath := args[0]
			if info, err := os.Stat(zipPath); err == nil && info.IsDir() {
				zipPath = filepath.Join(zipPath, backup.ArchiveName)
			}
			if err := confirmRestore(a, yes, fmt.Sprintf("Restore %s into %s?", zipPath, a.root)); err != nil {
				return err
			}
			limitBackupMemory()
			bar := newBackupProgress(a, "restoring")
			defer bar.finish()
			opts.Root = a.root
			opts.Progress = bar.update
			opts.Logger = a.logger
			report, err := backup.Restore(cmd.Context(), zipPath, opts)
			bar.finish()
			if errors.Is(err, backup.ErrUnsafeArchive) || errors.Is(err, backup.ErrLimitExceeded) ||
				errors.Is(err, backup.ErrCorrupt) || errors.Is(err, backup.ErrNotZip) {
				return withExitCode(exitCheckFailed, err)
			}
			if err != nil {
				return err
			}
			for _, l := range report.OutsideLinks {
				a.printer.Warnf("restored /%s -> %s, a link that points outside the PAS tree", l.Name, l.Target)
			}
			a.printer.Event("backup_restored", fmt.Sprintf(
				"restored %d files, %d directories and %d links (%d bytes) into %s; %d skipped",
				report.Files, report.Dirs, report.Links, report.Bytes, a.root, report.Skipped), report)
			return nil
		},
	}
	flags := cmd.Flags()
	flags.BoolVar(&opts.UpdateOnly, "update-only", false,
		"write only files that are missing or older than in the zip, as unzip -u does")
	flags.BoolVar(&opts.AllowOutsideLinks, "allow-outside-links", false,
		"restore symbolic links that point outside /opt/balasys even when no manifest records them")
	flags.BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

// warningsToPrinter returns a logger that prints records of level Warn and
// above as the printer's warnings and passes the others to a.logger. The
// backup library logs each warning it records in the manifest, so the
// CLI shows it once, in its own format.
func (a *app) warningsToPrinter() *slog.Logger {
	return slog.New(printerWarnings{next: a.logger.Handler(), printer: a.printer})
}

// printerWarnings is the slog.Handler of warningsToPrinter. Attributes
// added with WithAttrs are printed too, and groups are ignored.
type printerWarnings struct {
	next    slog.Handler
	printer *printer
	attrs   []slog.Attr
}

func (h printerWarnings) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= slog.LevelWarn || h.next.Enabled(ctx, level)
}

func (h printerWarnings) Handle(ctx context.Context, record slog.Record) error {
	if record.Level < slog.LevelWarn {
		return h.next.Handle(ctx, record)
	}
	text := record.Message
	for _, attr := range h.attrs {
		text += " " + attr.String()
	}
	record.Attrs(func(attr slog.Attr) bool {
		text += " " + attr.String()
		return true
	})
	h.printer.Warnf("%s", text)
	return nil
}

func (h printerWarnings) WithAttrs(attrs []slog.Attr) slog.Handler {
	return printerWarnings{next: h.next.WithAttrs(attrs), printer: h.printer,
		attrs: append(slices.Clone(h.attrs), attrs...)}
}

func (h printerWarnings) WithGroup(name string) slog.Handler {
	return printerWarnings{next: h.next.WithGroup(name), printer: h.printer, attrs: h.attrs}
}

// backupProgress draws a byte progress bar from the library's progress
// reports. The bar starts with the first report, which carries the total.
type backupProgress struct {
	a     *app
	label string
	bar   progress
}

func newBackupProgress(a *app, label string) *backupProgress {
	return &backupProgress{a: a, label: label}
}

func (p *backupProgress) update(pr backup.Progress) {
	if p.bar == nil {
		p.bar = p.a.printer.Progress(p.label, pr.TotalBytes, true)
	}
	p.bar.Set(pr.Bytes)
}

func (p *backupProgress) finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}

// confirmRestore prompts for confirmation unless yes is set. Without a
// terminal it fails and names the flag to pass.
func confirmRestore(a *app, yes bool, question string) error {
	return confirm(a, yes, question,
		fmt.Sprintf("restore-files overwrites files under %s", a.root), "restore cancelled")
}

// backupMemoryLimit is the soft heap limit for backup and restore. The
// library keeps its working set to a few tens of MiB, and the limit makes
// the garbage collector run before the heap doubles past it.
const backupMemoryLimit = 48 << 20

// limitBackupMemory sets backupMemoryLimit unless GOMEMLIMIT sets a limit.
func limitBackupMemory() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(backupMemoryLimit)
	}
}

// installedPASVersions returns the versions of the installed PAS packages
// for the manifest. They are informative only, so a failed query (no dpkg
// database under --root, for example) is logged and yields none.
func installedPASVersions(ctx context.Context, a *app) map[string]string {
	statuses, err := packageManager(a).Installed(ctx, deb.SetNames()...)
	if err != nil {
		a.logger.Debug("backup: PAS package versions unknown", "err", err)
		return nil
	}
	versions := map[string]string{}
	for _, st := range statuses {
		if st.Version != "" {
			versions[st.Name] = st.Version
		}
	}
	return versions
}
