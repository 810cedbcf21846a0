package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/internal/lab"
	"github.com/pasops/pasupgrade/internal/testenv"
	"github.com/pasops/pasupgrade/pasupgrade"
	"github.com/pasops/pasupgrade/runner"
)

// labTimeout bounds one test's use of a lab: bringing it up, one or two
// CLI runs and bringing it down.
const labTimeout = 10 * time.Minute

// keepEnv names the environment variable that, set to 1, leaves every
// test's lab running for a look inside after the test.
const keepEnv = "PASUPGRADE_E2E_KEEP"

// sharedDir holds what every lab of this test binary reuses: the .deb
// files and the static pasupgrade-cli. TestMain removes it.
var sharedDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedDir != "" {
		os.RemoveAll(sharedDir)
		removePreparedImages()
	}
	os.Exit(code)
}

// removePreparedImages removes the management node images that this test
// binary's labs committed, once every lab is down.
func removePreparedImages() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	docker, err := lab.Connect(ctx)
	if err == nil {
		err = lab.RemovePreparedImages(ctx, docker)
		docker.Close()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "removing the prepared node images: %v\n", err)
	}
}

var prepared struct {
	once            sync.Once
	debDir, cliPath string
	err             error
}

// prepare builds the packages and the CLI once per test binary.
func prepare(t *testing.T) (debDir, cliPath string) {
	t.Helper()
	prepared.once.Do(func() {
		dir, err := os.MkdirTemp("", "pasupgrade-e2e-")
		if err != nil {
			prepared.err = err
			return
		}
		sharedDir = dir
		moduleDir, err := filepath.Abs("..")
		if err != nil {
			prepared.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()

		prepared.debDir = filepath.Join(dir, "debs")
		if _, err := lab.BuildPackages(ctx, prepared.debDir, lab.BuildOptions{ModuleDir: moduleDir}); err != nil {
			prepared.err = fmt.Errorf("building the lab packages: %w", err)
			return
		}
		prepared.cliPath = filepath.Join(dir, "pasupgrade-cli")
		// The pasupgrade_faults tag lets TestKillAndResume hold a run
		// at a step boundary (see cmd/pasupgrade-cli/hold.go).
		build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-tags", "pasupgrade_faults",
			"-o", prepared.cliPath, "./cmd/pasupgrade-cli")
		build.Dir = moduleDir
		// The CLI runs inside the node container, so it must not need
		// this machine's C library.
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			prepared.err = fmt.Errorf("building pasupgrade-cli: %w: %s", err, out)
		}
	})
	require.NoError(t, prepared.err)
	return prepared.debDir, prepared.cliPath
}

// testLab is a running lab with pasupgrade-cli installed in its
// management node, brought down when the test ends.
type testLab struct {
	t      *testing.T
	docker *client.Client
	lab    *lab.Lab
	mgmt   *lab.Node
	// cli is the CLI's path, the same inside the node and on this machine.
	cli string
	// config is the CLI's config file.
	config string
	// password is the lab's admin password.
	password string
}

// startLab brings up a lab for t. It fails t when the lab cannot start;
// without a Docker engine it skips, or fails under PASUPGRADE_REQUIRE_LAB=1.
func startLab(t *testing.T, opts lab.Options) *testLab {
	t.Helper()
	testenv.DockerHost(t)
	debDir, cliPath := prepare(t)

	ctx, cancel := context.WithTimeout(context.Background(), labTimeout)
	defer cancel()
	docker, err := lab.Connect(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { docker.Close() })

	opts.Name = "e2e-" + strings.TrimPrefix(lab.UniqueName("x"), "x-")
	opts.Dir = filepath.Join(t.TempDir(), "lab")
	opts.PackageDir = debDir
	opts.EnableControl = true
	// Labs start their management node from a committed image with 4.8.0
	// installed, which the first lab of each topology prepares.
	opts.PreparedImages = true
	opts.Logger = slog.New(slog.NewTextHandler(logWriter{t}, nil))
	l, err := lab.Up(ctx, docker, opts)
	require.NoError(t, err, "bringing up the lab")
	t.Cleanup(func() {
		if os.Getenv(keepEnv) == "1" {
			t.Logf("%s=1: leaving lab %s in %s", keepEnv, l.Name, l.Dir)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := l.Down(ctx, docker); err != nil {
			t.Errorf("bringing lab %s down: %v", l.Name, err)
		}
	})

	mgmt, err := l.Node(docker, "mgmt")
	require.NoError(t, err)
	password, err := l.AdminPassword()
	require.NoError(t, err)

	tl := &testLab{t: t, docker: docker, lab: l, mgmt: mgmt, password: password,
		cli: filepath.Join(l.Dir, "bin", "pasupgrade-cli"), config: filepath.Join(l.Dir, "pasupgrade.yaml")}
	data, err := os.ReadFile(cliPath)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Dir(tl.cli), 0o755))
	require.NoError(t, os.WriteFile(tl.cli, data, 0o755))
	tl.writeConfig()

	// Every test's node has a locally edited conffile, which the upgrade
	// must keep and the restore must bring back.
	tl.editConffileLocally(ctx)
	return tl
}

// writeConfig writes the CLI's config file for the lab.
func (l *testLab) writeConfig() {
	l.t.Helper()
	mgmt := l.lab.NodeByName("mgmt")
	text := fmt.Sprintf(`topology: %s
work-dir: %s
deb-dir: %s
mgmt-url: http://127.0.0.1:%d
tool-image: %s
`, l.lab.Topology, l.lab.WorkDir(), l.lab.PackageDir(), mgmt.Ports["mgmt"], l.lab.ToolImage)
	if l.lab.Topology == lab.TopologyMulti {
		text += fmt.Sprintf("ha: %t\ncore-on-mgmt: %t\n", l.lab.HA, l.lab.CoreOnMgmt)
	}
	require.NoError(l.t, os.WriteFile(l.config, []byte(text), 0o644))
}

// backupDir is where upgrades write their backup sets: inside the lab
// directory, so the test can read them from this machine too.
func (l *testLab) backupDir() string { return filepath.Join(l.lab.Dir, "backups") }

// cliRun is the outcome of one pasupgrade-cli run in the node.
type cliRun struct {
	Stdout, Stderr string
	ExitCode       int
	Events         []event
}

// event is one line of --json output: its type and, for the events of a
// plan run, the library's event.
type event struct {
	Type string
	pasupgrade.Event
	// Raw is the whole line.
	Raw string
}

// jsonLine is the shape of a --json output line.
type jsonLine struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// withConfig returns args followed by the flags that give a plan command
// (plan, preflight, upgrade, restore) the lab's config file and admin
// password file.
func (l *testLab) withConfig(args ...string) []string {
	return append(args, "--config", l.config, "--password-file", l.lab.PasswordFile())
}

// upgradeArgs returns the arguments of an upgrade of the lab, with extra
// flags appended.
func (l *testLab) upgradeArgs(extra ...string) []string {
	args := l.withConfig("upgrade", "--yes", "--backup-dir", l.backupDir())
	return append(args, extra...)
}

// withMgmt returns args followed by the flags that give a management API
// command (status, config) the lab's URL and admin password file.
func (l *testLab) withMgmt(args ...string) []string {
	return append(args, "--mgmt-url", l.lab.MgmtURL(), "--password-file", l.lab.PasswordFile())
}

// runCLI runs pasupgrade-cli with args, --json and --debug as root in the
// management node and returns its output. A non-zero exit is not an
// error; a failure to run it at all fails the test. onEvent, when not
// nil, receives every event as it arrives.
func (l *testLab) runCLI(ctx context.Context, onEvent func(event), args ...string) cliRun {
	l.t.Helper()
	return l.runArgv(ctx, onEvent, append([]string{l.cli}, args...))
}

// runArgv runs argv, which starts pasupgrade-cli, as runCLI does.
func (l *testLab) runArgv(ctx context.Context, onEvent func(event), argv []string) cliRun {
	l.t.Helper()
	return l.runArgvEnv(ctx, onEvent, nil, argv)
}

// runArgvEnv runs argv as runArgv does, with env (KEY=VALUE) added to
// its environment.
func (l *testLab) runArgvEnv(ctx context.Context, onEvent func(event), env, argv []string) cliRun {
	l.t.Helper()
	argv = append(argv, "--json", "--debug")
	var stdout, stderr bytes.Buffer
	lines := &eventWriter{onEvent: onEvent}
	res, err := l.mgmt.Run(ctx, runner.Command{
		Argv:    argv,
		Env:     env,
		Stdout:  io.MultiWriter(&stdout, lines),
		Stderr:  &stderr,
		Secrets: []string{l.password},
	})
	run := cliRun{Stdout: stdout.String(), Stderr: stderr.String(), Events: lines.events}
	if err != nil {
		var exitErr *runner.ExitError
		require.ErrorAs(l.t, err, &exitErr, "running %v in the node", argv)
		run.ExitCode = res.ExitCode
	}
	l.t.Logf("%s: exit %d\nstderr:\n%s", strings.Join(argv, " "), run.ExitCode, run.Stderr)
	return run
}

// eventWriter splits --json output into events.
type eventWriter struct {
	buf     bytes.Buffer
	events  []event
	onEvent func(event)
}

func (w *eventWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadBytes('\n')
		if err != nil {
			// An incomplete line waits for the rest.
			w.buf.Write(line)
			return len(p), nil
		}
		var parsed jsonLine
		if json.Unmarshal(line, &parsed) != nil {
			continue
		}
		e := event{Type: parsed.Type, Raw: string(bytes.TrimSpace(line))}
		// Only plan runs send a pasupgrade.Event as data; other lines
		// leave it zero.
		_ = json.Unmarshal(parsed.Data, &e.Event)
		w.events = append(w.events, e)
		if w.onEvent != nil {
			w.onEvent(e)
		}
	}
}

// summary returns the run's summary event, failing the test without one.
func (r cliRun) summary(t *testing.T) *event {
	t.Helper()
	for i := range r.Events {
		if r.Events[i].Kind == pasupgrade.EventSummary && r.Events[i].Summary != nil {
			return &r.Events[i]
		}
	}
	t.Fatalf("the run sent no summary event; stdout:\n%s", r.Stdout)
	return nil
}

// inNode runs argv as root in the management node and returns its
// standard output, failing the test when it fails.
func (l *testLab) inNode(ctx context.Context, argv ...string) string {
	l.t.Helper()
	res, err := l.mgmt.Run(ctx, runner.Command{Argv: argv})
	require.NoError(l.t, err, "running %v in the management node", argv)
	return string(res.Stdout)
}

// runInNode runs argv as root in the management node and returns its
// standard output. Unlike inNode it does not stop the test, so event
// callbacks, which run outside the test's goroutine, can use it.
func (l *testLab) runInNode(ctx context.Context, argv ...string) (string, error) {
	res, err := l.mgmt.Run(ctx, runner.Command{Argv: argv})
	return string(res.Stdout), err
}

// logWriter sends log lines to t.Log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	scanner := bufio.NewScanner(bytes.NewReader(p))
	for scanner.Scan() {
		w.t.Log(scanner.Text())
	}
	return len(p), nil
}
