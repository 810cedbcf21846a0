package pasupgrade

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pasops/pasupgrade/runner"
)

// Step ids that plans share. Callers use them with InsertBefore and
// InsertAfter.
const (
	StepBackup          = "backup"
	StepCheckLocal      = "check-local-services"
	StepCheckRemote     = "check-remote-services"
	StepPreUpgrade      = "pre-upgrade"
	StepConvertConfig   = "convert-config"
	StepInstall         = "install-packages"
	StepCheckConverted  = "check-converted-config"
	StepEditCommonVars  = "edit-common-vars"
	StepRestrictPEM     = "restrict-pem-modes"
	StepDeployStorage   = "deploy-remote-storage"
	StepPostUpgrade     = "post-upgrade"
	StepDeployCore      = "deploy-remote-core"
	StepDeployHA        = "deploy-remote-ha"
	StepVerifyVersions  = "verify-versions"
	StepReapplyFailed   = "reapply-failed-nodes"
	StepCopyBackup      = "copy-backup-aside"
	StepLoadAccess      = "load-remote-access"
	StepStopRemote      = "stop-remote-services"
	StepPurge           = "purge-packages"
	StepPurgeRemote     = "purge-remote-packages"
	StepRemoveUser      = "remove-pas-user"
	StepReinstall       = "reinstall-packages"
	StepRestoreZip      = "restore-bootstrap"
	StepImportConfig    = "import-running-config"
	StepApplyConfig     = "apply-running-config"
	stepStopCore        = "stop-core"
	stepStartCore       = "start-core"
	stepSetImageTagStem = "set-image-tag-"
)

func backupStep(section string) Step {
	return Step{
		ID: StepBackup, Title: "Back up the bootstrap files and the running configuration",
		Section: section, User: UserRoot, Slow: true,
		Action:  "zip the bootstrap files, export the running configuration, verify the set",
		Changes: "writes a new backup set",
		Run: func(ctx context.Context, e *Env) error {
			dir := e.Options.BackupDir
			if dir == "" {
				dir = DefaultBackupDir
			}
			set, err := e.Deps.Backup.Create(ctx, BackupRequest{
				Dir: dir, Multi: e.Options.multi(), ExportRunning: e.Deps.API.ExportRunning,
			})
			if err != nil {
				return fmt.Errorf("creating the backup set in %s: %w", dir, err)
			}
			if err := e.Deps.Backup.Verify(ctx, set); err != nil {
				return fmt.Errorf("verifying the new backup set %s: %w", set, err)
			}
			e.State.BackupSet = set
			if !e.DryRun {
				// A dry run already reported the set it would write.
				e.Infof("backup set %s written and verified", set)
			}
			return nil
		},
		Done: func(ctx context.Context, e *Env) (bool, error) {
			if e.State.BackupSet == "" {
				return false, nil
			}
			return e.Deps.Backup.Verify(ctx, e.State.BackupSet) == nil, nil
		},
	}
}

func preUpgradeStep(section string, path UpgradePath) Step {
	return toolStep(StepPreUpgrade, "Export the running configuration with the upgrade tool",
		section, path, "pre-upgrade", path.ExportFile, UpgradeTool.PreUpgrade)
}

func convertStep(section string, path UpgradePath) Step {
	return toolStep(StepConvertConfig, "Convert the configuration for the new version",
		section, path, "convert-config", path.ConvertedFile, UpgradeTool.ConvertConfig)
}

// toolStep runs a subcommand of the tool's image as pas; the step is done
// once the file it writes exists in the work directory.
func toolStep(id, title, section string, path UpgradePath, sub, writes string,
	run func(UpgradeTool, context.Context, ToolRequest) error) Step {
	return Step{
		ID: id, Title: title, Section: section, User: UserPAS,
		Action:  fmt.Sprintf("docker run %s %s (in the work directory)", path.ToolImage, sub),
		Changes: "writes " + writes + " in the work directory",
		Run: func(ctx context.Context, e *Env) error {
			return run(e.Deps.Tool, ctx, e.toolRequest())
		},
		Done: fileExists(func(e *Env) string { return filepath.Join(e.Options.WorkDir, writes) }),
	}
}

func installStep(section string, path UpgradePath, opts Options) Step {
	answers := "overwrite-config=yes"
	if opts.multi() {
		answers = "overwrite-config=no"
	}
	if !opts.KeepPasswordHash {
		answers += ", admin password re-entered for bcrypt"
	}
	return Step{
		ID: StepInstall, Title: "Install the " + path.To + " packages",
		Section: section, User: UserRoot, Slow: true,
		Action:  fmt.Sprintf("dpkg -i %s (%s; conffiles: keep installed)", strings.Join(path.LocalPackages(opts), " "), answers),
		Changes: "upgrades the PAS packages to " + path.To,
		Run: func(ctx context.Context, e *Env) error {
			return installPackages(ctx, e, e.Path.To, installAnswers(e))
		},
		Done: packagesAt(func(e *Env) string { return e.Path.To }),
	}
}

// installAnswers returns the debconf answers for the To packages in the
// plan's topology.
func installAnswers(e *Env) []DebconfAnswer {
	var answers []DebconfAnswer
	local := e.Path.LocalPackages(e.Options)
	for _, q := range e.Path.Questions {
		if !slices.Contains(local, q.Package) {
			continue
		}
		value := q.Single
		if e.Options.multi() {
			value = q.Multi
		}
		if q.Secret {
			if e.Options.KeepPasswordHash || e.password() == "" {
				continue
			}
			value = e.password()
		}
		answers = append(answers, DebconfAnswer{
			Package: q.Package, Question: q.Package + "/" + q.Name,
			Type: q.Type, Value: value, Secret: q.Secret,
		})
	}
	return answers
}

func installPackages(ctx context.Context, e *Env, version string, answers []DebconfAnswer) error {
	files, err := e.Deps.Packages.CheckSet(ctx, e.Options.DebDir, e.Path.Packages, version)
	if err != nil {
		return fmt.Errorf("checking the %s packages in %s: %w", version, e.Options.DebDir, err)
	}
	req := InstallRequest{Version: version, Answers: answers}
	for _, pkg := range e.Path.LocalPackages(e.Options) {
		req.Files = append(req.Files, files[pkg])
	}
	return e.Deps.Packages.Install(ctx, req)
}

func checkConvertedStep(section string, path UpgradePath) Step {
	return Step{
		ID: StepCheckConverted, Title: "Verify that the converted configuration exists",
		Section: section, User: UserPAS,
		Action: "test -s " + path.ConvertedFile,
		Run: func(ctx context.Context, e *Env) error {
			name := filepath.Join(e.Options.WorkDir, e.Path.ConvertedFile)
			info, err := e.Deps.Files.Stat(ctx, name)
			if err != nil {
				return fmt.Errorf("the converted configuration %s is missing: run convert-config again (%w)", name, err)
			}
			if info.Size() == 0 {
				return fmt.Errorf("the converted configuration %s is empty: run convert-config again", name)
			}
			return nil
		},
	}
}

// commandStep runs one command as the pas user, such as pas-update.
func commandStep(id, title, section, changes string, argv ...string) Step {
	return Step{
		ID: id, Title: title, Section: section, User: UserPAS,
		Action: strings.Join(argv, " "), Changes: changes,
		Run: func(ctx context.Context, e *Env) error {
			return e.RunAs(ctx, UserPAS, argv...)
		},
	}
}

func restrictPEMStep(section string) Step {
	argv := []string{"find", StorageEtc, "-type", "f", "-name", "*.pem", "-exec", "chmod", "600", "{}", "+"}
	s := commandStep(StepRestrictPEM, "Make the storage certificates readable by their owner only",
		section, "sets mode 0600 on "+StorageEtc+"**/*.pem", argv...)
	s.Action = `find "` + StorageEtc + `" -type f -name '*.pem' -exec chmod 600 {} +`
	return s
}

// serviceStep stops, starts or restarts a local unit with systemctl.
func serviceStep(verb, unit, section string) Step {
	id := verb + "-" + unitShortName(unit)
	s := Step{
		ID: id, Title: fmt.Sprintf("%s %s", titleCase(verb), unit), Section: section, User: UserRoot,
		Action:  fmt.Sprintf("systemctl %s %s", verb, unit),
		Changes: fmt.Sprintf("%ss the %s service", verb, unit),
	}
	switch verb {
	case "start":
		s.Run = func(ctx context.Context, e *Env) error { return e.Deps.Services.Start(ctx, unit) }
		s.Done = unitActive(unit, true)
	case "stop":
		s.Run = func(ctx context.Context, e *Env) error { return e.Deps.Services.Stop(ctx, unit) }
		s.Done = unitActive(unit, false)
	default:
		s.Run = func(ctx context.Context, e *Env) error { return e.Deps.Services.Restart(ctx, unit) }
	}
	return s
}

func unitShortName(unit string) string {
	switch unit {
	case UnitCore:
		return "core"
	case UnitMgmt:
		return "mgmt"
	case UnitStorage:
		return "storage"
	case UnitHA:
		return "ha"
	}
	return unit
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func postUpgradeStep(section string, path UpgradePath, opts Options) Step {
	timeout := int(opts.applyTimeout(path).Seconds())
	return Step{
		ID: StepPostUpgrade, Title: "Upload and apply the converted configuration",
		Section: section, User: UserPAS,
		Action:  fmt.Sprintf("pas-mgmt-upgrade-config post-upgrade --config-apply-timeout %d (in the work directory)", timeout),
		Changes: "replaces the running configuration with " + path.ConvertedFile,
		Run: func(ctx context.Context, e *Env) error {
			return e.Deps.Tool.PostUpgrade(ctx, e.toolRequest(), e.Options.applyTimeout(e.Path))
		},
	}
}

func deployStep(id, title, section, changes string, args ...string) Step {
	return Step{
		ID: id, Title: title, Section: section, User: UserPAS,
		Action:  "pas-mgmt-deploy-core " + strings.Join(args, " "),
		Changes: changes,
		Run: func(ctx context.Context, e *Env) error {
			return e.Deps.Remote.Deploy(ctx, args...)
		},
	}
}

// setImageTagStep sets the image tag in one docker-compose.conf. A file of
// a component whose package the node does not carry may be missing, and is
// then skipped.
func setImageTagStep(section string, path UpgradePath, file ComposeFile) Step {
	edit := func(ctx context.Context, e *Env, write bool) (bool, error) {
		if !slices.Contains(e.Path.LocalPackages(e.Options), file.Package) {
			if _, err := e.Deps.Files.Stat(ctx, file.Path); errors.Is(err, fs.ErrNotExist) {
				if write {
					e.Infof("%s is missing and %s is not installed here: nothing to set", file.Path, file.Package)
				}
				return true, nil
			}
		}
		return editFile(ctx, e, file.Path, write, func(data []byte) ([]byte, error) {
			return e.Deps.Editor.SetEnv(data, e.Path.ImageTagKey, e.Path.To)
		})
	}
	return Step{
		ID:      stepSetImageTagStem + file.Component,
		Title:   fmt.Sprintf("Set %s to %s for %s", path.ImageTagKey, path.To, file.Component),
		Section: section, User: UserPAS,
		Action:  fmt.Sprintf("edit %s: %s=%s", file.Path, path.ImageTagKey, path.To),
		Changes: "edits " + file.Path,
		Run: func(ctx context.Context, e *Env) error {
			_, err := edit(ctx, e, true)
			return err
		},
		Done: func(ctx context.Context, e *Env) (bool, error) { return edit(ctx, e, false) },
	}
}

// commonVarsStep points common_vars.yml at the To .deb files in the deb
// directory, where the deployment tool copies them to the remote nodes from,
// and sets the image tag.
func commonVarsStep(section string, path UpgradePath) Step {
	keys := make([]string, 0, len(path.CommonVarsDebKeys)+1)
	for _, k := range sortedKeys(path.CommonVarsDebKeys) {
		keys = append(keys, k+"=<deb-dir>/"+DebFile(path.CommonVarsDebKeys[k], path.To))
	}
	keys = append(keys, strings.Join(path.CommonVarsTagKey, ".")+"="+path.To)
	edit := func(ctx context.Context, e *Env, write bool) (bool, error) {
		files, err := e.Deps.Packages.CheckSet(ctx, e.Options.DebDir, e.Path.Packages, e.Path.To)
		if err != nil {
			return false, fmt.Errorf("finding the %s packages in %s: %w", e.Path.To, e.Options.DebDir, err)
		}
		return editFile(ctx, e, CommonVarsPath, write, func(data []byte) ([]byte, error) {
			return editCommonVars(e, data, files)
		})
	}
	return Step{
		ID: StepEditCommonVars, Title: "Point the deployment tool at the new packages and image tag",
		Section: section, User: UserPAS,
		Action:  fmt.Sprintf("edit %s: %s", CommonVarsPath, strings.Join(keys, ", ")),
		Changes: "edits " + CommonVarsPath,
		Run: func(ctx context.Context, e *Env) error {
			_, err := edit(ctx, e, true)
			return err
		},
		Done: func(ctx context.Context, e *Env) (bool, error) { return edit(ctx, e, false) },
	}
}

// editCommonVars sets the .deb paths to files, the To packages by name,
// and the image tag.
func editCommonVars(e *Env, data []byte, files map[string]string) ([]byte, error) {
	var err error
	for _, key := range sortedKeys(e.Path.CommonVarsDebKeys) {
		data, err = e.Deps.Editor.SetYAML(data, []string{key}, files[e.Path.CommonVarsDebKeys[key]])
		if err != nil {
			return nil, fmt.Errorf("setting %s: %w", key, err)
		}
	}
	data, err = e.Deps.Editor.SetYAML(data, e.Path.CommonVarsTagKey, e.Path.To)
	if err != nil {
		return nil, fmt.Errorf("setting %s: %w", strings.Join(e.Path.CommonVarsTagKey, "."), err)
	}
	return data, nil
}

// editFile applies edit to the file at path. With write set, it writes a
// changed result as the pas user's file. Without write, it only reports
// whether the file already has the edit, which is true when nothing would
// change.
func editFile(ctx context.Context, e *Env, path string, write bool, edit func([]byte) ([]byte, error)) (bool, error) {
	old, err := e.Deps.Files.ReadFile(ctx, path)
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", path, err)
	}
	updated, err := edit(old)
	if err != nil {
		return false, fmt.Errorf("editing %s: %w", path, err)
	}
	if bytes.Equal(old, updated) {
		if write {
			e.Infof("%s already up to date", path)
		}
		return true, nil
	}
	if !write {
		return false, nil
	}
	if err := e.Deps.Files.WriteFile(ctx, path, updated, UserPAS); err != nil {
		return false, fmt.Errorf("writing %s: %w", path, err)
	}
	return false, nil
}

func fileExists(name func(*Env) string) func(context.Context, *Env) (bool, error) {
	return func(ctx context.Context, e *Env) (bool, error) {
		info, err := e.Deps.Files.Stat(ctx, name(e))
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		return info.Size() > 0, nil
	}
}

func packagesAt(version func(*Env) string) func(context.Context, *Env) (bool, error) {
	return func(ctx context.Context, e *Env) (bool, error) {
		local := e.Path.LocalPackages(e.Options)
		installed, err := e.Deps.Packages.Installed(ctx, local)
		if err != nil {
			return false, err
		}
		for _, pkg := range local {
			st, ok := installed[pkg]
			if !ok || !st.OK() || st.Version != version(e) {
				return false, nil
			}
		}
		return true, nil
	}
}

func unitActive(unit string, want bool) func(context.Context, *Env) (bool, error) {
	return func(ctx context.Context, e *Env) (bool, error) {
		active, err := e.Deps.Services.IsActive(ctx, unit)
		return active == want, err
	}
}

// commandExitCode returns the exit code of a command error, 0 for nil and
// -1 for an error that is not an exit status.
func commandExitCode(err error) int {
	var exit *runner.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitCode
	}
	return -1
}
