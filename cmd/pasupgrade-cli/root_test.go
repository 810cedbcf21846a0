package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runCLI runs the CLI with args and returns the exit code, stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, streams{
		In:     strings.NewReader(""),
		Out:    &out,
		ErrOut: &errOut,
	})
	return code, out.String(), errOut.String()
}

func TestRootVersion(t *testing.T) {
	code, out, _ := runCLI(t, "--version")
	assert.Equal(t, exitOK, code)
	assert.Contains(t, out, "pasupgrade-cli version ")
}

func TestRootUnknownFlagIsUsageError(t *testing.T) {
	code, _, errOut := runCLI(t, "--no-such-flag")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "unknown flag: --no-such-flag")
	assert.Contains(t, errOut, "--help")
}

func TestRootWrongArgCountIsUsageError(t *testing.T) {
	code, _, errOut := runCLI(t, "backup", "verify", "a", "b")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "--help")
}

func TestRootInvalidRoot(t *testing.T) {
	// Any subcommand runs the global setup; "completion bash" needs nothing else.
	code, _, errOut := runCLI(t, "--root", "/nonexistent/pas-root", "completion", "bash")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, `invalid --root "/nonexistent/pas-root"`)
}

func TestExitCodeOf(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, exitOK},
		{"plain", errors.New("x"), exitFailure},
		{"coded", withExitCode(exitCheckFailed, errors.New("x")), exitCheckFailed},
		{"wrapped coded", fmt.Errorf("ctx: %w", withExitCode(exitStepFailed, errors.New("x"))), exitStepFailed},
		{"canceled", fmt.Errorf("step: %w", context.Canceled), exitInterrupted},
		{"usage", usageErrorf("bad %s", "x"), exitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, exitCodeOf(tt.err))
		})
	}
}

func TestPrinterJSONError(t *testing.T) {
	var out bytes.Buffer
	p := newPrinter(streams{Out: &out, ErrOut: &out}, true)
	p.Error(withExitCode(exitCheckFailed, errors.New("verify failed")))

	var ev map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &ev))
	assert.Equal(t, "error", ev["type"])
	data := ev["data"].(map[string]any)
	assert.Equal(t, "verify failed", data["message"])
	assert.EqualValues(t, exitCheckFailed, data["exit_code"])
}

func TestPrinterTextModeSeparatesStreams(t *testing.T) {
	var out, errOut bytes.Buffer
	p := newPrinter(streams{Out: &out, ErrOut: &errOut}, false)
	p.Event("result", "backup written", map[string]string{"path": "/x"})
	p.Warnf("optional path %s missing", "/opt/balasys/.ssh")

	assert.Equal(t, "backup written\n", out.String())
	assert.Equal(t, "warning: optional path /opt/balasys/.ssh missing\n", errOut.String())
}

func TestPrinterNoProgressWithoutTerminal(t *testing.T) {
	var errOut bytes.Buffer
	p := newPrinter(streams{Out: &errOut, ErrOut: &errOut}, false)
	bar := p.Progress("files", 10, false)
	bar.Set(5)
	bar.Finish()
	assert.Empty(t, errOut.String())
}
