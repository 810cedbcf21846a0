package deb

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/pasops/pasupgrade/runner"
	"github.com/pasops/pasupgrade/runner/runnertest"
)

// holdLockEnv makes the test binary, started by startLockHolder, lock the
// file it names and keep the lock until its stdin is closed.
const (
	holdLockEnv     = "DEB_TEST_HOLD_LOCK"
	holdLockKindEnv = "DEB_TEST_HOLD_LOCK_KIND"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(holdLockEnv); path != "" {
		os.Exit(holdLock(path, os.Getenv(holdLockKindEnv)))
	}
	os.Exit(m.Run())
}

// holdLock takes a write lock on the whole file the way dpkg does (a
// classic POSIX record lock), or as an open file description lock when
// kind is "ofd", reports "locked" and waits for stdin to close.
func holdLock(path, kind string) int {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cmd := unix.F_SETLK
	if kind == "ofd" {
		cmd = unix.F_OFD_SETLK
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	if err := unix.FcntlFlock(f.Fd(), cmd, &lk); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("locked")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// lockHolder is a child process that holds a lock until release.
type lockHolder struct {
	pid   int
	stdin io.Closer
	once  sync.Once
}

func (h *lockHolder) release() { h.once.Do(func() { h.stdin.Close() }) }

func startLockHolder(t *testing.T, path, kind string) *lockHolder {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), holdLockEnv+"="+path, holdLockKindEnv+"="+kind)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())

	h := &lockHolder{pid: cmd.Process.Pid, stdin: stdin}
	t.Cleanup(func() {
		h.release()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "locked\n", line)
	return h
}

// Case: another process holds the dpkg frontend lock. The Manager waits a
// bounded time, saying what it waits for, then fails naming the holder.
func TestLockHeldUntilWaitEnds(t *testing.T) {
	for _, kind := range []string{"posix", "ofd"} {
		t.Run(kind, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lock-frontend")
			holder := startLockHolder(t, path, kind)
			fake := runnertest.New(t) // no command may run while the lock is held
			m := &Manager{Runner: fake, Lock: FileLock{Path: path},
				LockWait: 200 * time.Millisecond, LockPoll: 20 * time.Millisecond}
			events := recordEvents(m)

			err := m.ConfigurePending(context.Background())

			require.ErrorIs(t, err, ErrLocked)
			var lockErr *LockError
			require.ErrorAs(t, err, &lockErr)
			assert.Equal(t, holder.pid, lockErr.Holder.PID)
			assert.NotEmpty(t, lockErr.Holder.Command, "the name from /proc/PID/comm")
			assert.Contains(t, err.Error(), path)
			assert.Contains(t, err.Error(), fmt.Sprintf("process %d", holder.pid))
			require.Len(t, *events, 1, "one event per holder, not one per poll")
			wait := (*events)[0]
			assert.Equal(t, EventLockWait, wait.Kind)
			assert.Equal(t, holder.pid, wait.PID)
			assert.Contains(t, wait.Message, "waiting up to 200ms for the dpkg lock "+path)
			assert.Contains(t, wait.Message, fmt.Sprintf("held by process %d", holder.pid))
		})
	}
}

func TestLockReleasedWhileWaiting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock-frontend")
	holder := startLockHolder(t, path, "posix")
	fake := runnertest.New(t)
	fake.Expect(configureArgv...)
	m := &Manager{Runner: fake, Lock: FileLock{Path: path}, LockWait: time.Hour, LockPoll: 10 * time.Millisecond}
	m.OnEvent = func(e Event) {
		if e.Kind == EventLockWait {
			holder.release()
		}
	}

	err := m.ConfigurePending(context.Background())

	require.NoError(t, err)
	assert.Len(t, fake.Calls(), 1)
}

func TestLockProbeFreeAndMissing(t *testing.T) {
	dir := t.TempDir()
	free := filepath.Join(dir, "lock-frontend")
	require.NoError(t, os.WriteFile(free, nil, 0o640))

	for name, path := range map[string]string{"free": free, "missing": filepath.Join(dir, "absent")} {
		t.Run(name, func(t *testing.T) {
			held, holder, err := FileLock{Path: path}.Probe(context.Background())

			require.NoError(t, err)
			assert.False(t, held)
			assert.Zero(t, holder)
		})
	}
}

// The lock of a container's dpkg cannot be probed from outside, so a
// command that fails on the lock is retried until it is free.
func TestLockMessageRetried(t *testing.T) {
	const dpkgLocked = "dpkg: error: dpkg frontend lock was locked by another process with pid 4242\n" +
		"Note: removing the lock file is always wrong, and can end up damaging the\n"
	fake := runnertest.New(t)
	fake.Expect(configureArgv...).Exit(2).Stderr(dpkgLocked).Times(2)
	fake.Expect(configureArgv...)
	m := &Manager{Runner: fake, LockWait: time.Hour, LockPoll: time.Millisecond}
	events := recordEvents(m)

	err := m.ConfigurePending(context.Background())

	require.NoError(t, err)
	assert.Len(t, fake.Calls(), 3)
	require.Len(t, *events, 1)
	assert.Equal(t, 4242, (*events)[0].PID)
	assert.Contains(t, (*events)[0].Message, "the dpkg frontend lock, held by process 4242")
}

// A lock held for minutes fails dpkg at every poll, and each failure must
// not print another warning on the operator's terminal.
func TestLockRetriesWarnOnce(t *testing.T) {
	const dpkgLocked = "dpkg: error: dpkg frontend lock was locked by another process with pid 4242\n"
	fake := runnertest.New(t)
	fake.Expect(configureArgv...).Exit(2).Stderr(dpkgLocked).Times(5)
	fake.Expect(configureArgv...)
	var logged bytes.Buffer
	m := &Manager{Runner: fake, LockWait: time.Hour, LockPoll: time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelWarn}))}

	err := m.ConfigurePending(context.Background())

	require.NoError(t, err)
	assert.Len(t, fake.Calls(), 6)
	assert.Equal(t, 1, strings.Count(logged.String(), "level=WARN"), "log:\n%s", logged.String())
}

func TestLockMessageUntilWaitEnds(t *testing.T) {
	tests := []struct {
		name        string
		argv        []string
		run         func(m *Manager) error
		exit        int
		stderr      string
		wantLock    string
		wantHolder  LockHolder
		wantMessage string
	}{
		{
			name: "apt-get names pid and program",
			argv: []string{"apt-get", "remove", "--yes", "--purge", CorePackage},
			run: func(m *Manager) error {
				_, err := m.Remove(context.Background(), []string{CorePackage}, true)
				return err
			},
			exit: 100,
			stderr: "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 777 (unattended-upgr)\n" +
				"E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?\n",
			wantLock:    "the dpkg frontend lock",
			wantHolder:  LockHolder{PID: 777, Command: "unattended-upgr"},
			wantMessage: "process 777 (unattended-upgr)",
		},
		{
			name: "debconf database without pid",
			argv: []string{"debconf-set-selections"},
			run: func(m *Manager) error {
				_, err := m.Install(context.Background(), testSet(), InstallOptions{})
				return err
			},
			exit:        1,
			stderr:      "debconf: DbDriver \"config\": /var/cache/debconf/config.dat is locked by another process: Resource temporarily unavailable\n",
			wantLock:    "the debconf database lock",
			wantMessage: "an unknown process",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := runnertest.New(t)
			if tt.argv[0] == "apt-get" {
				fake.Expect(queryArgv[:len(queryArgv)-2]...).Stdout(CorePackage + "\tii \t4.8.0\n")
			}
			locked := &lockedRunner{next: fake, argv: tt.argv, exit: tt.exit, stderr: tt.stderr}
			m := &Manager{Runner: locked, LockWait: 30 * time.Millisecond, LockPoll: time.Millisecond}

			err := tt.run(m)

			require.ErrorIs(t, err, ErrLocked)
			var lockErr *LockError
			require.ErrorAs(t, err, &lockErr)
			assert.Equal(t, tt.wantLock, lockErr.Lock)
			assert.Equal(t, tt.wantHolder, lockErr.Holder)
			assert.Contains(t, err.Error(), tt.wantMessage)
			assert.True(t, strings.Contains(err.Error(), "never delete the lock file"))
			assert.GreaterOrEqual(t, locked.count(), 2, "retried while waiting")
		})
	}
}

// lockedRunner fails every run of argv as a held lock would, and passes
// other commands to next.
type lockedRunner struct {
	next   runner.Runner
	argv   []string
	exit   int
	stderr string

	mu    sync.Mutex
	calls int
}

func (r *lockedRunner) Run(ctx context.Context, c runner.Command) (runner.Result, error) {
	if !slices.Equal(c.Argv, r.argv) {
		return r.next.Run(ctx, c)
	}
	r.mu.Lock()
	r.calls++
	r.mu.Unlock()
	res := runner.Result{ExitCode: r.exit, Stderr: []byte(r.stderr)}
	return res, runner.NewExitError(c, res)
}

func (r *lockedRunner) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// A failure after dpkg began to change packages is never a held lock,
// even when a maintainer script's message looks like one: running the
// command again would repeat half of it.
func TestLockLikeMessageAfterProgressNotRetried(t *testing.T) {
	tests := []struct{ name, stdout, stderr string }{
		{"script quotes dpkg", "Setting up proxedo-api-security (4.9.0) ...\n",
			"dpkg: error: dpkg frontend lock was locked by another process with pid 1\n"},
		{"message inside a line", "",
			"postinst: the vault is locked by another process, giving up\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := runnertest.New(t)
			fake.Expect(configureArgv...).Exit(1).Stdout(tc.stdout).Stderr(tc.stderr)
			m := &Manager{Runner: fake, LockWait: time.Hour, LockPoll: time.Millisecond}

			err := m.ConfigurePending(context.Background())

			require.Error(t, err)
			assert.NotErrorIs(t, err, ErrLocked)
			assert.Len(t, fake.Calls(), 1, "not retried")
		})
	}
}

// cancellingProbe reports the lock held by process 4242 and cancels the
// run the first time it is asked, as Ctrl-C during the wait would.
type cancellingProbe struct{ cancel context.CancelFunc }

func (p cancellingProbe) Probe(context.Context) (bool, LockHolder, error) {
	p.cancel()
	// Gives an event sent on the cancellation time to arrive.
	time.Sleep(100 * time.Millisecond)
	return true, LockHolder{PID: 4242}, nil
}

func (p cancellingProbe) Describe() string { return "the test lock" }

// Ctrl-C while the run waits for the lock ends the wait at once: dpkg
// never started, so nothing may claim that the run waits for it.
func TestLockWaitCancelledAnnouncesNoDpkg(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fake := runnertest.New(t)
	m := &Manager{Runner: fake, Lock: cancellingProbe{cancel}, LockWait: time.Hour, LockPoll: time.Hour}
	events := recordEvents(m)

	err := m.ConfigurePending(ctx)

	require.ErrorIs(t, err, context.Canceled)
	assert.NotContains(t, kinds(*events), EventInterrupted)
	assert.Empty(t, fake.Calls(), "dpkg ran")
}
