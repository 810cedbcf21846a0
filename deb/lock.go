package deb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pasops/pasupgrade/runner"
)

// DefaultFrontendLock is the lock dpkg and apt take before they change the
// package database. It is an fcntl(2) record lock on the whole file, as
// dpkg's frontend interface document (spec/frontend-api.txt) requires.
const DefaultFrontendLock = "/var/lib/dpkg/lock-frontend"

// ErrLocked is matched by the *LockError returned when another process
// held the dpkg or debconf lock for longer than Manager.LockWait.
var ErrLocked = errors.New("deb: the package database is locked by another process")

// LockHolder is the process that holds a lock.
type LockHolder struct {
	// PID is the process id, 0 when it could not be found.
	PID int

	// Command is the process's name from /proc/PID/comm or from the
	// tool's message, empty when unknown.
	Command string
}

// String returns "process 123 (apt-get)", or "an unknown process".
func (h LockHolder) String() string {
	switch {
	case h.PID > 0 && h.Command != "":
		return fmt.Sprintf("process %d (%s)", h.PID, h.Command)
	case h.PID > 0:
		return fmt.Sprintf("process %d", h.PID)
	default:
		return "an unknown process"
	}
}

// LockError reports a lock that was still held when the wait ended.
type LockError struct {
	// Lock names what was waited for, such as the lock file's path.
	Lock   string
	Holder LockHolder
	Waited time.Duration
}

func (e *LockError) Error() string {
	return fmt.Sprintf("%s is still held by %s after waiting %s; "+
		"let that process finish or stop it, then run again (never delete the lock file)",
		e.Lock, e.Holder, roundForDisplay(e.Waited))
}

// roundForDisplay rounds d to seconds, or to milliseconds below a second.
func roundForDisplay(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Second)
}

// Is reports whether target is ErrLocked.
func (e *LockError) Is(target error) bool { return target == ErrLocked }

// LockProbe reports whether dpkg's lock is held, and by which process.
type LockProbe interface {
	// Probe returns held=false when the lock is free. The holder is
	// the zero LockHolder when it cannot be found.
	Probe(ctx context.Context) (held bool, holder LockHolder, err error)

	// Describe names the lock for messages.
	Describe() string
}

// FileLock probes an fcntl record lock on a file of this machine, such as
// DefaultFrontendLock. The zero ProcDir means "/proc".
type FileLock struct {
	Path    string
	ProcDir string
}

// Describe implements LockProbe.
func (l FileLock) Describe() string { return "the dpkg lock " + l.Path }

// Probe implements LockProbe. It queries the kernel with F_GETLK whether a
// write lock on the whole file would conflict, which also returns the pid
// of a process holding a classic POSIX lock (dpkg and apt take those). An
// open file description lock has no pid there (-1), so its holder is then
// looked up by the file's device and inode in /proc/PID/fdinfo.
func (l FileLock) Probe(ctx context.Context) (bool, LockHolder, error) {
	f, err := os.Open(l.Path)
	if errors.Is(err, os.ErrNotExist) {
		return false, LockHolder{}, nil
	}
	if err != nil {
		return false, LockHolder{}, fmt.Errorf("opening lock file: %w", err)
	}
	defer f.Close()

	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := unix.FcntlFlock(f.Fd(), unix.F_GETLK, &lk); err != nil {
		return false, LockHolder{}, fmt.Errorf("probing lock %s: %w", l.Path, err)
	}
	if lk.Type == unix.F_UNLCK {
		return false, LockHolder{}, nil
	}

	pid := int(lk.Pid)
	if pid <= 0 {
		pid = l.pidFromFdinfo(f)
	}
	return true, LockHolder{PID: pid, Command: l.command(pid)}, nil
}

func (l FileLock) procDir() string {
	if l.ProcDir != "" {
		return l.ProcDir
	}
	return "/proc"
}

// pidFromFdinfo finds the process whose open file holds a lock on f's
// inode, by the "lock:" lines of /proc/PID/fdinfo/FD, which read like
// /proc/locks: "lock:	1: OFDLCK ADVISORY WRITE -1 fe:00:5678 0 EOF" with
// the device in hex. Unlike /proc/locks, fdinfo ties an open file
// description lock to the processes that have it open. It returns 0 when
// no process is found, for example when procfs shows another pid namespace.
func (l FileLock) pidFromFdinfo(f *os.File) int {
	info, err := f.Stat()
	if err != nil {
		return 0
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return 0
	}
	want := fmt.Sprintf(" %02x:%02x:%d ", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)

	procs, err := os.ReadDir(l.procDir())
	if err != nil {
		return 0
	}
	for _, proc := range procs {
		pid, err := strconv.Atoi(proc.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if holdsLock(filepath.Join(l.procDir(), proc.Name(), "fdinfo"), want) {
			return pid
		}
	}
	return 0
}

// holdsLock reports whether any fdinfo file in dir lists a granted lock
// on the device and inode in want. Blocked waiters are listed with "->".
func holdsLock(dir, want string) bool {
	fds, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, fd := range fds {
		data, err := os.ReadFile(filepath.Join(dir, fd.Name()))
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(data)) {
			if strings.HasPrefix(line, "lock:") && strings.Contains(line, want) && !strings.Contains(line, "->") {
				return true
			}
		}
	}
	return false
}

func (l FileLock) command(pid int) string {
	if pid <= 0 {
		return ""
	}
	comm, err := os.ReadFile(filepath.Join(l.procDir(), strconv.Itoa(pid), "comm"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(comm))
}

// Messages of a held lock as Debian bookworm's dpkg 1.21, apt 2.6 and
// debconf 1.5 print them; the lab tests check each against the real tool.
// Each must start a line in the tool's own words, so that a maintainer
// script that merely mentions a lock is not taken for one.
var (
	lockedMessage = regexp.MustCompile(`(?im)^(dpkg: error: .*locked by another process|` +
		`E: Could not get lock |E: Unable to acquire the dpkg |debconf: DbDriver .*locked by another process)`)
	lockPID = regexp.MustCompile(`(?:with pid|held by process) (\d+)(?: \(([^)]+)\))?`)

	// dpkgProgress is a line dpkg prints once it has begun to change
	// packages. A lock failure comes before any of them.
	dpkgProgress = regexp.MustCompile(`(?m)^(Preparing to unpack |Unpacking |Setting up |Removing |Purging )`)
)

// lockFailure reports whether a failed command failed only because a lock
// was held, and names the lock and its holder from the message. A command
// that printed dpkg's progress changed packages before it failed, so it
// is never taken for one that failed on a lock and retried.
func lockFailure(res runner.Result, err error) (string, LockHolder, bool) {
	var exitErr *runner.ExitError
	if !errors.As(err, &exitErr) || !lockedMessage.MatchString(exitErr.Tail) ||
		dpkgProgress.Match(res.Stdout) || dpkgProgress.Match(res.Stderr) {
		return "", LockHolder{}, false
	}

	lock := "the dpkg lock"
	switch {
	case strings.Contains(exitErr.Tail, "lock-frontend") || strings.Contains(exitErr.Tail, "frontend lock"):
		lock = "the dpkg frontend lock"
	case strings.Contains(exitErr.Tail, "debconf") || strings.Contains(exitErr.Tail, "config.dat"):
		lock = "the debconf database lock"
	}

	var holder LockHolder
	if m := lockPID.FindStringSubmatch(exitErr.Tail); m != nil {
		holder.PID, _ = strconv.Atoi(m[1])
		holder.Command = m[2]
	}
	return lock, holder, true
}

// runLocked runs cmd, waiting up to LockWait while another process holds
// the dpkg lock (seen by Lock before the run, or in the command's failure
// message) and retrying the command once it is free. A command that failed
// on the lock changed nothing, so running it again is safe.
func (m *Manager) runLocked(ctx context.Context, cmd runner.Command) (runner.Result, error) {
	start := time.Now()
	var reported LockHolder
	reportedOnce := false
	failures := 0

	// The first run consumes stdin, so each run reads its own copy.
	var stdin []byte
	if cmd.Stdin != nil {
		var err error
		if stdin, err = io.ReadAll(cmd.Stdin); err != nil {
			return runner.Result{}, fmt.Errorf("reading the input of %s: %w", cmd.Argv[0], err)
		}
	}

	for {
		lock, holder, held := m.probeLock(ctx)
		if !held {
			if stdin != nil {
				cmd.Stdin = bytes.NewReader(stdin)
			}
			res, err := m.Runner.Run(ctx, cmd)
			if lock, holder, held = lockFailure(res, err); !held {
				return res, err
			}
			// dpkg fails this way at every poll while the lock is held,
			// so only the first failure is a warning.
			failures++
			level := slog.LevelDebug
			if failures == 1 {
				level = slog.LevelWarn
			}
			m.logger().Log(ctx, level, "command failed on a held lock", "command", cmd.String(),
				"pid", holder.PID, "failures", failures)
		}

		waited := time.Since(start)
		if waited >= m.lockWait() {
			return runner.Result{}, &LockError{Lock: lock, Holder: holder, Waited: waited}
		}
		if !reportedOnce || holder != reported {
			reported, reportedOnce = holder, true
			m.emit(Event{Kind: EventLockWait, PID: holder.PID, Message: fmt.Sprintf(
				"waiting up to %s for %s, held by %s, before running %s",
				roundForDisplay(m.lockWait()), lock, holder, cmd.Argv[0])})
		}

		select {
		case <-ctx.Done():
			return runner.Result{}, fmt.Errorf("waiting for %s held by %s: %w", lock, holder, ctx.Err())
		case <-time.After(m.lockPoll()):
		}
	}
}

// probeLock queries m.Lock, when set, whether the lock is held. A probe that
// fails is logged and treated as a free lock: dpkg still refuses to run
// while the lock is held, and that failure is retried.
func (m *Manager) probeLock(ctx context.Context) (string, LockHolder, bool) {
	if m.Lock == nil {
		return "", LockHolder{}, false
	}
	held, holder, err := m.Lock.Probe(ctx)
	if err != nil {
		m.logger().Warn("probing the dpkg lock failed", "lock", m.Lock.Describe(), "err", err)
		return "", LockHolder{}, false
	}
	return m.Lock.Describe(), holder, held
}
