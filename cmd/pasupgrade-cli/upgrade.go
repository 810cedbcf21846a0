package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pasops/pasupgrade/configconv"
	"github.com/pasops/pasupgrade/deb"
	"github.com/pasops/pasupgrade/pasupgrade"
	"github.com/pasops/pasupgrade/runner"
)

// TranscriptFile is the transcript's name in the work directory.
const transcriptFile = "pasupgrade-transcript.log"

func init() { register(newUpgradeCmd) }

func newUpgradeCmd(a *app) *cobra.Command {
	var f planFlags
	cmd := &cobra.Command{
		Use:   "upgrade",
		Short: "Upgrade PAS from 4.8.0 to 4.9.0 as the vendor's guide describes",
		Long: `upgrade runs the preflight checks, backs up the bootstrap files and the
running configuration into a verified backup set, and then runs every step of
the guide's upgrade for the topology, in order (see "pasupgrade-cli plan").

Before the first change it asks for confirmation, unless --yes or --dry-run
is given; without a terminal it fails instead of asking. A journal in the work
directory records every step, so an interrupted or failed run continues with
--resume. On failure the exact commands to resume or to restore are printed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPlanCmd(cmd, a, &f, false)
		},
	}
	addPlanFlags(cmd, &f, false)
	return cmd
}

// runPlanCmd runs the upgrade or restore plan of the flags and renders it.
func runPlanCmd(cmd *cobra.Command, a *app, f *planFlags, restore bool) error {
	ctx := cmd.Context()
	plan, err := f.buildPlan(cmd, a, restore)
	if err != nil {
		return err
	}
	if err := checkConfirmable(a, f); err != nil {
		return err
	}
	deps, closeDeps, err := newDeps(ctx, a, f, plan)
	if err != nil {
		return err
	}
	defer closeDeps()

	view := newEventView(a, len(plan.Steps))
	defer view.finish()
	// The summary reaches the operator as an event, so the returned copy
	// is not needed here.
	_, err = pasupgrade.Run(ctx, plan, deps, pasupgrade.RunConfig{
		Resume: f.resume, NewRun: f.newRun, DryRun: f.dryRun, ToolVersion: toolVersion(),
		NodeLock: a.pasPath(pasupgrade.DefaultNodeLock),
		Events:   holding(view.render, a.streams.ErrOut), Confirm: confirmer(a, f), Logger: a.logger,
	})
	view.finish()
	if err != nil {
		return explainFailure(cmd, a, f, plan, err)
	}
	return nil
}

// checkConfirmable fails before anything runs when the run would have to
// ask for confirmation but cannot.
func checkConfirmable(a *app, f *planFlags) error {
	if f.yes || f.dryRun || a.streams.InIsTerminal {
		return nil
	}
	return usageErrorf("standard input is not a terminal, so there is no one to confirm the changes: pass --yes to run without confirmation, or --dry-run to only see them")
}

// confirmer returns the prompt that runs on the terminal before the first
// change, or nil with --yes or --dry-run.
func confirmer(a *app, f *planFlags) func(context.Context, *pasupgrade.Plan) error {
	if f.yes || f.dryRun {
		return nil
	}
	return func(_ context.Context, plan *pasupgrade.Plan) error {
		if !a.streams.InIsTerminal {
			return usageErrorf("no terminal to confirm on: pass --yes")
		}
		fmt.Fprintf(a.streams.ErrOut, "The %s plan has %d steps, and a resumed run skips those already done:\n", plan.Kind, len(plan.Steps))
		for i, s := range plan.Steps {
			fmt.Fprintf(a.streams.ErrOut, "  %2d. %s (guide %s, as %s): %s\n", i+1, s.ID, s.Section, s.User, s.Title)
		}
		fmt.Fprintf(a.streams.ErrOut, "Proceed? [y/N] ")
		line, err := bufio.NewReader(a.streams.In).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading the confirmation: %w", err)
		}
		answer := strings.ToLower(strings.TrimSpace(line))
		if answer != "y" && answer != "yes" {
			return withExitCode(exitFailure, errors.New("aborted: nothing was changed"))
		}
		return nil
	}
}

// newDeps builds the dependencies of a run. Tests replace it with fakes.
var newDeps = buildDeps

// buildDeps builds the real dependencies of the plan on this machine. It
// connects to nothing yet: the Docker client and the API client connect at
// their first call, so ctx is unused.
func buildDeps(_ context.Context, a *app, f *planFlags, plan *pasupgrade.Plan) (pasupgrade.Deps, func(), error) {
	password, err := f.mgmt.password(a)
	if err != nil {
		return pasupgrade.Deps{}, nil, err
	}
	plan.Options.AdminPassword = password
	client, err := f.mgmt.newClient(a)
	if err != nil {
		return pasupgrade.Deps{}, nil, err
	}

	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	var run runner.Runner = &runner.Local{}
	var transcript io.Writer
	if !f.dryRun {
		path := f.transcript
		if path == "" {
			path = filepath.Join(plan.Options.WorkDir, transcriptFile)
		}
		// The work directory belongs to pas, so the transcript is not
		// followed through a symbolic link to a file only root may write.
		file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|syscall.O_NOFOLLOW, 0o600)
		if errors.Is(err, syscall.ELOOP) {
			return pasupgrade.Deps{}, nil, usageErrorf("opening the transcript %s: it is a symbolic link; remove it, or give --transcript FILE", path)
		}
		if err != nil {
			return pasupgrade.Deps{}, nil, usageErrorf("opening the transcript: %v; create the work directory with "+
				"install -d -o pas -g pas %s, or give --transcript FILE", err, plan.Options.WorkDir)
		}
		closers = append(closers, func() { file.Close() })
		transcript = runner.NewRedactingWriter(file, []string{password})
		fmt.Fprintf(transcript, "=== pasupgrade-cli %s %s, %s\n", toolVersion(), plan.Kind, time.Now().UTC().Format(time.RFC3339))
		run = &runner.Transcript{Runner: run, W: transcript}
	}

	docker, err := configconv.NewDockerClient()
	if err != nil {
		closeAll()
		return pasupgrade.Deps{}, nil, fmt.Errorf("setting up the Docker client: %w", err)
	}
	closers = append(closers, func() { docker.Close() })
	tool := pasupgrade.ConfigconvTool{
		Docker: docker, Image: plan.Path.ToolImage, Transcript: transcript,
		Host: &configconv.HostRunner{Runner: run}, Logger: a.logger,
		Stdout: toolOutput(a, transcript), Stderr: toolOutput(a, transcript),
	}
	if a.streams.InIsTerminal {
		if in, ok := a.streams.In.(*os.File); ok {
			tool.Terminal = &configconv.Terminal{In: in, Out: a.streams.ErrOut}
		}
	}
	if f.answersFile != "" {
		answers, err := os.Open(f.answersFile)
		if err != nil {
			closeAll()
			return pasupgrade.Deps{}, nil, usageErrorf("opening --answers-file: %v", err)
		}
		closers = append(closers, func() { answers.Close() })
		tool.Answers = answers
	}

	// The guide runs pas-mgmt-deploy-core after sudo -iu pas. The restore's
	// work directory is the backup set's parent by default, which only root
	// may enter, so the restore deploys from the pas home instead.
	deployDir := plan.Options.WorkDir
	if plan.Kind == pasupgrade.KindRestore {
		deployDir = pasupgrade.PASHome
	}
	deps := pasupgrade.Deps{
		Runner: run,
		Packages: pasupgrade.DebPackages{
			// dpkg runs on this machine, so its lock can be probed here
			// and its holder named.
			Manager: &deb.Manager{Runner: run, Logger: a.logger, OnEvent: debEvents(a),
				Lock: deb.FileLock{Path: a.pasPath(deb.DefaultFrontendLock)}},
			Finder: new(deb.SetFinder),
		},
		Tool:     tool,
		API:      pasupgrade.MgmtAPI{Client: client, User: f.mgmt.user, Password: password},
		Services: pasupgrade.Systemctl{Runner: run},
		Remote:   pasupgrade.Remote{DeployCommand: pasupgrade.DeployCommand{Runner: run, Dir: deployDir}},
		Files:    pasupgrade.OSFiles{Root: a.root},
		Editor:   pasupgrade.ConfigconvEditor{},
		Backup:   pasupgrade.BackupSets{Root: a.root, ToolVersion: toolVersion(), Logger: a.logger},
		Clock:    pasupgrade.SystemClock{},
	}
	return deps, closeAll, nil
}

// toolOutput returns the writer of the upgrade tool's output: the
// transcript, and stderr with --debug.
func toolOutput(a *app, transcript io.Writer) io.Writer {
	var outs []io.Writer
	if transcript != nil {
		outs = append(outs, transcript)
	}
	if a.debug && !a.json {
		outs = append(outs, a.streams.ErrOut)
	}
	if len(outs) == 0 {
		return io.Discard
	}
	return io.MultiWriter(outs...)
}

func debEvents(a *app) func(deb.Event) {
	return func(ev deb.Event) { a.printer.Infof("%s", ev.Message) }
}

// explainFailure maps a failed run to its exit code and prints what to do
// next: the failed step's output and the commands to resume or restore.
func explainFailure(cmd *cobra.Command, a *app, f *planFlags, plan *pasupgrade.Plan, err error) error {
	var stepErr *pasupgrade.StepError
	var pre *pasupgrade.PreflightError
	switch {
	case errors.As(err, &pre):
		return withExitCode(exitCheckFailed, err)
	case errors.Is(err, pasupgrade.ErrLocked):
		return withExitCode(exitLocked, err)
	case errors.Is(err, pasupgrade.ErrInvalidOptions), errors.Is(err, pasupgrade.ErrJournalMismatch),
		errors.Is(err, pasupgrade.ErrNoJournal), errors.Is(err, pasupgrade.ErrUnfinishedRun),
		errors.Is(err, pasupgrade.ErrStaleJournal):
		return withExitCode(exitUsage, err)
	case errors.As(err, &stepErr):
	default:
		return err
	}

	resume := commandLine(cmd, "--resume")
	restore := restoreCommand(cmd, f, plan, stepErr.BackupSet)
	if stepErr.OutputTail != "" {
		a.printer.Warnf("output of step %s:\n%s", stepErr.Step.ID, stepErr.OutputTail)
	}
	data := map[string]any{"step": stepErr.Step.ID, "backup_set": stepErr.BackupSet,
		"journal": stepErr.JournalPath, "resume_command": resume}
	text := "To continue after fixing the cause:\n  " + resume
	if restore != "" {
		data["restore_command"] = restore
		text += "\nTo return to " + plan.Path.From + " instead:\n  " + restore
	}
	a.printer.Event("next_steps", text, data)
	warnIfCoreStopped(a, plan)
	if errors.Is(err, context.Canceled) {
		return withExitCode(exitInterrupted, err)
	}
	return withExitCode(exitStepFailed, err)
}

// warnIfCoreStopped prints a warning when the run stopped between the steps
// that stop and start core, because the proxy stays down until the run is
// resumed or restored.
func warnIfCoreStopped(a *app, plan *pasupgrade.Plan) {
	j, err := pasupgrade.ReadJournal(plan.Options.WorkDir)
	if err != nil || j.State.CoreDownSince == nil {
		return
	}
	a.printer.Warnf("core (%s) is stopped since %s, so the proxy serves no traffic until the upgrade is resumed or restored",
		pasupgrade.UnitCore, j.State.CoreDownSince.Format(time.RFC3339))
}

// commandLine returns the command as run, with the flags given on the
// command line and extra appended.
func commandLine(cmd *cobra.Command, extra ...string) string {
	words := []string{"pasupgrade-cli", cmd.Name()}
	cmd.Flags().Visit(func(fl *pflag.Flag) {
		if fl.Name == "resume" || fl.Name == "dry-run" || fl.Name == "new-run" {
			return
		}
		if fl.Value.Type() == "bool" {
			words = append(words, "--"+fl.Name+"="+fl.Value.String())
			return
		}
		if list, ok := fl.Value.(pflag.SliceValue); ok {
			for _, item := range list.GetSlice() {
				words = append(words, "--"+fl.Name+"="+shellWord(item))
			}
			return
		}
		words = append(words, "--"+fl.Name+"="+shellWord(fl.Value.String()))
	})
	return strings.Join(append(words, extra...), " ")
}

// restoreCommand returns the restore command for an upgrade that failed
// after its backup, or "" when there is nothing to restore. The deb
// directory is the upgrade's when it holds the From packages too, and a
// placeholder to fill in otherwise.
func restoreCommand(cmd *cobra.Command, f *planFlags, plan *pasupgrade.Plan, set string) string {
	if plan.Kind != pasupgrade.KindUpgrade || set == "" {
		return ""
	}
	words := []string{"pasupgrade-cli restore", "--backup=" + shellWord(set)}
	if f.config != "" {
		words = append(words, "--config="+shellWord(f.config))
	}
	// The upgrade's work directory may lie in /opt/balasys, which the
	// restore deletes, so the restore keeps its journal beside the set.
	words = append(words, "--work-dir="+shellWord(filepath.Dir(set)), "--topology="+string(plan.Options.Topology))
	if plan.Options.HA {
		words = append(words, "--ha")
	}
	if plan.Options.CoreOnMgmt {
		words = append(words, "--core-on-mgmt")
	}
	debDir := "DIR-WITH-THE-" + plan.Path.From + "-PACKAGES"
	if _, err := deb.FindSet([]string{plan.Options.DebDir}, plan.Path.From); err == nil {
		debDir = shellWord(plan.Options.DebDir)
	}
	words = append(words, "--deb-dir="+debDir)
	if f.mgmt.passwordFile != "" {
		words = append(words, "--password-file="+shellWord(f.mgmt.passwordFile))
	}
	return strings.Join(append(words, restoreMgmtFlags(cmd, plan)...), " ")
}

// restoreMgmtFlags returns the management API flags given on the command
// line, because the restore uploads and applies the saved configuration
// through the same API. --cacert is the absolute path the upgrade used,
// because the restore has another work directory.
func restoreMgmtFlags(cmd *cobra.Command, plan *pasupgrade.Plan) []string {
	var words []string
	cmd.Flags().Visit(func(fl *pflag.Flag) {
		switch fl.Name {
		case "mgmt-url", "user", "apply-timeout":
			words = append(words, "--"+fl.Name+"="+shellWord(fl.Value.String()))
		case "cacert":
			words = append(words, "--cacert="+shellWord(plan.Options.CACert))
		case "mgmt-endpoint":
			endpoints, _ := cmd.Flags().GetStringToString(fl.Name)
			for _, name := range slices.Sorted(maps.Keys(endpoints)) {
				words = append(words, "--mgmt-endpoint="+shellWord(name+"="+endpoints[name]))
			}
		}
	})
	return words
}

func shellWord(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`|&;<>()*?[]{}!#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
