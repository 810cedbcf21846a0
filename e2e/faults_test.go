package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/internal/lab"
	"github.com/pasops/pasupgrade/pasupgrade"
)

// stepStopCore is the id of the step that stops core, which the
// pasupgrade package does not export.
const stepStopCore = "stop-core"

// Exit codes of pasupgrade-cli that the fault tests expect.
const (
	exitUsage       = 2
	exitCheckFailed = 3
	exitStepFailed  = 4
)

// failedStep returns the id of the step the run reports as failed, or "".
func (r cliRun) failedStep() string {
	for _, e := range r.Events {
		if e.Kind == pasupgrade.EventStepEnd && e.Outcome == pasupgrade.OutcomeFailed && e.Step != nil {
			return e.Step.ID
		}
	}
	return ""
}

// errorMessage returns the message of the run's closing error line.
func (r cliRun) errorMessage() string {
	for _, e := range r.Events {
		if e.Type == "error" {
			return e.Raw
		}
	}
	return ""
}

// assertUnchanged checks that a run which stopped before installing left
// the node as it was: packages at 4.8.0, bootstrap files as in snapshot,
// every unit running.
func (l *testLab) assertUnchanged(ctx context.Context, snapshot string) {
	t := l.t
	t.Helper()
	mgmt := l.lab.NodeByName("mgmt")
	versions := l.packageVersions(ctx)
	for _, pkg := range mgmt.Packages {
		assert.Equal(t, "4.8.0 install ok installed", versions[pkg], "package %s", pkg)
	}
	assert.Equal(t, snapshot, l.snapshotBootstrap(ctx), "the bootstrap files changed")
	for _, unit := range mgmt.Units {
		res := l.inNode(ctx, "sh", "-c", "systemctl is-active "+unit+" || true")
		assert.Equal(t, "active", strings.TrimSpace(res), "unit %s", unit)
	}
}

// resume runs "upgrade --resume" with extra flags and checks that it
// finished the upgrade.
func (l *testLab) resume(ctx context.Context, extra ...string) cliRun {
	l.t.Helper()
	run := l.runCLI(ctx, nil, l.upgradeArgs(append([]string{"--resume"}, extra...)...)...)
	require.Equal(l.t, 0, run.ExitCode, "upgrade --resume failed; stdout:\n%s", run.Stdout)
	l.assertUpgraded(ctx, run)
	return run
}

// TestFaultToolImageMissing names an upgrade tool image that no registry
// serves. The preflight check must stop the run before any change, and a
// run with the right image must then succeed.
func TestFaultToolImageMissing(t *testing.T) {
	t.Parallel()
	l := startLab(t, lab.Options{Topology: lab.TopologySingle})
	ctx, cancel := context.WithTimeout(context.Background(), labTimeout)
	defer cancel()
	snapshot := l.snapshotBootstrap(ctx)

	// Nothing listens on port 1 of the loopback interface, so the pull
	// fails at once without leaving this machine.
	missing := "127.0.0.1:1/pasupgrade-e2e-missing/pas-upgrade-tool:4.9.0"
	run := l.runCLI(ctx, nil, l.upgradeArgs("--tool-image", missing)...)
	assert.Equal(t, exitCheckFailed, run.ExitCode, "exit code of a failed preflight check")
	var check *pasupgrade.CheckResult
	for _, e := range run.Events {
		if e.Kind == pasupgrade.EventCheck && e.Check != nil && e.Check.Name == pasupgrade.CheckToolImage {
			check = e.Check
		}
	}
	require.NotNil(t, check, "no tool-image check was reported")
	assert.Equal(t, pasupgrade.CheckFail, check.Status, "tool-image check")
	assert.Contains(t, check.Message, missing, "the check must name the image")
	assert.NotEmpty(t, check.Fix, "the check must say how to fix it")
	assert.Empty(t, run.failedStep(), "no step may run after a failed preflight check")
	l.assertUnchanged(ctx, snapshot)

	run = l.runCLI(ctx, nil, l.upgradeArgs()...)
	require.Equal(t, 0, run.ExitCode, "upgrade with the lab's image failed; stdout:\n%s", run.Stdout)
	l.assertUpgraded(ctx, run)
}

// TestFaultConvertNeedsAnswer gives the running configuration an item that
// convert-config cannot convert on its own. Without a terminal and without
// an answers file the step must fail naming the item; a resumed run with
// an answers file must finish the upgrade.
func TestFaultConvertNeedsAnswer(t *testing.T) {
	t.Parallel()
	l := startLab(t, lab.Options{Topology: lab.TopologySingle})
	ctx, cancel := context.WithTimeout(context.Background(), labTimeout)
	defer cancel()

	config := "pas_config_version: 4.8.0\nlegacy_session_store:\n  backend: memcached\nupstreams:\n  - name: api\n"
	l.putRunningConfig(ctx, config)
	snapshot := l.snapshotBootstrap(ctx)

	run := l.runCLI(ctx, nil, l.upgradeArgs()...)
	assert.Equal(t, exitStepFailed, run.ExitCode, "exit code of a failed step")
	assert.Equal(t, pasupgrade.StepConvertConfig, run.failedStep())
	message := run.errorMessage()
	assert.Contains(t, message, "legacy_session_store", "the error must name the item")
	assert.Contains(t, message, "answers file", "the error must say how to answer")
	l.assertUnchanged(ctx, snapshot)

	answers := filepath.Join(l.lab.Dir, "answers")
	require.NoError(t, os.WriteFile(answers, []byte("y\n"), 0o644))
	l.resume(ctx, "--answers-file", answers)
	converted, err := os.ReadFile(filepath.Join(l.lab.WorkDir(), pasupgrade.Upgrade480To490.ConvertedFile))
	require.NoError(t, err)
	assert.NotContains(t, string(converted), "legacy_session_store", "the answered item must be dropped")
	assert.Contains(t, string(converted), "upstreams:", "the rest of the configuration must be kept")
}

// TestFaultCheckconfigFails breaks the storage key so that
// pas-storage-checkconfig fails after the install. Core must still run,
// and a resumed run after the key is repaired must finish the upgrade.
func TestFaultCheckconfigFails(t *testing.T) {
	t.Parallel()
	l := startLab(t, lab.Options{Topology: lab.TopologySingle})
	ctx, cancel := context.WithTimeout(context.Background(), labTimeout)
	defer cancel()

	// The running 4.8.0 storage has already read its key, so it keeps
	// running; the checks after the install read the broken file.
	key := "/opt/balasys/etc/storage/certs/storage-key.pem"
	saved := "/root/storage-key.pem.e2e"
	l.inNode(ctx, "cp", "-p", key, saved)
	l.inNode(ctx, "sh", "-c", ": > "+key)

	// A generous timeout, so that a slow response on a busy machine does not
	// count as core being down.
	prober := &Prober{URL: l.coreURL("mgmt"), Timeout: 5 * time.Second}
	prober.Start()
	run := l.runCLI(ctx, nil, l.upgradeArgs()...)
	probe := prober.Stop()
	assert.Equal(t, exitStepFailed, run.ExitCode, "exit code of a failed step")
	assert.Equal(t, "checkconfig-storage", run.failedStep())
	assert.Contains(t, run.errorMessage(), "storage", "the error must name the check")
	assert.Zero(t, probe.Failures, "core must keep serving when the upgrade stops before the core stop step")

	// cp into the existing file keeps its owner and the mode the upgrade
	// gave it.
	l.inNode(ctx, "cp", saved, key)
	l.resume(ctx)
}

// TestFaultAPIErrorsDuringPreUpgrade makes the management API return 500
// to every export once the pre-upgrade step starts. The step must fail,
// and a resumed run after the API recovers must finish the upgrade.
func TestFaultAPIErrorsDuringPreUpgrade(t *testing.T) {
	t.Parallel()
	l := startLab(t, lab.Options{Topology: lab.TopologySingle})
	ctx, cancel := context.WithTimeout(context.Background(), labTimeout)
	defer cancel()
	snapshot := l.snapshotBootstrap(ctx)

	// The backup step exports the running configuration too, so the fault
	// starts with the pre-upgrade step.
	fault := `{"kind":"status","path":"/api/config/export","count":-1,"status":500}`
	run := l.runCLI(ctx, faultAtStep(l, pasupgrade.StepPreUpgrade, fault), l.upgradeArgs()...)
	assert.Equal(t, exitStepFailed, run.ExitCode, "exit code of a failed step")
	assert.Equal(t, pasupgrade.StepPreUpgrade, run.failedStep())
	assert.Contains(t, run.errorMessage(), "500", "the error must give the API's status")
	l.assertUnchanged(ctx, snapshot)

	l.clearFaults(ctx)
	l.resume(ctx)
}

// TestFaultApplyFails makes the config apply of post-upgrade fail with the
// management node's reload FAILED. The step must fail with core stopped,
// and a resumed run must finish the upgrade and start core again.
func TestFaultApplyFails(t *testing.T) {
	t.Parallel()
	l := startLab(t, lab.Options{Topology: lab.TopologySingle})
	ctx, cancel := context.WithTimeout(context.Background(), labTimeout)
	defer cancel()

	fault := `{"kind":"apply_fail","nodes":["mgmt"]}`
	run := l.runCLI(ctx, faultAtStep(l, stepStopCore, fault), l.upgradeArgs()...)
	assert.Equal(t, exitStepFailed, run.ExitCode, "exit code of a failed step")
	assert.Equal(t, pasupgrade.StepPostUpgrade, run.failedStep())
	assert.Contains(t, run.errorMessage(), "mgmt", "the error must name the failed node")
	l.assertCoreStopped(ctx)

	l.resume(ctx)
}

// TestFaultApplyTimesOut makes the config apply of post-upgrade never
// finish. The step must fail after --apply-timeout with core stopped. Then
// either a resumed run, once the hang fault is cleared, must finish the
// upgrade, or a restore must bring back the pre-upgrade state.
func TestFaultApplyTimesOut(t *testing.T) {
	t.Parallel()
	for _, recovery := range []string{"resume", "restore"} {
		t.Run(recovery, func(t *testing.T) {
			t.Parallel()
			l := startLab(t, lab.Options{Topology: lab.TopologySingle})
			ctx, cancel := context.WithTimeout(context.Background(), labTimeout)
			defer cancel()
			snapshot := l.snapshotBootstrap(ctx)
			running := l.simState(ctx).Running

			run := l.runCLI(ctx, faultAtStep(l, stepStopCore, `{"kind":"apply_hang"}`),
				l.upgradeArgs("--apply-timeout", "3s")...)
			assert.Equal(t, exitStepFailed, run.ExitCode, "exit code of a failed step")
			assert.Equal(t, pasupgrade.StepPostUpgrade, run.failedStep())
			assert.Contains(t, run.errorMessage(), "timed out", "the error must say that the apply timed out")
			l.assertCoreStopped(ctx)

			if recovery == "resume" {
				// The simulator keeps the hung apply running, across
				// restarts too, and rejects later applies with 409 until
				// the faults are cleared.
				l.clearFaults(ctx)
				l.resume(ctx)
				return
			}
			journal, err := pasupgrade.ReadJournal(l.lab.WorkDir())
			require.NoError(t, err)
			l.restore(ctx, journal.State.BackupSet)
			l.assertRestored(ctx, snapshot, running.SHA256)

			// The failed upgrade's journal must not be resumed on the
			// restored node; a new run upgrades it and keeps that journal.
			l.clearFaults(ctx)
			resumed := l.runCLI(ctx, nil, l.upgradeArgs("--resume")...)
			assert.Equal(t, exitUsage, resumed.ExitCode, "exit code of a resume on a restored node")
			assert.Contains(t, resumed.errorMessage(), "so the node was restored since")
			again := l.runCLI(ctx, nil, l.upgradeArgs("--new-run")...)
			require.Equal(t, 0, again.ExitCode, "the new upgrade failed; stdout:\n%s", again.Stdout)
			l.assertUpgraded(ctx, again)
		})
	}
}

// assertCoreStopped checks that the core unit is not running.
func (l *testLab) assertCoreStopped(ctx context.Context) {
	l.t.Helper()
	state := l.inNode(ctx, "sh", "-c", "systemctl is-active "+pasupgrade.UnitCore+" || true")
	assert.Equal(l.t, "inactive", strings.TrimSpace(state), "core must stay stopped after a failed post-upgrade")
}

// faultAtStep returns an event callback that adds fault to the simulator
// when the step with the id starts. Faults live in the simulator's memory
// and the upgrade restarts the mgmt service, so apply faults must be added
// after the restart-mgmt step.
func faultAtStep(l *testLab, id, fault string) func(event) {
	return func(e event) {
		if e.Kind == pasupgrade.EventStepStart && e.Step != nil && e.Step.ID == id {
			if err := l.trySimRequest(context.Background(), http.MethodPost, "/_sim/faults", fault); err != nil {
				l.t.Errorf("adding fault %s: %v", fault, err)
			}
		}
	}
}

// putRunningConfig replaces the simulator's running configuration.
func (l *testLab) putRunningConfig(ctx context.Context, config string) {
	l.t.Helper()
	l.simRequest(ctx, http.MethodPut, "/_sim/running-config", config)
}

// clearFaults removes every fault from the simulator.
func (l *testLab) clearFaults(ctx context.Context) {
	l.t.Helper()
	l.simRequest(ctx, http.MethodDelete, "/_sim/faults", "")
}

// simRequest sends a request to a control endpoint of the simulator and
// fails the test unless it succeeds.
func (l *testLab) simRequest(ctx context.Context, method, path, body string) {
	l.t.Helper()
	require.NoError(l.t, l.trySimRequest(ctx, method, path, body))
}

// trySimRequest sends a request to a control endpoint of the simulator.
// Event callbacks use it, because they run outside the test's goroutine.
func (l *testLab) trySimRequest(ctx context.Context, method, path, body string) error {
	req, err := http.NewRequestWithContext(ctx, method, l.lab.MgmtURL()+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return nil
}
