package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// errNoPasswordInput is returned when the terminal's input ends (Ctrl-D)
// before a password line.
var errNoPasswordInput = errors.New("the input ended before a password was entered")

// readTerminalPassword reads one line from the terminal fd with echo off.
// Unlike term.ReadPassword it returns at once on Ctrl-D, and on Ctrl-C
// (SIGINT), which it reports as context.Canceled. The terminal's settings
// are restored in every case.
func readTerminalPassword(fd int) ([]byte, error) {
	// Listening before echo goes off means an interrupt is never missed
	// while the terminal does not echo.
	interrupt := make(chan os.Signal, 1)
	signal.Notify(interrupt, os.Interrupt)
	defer signal.Stop(interrupt)

	saved, err := term.GetState(fd)
	if err != nil {
		return nil, err
	}
	termios, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	noEcho := *termios
	noEcho.Lflag &^= unix.ECHO
	noEcho.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho); err != nil {
		return nil, err
	}
	defer term.Restore(fd, saved)

	type result struct {
		line []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		line, err := readLine(fd)
		done <- result{line, err}
	}()
	select {
	case r := <-done:
		return r.line, r.err
	case <-interrupt:
		// The reading goroutine stays blocked until the process ends,
		// which follows an interrupt.
		return nil, fmt.Errorf("reading the password: %w", context.Canceled)
	}
}

// readLine reads bytes from fd up to a newline, without it. A read of no
// bytes is the end of the input: Ctrl-D on an empty line.
func readLine(fd int) ([]byte, error) {
	var line []byte
	var b [1]byte
	for {
		n, err := unix.Read(fd, b[:])
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return nil, err
		case n == 0 && len(line) == 0:
			return nil, errNoPasswordInput
		case n == 0, b[0] == '\n':
			return line, nil
		case b[0] == '\r':
		default:
			line = append(line, b[0])
		}
	}
}
