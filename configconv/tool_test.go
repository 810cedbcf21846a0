package configconv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/runner"
	"github.com/pasops/pasupgrade/runner/runnertest"
)

// fakeToolRunner replies to expected runs in order and fails the test on
// any other run, and on expected runs that never happened.
type fakeToolRunner struct {
	t        *testing.T
	expected []fakeRun
	runs     []Invocation
	stdins   []string
	prepared int
}

type fakeRun struct {
	args []string
	do   func(inv Invocation) int
}

func newFakeToolRunner(t *testing.T) *fakeToolRunner {
	f := &fakeToolRunner{t: t}
	t.Cleanup(func() {
		if len(f.expected) > 0 {
			t.Errorf("expected runs never happened: %v", f.expected[0].args)
		}
	})
	return f
}

func (f *fakeToolRunner) expect(do func(inv Invocation) int, args ...string) {
	f.expected = append(f.expected, fakeRun{args: args, do: do})
}

func (f *fakeToolRunner) Prepare(context.Context) error {
	f.prepared++
	return nil
}

func (f *fakeToolRunner) Run(_ context.Context, inv Invocation) (int, error) {
	f.runs = append(f.runs, inv)
	stdin := ""
	if inv.Stdin != nil {
		data, _ := io.ReadAll(inv.Stdin)
		stdin = string(data)
	}
	f.stdins = append(f.stdins, stdin)
	if len(f.expected) == 0 || !assert.Equal(f.t, f.expected[0].args, inv.Args, "unexpected run") {
		f.t.FailNow()
	}
	next := f.expected[0]
	f.expected = f.expected[1:]
	return next.do(inv), nil
}

// writes returns a run that writes name in the working directory.
func writes(name string) func(Invocation) int {
	return func(inv Invocation) int {
		_ = os.WriteFile(filepath.Join(inv.WorkDir, name), []byte("pas_config_version: x\n"), 0o644)
		return 0
	}
}

func exits(code int, stderr string) func(Invocation) int {
	return func(inv Invocation) int {
		if inv.Stderr != nil {
			_, _ = io.WriteString(inv.Stderr, stderr)
		}
		return code
	}
}

func TestToolPreUpgrade(t *testing.T) {
	fake := newFakeToolRunner(t)
	work := t.TempDir()
	fake.expect(writes(DefaultExportFile), "--frontend-baseurl", "https://mgmt.example:8443", "--user", "operator", "pre-upgrade")
	tool := &Tool{Runner: fake, WorkDir: work, BaseURL: "https://mgmt.example:8443", AdminUser: "operator", Password: "s3cret"}

	path, err := tool.PreUpgrade(context.Background())
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(work, DefaultExportFile), path)
	assert.Equal(t, "s3cret\n", fake.stdins[0], "the password goes on stdin")
	assert.Equal(t, []string{"s3cret"}, fake.runs[0].Secrets)
	assert.Nil(t, fake.runs[0].Terminal)
	assert.Equal(t, 1, fake.prepared)
}

// failingPrepare is a ToolRunner whose Prepare fails and whose Run fails
// the test, because nothing may run after a failed Prepare.
type failingPrepare struct{ t *testing.T }

func (f failingPrepare) Prepare(context.Context) error { return ErrNotLoggedIn }

func (f failingPrepare) Run(context.Context, Invocation) (int, error) {
	f.t.Error("Run called after Prepare failed")
	return -1, nil
}

func TestToolPrepareComesFirst(t *testing.T) {
	root := newTestCA(t, "Test Root", nil)
	src := filepath.Join(t.TempDir(), "bundle.pem")
	require.NoError(t, os.WriteFile(src, root.pem, 0o600))
	work := t.TempDir()

	_, err := (&Tool{Runner: failingPrepare{t}, WorkDir: work, CACert: src}).PreUpgrade(context.Background())
	require.ErrorIs(t, err, ErrNotLoggedIn)
	entries, err := os.ReadDir(work)
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing is copied before the image is present")
}

func TestToolOutputFileChecks(t *testing.T) {
	tests := []struct {
		name    string
		stale   bool
		do      func(Invocation) int
		wantErr error
	}{
		{"written", false, writes(DefaultConvertedFile), nil},
		{"exit 0 without file", false, exits(0, ""), ErrNoOutputFile},
		{"exit 0 leaving stale file", true, exits(0, ""), ErrNoOutputFile},
		{"stale file rewritten", true, writes(DefaultConvertedFile), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			work := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(work, DefaultExportFile), []byte("x"), 0o644))
			if tt.stale {
				stale := filepath.Join(work, DefaultConvertedFile)
				require.NoError(t, os.WriteFile(stale, []byte("old"), 0o644))
				past := time.Now().Add(-time.Hour)
				require.NoError(t, os.Chtimes(stale, past, past))
			}
			fake := newFakeToolRunner(t)
			fake.expect(tt.do, "convert-config")

			path, err := (&Tool{Runner: fake, WorkDir: work}).ConvertConfig(context.Background())
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
				assert.Empty(t, path)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, filepath.Join(work, DefaultConvertedFile), path)
		})
	}
}

func TestToolConvertConfigInputs(t *testing.T) {
	terminal := &Terminal{In: os.Stdin, Out: io.Discard}
	tests := []struct {
		name         string
		answers      io.Reader
		terminal     *Terminal
		wantStdin    string
		wantTerminal bool
	}{
		{"answers file", strings.NewReader("y\n"), terminal, "y\n", false},
		{"terminal", nil, terminal, "", true},
		{"neither", nil, nil, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			work := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(work, DefaultExportFile), []byte("x"), 0o644))
			fake := newFakeToolRunner(t)
			fake.expect(writes(DefaultConvertedFile), "convert-config")

			tool := &Tool{Runner: fake, WorkDir: work, Password: "pw", Answers: tt.answers, Terminal: tt.terminal}
			_, err := tool.ConvertConfig(context.Background())
			require.NoError(t, err)
			assert.Equal(t, tt.wantStdin, fake.stdins[0], "convert-config never gets the password")
			assert.Equal(t, tt.wantTerminal, fake.runs[0].Terminal != nil)
		})
	}
}

func TestToolExitCodes(t *testing.T) {
	tests := []struct {
		name       string
		subcommand string
		code       int
		wantErr    error
		wantText   string
	}{
		{"conversion needs answer", "convert-config", 3, ErrNeedsAnswer, "answer y on a terminal or in an answers file"},
		{"apply failed", "post-upgrade", 4, ErrApplyFailed, "config apply failed on nodes: core-1"},
		{"generic failure", "pre-upgrade", 1, ErrToolFailed, "exited with code 1"},
		{"code 3 outside conversion", "pre-upgrade", 3, ErrToolFailed, "exited with code 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			work := t.TempDir()
			for _, name := range []string{DefaultExportFile, DefaultConvertedFile} {
				require.NoError(t, os.WriteFile(filepath.Join(work, name), []byte("x"), 0o644))
			}
			fake := newFakeToolRunner(t)
			args := []string{tt.subcommand}
			if tt.subcommand == "post-upgrade" {
				args = append(args, "--config-apply-timeout", "20")
			}
			fake.expect(exits(tt.code, "config apply failed on nodes: core-1\npassword was pw-123\n"), args...)
			tool := &Tool{Runner: fake, WorkDir: work, Password: "pw-123"}

			var err error
			switch tt.subcommand {
			case "pre-upgrade":
				_, err = tool.PreUpgrade(context.Background())
			case "convert-config":
				_, err = tool.ConvertConfig(context.Background())
			case "post-upgrade":
				var outcome PostUpgradeOutcome
				outcome, err = tool.PostUpgrade(context.Background(), 20*time.Second)
				assert.False(t, outcome.Applied)
				assert.Equal(t, tt.code, outcome.ExitCode)
			}
			require.ErrorIs(t, err, tt.wantErr)
			assert.Contains(t, err.Error(), tt.wantText)
			assert.NotContains(t, err.Error(), "pw-123", "the password must be redacted")
			var toolErr *ToolError
			require.ErrorAs(t, err, &toolErr)
			assert.Equal(t, tt.code, toolErr.ExitCode)
		})
	}
}

func TestToolPostUpgradeTimeout(t *testing.T) {
	tests := []struct {
		timeout time.Duration
		want    string
	}{
		{20 * time.Second, "20"},
		{1500 * time.Millisecond, "2"},
	}
	for _, tt := range tests {
		t.Run(tt.timeout.String(), func(t *testing.T) {
			work := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(work, DefaultConvertedFile), []byte("x"), 0o644))
			fake := newFakeToolRunner(t)
			fake.expect(exits(0, ""), "post-upgrade", "--config-apply-timeout", tt.want)

			outcome, err := (&Tool{Runner: fake, WorkDir: work, Password: "pw"}).PostUpgrade(context.Background(), tt.timeout)
			require.NoError(t, err)
			assert.True(t, outcome.Applied)
			assert.Equal(t, "pw\n", fake.stdins[0])
		})
	}

	_, err := (&Tool{Runner: newFakeToolRunner(t), WorkDir: t.TempDir()}).PostUpgrade(context.Background(), 0)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "invalid config apply timeout 0s")
}

func TestToolMissingInputFile(t *testing.T) {
	tool := &Tool{Runner: newFakeToolRunner(t), WorkDir: t.TempDir()}
	_, err := tool.ConvertConfig(context.Background())
	require.ErrorIs(t, err, os.ErrNotExist)
	assert.Contains(t, err.Error(), "run pre-upgrade first")

	_, err = tool.PostUpgrade(context.Background(), time.Second)
	require.ErrorIs(t, err, os.ErrNotExist)
	assert.Contains(t, err.Error(), "run convert-config first")
}

func TestHostRunner(t *testing.T) {
	tests := []struct {
		name     string
		exit     int
		wantCode int
	}{
		{"success", 0, 0},
		{"apply failed", 4, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := runnertest.New(t)
			work := t.TempDir()
			fake.Expect("pas-mgmt-upgrade-config", "post-upgrade", "--config-apply-timeout", "20").
				AsUser("pas").
				Do(func(cmd runner.Command) (runner.Result, error) {
					assert.Equal(t, work, cmd.Dir)
					assert.Equal(t, []string{"pw"}, cmd.Secrets)
					assert.False(t, cmd.Interactive)
					res := runner.Result{ExitCode: tt.exit}
					if tt.exit != 0 {
						return res, runner.NewExitError(cmd, res)
					}
					return res, nil
				})
			h := &HostRunner{Runner: fake, User: "pas"}

			code, err := h.Run(context.Background(), Invocation{
				Args: []string{"post-upgrade", "--config-apply-timeout", "20"}, WorkDir: work,
				Stdin: strings.NewReader("pw\n"), Secrets: []string{"pw"},
			})
			require.NoError(t, err)
			assert.Equal(t, tt.wantCode, code)
			assert.Equal(t, "pw\n", fake.Stdin(0))
		})
	}
}

func TestDockerToolPasswordOnStdinOnly(t *testing.T) {
	d, cli := newTestRunner(t)
	const password = "Adm1n+/pass word"
	var inspected []string
	d.created = func(id string) {
		info, err := cli.ContainerInspect(context.Background(), id)
		require.NoError(t, err)
		inspected = append(inspected, strings.Join(info.Config.Env, "\n"), strings.Join(info.Config.Cmd, "\n"),
			strings.Join(info.Config.Entrypoint, "\n"), strings.Join(info.Args, "\n"))
		assert.True(t, info.HostConfig.AutoRemove)
		assert.Equal(t, "host", string(info.HostConfig.NetworkMode))
		assert.Equal(t, CurrentUserID(), info.Config.User)
	}
	work := t.TempDir()
	var stdout, stderr bytes.Buffer
	tool := &Tool{Runner: d, WorkDir: work, Password: password, Stdout: &stdout, Stderr: &stderr}

	path, err := tool.PreUpgrade(context.Background())
	require.NoError(t, err, "stderr: %s", stderr.String())
	exported, err := os.ReadFile(path)
	require.NoError(t, err)
	sum := fmt.Sprintf("%x", sha256.Sum256([]byte(password)))
	assert.Contains(t, string(exported), "password_sha256: "+sum, "the password reaches the tool on stdin")

	require.NotEmpty(t, inspected)
	assert.Equal(t, "pre-upgrade", inspected[1], "Cmd holds only the arguments")
	for _, field := range inspected {
		assert.NotContains(t, field, password)
	}
}

func TestDockerToolSubcommands(t *testing.T) {
	d, cli := newTestRunner(t)
	work := t.TempDir()
	var stderr bytes.Buffer
	tool := &Tool{Runner: d, WorkDir: work, Password: "pw", Stderr: &stderr}
	ctx := context.Background()

	_, err := tool.PreUpgrade(ctx)
	require.NoError(t, err)

	_, err = tool.ConvertConfig(ctx)
	require.ErrorIs(t, err, ErrNeedsAnswer, "no answers file and no terminal")
	assert.Contains(t, err.Error(), "no answer for legacy_auth")

	tool.Answers = strings.NewReader("y\n")
	converted, err := tool.ConvertConfig(ctx)
	require.NoError(t, err)
	data, err := os.ReadFile(converted)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(data), "pas_config_version: 4.9.0\n"))
	assert.NotContains(t, string(data), "legacy_auth")

	outcome, err := tool.PostUpgrade(ctx, 20*time.Second)
	require.NoError(t, err)
	assert.True(t, outcome.Applied)

	require.NoError(t, os.WriteFile(filepath.Join(work, "faketool.conf"), []byte("apply-fails\n"), 0o644))
	outcome, err = tool.PostUpgrade(ctx, 20*time.Second)
	require.ErrorIs(t, err, ErrApplyFailed)
	assert.Contains(t, err.Error(), "core-1")
	assert.False(t, outcome.Applied)
	assert.Equal(t, 4, outcome.ExitCode)

	require.NoError(t, os.WriteFile(filepath.Join(work, "faketool.conf"), []byte("skip-write\n"), 0o644))
	tool.Answers = strings.NewReader("y\n")
	_, err = tool.ConvertConfig(ctx)
	require.ErrorIs(t, err, ErrNoOutputFile)

	assert.Empty(t, leftoverContainers(t, cli))
}
