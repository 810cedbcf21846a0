package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// screen collects what the tool writes to its terminal. done is closed
// when the terminal has no more output.
type screen struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	done chan struct{}
}

func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// builtToolDir holds the binary that builtTool built; TestMain removes it.
var builtToolDir string

// builtTool builds the tool once for the tests that run it as a process.
var builtTool = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "pas-upgrade-tool-test-")
	if err != nil {
		return "", err
	}
	builtToolDir = dir
	binary := filepath.Join(dir, "pas-upgrade-tool")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w: %s", err, out)
	}
	return binary, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if builtToolDir != "" {
		os.RemoveAll(builtToolDir)
	}
	os.Exit(code)
}

// startOnTerminal builds the tool and starts it with a pseudo-terminal as
// stdin, stdout and stderr, in workDir.
func startOnTerminal(t *testing.T, workDir string, args ...string) (*exec.Cmd, *os.File, *screen) {
	t.Helper()
	binary, err := builtTool()
	require.NoError(t, err)

	cmd := exec.Command(binary, args...)
	cmd.Dir = workDir
	terminal, err := pty.Start(cmd)
	require.NoError(t, err)
	t.Cleanup(func() { terminal.Close() })
	output := &screen{done: make(chan struct{})}
	go func() {
		_, _ = copyUntilError(output, terminal)
		close(output.done)
	}()
	return cmd, terminal, output
}

func copyUntilError(dst *screen, src *os.File) (int64, error) {
	var total int64
	buf := make([]byte, 4096)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			dst.Write(buf[:n])
			total += int64(n)
		}
		if err != nil {
			return total, err
		}
	}
}

// waitExit waits for the tool to exit and for its last output.
func waitExit(t *testing.T, cmd *exec.Cmd, output *screen) {
	t.Helper()
	require.NoError(t, cmd.Wait(), output.String())
	select {
	case <-output.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the terminal output did not end after the tool exited")
	}
}

func waitForText(t *testing.T, s *screen, text string) {
	t.Helper()
	require.Eventually(t, func() bool { return strings.Contains(s.String(), text) },
		30*time.Second, 20*time.Millisecond, "the terminal never showed %q; it shows %q", text, s.String())
}

func TestConvertConfigPromptsOnTerminal(t *testing.T) {
	work := t.TempDir()
	export := "pas_config_version: 4.8.0\nlegacy_auth: basic\nkeep: 1\n"
	require.NoError(t, os.WriteFile(filepath.Join(work, exportFile), []byte(export), 0o644))
	cmd, terminal, output := startOnTerminal(t, work, "convert-config")

	waitForText(t, output, "Convert legacy_auth by dropping it? Proceed? [y/N] ")
	_, err := terminal.Write([]byte("y\n"))
	require.NoError(t, err)

	waitExit(t, cmd, output)
	data, err := os.ReadFile(filepath.Join(work, convertedFile))
	require.NoError(t, err)
	assert.Equal(t, "pas_config_version: 4.9.0\nkeep: 1\n", string(data))
}

func TestPasswordPromptHidesInput(t *testing.T) {
	srv := startServer(t, "4.8.0")
	work := t.TempDir()
	cmd, terminal, output := startOnTerminal(t, work, "--frontend-baseurl", srv.URL, "pre-upgrade")

	waitForText(t, output, "Password for admin: ")
	_, err := terminal.Write([]byte(testPassword + "\n"))
	require.NoError(t, err)

	waitExit(t, cmd, output)
	assert.FileExists(t, filepath.Join(work, exportFile))
	assert.Contains(t, output.String(), "Exported the running configuration")
	assert.NotContains(t, output.String(), testPassword, "the terminal does not echo the password")
}

// interruptOnTerminal types Ctrl-C on the tool's terminal once text shows
// and returns the exit code, failing when the tool keeps waiting.
func interruptOnTerminal(t *testing.T, cmd *exec.Cmd, terminal *os.File, output *screen, text string) int {
	t.Helper()
	waitForText(t, output, text)
	_, err := terminal.Write([]byte{0x03})
	require.NoError(t, err)

	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		t.Fatalf("the tool kept waiting after Ctrl-C; the terminal shows %q", output.String())
	}
	select {
	case <-output.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the terminal output did not end after the tool exited")
	}
	return cmd.ProcessState.ExitCode()
}

func TestConvertConfigPromptInterrupted(t *testing.T) {
	work := t.TempDir()
	export := "pas_config_version: 4.8.0\nlegacy_auth: basic\nkeep: 1\n"
	require.NoError(t, os.WriteFile(filepath.Join(work, exportFile), []byte(export), 0o644))
	cmd, terminal, output := startOnTerminal(t, work, "convert-config")

	code := interruptOnTerminal(t, cmd, terminal, output, "Proceed? [y/N] ")

	assert.Equal(t, exitInterrupted, code, output.String())
	assert.NoFileExists(t, filepath.Join(work, convertedFile))
	assert.Contains(t, output.String(), "interrupted")
}

func TestPasswordPromptInterrupted(t *testing.T) {
	srv := startServer(t, "4.8.0")
	work := t.TempDir()
	cmd, terminal, output := startOnTerminal(t, work, "--frontend-baseurl", srv.URL, "pre-upgrade")

	code := interruptOnTerminal(t, cmd, terminal, output, "Password for admin: ")

	assert.Equal(t, exitInterrupted, code, output.String())
	assert.NoFileExists(t, filepath.Join(work, exportFile))
	assert.Empty(t, srv.RequestsTo("POST", "/api/login"), "no login after the interrupt")
	termios, err := unix.IoctlGetTermios(int(terminal.Fd()), unix.TCGETS)
	require.NoError(t, err)
	assert.NotZero(t, termios.Lflag&unix.ECHO, "the terminal echoes again after the interrupt")
}
