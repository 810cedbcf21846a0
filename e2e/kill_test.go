package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
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

// holdEnv names the step after which the CLI built with the
// pasupgrade_faults tag holds, so that a kill lands at that boundary.
const holdEnv = "PASUPGRADE_FAULT_HOLD_AFTER"

// runCLIKilled runs pasupgrade-cli like runCLI, holding after step
// holdAfter ("next": the first step the run completes; "": none). It
// sends SIGKILL to the CLI the first time kill returns true for an event,
// and also to every dpkg process in the node when it returns dpkg true.
//
// The signal comes from this machine, which shares the kernel with the
// node. A held run waits right after printing the step's end, with the
// journal already written, so a kill at that event lands at the step
// boundary. Without the hold, the CLI could finish its next fast step
// before the signal arrives.
func (l *testLab) runCLIKilled(ctx context.Context, holdAfter string, kill func(event) (now, dpkg bool), args ...string) cliRun {
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
			l.t.Errorf("the CLI had exited before the kill after the %s event", e.Kind)
		}
		if killDpkg {
			// dpkg runs in a session of its own, which it shares with
			// its maintainer scripts. Killing that session and the CLI
			// is what a power loss does.
			script := `for pid in $(pgrep -x dpkg); do pkill -KILL -s "$(ps -o sid= -p "$pid" | tr -d ' ')"; done`
			if _, err := l.runInNode(context.Background(), "sh", "-c", script); err != nil {
				l.t.Errorf("killing dpkg: %v", err)
			}
		}
	}
	var env []string
	if holdAfter != "" {
		env = []string{holdEnv + "=" + holdAfter}
	}
	return l.runArgvEnv(ctx, onEvent, env, append([]string{l.cli}, args...))
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

// faultDir is where the lab packages' pas_fault_point looks for the
// points to hold at (see internal/lab/pkgsrc/README.md).
const faultDir = "/run/pas-lab-faults"

// killAtFaultPoint resumes the upgrade with the lab packages' fault point
// held, and when the installation reaches it kills the CLI and every
// process of dpkg's session: dpkg, the maintainer script and the relays,
// as a power loss would. The point is released for the next run.
func (l *testLab) killAtFaultPoint(ctx context.Context, point string) {
	l.t.Helper()
	hold := l.holdFaultPoint(ctx, point)
	defer l.inNode(ctx, "rm", "-f", hold, hold+".reached")

	run := l.runCLIKilled(ctx, "", l.atFaultPoint(ctx, point, true), l.upgradeArgs("--resume")...)
	require.Equal(l.t, killedExitCode, run.ExitCode, "the run was not killed at %s; stdout:\n%s", point, run.Stdout)
}

// holdFaultPoint makes the lab packages wait at point and returns the
// file that holds them there.
func (l *testLab) holdFaultPoint(ctx context.Context, point string) string {
	l.t.Helper()
	hold := faultDir + "/" + point
	l.inNode(ctx, "sh", "-c", "mkdir -p "+faultDir+" && touch "+hold)
	return hold
}

// atFaultPoint returns a kill filter for runCLIKilled that matches the
// start of the install step and then waits until the installation
// reaches point. killDpkg chooses whether dpkg's session dies too.
func (l *testLab) atFaultPoint(ctx context.Context, point string, killDpkg bool) func(event) (bool, bool) {
	reached := faultDir + "/" + point + ".reached"
	return func(e event) (bool, bool) {
		if e.Kind != pasupgrade.EventStepStart || e.Step == nil || e.Step.ID != pasupgrade.StepInstall {
			return false, false
		}
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			if _, err := l.runInNode(ctx, "test", "-e", reached); err == nil {
				return true, killDpkg
			}
			time.Sleep(20 * time.Millisecond)
		}
		l.t.Errorf("the installation never reached fault point %s", point)
		return true, killDpkg
	}
}

// TestKillAndResume kills the upgrade with SIGKILL at every step boundary
// and once inside the package installation, resuming each time. The end
// state must be that of an uninterrupted upgrade.
func TestKillAndResume(t *testing.T) {
	t.Parallel()
	l := startLab(t, lab.Options{Topology: lab.TopologySingle})
	ctx, cancel := context.WithTimeout(context.Background(), labTimeout)
	defer cancel()

	// A run is killed when the step it holds after has ended.
	killAfter := func(id string) func(event) (bool, bool) {
		return func(e event) (bool, bool) {
			ended := e.Kind == pasupgrade.EventStepEnd && e.Step != nil && e.Outcome == pasupgrade.OutcomeDone
			return ended && (id == "next" || e.Step.ID == id), false
		}
	}

	// The first run holds after its first step, and its plan event
	// names the boundaries the later runs are killed at.
	run := l.runCLIKilled(ctx, "next", killAfter("next"), l.upgradeArgs()...)
	require.Equal(t, killedExitCode, run.ExitCode, "the first run was not killed; stdout:\n%s", run.Stdout)
	var plan []pasupgrade.StepInfo
	for _, e := range run.Events {
		if e.Kind == pasupgrade.EventPlan {
			plan = e.Plan
		}
	}
	require.NotEmpty(t, plan, "the first run sent no plan")
	require.Equal(t, plan[0].ID, l.lastDoneStep(), "the first run was not killed after its first step")

	installKilled := false
	for _, step := range plan[1:] {
		if step.ID == pasupgrade.StepInstall {
			// dpkg dies with the CLI while it unpacks the second
			// package, and the next run dies in core's maintainer script
			// as dpkg configures what the first left unpacked.
			l.killAtFaultPoint(ctx, "mgmt-preinst")
			l.killAtFaultPoint(ctx, "core-postinst")
			installKilled = true
		}
		run = l.runCLIKilled(ctx, step.ID, killAfter(step.ID), l.upgradeArgs("--resume")...)
		require.Equal(t, killedExitCode, run.ExitCode, "the run was not killed after %s; stdout:\n%s", step.ID, run.Stdout)
		require.Equal(t, step.ID, l.lastDoneStep(), "the journal after the kill at the end of %s", step.ID)
	}
	require.True(t, installKilled, "the plan has no %s step", pasupgrade.StepInstall)

	// Every step is done now, and the journal lacks only its end.
	run = l.runCLI(ctx, nil, l.upgradeArgs("--resume")...)
	require.Equal(t, 0, run.ExitCode, "the last resumed run failed; stdout:\n%s", run.Stdout)
	t.Logf("killed at all %d step boundaries and twice inside dpkg", len(plan))

	// dpkg runs core's maintainer script again after the kill inside it,
	// and the script, like the vendor's, saves the file it had saved
	// before under a second name. Both copies must be the 4.8.0 file.
	copies := strings.Fields(l.inNode(ctx, "sh", "-c", "ls /opt/balasys/etc/core/backups/config.yml.4.8.0*"))
	require.Len(t, copies, 2, "the kill inside core's maintainer script left no second copy")
	l.inNode(ctx, "cmp", copies[0], copies[1])
	l.assertUpgraded(ctx, run)
	l.assertOneInstallerBackup(ctx)
	// The killed installs preseeded the password, and the resumed one
	// removed it from the debconf database.
	l.assertNoPasswordInNode(ctx)
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

// TestKillCLIDuringInstall kills only the CLI while dpkg installs, as an
// operator's kill would. dpkg runs on to its end, and the resumed run
// waits for its lock and installs nothing a second time. The relays that
// kept dpkg's output flowing leave no fifo or process behind.
func TestKillCLIDuringInstall(t *testing.T) {
	t.Parallel()
	l := startLab(t, lab.Options{Topology: lab.TopologySingle})
	ctx, cancel := context.WithTimeout(context.Background(), labTimeout)
	defer cancel()

	const point = "mgmt-preinst"
	hold := l.holdFaultPoint(ctx, point)
	run := l.runCLIKilled(ctx, "", l.atFaultPoint(ctx, point, false), l.upgradeArgs()...)
	require.Equal(t, killedExitCode, run.ExitCode, "the run was not killed at %s; stdout:\n%s", point, run.Stdout)

	// dpkg outlived the CLI. The resumed run starts while it still holds
	// the lock, and the fault point is released a little later.
	assert.NotEmpty(t, strings.TrimSpace(l.inNode(ctx, "sh", "-c", "pgrep -x dpkg || true")),
		"dpkg died with the CLI")
	released := make(chan error, 1)
	go func() {
		time.Sleep(3 * time.Second)
		_, err := l.runInNode(ctx, "rm", "-f", hold, hold+".reached")
		released <- err
	}()
	run = l.runCLI(ctx, nil, l.upgradeArgs("--resume")...)
	require.NoError(t, <-released, "releasing fault point %s", point)
	require.Equal(t, 0, run.ExitCode, "the resumed run failed; stdout:\n%s", run.Stdout)

	// The first run's dpkg installed every package, so the resumed run
	// installed none of them again.
	leftAlone := ""
	for _, e := range run.Events {
		if e.Type == "info" && strings.Contains(e.Raw, "left alone:") {
			leftAlone = e.Raw
		}
	}
	for _, pkg := range l.lab.NodeByName("mgmt").Packages {
		assert.Contains(t, leftAlone, pkg, "the resumed run installed %s again", pkg)
	}
	// The killed run could not report the conffile that dpkg kept, so
	// the resumed run does.
	dist := l.editedConffile() + ".dpkg-dist"
	assert.True(t, slices.ContainsFunc(run.Events, func(e event) bool {
		return e.Type == "info" && strings.Contains(e.Raw, dist) && strings.Contains(e.Raw, "merge")
	}), "the resumed run did not report %s", dist)
	l.assertUpgraded(ctx, run)
	l.assertOneInstallerBackup(ctx)
	copies := strings.Fields(l.inNode(ctx, "sh", "-c", "ls /opt/balasys/etc/core/backups/config.yml.4.8.0*"))
	assert.Len(t, copies, 1, "core's maintainer script ran twice")
	leftovers := l.inNode(ctx, "sh", "-c", "find /tmp -maxdepth 2 -type p; pgrep -a -x tee || true")
	assert.Empty(t, strings.TrimSpace(leftovers), "the relays left fifos or processes behind")
}
