package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/pasops/pasupgrade/pasupgrade"
)

// planFlags are the settings of plan, preflight, upgrade and restore. Every
// one is a flag, and every flag except --config can also be set in the
// --config file under the flag's name; a flag given on the command line
// overrides the file.
type planFlags struct {
	mgmt mgmtFlags

	config       string
	topology     string
	ha           bool
	coreOnMgmt   bool
	workDir      string
	debDir       string
	backupDir    string
	keepHash     bool
	keepPEMModes bool
	applyTimeout time.Duration
	ignoreChecks []string
	toolImage    string
	answersFile  string
	transcript   string
	dryRun       bool
	yes          bool
	resume       bool
	newRun       bool

	// restoreSet is the --backup of plan and preflight, which also have
	// the upgrade's --backup-dir. It is kept apart from backupDir so that
	// a backup-dir setting in the config file does not replace it.
	restoreSet     string
	restoreSetFlag bool
}

// addPlanFlags adds the flags every plan command shares. restore is set for
// the restore command, whose --backup names the set to restore.
func addPlanFlags(cmd *cobra.Command, f *planFlags, restore bool) {
	addMgmtFlags(cmd, &f.mgmt)
	flags := cmd.Flags()
	flags.StringVar(&f.config, "config", "", "YAML `FILE` with settings named like these flags; flags override it, and relative paths in it are relative to its directory")
	flags.StringVar(&f.topology, "topology", "single", "installation `TOPOLOGY`: single or multi")
	flags.BoolVar(&f.ha, "ha", false, "the HA component runs (multi node only)")
	flags.BoolVar(&f.coreOnMgmt, "core-on-mgmt", false, "core also runs on the management node (multi node only)")
	flags.StringVar(&f.workDir, "work-dir", "", "`DIR` for the upgrade tool's files, the journal and the transcript (default: the current directory; for restore, the backup set's parent)")
	flags.StringVar(&f.debDir, "deb-dir", "", "`DIR` holding the .deb files to install: 4.9.0 for upgrade, 4.8.0 for restore (default: the work directory)")
	if restore {
		flags.StringVar(&f.backupDir, "backup", "", "backup set `DIR` to restore (required)")
		// The upgrade's setting, accepted so that one config file serves
		// both commands; the restore reads the set named by --backup.
		var upgradeBackupDir string
		flags.StringVar(&upgradeBackupDir, "backup-dir", "", "ignored by restore")
		_ = flags.MarkHidden("backup-dir")
	} else {
		flags.StringVar(&f.backupDir, "backup-dir", pasupgrade.DefaultBackupDir, "`DIR` that receives the backup set; outside /opt/balasys")
	}
	flags.BoolVar(&f.keepHash, "keep-password-hash", false, "do not re-enter the admin password during the install, keeping the {SHA} hash instead of bcrypt")
	flags.BoolVar(&f.keepPEMModes, "keep-pem-modes", false, "do not restrict the storage certificates to mode 0600")
	flags.DurationVar(&f.applyTimeout, "apply-timeout", 20*time.Second, "how long post-upgrade and config applies wait for the apply (`DURATION`)")
	flags.StringSliceVar(&f.ignoreChecks, "ignore-check", nil, "preflight check `NAME` whose failure is only a warning (repeatable)")
	flags.StringVar(&f.toolImage, "tool-image", pasupgrade.Upgrade480To490.ToolImage, "upgrade tool `IMAGE`")
	flags.StringVar(&f.answersFile, "answers-file", "", "`FILE` with one answer line per convert-config prompt, for runs without a terminal")
	flags.StringVar(&f.transcript, "transcript", "", "`FILE` that receives every command and its output, secrets redacted (default: pasupgrade-transcript.log in the work directory)")
	flags.BoolVar(&f.dryRun, "dry-run", false, "print every command, file change and API call that would happen, and change nothing")
	flags.BoolVar(&f.yes, "yes", false, "do not ask for confirmation before the first change")
	flags.BoolVar(&f.resume, "resume", false, "continue the run recorded in the work directory's journal")
	flags.BoolVar(&f.newRun, "new-run", false, "start afresh although the journal records an unfinished run, keeping that journal under a dated name (for a node restored since)")
}

// addRestoreFlags adds --restore and --backup to plan and preflight, whose
// other flags are the upgrade's.
func addRestoreFlags(cmd *cobra.Command, f *planFlags, restore *bool, usage string) {
	cmd.Flags().BoolVar(restore, "restore", false, usage)
	cmd.Flags().StringVar(&f.restoreSet, "backup", "", "backup set `DIR` of the restore (with --restore)")
	f.restoreSetFlag = true
}

// pathSettings are the --config settings that name files or directories.
// A relative path there is relative to the config file's directory, so the
// file means the same wherever the CLI starts.
var pathSettings = map[string]bool{
	"work-dir": true, "deb-dir": true, "backup": true, "backup-dir": true, "answers-file": true,
	"transcript": true, "cacert": true, "password-file": true,
}

// loadConfigFile applies the --config file to every flag of cmd that was not
// given on the command line. Keys are flag names; lists set repeatable
// flags. A duration given as a bare number, such as "apply-timeout: 20",
// is in seconds, as in the upgrade guide. An unknown key is a usage error
// naming it.
func loadConfigFile(cmd *cobra.Command, path string) error {
	if path == "" {
		return nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return usageErrorf("invalid --config %q: %v", path, err)
	}
	base := filepath.Dir(abs)
	data, err := os.ReadFile(path)
	if err != nil {
		return usageErrorf("reading --config: %v", err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(data, &values); err != nil {
		return usageErrorf("parsing --config %s: %v", path, err)
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		flag := cmd.Flags().Lookup(key)
		if flag == nil || key == "config" {
			return usageErrorf("--config %s: unknown setting %q; settings are named like the flags of %q", path, key, cmd.CommandPath())
		}
		if flag.Changed {
			continue
		}
		value := values[key]
		if p, ok := value.(string); ok && pathSettings[key] && p != "" && !filepath.IsAbs(p) {
			value = filepath.Join(base, p)
		}
		if n, ok := value.(int); ok && flag.Value.Type() == "duration" {
			value = fmt.Sprintf("%ds", n)
		}
		if err := setFlag(flag, value); err != nil {
			return usageErrorf("--config %s: setting %q: %v", path, key, err)
		}
	}
	return nil
}

func setFlag(flag *pflag.Flag, value any) error {
	items, isList := value.([]any)
	if !isList {
		items = []any{value}
	}
	for _, item := range items {
		switch item.(type) {
		case map[string]any, []any, nil:
			return fmt.Errorf("want a scalar or a list of scalars, not %v", item)
		}
		if err := flag.Value.Set(fmt.Sprint(item)); err != nil {
			return err
		}
	}
	return nil
}

// options builds the library's options from the flags.
func (f *planFlags) options(a *app, restore bool) (pasupgrade.Options, error) {
	opts := pasupgrade.Options{
		Topology: pasupgrade.Topology(f.topology), HA: f.ha, CoreOnMgmt: f.coreOnMgmt,
		BackupDir: f.backupDir, BaseURL: f.mgmt.url, CACert: f.mgmt.cacert, AdminUser: f.mgmt.user,
		KeepPasswordHash: f.keepHash, KeepPEMModes: f.keepPEMModes, ApplyTimeout: f.applyTimeout,
		IgnoreChecks: f.ignoreChecks, Interactive: a.streams.InIsTerminal,
	}
	if restore && f.backupDir == "" {
		return opts, usageErrorf("restore needs --backup DIR, the backup set to restore")
	}
	if opts.BackupDir != "" {
		abs, err := filepath.Abs(opts.BackupDir)
		if err != nil {
			return opts, usageErrorf("invalid backup directory %q: %v", opts.BackupDir, err)
		}
		opts.BackupDir = abs
	}
	work := f.workDir
	switch {
	case work == "" && restore:
		work = filepath.Dir(opts.BackupDir)
	case work == "":
		work = "."
	}
	abs, err := filepath.Abs(work)
	if err != nil {
		return opts, usageErrorf("invalid --work-dir %q: %v", work, err)
	}
	opts.WorkDir = abs
	opts.DebDir = f.debDir
	if opts.DebDir == "" {
		opts.DebDir = opts.WorkDir
	}
	if opts.CACert != "" && !filepath.IsAbs(opts.CACert) {
		opts.CACert = filepath.Join(opts.WorkDir, opts.CACert)
	}
	unknown := slices.DeleteFunc(slices.Clone(f.ignoreChecks), func(name string) bool { return slices.Contains(checkNames, name) })
	if len(unknown) > 0 {
		return opts, usageErrorf("unknown --ignore-check %s; the checks are %s", strings.Join(unknown, ", "), strings.Join(checkNames, ", "))
	}
	if err := opts.Validate(restore); err != nil {
		return opts, usageErrorf("%v", err)
	}
	return opts, nil
}

// checkNames are the preflight checks --ignore-check accepts.
var checkNames = []string{
	pasupgrade.CheckRoot, pasupgrade.CheckPASUser, pasupgrade.CheckPackages, pasupgrade.CheckDebSet,
	pasupgrade.CheckServices, pasupgrade.CheckAPI, pasupgrade.CheckToolImage, pasupgrade.CheckCABundle,
	pasupgrade.CheckWorkDir, pasupgrade.CheckBackupSpace, pasupgrade.CheckSSHKey, pasupgrade.CheckInventory,
	pasupgrade.CheckCommonVars, pasupgrade.CheckRemoteNodes, pasupgrade.CheckBackupSet, pasupgrade.CheckAdminLogin,
}

// upgradePath returns the upgrade path with the tool image of the flags.
func (f *planFlags) upgradePath() pasupgrade.UpgradePath {
	path := pasupgrade.Upgrade480To490
	path.ToolImage = f.toolImage
	return path
}

// buildPlan loads the config file and builds the upgrade or restore plan.
func (f *planFlags) buildPlan(cmd *cobra.Command, a *app, restore bool) (*pasupgrade.Plan, error) {
	if f.resume && f.newRun {
		return nil, usageErrorf("--resume continues the recorded run and --new-run starts another one: give one of them")
	}
	if err := loadConfigFile(cmd, f.config); err != nil {
		return nil, err
	}
	if f.restoreSetFlag {
		switch {
		case restore:
			f.backupDir = f.restoreSet
		case f.restoreSet != "":
			return nil, usageErrorf("--backup names the backup set to restore: add --restore, or give --backup-dir for the upgrade's backup")
		}
	}
	opts, err := f.options(a, restore)
	if err != nil {
		return nil, err
	}
	var plan *pasupgrade.Plan
	if restore {
		plan, err = pasupgrade.NewRestorePlan(f.upgradePath(), opts)
	} else {
		plan, err = pasupgrade.NewUpgradePlan(f.upgradePath(), opts)
	}
	if errors.Is(err, pasupgrade.ErrInvalidOptions) {
		return nil, usageErrorf("%v", err)
	}
	return plan, err
}
