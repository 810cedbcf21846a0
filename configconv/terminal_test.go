package configconv

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// openPTY returns the controlling side, which the test types on and reads
// from, and the terminal side, which the runner uses.
func openPTY(t *testing.T) (controller, terminal *os.File, output *syncBuffer) {
	t.Helper()
	controller, terminal, err := pty.Open()
	require.NoError(t, err)
	t.Cleanup(func() {
		controller.Close()
		terminal.Close()
	})
	output = &syncBuffer{}
	go func() { _, _ = io.Copy(output, controller) }()
	return controller, terminal, output
}

func termiosOf(t *testing.T, f *os.File) unix.Termios {
	t.Helper()
	state, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	require.NoError(t, err)
	return *state
}

type runOutcome struct {
	code int
	err  error
}

func TestDockerRunnerTerminalPrompt(t *testing.T) {
	tests := []struct {
		name     string
		answer   string
		cancel   bool
		wantCode int
		wantText string
	}{
		{"answer yes", "y\r", false, 0, "answer=y"},
		{"answer no", "n\r", false, 3, "answer=n"},
		{"cancelled at prompt", "", true, -1, ""},
	}
	d, cli := newTestRunner(t)
	d.StopTimeout = time.Second
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			controller, terminal, output := openPTY(t)
			before := termiosOf(t, terminal)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()

			done := make(chan runOutcome, 1)
			go func() {
				code, err := d.Run(ctx, Invocation{
					Args: []string{"prompt"}, WorkDir: t.TempDir(),
					Terminal: &Terminal{In: terminal, Out: terminal},
				})
				done <- runOutcome{code, err}
			}()
			waitFor(t, "the prompt", func() bool { return strings.Contains(output.String(), "Proceed? [y/N]") })
			assert.NotEqual(t, before, termiosOf(t, terminal), "the terminal must be in raw mode during the run")

			if tt.cancel {
				cancel()
			} else {
				_, err := controller.Write([]byte(tt.answer))
				require.NoError(t, err)
			}

			// Nothing more is typed: Run must return on the container's
			// exit, not on a further key press.
			var got runOutcome
			select {
			case got = <-done:
			case <-time.After(2 * time.Minute):
				t.Fatalf("Run did not return after the container exited; terminal output %q", output.String())
			}
			if tt.cancel {
				assert.ErrorIs(t, got.err, context.Canceled)
			} else {
				require.NoError(t, got.err)
				waitFor(t, tt.wantText, func() bool { return strings.Contains(output.String(), tt.wantText) })
			}
			assert.Equal(t, tt.wantCode, got.code)
			assert.Equal(t, before, termiosOf(t, terminal), "the terminal must be restored")
			assert.Empty(t, leftoverContainers(t, cli))
			assertNextKeyPressArrives(t, controller, terminal)
		})
	}
}

// assertNextKeyPressArrives types a line after the run and checks that it
// reaches the terminal's reader, not a forwarding goroutine left behind.
func assertNextKeyPressArrives(t *testing.T, controller, terminal *os.File) {
	t.Helper()
	_, err := controller.Write([]byte("after\n"))
	require.NoError(t, err)

	line := make(chan string, 1)
	go func() {
		buf := make([]byte, 64)
		n, _ := terminal.Read(buf)
		line <- string(buf[:n])
	}()
	select {
	case got := <-line:
		assert.Equal(t, "after\n", got)
	case <-time.After(30 * time.Second):
		t.Fatal("the line typed after the run never reached the terminal")
	}
}

func TestDockerRunnerTerminalRestoredOnStartFailure(t *testing.T) {
	d, cli := newTestRunner(t)
	d.User = "no-such-user"
	_, terminal, _ := openPTY(t)
	before := termiosOf(t, terminal)

	_, err := d.Run(context.Background(), Invocation{
		Args: []string{"prompt"}, WorkDir: t.TempDir(),
		Terminal: &Terminal{In: terminal, Out: terminal},
	})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "starting the upgrade tool's container")
	assert.Equal(t, before, termiosOf(t, terminal), "the terminal must be restored")
	assert.Empty(t, leftoverContainers(t, cli))
}

func TestDockerRunnerTerminalResize(t *testing.T) {
	d, _ := newTestRunner(t)
	controller, terminal, output := openPTY(t)
	require.NoError(t, pty.Setsize(controller, &pty.Winsize{Rows: 30, Cols: 100}))
	resize := make(chan struct{}, 1)

	done := make(chan runOutcome, 1)
	go func() {
		code, err := d.Run(context.Background(), Invocation{
			Args: []string{"size"}, WorkDir: t.TempDir(),
			Terminal: &Terminal{In: terminal, Out: terminal, Resize: resize},
		})
		done <- runOutcome{code, err}
	}()

	// The tool prints its size after each line typed; the size reaches the
	// container shortly after the start, so keep asking until it shows.
	untilSize := func(want string) {
		waitFor(t, want, func() bool {
			_, _ = controller.Write([]byte("\r"))
			time.Sleep(50 * time.Millisecond)
			return strings.Contains(output.String(), want)
		})
	}
	untilSize("size=30x100")
	require.NoError(t, pty.Setsize(controller, &pty.Winsize{Rows: 40, Cols: 120}))
	resize <- struct{}{}
	untilSize("size=40x120")

	_, err := controller.Write([]byte("q\r"))
	require.NoError(t, err)
	select {
	case got := <-done:
		require.NoError(t, got.err)
		assert.Equal(t, 0, got.code)
	case <-time.After(2 * time.Minute):
		t.Fatal("Run did not return")
	}
}
