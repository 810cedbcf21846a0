package runner_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/runner"
)

func TestLocalRunSuccess(t *testing.T) {
	var live bytes.Buffer
	res, err := (&runner.Local{}).Run(context.Background(), runner.Command{
		Argv:   []string{"sh", "-c", "echo out; echo err >&2"},
		Stdout: &live,
	})
	require.NoError(t, err)
	assert.Equal(t, 0, res.ExitCode)
	assert.Equal(t, "out\n", string(res.Stdout))
	assert.Equal(t, "err\n", string(res.Stderr))
	assert.Equal(t, "out\n", live.String())
}

func TestLocalRunExitError(t *testing.T) {
	res, err := (&runner.Local{}).Run(context.Background(), runner.Command{
		Argv: []string{"sh", "-c", "echo partial; echo 'dpkg: error processing' >&2; exit 3"},
	})
	var exitErr *runner.ExitError
	require.ErrorAs(t, err, &exitErr)
	assert.Equal(t, 3, exitErr.ExitCode)
	assert.Equal(t, 3, res.ExitCode)
	assert.Contains(t, exitErr.Tail, "dpkg: error processing")
	assert.Contains(t, err.Error(), "exited with code 3")
}

func TestLocalRunRedactsSecrets(t *testing.T) {
	const secret = "s3cr3t-Pa55"
	var live bytes.Buffer
	_, err := (&runner.Local{}).Run(context.Background(), runner.Command{
		Argv:    []string{"sh", "-c", "printf 'token=%s\\n' \"$1\"; echo \"bad $1\" >&2; exit 1", "sh", secret},
		Stdout:  &live,
		Secrets: []string{secret},
	})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), secret)
	assert.NotContains(t, live.String(), secret)
	assert.Contains(t, live.String(), "token=***")
}

func TestLocalRunEmptyStdin(t *testing.T) {
	res, err := (&runner.Local{}).Run(context.Background(), runner.Command{
		Argv: []string{"sh", "-c", "if read line; then echo got; else echo eof; fi"},
	})
	require.NoError(t, err)
	assert.Equal(t, "eof\n", string(res.Stdout))
}

func TestLocalRunStdinAndEnv(t *testing.T) {
	res, err := (&runner.Local{Env: []string{"KEEP=1", "DEBIAN_FRONTEND=dialog"}}).Run(
		context.Background(), runner.Command{
			Argv:  []string{"sh", "-c", `read line; echo "$line $KEEP $DEBIAN_FRONTEND"`},
			Stdin: strings.NewReader("hello\n"),
			Env:   []string{"DEBIAN_FRONTEND=noninteractive"},
		})
	require.NoError(t, err)
	assert.Equal(t, "hello 1 noninteractive\n", string(res.Stdout))
}

func TestLocalRunCancelStopsCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := (&runner.Local{}).Run(ctx, runner.Command{Argv: []string{"sleep", "60"}})
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(30 * time.Second):
		t.Fatal("the command kept running after its context was cancelled")
	}
}

func TestLocalRunUnknownUser(t *testing.T) {
	_, err := (&runner.Local{}).Run(context.Background(), runner.Command{
		Argv: []string{"true"}, User: "no-such-user-pasupgrade",
	})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"no-such-user-pasupgrade"`)
}

func TestLocalRunMissingProgram(t *testing.T) {
	_, err := (&runner.Local{}).Run(context.Background(), runner.Command{
		Argv: []string{"/nonexistent/pas-update"},
	})
	require.Error(t, err)
	var exitErr *runner.ExitError
	assert.False(t, errors.As(err, &exitErr), "a command that never started is not an exit error")
	assert.Contains(t, err.Error(), "/nonexistent/pas-update")
}

func TestMergeEnv(t *testing.T) {
	tests := []struct {
		name        string
		base, extra []string
		want        []string
	}{
		{"append", []string{"A=1"}, []string{"B=2"}, []string{"A=1", "B=2"}},
		{"replace in place", []string{"A=1", "B=2"}, []string{"A=3"}, []string{"A=3", "B=2"}},
		{"empty value", []string{"A=1"}, []string{"A="}, []string{"A="}},
		{"nothing added", []string{"A=1"}, nil, []string{"A=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, runner.MergeEnv(tt.base, tt.extra))
		})
	}
}

func TestCommandStringQuotesAndRedacts(t *testing.T) {
	c := runner.Command{
		Argv:    []string{"debconf-set-selections", "a b", "pw=hunter2"},
		User:    "pas",
		Secrets: []string{"hunter2"},
	}
	assert.Equal(t, "(as pas) debconf-set-selections 'a b' pw=***", c.String())
}

func TestRedactingWriterSplitSecret(t *testing.T) {
	var out bytes.Buffer
	w := runner.NewRedactingWriter(&out, []string{"topsecret"})
	_, err := w.Write([]byte("pass=top"))
	require.NoError(t, err)
	_, err = w.Write([]byte("secret\nnext"))
	require.NoError(t, err)
	require.NoError(t, w.Flush())
	assert.Equal(t, "pass=***\nnext", out.String())
}

func TestTail(t *testing.T) {
	assert.Equal(t, "short", runner.Tail("  short\n", 100))
	long := strings.Repeat("x", 50) + "\nlast line"
	assert.Equal(t, "…last line", runner.Tail(long, 12))
}

func TestTranscriptRecordsRedacted(t *testing.T) {
	var log bytes.Buffer
	tr := &runner.Transcript{
		Runner: &runner.Local{},
		W:      &log,
		Now:    func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) },
	}
	_, err := tr.Run(context.Background(), runner.Command{
		Argv:    []string{"sh", "-c", "echo pw=letmein; exit 2"},
		Secrets: []string{"letmein"},
	})
	require.Error(t, err)
	text := log.String()
	assert.Contains(t, text, "[2026-01-02T03:04:05Z] $ sh -c")
	assert.Contains(t, text, "pw=***")
	assert.Contains(t, text, "exited with code 2")
	assert.NotContains(t, text, "letmein")
}

func TestLocalRunAsOtherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("running a command as another user needs root")
	}
	res, err := (&runner.Local{}).Run(context.Background(), runner.Command{
		Argv: []string{"sh", "-c", `echo "$(id -un) $HOME $USER"`},
		User: "nobody",
		Env:  []string{"EXTRA=1"},
	})
	require.NoError(t, err)
	assert.Equal(t, "nobody /nonexistent nobody\n", string(res.Stdout))
}

func TestLocalRunHasNoControllingTerminal(t *testing.T) {
	// Opening /dev/tty fails with ENXIO for a process without a
	// controlling terminal, whether or not the test itself has one.
	res, err := (&runner.Local{}).Run(context.Background(), runner.Command{
		Argv: []string{"sh", "-c", "if (exec </dev/tty) 2>/dev/null; then echo tty; else echo none; fi"},
	})
	require.NoError(t, err)
	assert.Equal(t, "none\n", string(res.Stdout))
}
