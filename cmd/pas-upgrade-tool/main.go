// Command pas-upgrade-tool is the lab's stand-in for the vendor's PAS
// upgrade tool. The lab imports it as the pas-upgrade-tool image and the
// 4.9.0 mgmt package installs it as pas-mgmt-upgrade-config.
//
//	pas-upgrade-tool [--frontend-baseurl URL] [--cacert FILE] [--user NAME] SUBCOMMAND [options]
//
//	pre-upgrade     export the running configuration to pas-config-4.8.0.yaml
//	convert-config  convert pas-config-4.8.0.yaml into pas-config-4.9.0.yaml
//	post-upgrade    upload pas-config-4.9.0.yaml, apply it and wait
//	                (--config-apply-timeout SECONDS, default 20)
//
// The working directory is /upgrade when it exists (inside the container),
// else the current directory. The admin password is read without echo from
// the terminal, or as the first line of stdin when stdin is not a terminal;
// never from the environment or the arguments.
//
// Exit codes: 0 success, 1 error, 2 usage, 3 the conversion needs an answer
// or was aborted, 4 the config apply failed or timed out, 130 interrupted
// (Ctrl-C or SIGTERM) at a prompt.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/pasops/pasupgrade/mgmtapi"
)

// Exit codes. The configconv package branches on them.
const (
	exitOK         = 0
	exitError      = 1
	exitUsage      = 2
	exitNeedAnswer = 3
	exitApply      = 4

	// exitInterrupted is what a shell reports for a process that SIGINT
	// ended (128 + 2).
	exitInterrupted = 130
)

// File names in the working directory.
const (
	exportFile    = "pas-config-4.8.0.yaml"
	convertedFile = "pas-config-4.9.0.yaml"
)

// maxApplyTimeoutSeconds is the largest --config-apply-timeout that fits
// in a time.Duration. A larger one would overflow to a negative timeout.
const maxApplyTimeoutSeconds = math.MaxInt64 / int(time.Second)

// containerWorkDir is the mount point of the working directory in the
// container (docker run --volume $(pwd):/upgrade).
const containerWorkDir = "/upgrade"

// exitCodeError carries an exit code other than exitError.
type exitCodeError struct {
	code int
	err  error
}

func (e *exitCodeError) Error() string { return e.err.Error() }
func (e *exitCodeError) Unwrap() error { return e.err }

func withCode(code int, format string, args ...any) error {
	return &exitCodeError{code: code, err: fmt.Errorf(format, args...)}
}

// tool holds the global options and the process's streams.
type tool struct {
	// program is the name the tool was started as, such as
	// pas-mgmt-upgrade-config on a node, for its messages. Empty means
	// pas-upgrade-tool.
	program string

	baseURL string
	caCert  string
	user    string
	workDir string

	stdin      *bufio.Reader
	stdinIsTTY bool
	stdinFd    int
	stdout     io.Writer
	stderr     io.Writer
	readSecret func(fd int) ([]byte, error)

	// clientOptions are added to the management API client's options;
	// tests shorten its timeout with them.
	clientOptions []mgmtapi.Option
}

func main() {
	workDir, err := os.Getwd()
	if info, statErr := os.Stat(containerWorkDir); statErr == nil && info.IsDir() {
		workDir, err = containerWorkDir, nil
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pas-upgrade-tool: finding the working directory: %v\n", err)
		os.Exit(exitError)
	}
	t := &tool{
		program:    filepath.Base(os.Args[0]),
		workDir:    workDir,
		stdin:      bufio.NewReader(os.Stdin),
		stdinIsTTY: term.IsTerminal(int(os.Stdin.Fd())),
		stdinFd:    int(os.Stdin.Fd()),
		stdout:     os.Stdout,
		stderr:     os.Stderr,
		readSecret: term.ReadPassword,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(t.main(ctx, os.Args[1:]))
}

// main runs the tool with args (without the program name) and returns the
// exit code.
func (t *tool) main(ctx context.Context, args []string) int {
	err := t.run(ctx, args)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(t.stderr, "%s: %v\n", t.programName(), err)
	var coded *exitCodeError
	if errors.As(err, &coded) {
		return coded.code
	}
	return exitError
}

func (t *tool) run(ctx context.Context, args []string) error {
	global := flag.NewFlagSet(t.programName(), flag.ContinueOnError)
	global.SetOutput(t.stderr)
	global.StringVar(&t.baseURL, "frontend-baseurl", "http://localhost", "base URL of the management web interface")
	global.StringVar(&t.caCert, "cacert", "", "PEM bundle of the CA chain that signed the frontend certificate, in the working directory")
	global.StringVar(&t.user, "user", "admin", "management user to log in as")
	global.Usage = t.printUsage
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return withCode(exitUsage, "%v", err)
	}
	if global.NArg() == 0 {
		t.printUsage()
		return withCode(exitUsage, "missing subcommand: pre-upgrade, convert-config or post-upgrade")
	}

	sub, subArgs := global.Arg(0), global.Args()[1:]
	switch sub {
	case "pre-upgrade":
		if len(subArgs) > 0 {
			return withCode(exitUsage, "pre-upgrade takes no arguments, got %q", subArgs)
		}
		return t.preUpgrade(ctx)
	case "convert-config":
		if len(subArgs) > 0 {
			return withCode(exitUsage, "convert-config takes no arguments, got %q", subArgs)
		}
		return t.convertConfig(ctx)
	case "post-upgrade":
		flags := flag.NewFlagSet("post-upgrade", flag.ContinueOnError)
		flags.SetOutput(t.stderr)
		seconds := flags.Int("config-apply-timeout", 20, "seconds to wait for the config apply to finish")
		if err := flags.Parse(subArgs); errors.Is(err, flag.ErrHelp) {
			return nil
		} else if err != nil {
			return withCode(exitUsage, "post-upgrade: %v", err)
		}
		if flags.NArg() > 0 || *seconds < 1 || *seconds > maxApplyTimeoutSeconds {
			return withCode(exitUsage, "post-upgrade takes only --config-apply-timeout SECONDS "+
				"(at least 1, at most %d)", maxApplyTimeoutSeconds)
		}
		return t.postUpgrade(ctx, time.Duration(*seconds)*time.Second)
	}
	return withCode(exitUsage, "unknown subcommand %q; use pre-upgrade, convert-config or post-upgrade", sub)
}

// usageText follows "usage: PROGRAM".
const usageText = ` [--frontend-baseurl URL] [--cacert FILE] [--user NAME] SUBCOMMAND

subcommands:
  pre-upgrade                          export the running configuration into ` + exportFile + `
  convert-config                       convert it into ` + convertedFile + `
  post-upgrade --config-apply-timeout N
                                       upload ` + convertedFile + `, apply it, wait N seconds

The working directory is /upgrade when it exists, else the current one. The
admin password is read from the terminal, or from the first line of stdin.
`

func (t *tool) programName() string {
	if t.program == "" {
		return "pas-upgrade-tool"
	}
	return t.program
}

func (t *tool) printUsage() {
	fmt.Fprintf(t.stderr, "usage: %s%s", t.programName(), usageText)
}

// password reads the user's password: without echo from the terminal, or
// as the first line of stdin.
func (t *tool) password(ctx context.Context) (string, error) {
	if t.stdinIsTTY {
		fmt.Fprintf(t.stdout, "Password for %s: ", t.user)
		secret, err := t.readInterruptibly(ctx, "at the password prompt", func() (string, error) {
			secret, err := t.readSecret(t.stdinFd)
			return string(secret), err
		})
		fmt.Fprintln(t.stdout)
		var coded *exitCodeError
		if errors.As(err, &coded) {
			return "", err
		}
		if err != nil {
			return "", fmt.Errorf("reading the password from the terminal: %w", err)
		}
		if secret == "" {
			return "", errors.New("the password is empty")
		}
		return secret, nil
	}
	line, err := t.readInterruptibly(ctx, "while reading the password from stdin", t.readLine)
	var coded *exitCodeError
	if errors.As(err, &coded) {
		return "", err
	}
	if err != nil {
		return "", fmt.Errorf("reading the password from stdin: %w", err)
	}
	if line == "" {
		return "", errors.New("the password (the first line of stdin) is empty")
	}
	return line, nil
}

// readInterruptibly returns the result of read, which blocks on stdin,
// or an exitInterrupted error as soon as ctx ends. The tool catches SIGINT
// to cancel ctx, so without this a Ctrl-C at a prompt would be ignored
// until Enter. A blocked read cannot be cancelled, so it is left behind
// and the terminal state from before it (which term.ReadPassword changes)
// is restored. The caller exits right after.
func (t *tool) readInterruptibly(ctx context.Context, what string, read func() (string, error)) (string, error) {
	var saved *term.State
	if t.stdinIsTTY {
		saved, _ = term.GetState(t.stdinFd)
	}
	type result struct {
		text string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		text, err := read()
		done <- result{text, err}
	}()
	select {
	case r := <-done:
		return r.text, r.err
	case <-ctx.Done():
		if saved != nil {
			_ = term.Restore(t.stdinFd, saved)
		}
		fmt.Fprintln(t.stdout)
		return "", withCode(exitInterrupted, "interrupted %s; nothing was written", what)
	}
}

// readLine returns the next line of stdin without its line ending. At the
// end of input without a line it returns io.EOF.
func (t *tool) readLine() (string, error) {
	line, err := t.stdin.ReadString('\n')
	if errors.Is(err, io.EOF) && line != "" {
		err = nil
	}
	if err != nil {
		return "", err
	}
	for len(line) > 0 && (line[len(line)-1] == '\n' || line[len(line)-1] == '\r') {
		line = line[:len(line)-1]
	}
	return line, nil
}

// workPath returns name inside the working directory.
func (t *tool) workPath(name string) string {
	if filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(t.workDir, name)
}
