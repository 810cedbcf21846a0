package main

import (
	"context"
	"errors"
	"fmt"
)

// Exit codes. The README lists them; scripts depend on them, so a code keeps
// its meaning once released.
const (
	exitOK          = 0   // the command did what was asked
	exitFailure     = 1   // the command failed; the message says why
	exitUsage       = 2   // invalid flags, arguments or configuration
	exitCheckFailed = 3   // a check failed: preflight, verify, package set, status
	exitStepFailed  = 4   // a plan step failed; resume or restore as printed
	exitLocked      = 5   // another run holds the lock of the working directory
	exitInterrupted = 130 // interrupted by SIGINT or SIGTERM
)

// exitError attaches an exit code to an error. Commands return it for any
// outcome other than a plain failure.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withExitCode wraps err so that the process exits with code.
func withExitCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// usageErrorf returns an error that exits with exitUsage.
func usageErrorf(format string, args ...any) error {
	return withExitCode(exitUsage, fmt.Errorf(format, args...))
}

// exitCodeOf maps an error returned by a command to the process exit code.
func exitCodeOf(err error) int {
	var coded *exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &coded):
		return coded.code
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	default:
		return exitFailure
	}
}
