package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

// toolVersion returns the version stamped at build time, or the module
// version when built with "go install", or "devel".
func toolVersion() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "devel"
}

// streams are the process's standard streams, injectable for tests.
type streams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	// InIsTerminal and ErrIsTerminal report whether In and ErrOut are
	// terminals: prompts need the first, progress bars the second.
	InIsTerminal  bool
	ErrIsTerminal bool
}

func newStreams() streams {
	return streams{
		In:            os.Stdin,
		Out:           os.Stdout,
		ErrOut:        os.Stderr,
		InIsTerminal:  term.IsTerminal(int(os.Stdin.Fd())),
		ErrIsTerminal: term.IsTerminal(int(os.Stderr.Fd())),
	}
}

// app holds what every command shares: the global flags, the streams, the
// printer and the logger. Commands receive it from their factory.
type app struct {
	streams streams

	// Global flags.
	root  string
	debug bool
	json  bool

	printer *printer
	logger  *slog.Logger
}

// commandFactories builds the subcommands. Each command file adds its own
// factory in an init function, so adding a command touches one file.
var commandFactories []func(*app) *cobra.Command

func register(factory func(*app) *cobra.Command) {
	commandFactories = append(commandFactories, factory)
}

// run executes the CLI with args and returns the process exit code.
func run(ctx context.Context, args []string, s streams) int {
	a := &app{streams: s}
	cmd := newRootCmd(a)
	cmd.SetArgs(args)
	cmd.SetIn(s.In)
	cmd.SetOut(s.Out)
	cmd.SetErr(s.ErrOut)

	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code := exitCodeOf(err)
	if isFlagError(err) {
		code = exitUsage
	}
	if a.printer != nil {
		a.printer.Error(err)
	} else {
		fmt.Fprintf(s.ErrOut, "error: %v\n", err)
	}
	return code
}

// flagError marks errors cobra returns for bad flags or arguments.
type flagError struct{ err error }

func (e *flagError) Error() string { return e.err.Error() }
func (e *flagError) Unwrap() error { return e.err }

func isFlagError(err error) bool {
	var fe *flagError
	return errors.As(err, &fe)
}

func newRootCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pasupgrade-cli",
		Short: "Upgrade Proxedo API Security from 4.8.0 to 4.9.0, and restore it",
		Long: `pasupgrade-cli upgrades a Proxedo API Security (PAS) installation from 4.8.0
to 4.9.0 as the vendor's upgrade guide describes, and restores the 4.8.0 state
from a backup set when needed.

Every PAS path (such as /opt/balasys/etc) is resolved under --root, so the
commands can work on a copy of a node's file system.`,
		Version:       toolVersion(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.setup()
		},
	}
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &flagError{fmt.Errorf("%w\nRun '%s --help' for usage", err, c.CommandPath())}
	})

	flags := cmd.PersistentFlags()
	flags.StringVar(&a.root, "root", "/", "file system `DIR` that every PAS path is resolved under")
	flags.BoolVar(&a.debug, "debug", false, "log debug detail to stderr (secrets are never logged)")
	flags.BoolVar(&a.json, "json", false, "write events to stdout as JSON lines instead of text")

	for _, factory := range commandFactories {
		cmd.AddCommand(factory(a))
	}
	cmd.InitDefaultCompletionCmd()
	markArgErrorsAsUsage(cmd)
	return cmd
}

// markArgErrorsAsUsage wraps every command's argument validator so that a
// wrong number of arguments exits with exitUsage, like a bad flag.
func markArgErrorsAsUsage(cmd *cobra.Command) {
	if validate := cmd.Args; validate != nil {
		cmd.Args = func(c *cobra.Command, args []string) error {
			if err := validate(c, args); err != nil {
				return &flagError{fmt.Errorf("%w\nRun '%s --help' for usage", err, c.CommandPath())}
			}
			return nil
		}
	}
	for _, sub := range cmd.Commands() {
		markArgErrorsAsUsage(sub)
	}
}

// setup validates the global flags and builds the printer and logger.
func (a *app) setup() error {
	root, err := filepath.Abs(a.root)
	if err != nil {
		return usageErrorf("invalid --root %q: %v", a.root, err)
	}
	info, err := os.Stat(root)
	if err != nil {
		return usageErrorf("invalid --root %q: %v", a.root, err)
	}
	if !info.IsDir() {
		return usageErrorf("invalid --root %q: not a directory", a.root)
	}
	a.root = root

	level := slog.LevelWarn
	if a.debug {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	if a.json {
		a.logger = slog.New(slog.NewJSONHandler(a.streams.ErrOut, opts))
	} else {
		a.logger = slog.New(slog.NewTextHandler(a.streams.ErrOut, opts))
	}
	a.printer = newPrinter(a.streams, a.json)
	return nil
}

// pasPath returns the absolute path of a PAS path such as
// "/opt/balasys/etc" under --root.
func (a *app) pasPath(path string) string {
	return filepath.Join(a.root, path)
}
