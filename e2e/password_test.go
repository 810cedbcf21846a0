package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/internal/lab"
	"github.com/pasops/pasupgrade/runner"
)

// secretWatcher looks for a secret in every process's argv and environment
// on this machine, which shares its kernel with the lab's containers, and
// in the metadata of every container the engine creates.
type secretWatcher struct {
	secret []byte
	// docker is the engine whose containers are inspected; nil watches
	// processes only.
	docker client.APIClient
	// image is the upgrade tool's image; containers of it are counted so
	// that the test can check that the watcher saw them.
	image string

	mu             sync.Mutex
	leaks          []string
	samples        int
	sawCLI         bool
	toolContainers int

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (w *secretWatcher) start() {
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for ctx.Err() == nil {
			w.sampleProcesses()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	if w.docker != nil {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.watchContainers(ctx)
		}()
	}
}

// stop ends the watch; it waits until both goroutines are done.
func (w *secretWatcher) stop() {
	w.cancel()
	w.wg.Wait()
}

// sampleProcesses reads /proc/PID/cmdline and /proc/PID/environ of every
// process once.
func (w *secretWatcher) sampleProcesses() {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range dirs {
		// Processes come and go while the loop runs, so read errors are
		// expected and skipped.
		cmdline, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
		environ, _ := os.ReadFile(filepath.Join(dir, "environ"))
		w.mu.Lock()
		if bytes.Contains(cmdline, []byte("pasupgrade-cli\x00upgrade")) {
			w.sawCLI = true
		}
		if bytes.Contains(cmdline, w.secret) {
			w.leaks = append(w.leaks, "argv of "+dir+": "+printable(cmdline, w.secret))
		}
		if bytes.Contains(environ, w.secret) {
			w.leaks = append(w.leaks, "environment of "+dir+" ("+printable(cmdline, w.secret)+")")
		}
		w.mu.Unlock()
	}
	w.mu.Lock()
	w.samples++
	w.mu.Unlock()
}

// watchContainers inspects every container the engine creates while the
// watch runs, before the upgrade tool's --rm removes it.
func (w *secretWatcher) watchContainers(ctx context.Context) {
	msgs, errs := w.docker.Events(ctx, events.ListOptions{
		Filters: filters.NewArgs(filters.Arg("type", "container"), filters.Arg("event", "create")),
	})
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-errs:
			if ctx.Err() == nil {
				w.mu.Lock()
				w.leaks = append(w.leaks, "watcher: the engine's event stream failed: "+err.Error())
				w.mu.Unlock()
			}
			return
		case msg := <-msgs:
			w.inspectContainer(ctx, msg.Actor.ID)
		}
	}
}

func (w *secretWatcher) inspectContainer(ctx context.Context, id string) {
	info, err := w.docker.ContainerInspect(ctx, id)
	if err != nil {
		// The container is already gone; its metadata cannot be read
		// any more.
		return
	}
	data, _ := json.Marshal(info)
	w.mu.Lock()
	defer w.mu.Unlock()
	if info.Config != nil && info.Config.Image == w.image {
		w.toolContainers++
	}
	if bytes.Contains(data, w.secret) {
		w.leaks = append(w.leaks, "metadata of container "+info.Name)
	}
}

// printable returns a NUL-separated argv with the secret masked, for a
// failure message.
func printable(argv, secret []byte) string {
	masked := bytes.ReplaceAll(argv, secret, []byte("<password>"))
	return strings.TrimSpace(string(bytes.ReplaceAll(masked, []byte{0}, []byte{' '})))
}

// TestSecretWatcherFindsLeaks starts processes with a secret in their argv
// and in their environment, and checks that the watcher reports both, so a
// clean watch of an upgrade means something.
func TestSecretWatcherFindsLeaks(t *testing.T) {
	secret := "e2e-canary-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	watcher := &secretWatcher{secret: []byte(secret)}
	watcher.start()

	inArgv := exec.Command("sh", "-c", "sleep 2", secret)
	inEnv := exec.Command("sleep", "2")
	inEnv.Env = append(os.Environ(), "CANARY="+secret)
	for _, cmd := range []*exec.Cmd{inArgv, inEnv} {
		require.NoError(t, cmd.Start())
		defer cmd.Wait()
		defer cmd.Process.Kill()
	}
	wantArgv := "argv of /proc/" + strconv.Itoa(inArgv.Process.Pid) + ":"
	wantEnv := "environment of /proc/" + strconv.Itoa(inEnv.Process.Pid) + " "
	leaks := func() string {
		watcher.mu.Lock()
		defer watcher.mu.Unlock()
		return strings.Join(watcher.leaks, "\n")
	}
	assert.Eventually(t, func() bool { return strings.Contains(leaks(), wantArgv) },
		10*time.Second, 20*time.Millisecond, "the watcher missed the secret in argv")
	assert.Eventually(t, func() bool { return strings.Contains(leaks(), wantEnv) },
		10*time.Second, 20*time.Millisecond, "the watcher missed the secret in the environment")
	watcher.stop()
	assert.NotContains(t, leaks(), secret, "the report must mask the secret")
}

// TestPasswordNeverExposed runs a full upgrade while watching argv,
// environments and container metadata, then searches every file the run
// wrote, its events and its logs: the admin password must appear nowhere.
func TestPasswordNeverExposed(t *testing.T) {
	t.Parallel()
	l := startLab(t, lab.Options{Topology: lab.TopologySingle})
	ctx, cancel := context.WithTimeout(context.Background(), labTimeout)
	defer cancel()

	watcher := &secretWatcher{secret: []byte(l.password), docker: l.docker, image: l.lab.ToolImage}
	watcher.start()
	transcript := filepath.Join(l.lab.WorkDir(), "transcript.log")
	run := l.runCLI(ctx, nil, l.upgradeArgs("--transcript", transcript)...)
	watcher.stop()
	require.Equal(t, 0, run.ExitCode, "pasupgrade-cli upgrade failed; stdout:\n%s", run.Stdout)

	// The watcher must have seen the run, or finding nothing proves
	// nothing.
	assert.Positive(t, watcher.samples, "the watcher took no sample")
	assert.True(t, watcher.sawCLI, "the watcher never saw the pasupgrade-cli process")
	assert.Positive(t, watcher.toolContainers, "the watcher saw no container of %s", l.lab.ToolImage)
	assert.Empty(t, watcher.leaks, "the password was visible while the upgrade ran")

	// Events (stdout) and logs (stderr, with --debug).
	assert.NotContains(t, run.Stdout, l.password, "the password is in the events")
	assert.NotContains(t, run.Stderr, l.password, "the password is in the logs")
	require.FileExists(t, transcript)

	// Every file of the lab directory that the run wrote: the transcript,
	// the journal, the tool's files, the backup sets. The password file
	// itself is the one exception.
	err := filepath.WalkDir(l.lab.Dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || path == l.lab.PasswordFile() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		assert.False(t, bytes.Contains(data, watcher.secret), "the password is in %s", path)
		return nil
	})
	require.NoError(t, err)

	l.assertNoPasswordInNode(ctx)
}

// assertNoPasswordInNode searches the files inside the node for the admin
// password: service logs, the simulator's state, the debconf database, the
// default backup directory and temporary files.
func (l *testLab) assertNoPasswordInNode(ctx context.Context) {
	t := l.t
	t.Helper()
	// grep reads the password from stdin, so it never shows in argv.
	res, err := l.mgmt.Run(ctx, runner.Command{
		Argv: []string{"sh", "-c", "grep -rlF -f - /opt/balasys /var/log /var/cache/debconf " +
			"/var/backups /tmp /root /run 2>/dev/null; true"},
		Stdin:   strings.NewReader(l.password + "\n"),
		Secrets: []string{l.password},
	})
	require.NoError(t, err)
	for _, path := range strings.Fields(string(res.Stdout)) {
		// The lab directory is mounted in the node, and its password
		// file is meant to hold the password.
		if path != l.lab.PasswordFile() {
			t.Errorf("the password is in %s in the node", path)
		}
	}
}
