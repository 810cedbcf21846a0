// Package runner runs external commands for the other pasupgrade packages.
//
// Every command the library starts (dpkg, systemctl, the pas-* tools, ssh)
// goes through the Runner interface, so unit tests can replace it with the
// fake in runner/runnertest and the lab can run the same commands inside a
// container. A command that exits non-zero is returned as an *ExitError that
// carries the argv, the exit code and the tail of its output, with every
// registered secret replaced by "***".
package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Command describes one external command.
type Command struct {
	// Argv is the program and its arguments. Argv[0] is looked up in PATH.
	Argv []string

	// Env lists KEY=VALUE pairs added to the runner's base environment.
	// An entry replaces a variable of the same name; nothing else is removed.
	Env []string

	// Stdin feeds the command. Nil means /dev/null, so a command that
	// prompts fails at once instead of waiting for an answer.
	Stdin io.Reader

	// Stdout and Stderr receive the command's output as it is written, in
	// addition to the copy kept in Result. Nil discards the live copy.
	Stdout io.Writer
	Stderr io.Writer

	// User is the account to run as, such as "pas". Empty means the
	// runner's own user. Running as another user needs root.
	User string

	// Dir is the working directory. Empty means the runner's own.
	Dir string

	// Secrets are strings that must never appear in transcripts, logs or
	// errors. They are replaced by "***" in Result and in *ExitError.
	Secrets []string

	// Interactive connects the command to the operator's terminal instead
	// of capturing its output. Runners without a terminal reject it.
	Interactive bool

	// SurviveCaller keeps the command running to its end when the caller
	// dies or gives up. Its output reaches the caller through relays that
	// go on reading, and discarding, once the caller is gone, so no write
	// of the command meets a broken pipe. Cancelling ctx does not signal
	// it, and Run still waits for it to end. It is for dpkg, because a
	// maintainer script killed by a broken pipe half-way can leave a
	// package that dpkg records as installed with its configuration half
	// done. It cannot be combined with Stdin or Interactive.
	SurviveCaller bool
}

// String returns the command line with secrets redacted, for logs and errors.
func (c Command) String() string {
	quoted := make([]string, len(c.Argv))
	for i, arg := range c.Argv {
		quoted[i] = quoteArg(arg)
	}
	line := strings.Join(quoted, " ")
	if c.User != "" {
		line = "(as " + c.User + ") " + line
	}
	return Redact(line, c.Secrets)
}

// Result is what a finished command left behind.
type Result struct {
	// ExitCode is the command's exit status. It is -1 when the command was
	// killed by a signal.
	ExitCode int

	// Stdout and Stderr hold the command's output, with secrets redacted,
	// truncated to the last MaxCapture bytes each.
	Stdout []byte
	Stderr []byte

	// Duration is the wall time from start to exit.
	Duration time.Duration
}

// MaxCapture is the number of bytes of each output stream a Result keeps.
const MaxCapture = 1 << 20

// tailBytes is how much of the output an *ExitError quotes.
const tailBytes = 2048

// Runner runs commands. Implementations must be safe for concurrent use.
//
// Run returns a nil error only when the command exited with status 0. A
// command that ran and failed yields an *ExitError together with its Result;
// a command that could not be started yields another error.
type Runner interface {
	Run(ctx context.Context, cmd Command) (Result, error)
}

// ErrInteractiveUnavailable is returned for an interactive command when the
// runner has no terminal to connect it to.
var ErrInteractiveUnavailable = errors.New("runner: no terminal for an interactive command")

// ExitError reports a command that ran and exited with a non-zero status.
type ExitError struct {
	// Command is the command line with secrets redacted.
	Command string
	// ExitCode is the exit status, or -1 when a signal ended the command.
	ExitCode int
	// Tail is the last part of the command's output, stderr preferred,
	// with secrets redacted.
	Tail string
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("command %s exited with code %d", e.Command, e.ExitCode)
	if e.ExitCode == -1 {
		msg = fmt.Sprintf("command %s was killed by a signal", e.Command)
	}
	if e.Tail != "" {
		msg += ": " + e.Tail
	}
	return msg
}

// NewExitError builds the *ExitError for cmd and its result. Runner
// implementations outside this package use it so every runner reports
// failures the same way.
func NewExitError(cmd Command, res Result) *ExitError {
	tail := res.Stderr
	if len(bytes.TrimSpace(tail)) == 0 {
		tail = res.Stdout
	}
	return &ExitError{
		Command:  cmd.String(),
		ExitCode: res.ExitCode,
		Tail:     Tail(Redact(string(tail), cmd.Secrets), tailBytes),
	}
}

// Tail returns at most the last n bytes of s, starting at a line boundary
// where one exists, with surrounding white space removed.
func Tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 && i < len(s)-1 {
		s = s[i+1:]
	}
	return "…" + s
}

// Redact replaces every non-empty secret in s with "***".
func Redact(s string, secrets []string) string {
	for _, secret := range secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "***")
		}
	}
	return s
}

func quoteArg(arg string) string {
	if arg == "" {
		return "''"
	}
	if strings.ContainsAny(arg, " \t\n'\"\\$`|&;<>()*?[]{}!#~") {
		return "'" + strings.ReplaceAll(arg, "'", `'\''`) + "'"
	}
	return arg
}
