package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/internal/lab"
	"github.com/pasops/pasupgrade/pasupgrade"
)

// killedExitCode is what docker exec reports for a process ended by
// SIGKILL: 128 + 9.
const killedExitCode = 137

// runCLIKilled runs pasupgrade-cli like runCLI, and sends SIGKILL to it
// the first time kill returns true for an event, and also to every dpkg
// process in the node when it returns dpkg true.
//
// The signal comes from this machine, which shares the kernel with the
// node, because a "docker exec kill" would take tens of milliseconds, in
// which the CLI finishes several of its fast steps. The kill still lands
// a little after the event, so a run may have finished the next step too.
func (l *testLab) runCLIKilled(ctx context.Context, kill func(event) (now, dpkg bool), args ...string) cliRun {
	l.t.Helper()
	killed := false
	onEvent := func(e event) {
		if killed {
			return
		}
		now, killDpkg := kill(e)
		if !now {
			return
		}
		killed = true
		found, err := killProcesses(l.cli)
		if err != nil {
			l.t.Errorf("killing the CLI: %v", err)
		}
		if !found {
			// The run ended on its own between the event and the kill.
			l.t.Logf("the CLI had exited before the kill after the %s event", e.Kind)
		}
		if killDpkg {
			// dpkg runs as a child of the CLI; killing both is what a
			// power loss or an OOM kill of the session does.
			script := "for pid in $(pgrep -x dpkg); do kill -KILL $pid; done"
			if _, err := l.runInNode(context.Background(), "sh", "-c", script); err != nil {
				l.t.Errorf("killing dpkg: %v", err)
			}
		}
	}
	return l.runCLI(ctx, onEvent, args...)
}

// killProcesses sends SIGKILL to every process on this machine whose argv[0]
// is program, and reports whether it found one. The program's path lies in
// a lab's own directory, so no other process matches.
func killProcesses(program string) (bool, error) {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	found := false
	for _, dir := range dirs {
		cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil {
			continue
		}
		argv0, _, _ := strings.Cut(string(cmdline), "\x00")
		if argv0 != program {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(dir))
		if err != nil {
			continue
		}
		found = true
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
			return found, fmt.Errorf("killing process %d: %w", pid, err)
		}
	}
	return found, nil
}

// waitForDpkg returns an event filter that matches the
// start of the install step and then waits until dpkg runs in the node,
// so the kill lands inside the package installation.
func (l *testLab) waitForDpkg(ctx context.Context) func(event) bool {
	return func(e event) bool {
		if e.Kind != pasupgrade.EventStepStart || e.Step == nil || e.Step.ID != pasupgrade.StepInstall {
			return false
		}
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			out, err := l.runInNode(ctx, "sh", "-c", "pgrep -x dpkg || true")
			if err == nil && strings.TrimSpace(out) != "" {
				// Let dpkg get into unpacking and the maintainer scripts.
				time.Sleep(300 * time.Millisecond)
				return true
			}
			time.Sleep(20 * time.Millisecond)
		}
		l.t.Errorf("dpkg never ran during the %s step", pasupgrade.StepInstall)
		return true
	}
}

// TestKillAndResume kills the upgrade with SIGKILL after every step and
// once inside the package installation, resuming each time, until a run
// finishes. The end state must be that of an uninterrupted upgrade.
func TestKillAndResume(t *testing.T) {
	t.Parallel()
	l := startLab(t, lab.Options{Topology: lab.TopologySingle})
	ctx, cancel := context.WithTimeout(context.Background(), labTimeout)
	defer cancel()

	// Each run dies right after the first step it completes that no
	// earlier run completed, or inside dpkg when it reaches the install
	// step for the first time.
	completed := map[string]bool{}
	installKilled := false
	waitForDpkg := l.waitForDpkg(ctx)
	killPoint := func(e event) (kill, dpkg bool) {
		if !installKilled && waitForDpkg(e) {
			installKilled = true
			return true, true
		}
		if e.Kind != pasupgrade.EventStepEnd || e.Step == nil || e.Outcome != pasupgrade.OutcomeDone {
			return false, false
		}
		if completed[e.Step.ID] {
			// A resumed run repeats some steps; killing after them again
			// would make no progress.
			return false, false
		}
		completed[e.Step.ID] = true
		return true, false
	}

	run := l.runCLIKilled(ctx, killPoint, l.upgradeArgs()...)
	require.Equal(t, killedExitCode, run.ExitCode, "the first run was not killed; stdout:\n%s", run.Stdout)
	var plan []pasupgrade.StepInfo
	for _, e := range run.Events {
		if e.Kind == pasupgrade.EventPlan {
			plan = e.Plan
		}
	}
	require.NotEmpty(t, plan, "the first run sent no plan")

	// boundaries lists, after each kill, the last step the journal records
	// as done: the boundary the run was killed at.
	boundaries := []string{l.lastDoneStep()}
	for attempt := 0; attempt <= len(plan)+1; attempt++ {
		run = l.runCLIKilled(ctx, killPoint, l.upgradeArgs("--resume")...)
		if run.ExitCode != killedExitCode {
			break
		}
		boundaries = append(boundaries, l.lastDoneStep())
	}
	require.Equal(t, 0, run.ExitCode, "the last resumed run failed; stdout:\n%s", run.Stdout)
	assert.True(t, installKilled, "no run was killed inside the package installation")
	t.Logf("killed %d times, after steps %s, of %d", len(boundaries), strings.Join(boundaries, ", "), len(plan))
	// NOTE: steps that take a few milliseconds can finish between the event
	// and the kill, so not every boundary is hit in every run.
	assert.Greater(t, len(boundaries), len(plan)/2, "too few step boundaries were hit")

	l.assertUpgraded(ctx, run)
	l.assertOneInstallerBackup(ctx)
}

// lastDoneStep returns the id of the last step the journal records as
// done, or "none".
func (l *testLab) lastDoneStep() string {
	l.t.Helper()
	journal, err := pasupgrade.ReadJournal(l.lab.WorkDir())
	require.NoError(l.t, err, "reading the journal after a kill")
	last := "none"
	for _, step := range journal.Steps {
		if step.Outcome == pasupgrade.OutcomeDone {
			last = step.ID
		}
	}
	return last
}

// repeatedBackup matches a copy that the installer's backup makes when an
// earlier copy exists: NAME.4.8.0.YYYYMMDDHHMMSS.
var repeatedBackup = regexp.MustCompile(`\.4\.8\.0\.\d{14}$`)

// assertOneInstallerBackup checks that every backups directory holds one
// copy of each file, as after an uninterrupted upgrade: a repeated install
// must not save the already overwritten configuration a second time.
func (l *testLab) assertOneInstallerBackup(ctx context.Context) {
	l.t.Helper()
	for _, dir := range installerBackupDirs {
		out := l.inNode(ctx, "find", dir, "-type", "f")
		for _, path := range strings.Fields(out) {
			assert.False(l.t, repeatedBackup.MatchString(path), "second installer backup %s", path)
		}
	}
}
