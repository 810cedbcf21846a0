package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/pasops/pasupgrade/configconv"
	"github.com/pasops/pasupgrade/runner"
)

func init() { register(newToolCmd) }

// toolFlags are the flags of the tool subcommands.
type toolFlags struct {
	mgmt        mgmtFlags
	runner      string
	image       string
	workDir     string
	runAs       string
	answersFile string
	hostCommand string
}

func newToolCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tool",
		Short: "Run one subcommand of the vendor's upgrade tool by hand",
		Long: `The tool commands run one step of the upgrade tool as the guide does:
pre-upgrade exports the running configuration to pas-config-4.8.0.yaml,
convert-config converts it to pas-config-4.9.0.yaml, and post-upgrade uploads
and applies the converted file. All three work in --work-dir.

With --runner docker (the default) the tool runs from its image, which is
pulled first when missing, with the credentials "docker login" stored. With
--runner host it runs as the pas-mgmt-upgrade-config command that the 4.9.0
management package installs.

The admin password comes from --password-file, then $` + passwordEnv + `, then a
prompt without echo on the terminal, and reaches the tool on its standard
input only.`,
	}
	cmd.AddCommand(
		newToolSubcommand(a, "pre-upgrade", "Export the running configuration for the upgrade"),
		newToolSubcommand(a, "convert-config", "Convert the exported configuration for 4.9.0"),
		newToolSubcommand(a, "post-upgrade", "Upload and apply the converted configuration"),
	)
	return cmd
}

func newToolSubcommand(a *app, name, short string) *cobra.Command {
	var (
		f            toolFlags
		applyTimeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   name,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "post-upgrade" && applyTimeout <= 0 {
				return usageErrorf("invalid --config-apply-timeout %s: it must be positive, such as 20s", applyTimeout)
			}
			tool, closeAnswers, err := f.tool(a, name != "convert-config")
			if err != nil {
				return err
			}
			defer closeAnswers()

			var path string
			switch name {
			case "pre-upgrade":
				path, err = tool.PreUpgrade(cmd.Context())
			case "convert-config":
				path, err = tool.ConvertConfig(cmd.Context())
			case "post-upgrade":
				_, err = tool.PostUpgrade(cmd.Context(), applyTimeout)
			}
			if err != nil {
				return toolExitError(err)
			}
			a.reportToolResult(name, path)
			return nil
		},
	}

	addMgmtFlags(cmd, &f.mgmt)
	flags := cmd.Flags()
	flags.StringVar(&f.runner, "runner", "docker", "how to run the tool: `docker` (its image) or host (pas-mgmt-upgrade-config)")
	flags.StringVar(&f.image, "image", configconv.DefaultImage, "the tool's Docker `IMAGE`")
	flags.StringVar(&f.workDir, "work-dir", "", "`DIR` of the exported and converted files (default: the current directory)")
	flags.StringVar(&f.runAs, "run-as", "", "account `NAME` the tool runs as, such as pas (default: the user who ran sudo, else the invoking user)")
	flags.StringVar(&f.hostCommand, "host-command", "",
		"the tool's `PROGRAM` for --runner host (default: pas-mgmt-upgrade-config in PATH, or /usr/bin under --root)")
	if name == "convert-config" {
		flags.StringVar(&f.answersFile, "answers", "",
			"`FILE` with one answer line (y or n) per item the converter cannot convert by itself (default: ask on the terminal)")
	}
	if name == "post-upgrade" {
		flags.DurationVar(&applyTimeout, "config-apply-timeout", defaultApplyTimeout,
			"how long to wait for the config apply, in whole seconds such as 20s")
	}
	return cmd
}

// tool builds the configconv.Tool the flags describe. needsPassword is set
// for the subcommands that log in to the management API. The caller calls
// closeAnswers when the tool has run.
func (f *toolFlags) tool(a *app, needsPassword bool) (tool *configconv.Tool, closeAnswers func(), err error) {
	closeAnswers = func() {}
	workDir, err := f.resolveWorkDir()
	if err != nil {
		return nil, nil, err
	}
	toolRunner, err := f.toolRunner(a)
	if err != nil {
		return nil, nil, err
	}

	// In JSON mode stdout carries only events, so the tool's own output,
	// which is text for the operator, goes to stderr.
	toolOut := a.streams.Out
	if a.json {
		toolOut = a.streams.ErrOut
	}
	tool = &configconv.Tool{
		Runner:  toolRunner,
		WorkDir: workDir,
		CACert:  f.mgmt.cacert,
		Stdout:  toolOut,
		Stderr:  a.streams.ErrOut,
		Logger:  a.logger,
	}
	if f.mgmt.url != configconv.DefaultToolBaseURL {
		tool.BaseURL = f.mgmt.url
	}
	if f.mgmt.user != configconv.DefaultToolUser {
		tool.AdminUser = f.mgmt.user
	}
	if needsPassword {
		if tool.Password, err = f.mgmt.password(a); err != nil {
			return nil, nil, err
		}
	}

	switch {
	case f.answersFile != "":
		answers, err := os.Open(f.answersFile)
		if err != nil {
			return nil, nil, usageErrorf("reading --answers: %v", err)
		}
		tool.Answers = answers
		closeAnswers = func() { answers.Close() }
	case a.streams.InIsTerminal:
		if in, ok := a.streams.In.(*os.File); ok {
			tool.Terminal = &configconv.Terminal{In: in, Out: toolOut}
		}
	}
	return tool, closeAnswers, nil
}

func (f *toolFlags) resolveWorkDir() (string, error) {
	dir := f.workDir
	if dir == "" {
		dir = "."
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", usageErrorf("invalid --work-dir %q: %v", dir, err)
	}
	info, err := os.Stat(abs)
	if err != nil || !info.IsDir() {
		return "", usageErrorf("invalid --work-dir %q: not a directory; create it or pick another", dir)
	}
	return abs, nil
}

// defaultRunAs returns the account the tool runs as without --run-as, or ""
// for this process's own. Under sudo it is the user who ran sudo, so the
// tool's files in the work directory belong to that user and not to root.
func defaultRunAs(uid int, getenv func(string) string) string {
	if user := getenv("SUDO_USER"); uid == 0 && user != "" && user != "root" {
		return user
	}
	return ""
}

// toolRunner builds the runner --runner names.
func (f *toolFlags) toolRunner(a *app) (configconv.ToolRunner, error) {
	if f.runAs == "" {
		if f.runAs = defaultRunAs(os.Getuid(), os.Getenv); f.runAs != "" {
			a.logger.Debug("running the tool as the user who ran sudo", "user", f.runAs)
		}
	}
	switch f.runner {
	case "docker":
		cli, err := configconv.NewDockerClient()
		if err != nil {
			return nil, err
		}
		userID := ""
		if f.runAs != "" {
			if userID, err = configconv.LookupUserID(f.runAs); err != nil {
				return nil, usageErrorf("invalid --run-as: %v", err)
			}
		}
		announced := false
		return &configconv.DockerRunner{
			Client: cli, Image: f.image, User: userID, Logger: a.logger,
			PullStatus: func(image, _ string) {
				if !announced {
					a.printer.Infof("pulling %s", image)
					announced = true
				}
			},
		}, nil
	case "host":
		command := f.hostCommand
		if command == "" && a.root != "/" {
			command = a.pasPath(filepath.Join("/usr/bin", configconv.DefaultHostCommand))
		}
		return &configconv.HostRunner{Runner: &runner.Local{}, Command: command, User: f.runAs}, nil
	default:
		return nil, usageErrorf("invalid --runner %q: use docker or host", f.runner)
	}
}

// toolExitError maps the tool's failures to the CLI's exit codes: an item
// that needs an answer is a failed check (3), a failed apply a failed step
// (4), and an invalid CA bundle a usage error (2).
func toolExitError(err error) error {
	switch {
	case errors.Is(err, configconv.ErrNeedsAnswer):
		return withExitCode(exitCheckFailed, err)
	case errors.Is(err, configconv.ErrApplyFailed):
		return withExitCode(exitStepFailed, err)
	case errors.Is(err, configconv.ErrInvalidCACert):
		return withExitCode(exitUsage, err)
	default:
		return err
	}
}

func (a *app) reportToolResult(subcommand, path string) {
	data := map[string]any{"subcommand": subcommand}
	text := fmt.Sprintf("%s finished", subcommand)
	if path != "" {
		data["path"] = path
		text = fmt.Sprintf("%s wrote %s", subcommand, path)
	}
	a.printer.Event("tool_finished", text, data)
}
