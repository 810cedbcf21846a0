package main

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// openTerminal returns both ends of a new pseudo-terminal.
func openTerminal(t *testing.T) (ptmx, tty *os.File) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	require.NoError(t, err)
	t.Cleanup(func() { ptmx.Close(); tty.Close() })
	return ptmx, tty
}

type readResult struct {
	line []byte
	err  error
}

func readAsync(tty *os.File) <-chan readResult {
	done := make(chan readResult, 1)
	go func() {
		line, err := readTerminalPassword(int(tty.Fd()))
		done <- readResult{line, err}
	}()
	return done
}

// waitNoEcho waits until the reader has turned echo off, so that what the
// test types is read with the reader's settings.
func waitNoEcho(t *testing.T, tty *os.File) {
	t.Helper()
	require.Eventually(t, func() bool {
		termios, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
		return err == nil && termios.Lflag&unix.ECHO == 0
	}, 10*time.Second, time.Millisecond)
}

func echoIsOn(t *testing.T, tty *os.File) bool {
	termios, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	require.NoError(t, err)
	return termios.Lflag&unix.ECHO != 0
}

func TestReadTerminalPasswordLine(t *testing.T) {
	ptmx, tty := openTerminal(t)
	done := readAsync(tty)
	waitNoEcho(t, tty)

	_, err := ptmx.Write([]byte("s3cret word\n"))
	require.NoError(t, err)
	r := <-done
	require.NoError(t, r.err)
	assert.Equal(t, "s3cret word", string(r.line))
	assert.True(t, echoIsOn(t, tty), "echo is back on")

	// Nothing was echoed back to the terminal.
	fds := []unix.PollFd{{Fd: int32(ptmx.Fd()), Events: unix.POLLIN}}
	if ready, _ := unix.Poll(fds, 200); ready > 0 {
		buf := make([]byte, 256)
		n, _ := ptmx.Read(buf)
		assert.NotContains(t, string(buf[:n]), "s3cret")
	}
}

func TestReadTerminalPasswordEndOfInput(t *testing.T) {
	ptmx, tty := openTerminal(t)
	done := readAsync(tty)
	waitNoEcho(t, tty)

	_, err := ptmx.Write([]byte{4}) // Ctrl-D on an empty line
	require.NoError(t, err)
	r := <-done
	require.ErrorIs(t, r.err, errNoPasswordInput)
	assert.True(t, echoIsOn(t, tty))
}

func TestReadTerminalPasswordInterrupt(t *testing.T) {
	_, tty := openTerminal(t)
	done := readAsync(tty)
	waitNoEcho(t, tty)

	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGINT))
	r := <-done
	require.ErrorIs(t, r.err, context.Canceled)
	assert.True(t, echoIsOn(t, tty))
}
