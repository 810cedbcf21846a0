package deb

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/pasops/pasupgrade/runner"
)

// Defaults for the Manager's lock handling.
const (
	DefaultLockWait = 5 * time.Minute
	DefaultLockPoll = 2 * time.Second
)

// noninteractiveEnv is added to the environment of every command that may
// run a maintainer script, so debconf never opens a dialog. Any question
// left unanswered takes its default.
var noninteractiveEnv = []string{"DEBIAN_FRONTEND=noninteractive"}

// conffileOptions keep a locally modified configuration file and install
// an unmodified one: the "N" answer of dpkg's conffile prompt, without the
// prompt. dpkg then leaves the package's copy beside it as FILE.dpkg-dist.
var conffileOptions = []string{"--force-confdef", "--force-confold"}

// Manager runs the package operations of one machine through Runner.
// Set Runner; every other field is optional. A Manager is safe for
// concurrent use, but dpkg itself serializes changes with its lock.
type Manager struct {
	// Runner runs dpkg, dpkg-query, apt-get and the debconf tools.
	Runner runner.Runner

	// Logger receives starts, retries and errors that are handled. Nil
	// discards them.
	Logger *slog.Logger

	// OnEvent receives progress an operator should see, such as a wait
	// for the dpkg lock or a kept configuration file. Nil ignores them.
	// Calls never overlap, even across Managers, so OnEvent must not
	// call a Manager. The call that reports an interruption comes from
	// another goroutine while dpkg runs.
	OnEvent func(Event)

	// Output receives the live output of dpkg and apt-get, redacted. Nil
	// discards it; the Runner still records it.
	Output io.Writer

	// AdminDir is the dpkg database that Installed reads, for inspecting
	// another root file system. Empty means dpkg's default. Install and
	// Remove reject a non-empty AdminDir.
	AdminDir string

	// Lock probes dpkg's frontend lock before each change. It must
	// describe the machine the Runner runs on, so it is nil for a Runner
	// that runs commands in a container. Whether or not it is set, a
	// command that fails because the lock is held is retried.
	Lock LockProbe

	// LockWait is how long a held lock is waited for before the
	// operation fails with ErrLocked. Zero means DefaultLockWait.
	LockWait time.Duration

	// LockPoll is the interval between checks of a held lock. Zero means
	// DefaultLockPoll.
	LockPoll time.Duration
}

// EventKind classifies an Event.
type EventKind string

// The events a Manager reports.
const (
	EventLockWait       EventKind = "lock-wait"
	EventPreseed        EventKind = "preseed"
	EventConfigure      EventKind = "configure-pending"
	EventInstall        EventKind = "install"
	EventConffileKept   EventKind = "conffile-kept"
	EventPasswordForget EventKind = "password-cleared"
	EventRemove         EventKind = "remove"
	EventSkip           EventKind = "skip"
	EventInterrupted    EventKind = "interrupted"
)

// Event is progress reported to Manager.OnEvent. Message is a complete
// sentence for an operator; the other fields are set where they apply.
type Event struct {
	Kind    EventKind
	Message string
	Package string
	Path    string
	PID     int
}

// emitMu keeps calls of OnEvent from overlapping. It is shared by every
// Manager so that a Manager stays a plain value that can be copied.
var emitMu sync.Mutex

func (m *Manager) emit(e Event) {
	emitMu.Lock()
	defer emitMu.Unlock()
	m.logger().Info(e.Message, "event", string(e.Kind))
	if m.OnEvent != nil {
		m.OnEvent(e)
	}
}

func (m *Manager) logger() *slog.Logger {
	if m.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Logger
}

func (m *Manager) lockWait() time.Duration {
	if m.LockWait > 0 {
		return m.LockWait
	}
	return DefaultLockWait
}

func (m *Manager) lockPoll() time.Duration {
	if m.LockPoll > 0 {
		return m.LockPoll
	}
	return DefaultLockPoll
}

// changeCommand builds a command that changes the package database: the
// noninteractive environment, stdin from /dev/null, the live output, and
// a run that goes on to its end if this process dies.
func (m *Manager) changeCommand(argv ...string) runner.Command {
	return runner.Command{
		Argv:   argv,
		Env:    append([]string(nil), noninteractiveEnv...),
		Stdout: m.Output,
		Stderr: m.Output,
		// A maintainer script whose output pipe breaks because this
		// process died can stop half-way while dpkg records its package
		// as configured. So dpkg runs to its end instead.
		SurviveCaller: true,
	}
}

// runChange runs a command of changeCommand through runLocked. When ctx is
// cancelled while the command runs, the command still goes on to its end,
// so an event explains why the interruption takes effect only then. A
// wait for the lock ends at once instead.
func (m *Manager) runChange(ctx context.Context, cmd runner.Command) (runner.Result, error) {
	if !cmd.SurviveCaller {
		return m.runLocked(ctx, cmd)
	}
	announcing := *m
	announcing.Runner = interruptAnnouncer{Runner: m.Runner, m: m}
	return announcing.runLocked(ctx, cmd)
}

// interruptAnnouncer runs commands with Runner and sends an
// EventInterrupted when ctx ends while one of them runs.
type interruptAnnouncer struct {
	runner.Runner
	m *Manager
}

func (a interruptAnnouncer) Run(ctx context.Context, cmd runner.Command) (runner.Result, error) {
	finished := make(chan struct{})
	announced := make(chan struct{})
	go func() {
		defer close(announced)
		select {
		case <-ctx.Done():
			a.m.emit(Event{Kind: EventInterrupted, Message: fmt.Sprintf(
				"interrupted: waiting for %s to finish, so that no package is left half-configured", cmd.Argv[0])})
		case <-finished:
		}
	}()
	defer func() {
		close(finished)
		<-announced
	}()
	return a.Runner.Run(ctx, cmd)
}
