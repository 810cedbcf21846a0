package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pasops/pasupgrade/configconv"
)

func init() { register(newEditCmd) }

func newEditCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "edit",
		Short: "Make one of the upgrade's file edits by hand",
		Long: `The edit commands change the files a multi node upgrade changes by hand,
touching nothing else in them: DOCKER_IMAGE_TAG in the three
docker-compose.conf files, the package paths and image tag in
common_vars.yml, and the modes of the storage certificates.

Every path is resolved under --root. With --dry-run a command prints a
unified diff (or the list of mode changes) and writes nothing. Files are
replaced atomically and keep their mode and owner.`,
	}
	cmd.AddCommand(newEditImageTagCmd(a), newEditCommonVarsCmd(a), newEditCertModesCmd(a))
	return cmd
}

// editFlags are the flags every edit command shares.
type editFlags struct {
	dryRun bool
	yes    bool
}

func addEditFlags(cmd *cobra.Command, f *editFlags) {
	cmd.Flags().BoolVar(&f.dryRun, "dry-run", false, "print the changes without writing them")
	cmd.Flags().BoolVarP(&f.yes, "yes", "y", false, "do not ask for confirmation")
}

func newEditImageTagCmd(a *app) *cobra.Command {
	var (
		f  editFlags
		to string
	)
	cmd := &cobra.Command{
		Use:   "image-tag --to VERSION",
		Short: "Set DOCKER_IMAGE_TAG in the pas, mgmt and storage docker-compose.conf files",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			paths := make([]string, len(configconv.ComposeConfPaths))
			for i, path := range configconv.ComposeConfPaths {
				paths[i] = a.pasPath(path)
			}
			edits, err := configconv.PlanImageTag(paths, to)
			if err != nil {
				return usageErrorIfInvalid(err)
			}
			return a.applyFileEdits(f, edits)
		},
	}
	addEditFlags(cmd, &f)
	cmd.Flags().StringVar(&to, "to", "", "image `TAG` to set, such as 4.9.0 (required)")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

func newEditCommonVarsCmd(a *app) *cobra.Command {
	var (
		f      editFlags
		to     string
		debDir string
	)
	cmd := &cobra.Command{
		Use:   "common-vars --to VERSION --deb-dir DIR",
		Short: "Set the package paths and image tag in common_vars.yml",
		Long: `common-vars sets storage_deb_path and core_deb_path to the VERSION packages in
DIR (proxedo-api-security-storage_VERSION_all.deb and
proxedo-api-security_VERSION_all.deb) and common.docker.PAS_IMAGE_TAG to
VERSION in /opt/balasys/etc/automation/common_vars.yml. DIR is a path on
this node, where the deployment tool finds the packages, so it is not
resolved under --root; both packages must exist there.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !filepath.IsAbs(debDir) {
				return usageErrorf("invalid --deb-dir %q: give an absolute path, because the deployment tool reads it on the node", debDir)
			}
			vars := configconv.CommonVarsFor(to, debDir)
			for _, path := range []string{vars.StorageDebPath, vars.CoreDebPath} {
				if _, err := os.Stat(path); err != nil {
					return usageErrorf("invalid --deb-dir %q: %v; put the %s packages there", debDir, err, to)
				}
			}
			edit, err := configconv.PlanCommonVars(a.pasPath(configconv.CommonVarsPath), vars)
			if err != nil {
				return usageErrorIfInvalid(err)
			}
			return a.applyFileEdits(f, []configconv.FileEdit{edit})
		},
	}
	addEditFlags(cmd, &f)
	cmd.Flags().StringVar(&to, "to", "", "`VERSION` of the packages and image, such as 4.9.0 (required)")
	cmd.Flags().StringVar(&debDir, "deb-dir", "", "absolute `DIR` holding the .deb files (required)")
	_ = cmd.MarkFlagRequired("to")
	_ = cmd.MarkFlagRequired("deb-dir")
	return cmd
}

func newEditCertModesCmd(a *app) *cobra.Command {
	var f editFlags
	cmd := &cobra.Command{
		Use:   "cert-modes",
		Short: "Make the storage certificates readable by their owner only (chmod 600)",
		Long: `cert-modes sets mode 600 on every regular *.pem file under
/opt/balasys/etc/storage, as find "/opt/balasys/etc/storage/" -type f
-name '*.pem' -exec chmod 600 {} + does. The directory may be a symbolic
link, but symbolic links inside it are neither followed nor changed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir := a.pasPath(configconv.StorageConfigDir)
			changes, err := configconv.PlanCertModes(dir)
			if err != nil {
				return err
			}
			for _, c := range changes {
				a.printer.Event("mode_change", c.String(), map[string]any{
					"path": c.Path, "from": fmt.Sprintf("%04o", c.From.Perm()), "to": fmt.Sprintf("%04o", c.To.Perm()),
					"dry_run": f.dryRun,
				})
			}
			if len(changes) == 0 {
				a.printer.Infof("every certificate under %s already has mode %o", dir, configconv.CertMode)
				return nil
			}
			if f.dryRun {
				a.printer.Infof("dry run: %d mode changes not made", len(changes))
				return nil
			}
			if err := confirmEdit(a, f.yes, fmt.Sprintf("Change the mode of %d certificates?", len(changes))); err != nil {
				return err
			}
			if err := configconv.ApplyModeChanges(dir, changes); err != nil {
				return err
			}
			a.printer.Infof("changed the mode of %d certificates", len(changes))
			return nil
		},
	}
	addEditFlags(cmd, &f)
	return cmd
}

// applyFileEdits prints the diff of every edit that changes its file, then
// writes them unless this is a dry run.
func (a *app) applyFileEdits(f editFlags, edits []configconv.FileEdit) error {
	var changed []configconv.FileEdit
	for _, e := range edits {
		if !e.Changed() {
			a.printer.Infof("%s already up to date", e.Path)
			continue
		}
		changed = append(changed, e)
		a.printer.Event("file_diff", strings.TrimSuffix(e.Diff(), "\n"), map[string]any{
			"path": e.Path, "diff": e.Diff(), "dry_run": f.dryRun,
		})
	}
	if len(changed) == 0 || f.dryRun {
		if f.dryRun && len(changed) > 0 {
			a.printer.Infof("dry run: %d files not written", len(changed))
		}
		return nil
	}
	if err := confirmEdit(a, f.yes, fmt.Sprintf("Write the changes to %d files?", len(changed))); err != nil {
		return err
	}
	// ApplyEdits stages every file before it replaces any, so a changed
	// file or a failed write leaves all of them as they were.
	if err := configconv.ApplyEdits(changed); err != nil {
		return err
	}
	for _, e := range changed {
		a.printer.Event("file_written", "updated "+e.Path, map[string]any{"path": e.Path})
	}
	return nil
}

// confirmEdit prompts with question on the terminal unless yes is set.
// Without a terminal it fails with the flags to pass instead of prompting.
func confirmEdit(a *app, yes bool, question string) error {
	if !yes && !a.streams.InIsTerminal {
		return usageErrorf("this command changes files: pass --yes to confirm when stdin is not a terminal, " +
			"or --dry-run to see the changes")
	}
	return confirmChange(a, yes, question)
}

// usageErrorIfInvalid makes an invalid tag or value a usage error. Other
// errors, such as a missing file, keep the general failure code.
func usageErrorIfInvalid(err error) error {
	if errors.Is(err, configconv.ErrInvalidValue) {
		return withExitCode(exitUsage, err)
	}
	return err
}
