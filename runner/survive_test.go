package runner

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSurviveCallerKeepsOutputAndStatus(t *testing.T) {
	var live, liveErr bytes.Buffer
	res, err := (&Local{}).Run(context.Background(), Command{
		Argv:   []string{"sh", "-c", `echo out; echo err >&2; printf partial; exit 3`},
		Stdout: &live, Stderr: &liveErr, SurviveCaller: true,
	})
	var exitErr *ExitError
	require.ErrorAs(t, err, &exitErr)
	assert.Equal(t, 3, res.ExitCode)
	assert.Equal(t, "out\npartial", string(res.Stdout))
	assert.Equal(t, "err\n", string(res.Stderr))
	assert.Equal(t, "out\npartial", live.String())
	assert.Contains(t, err.Error(), "sh -c", "the error names the command, not the relay")
	assert.NotContains(t, err.Error(), "mkfifo")
}

func TestSurviveCallerIgnoresCancel(t *testing.T) {
	dir := t.TempDir()
	done := filepath.Join(dir, "done")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := (&Local{}).Run(ctx, Command{
		Argv: []string{"sh", "-c", `sleep 0.2; touch "$0"`, done}, SurviveCaller: true,
	})
	require.NoError(t, err)
	assert.FileExists(t, done, "the cancelled command ran to its end")
}

func TestSurviveCallerRejectsInput(t *testing.T) {
	_, err := (&Local{}).Run(context.Background(), Command{
		Argv: []string{"cat"}, Stdin: os.Stdin, SurviveCaller: true,
	})
	require.ErrorContains(t, err, "takes no input")
}

// The caller's death is a reader that goes away: the command must go on
// writing, and run to its end, with no reader left.
func TestSurvivorScriptOutlivesItsReader(t *testing.T) {
	dir := t.TempDir()
	done := filepath.Join(dir, "done")
	// The command writes well past a pipe's buffer after the reader has
	// gone, then records that it got there.
	script := `sleep 0.3; i=0; while [ $i -lt 2000 ]; do echo "line $i of output that nobody reads"; i=$((i+1)); done; touch "$0"`
	argv := SurvivorArgv([]string{"sh", "-c", script, done})
	cmd := exec.Command(argv[0], argv[1:]...)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	require.NoError(t, out.Close()) // the reader is gone before the first write

	require.NoError(t, cmd.Wait())
	assert.FileExists(t, done)

	// Without the relay, the same command dies of SIGPIPE.
	bare := exec.Command("sh", "-c", script, filepath.Join(dir, "bare"))
	out, err = bare.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, bare.Start())
	require.NoError(t, out.Close())
	require.Error(t, bare.Wait())
	assert.NoFileExists(t, filepath.Join(dir, "bare"))
}

// A maintainer script can start a daemon that keeps the command's output
// open. Run must return soon after the command ends instead of waiting for
// the daemon to exit.
func TestSurviveCallerLeavesBackgroundChild(t *testing.T) {
	done := filepath.Join(t.TempDir(), "done")
	res, err := (&Local{}).Run(context.Background(), Command{
		Argv:          []string{"sh", "-c", `(sleep 30; touch "$0") & echo started`, done},
		SurviveCaller: true,
	})
	require.NoError(t, err)
	assert.Equal(t, "started\n", string(res.Stdout))
	assert.NoFileExists(t, done, "Run waited for the command's background child")
}
