package pasupgrade_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/pasupgrade"
	"github.com/pasops/pasupgrade/pasupgrade/pasupgradetest"
)

// stepStart is where a step's changes begin in the log of a full run.
type stepStart struct {
	id  string
	pos int
}

// referenceRun runs tc without faults and returns its log and where each
// step's changes start in it.
func referenceRun(t *testing.T, tc planCase) ([]string, []stepStart) {
	t.Helper()
	plan, sys := prepare(t, tc)
	var starts []stepStart
	cfg := pasupgrade.RunConfig{Events: func(ev pasupgrade.Event) {
		if ev.Kind == pasupgrade.EventStepStart {
			starts = append(starts, stepStart{ev.Step.ID, len(sys.Log())})
		}
	}}
	_, err := runPlan(t, plan, sys, cfg)
	require.NoError(t, err)
	return sys.Log(), starts
}

func TestResumeAfterEachStepFails(t *testing.T) {
	injected := errors.New("injected failure")
	for _, tc := range planCases() {
		t.Run(tc.name, func(t *testing.T) {
			// The runs wait mostly on the journal's fsync, so they overlap.
			t.Parallel()
			full, starts := referenceRun(t, tc)
			for i, st := range starts {
				end := len(full)
				if i+1 < len(starts) {
					end = starts[i+1].pos
				}
				if end == st.pos {
					continue // the step changes nothing
				}
				t.Run(st.id, func(t *testing.T) {
					plan, sys := prepare(t, tc)
					sys.FailOn(full[st.pos], injected)

					_, err := runPlan(t, plan, sys, pasupgrade.RunConfig{})
					var stepErr *pasupgrade.StepError
					require.ErrorAs(t, err, &stepErr)
					assert.Equal(t, st.id, stepErr.Step.ID)
					assert.ErrorIs(t, err, injected)
					first := sys.Log()
					require.Greater(t, len(first), st.pos)
					require.LessOrEqual(t, len(first), end)
					assert.Equal(t, full[:len(first)], first, "changes before the failure")

					sys.ResetLog()
					summary, err := runPlan(t, plan, sys, pasupgrade.RunConfig{Resume: true})
					require.NoError(t, err)
					assert.Equal(t, full[st.pos:], sys.Log(), "changes of the resumed run")
					assert.Contains(t, summary.Changed, starts[0].id, "the summary lists earlier runs' changes")
				})
			}
		})
	}
}

func TestResumeRerunsStepWhoseCheckFails(t *testing.T) {
	tc := planCases()[0]
	plan, sys := prepare(t, tc)
	sys.FailOn("tool convert-config as pas", errors.New("injected failure"))
	_, err := runPlan(t, plan, sys, pasupgrade.RunConfig{})
	require.Error(t, err)

	// The last completed step exported the configuration; the export is
	// gone since, so the step's check fails and it runs again.
	delete(sys.Files, filepath.Join(plan.Options.WorkDir, "pas-config-4.8.0.yaml"))
	sys.ResetLog()
	var warnings []string
	_, err = runPlan(t, plan, sys, pasupgrade.RunConfig{Resume: true, Events: func(ev pasupgrade.Event) {
		if ev.Kind == pasupgrade.EventWarning {
			warnings = append(warnings, ev.Message)
		}
	}})
	require.NoError(t, err)
	assert.Equal(t, singleUpgrade[2:], sys.Log())
	require.Len(t, warnings, 1)
	assert.Contains(t, warnings[0], "pre-upgrade is recorded as done")
}

func TestFailureNamesBackupAndJournal(t *testing.T) {
	tc := planCases()[0]
	plan, sys := prepare(t, tc)
	sys.FailOn("systemctl stop proxedo-api-security", errors.New("unit failed to stop"))

	_, err := runPlan(t, plan, sys, pasupgrade.RunConfig{})
	require.Error(t, err)
	var stepErr *pasupgrade.StepError
	require.ErrorAs(t, err, &stepErr)
	assert.Equal(t, "/var/backups/pasupgrade/set-1", stepErr.BackupSet)
	assert.Contains(t, err.Error(), "step stop-core (guide 3.2.10) failed: unit failed to stop")
	assert.Contains(t, err.Error(), "backup set: /var/backups/pasupgrade/set-1")
	assert.Contains(t, err.Error(), "journal: "+filepath.Join(plan.Options.WorkDir, pasupgrade.JournalFile))

	j, err := pasupgrade.ReadJournal(plan.Options.WorkDir)
	require.NoError(t, err)
	assert.Equal(t, "/var/backups/pasupgrade/set-1", j.State.BackupSet)
	last := j.Steps[len(j.Steps)-1]
	assert.Equal(t, "stop-core", last.ID)
	assert.Equal(t, pasupgrade.OutcomeFailed, last.Outcome)
	assert.Nil(t, j.Finished)
}

func TestFreshRunRefusesUnfinishedJournal(t *testing.T) {
	tc := planCases()[0]
	plan, sys := prepare(t, tc)
	sys.FailOn("run[pas] pas-mgmt-update", errors.New("injected failure"))
	_, err := runPlan(t, plan, sys, pasupgrade.RunConfig{})
	require.Error(t, err)

	_, err = runPlan(t, plan, sys, pasupgrade.RunConfig{})
	require.ErrorIs(t, err, pasupgrade.ErrUnfinishedRun)
	assert.Contains(t, err.Error(), "stopped at step update-mgmt")
	assert.Contains(t, err.Error(), "--resume")
}

func TestResumeWithOtherPlanFails(t *testing.T) {
	tc := planCases()[0]
	plan, sys := prepare(t, tc)
	sys.FailOn("run[pas] pas-mgmt-update", errors.New("injected failure"))
	_, err := runPlan(t, plan, sys, pasupgrade.RunConfig{})
	require.Error(t, err)

	opts := plan.Options
	opts.KeepPEMModes = true
	other, err := pasupgrade.NewUpgradePlan(pasupgrade.Upgrade480To490, opts)
	require.NoError(t, err)
	_, err = runPlan(t, other, sys, pasupgrade.RunConfig{Resume: true})
	require.ErrorIs(t, err, pasupgrade.ErrJournalMismatch)
	assert.Contains(t, err.Error(), "restrict-pem-modes")
}

func TestResumeWithoutJournalFails(t *testing.T) {
	plan, sys := prepare(t, planCases()[0])
	_, err := runPlan(t, plan, sys, pasupgrade.RunConfig{Resume: true})
	require.ErrorIs(t, err, pasupgrade.ErrNoJournal)
}

func TestJournalHasNoPassword(t *testing.T) {
	for _, tc := range planCases() {
		t.Run(tc.name, func(t *testing.T) {
			plan, sys := prepare(t, tc)
			_, err := runPlan(t, plan, sys, pasupgrade.RunConfig{ToolVersion: "v1.2.3"})
			require.NoError(t, err)

			data, err := os.ReadFile(filepath.Join(plan.Options.WorkDir, pasupgrade.JournalFile))
			require.NoError(t, err)
			assert.NotContains(t, string(data), password)
			j, err := pasupgrade.ReadJournal(plan.Options.WorkDir)
			require.NoError(t, err)
			assert.Equal(t, "v1.2.3", j.ToolVersion)
			assert.Equal(t, plan.IDs(), journalIDs(j))
			assert.NotNil(t, j.Finished)
			for _, rec := range j.Steps {
				assert.Equal(t, pasupgrade.OutcomeDone, rec.Outcome, rec.ID)
				assert.NotNil(t, rec.End, rec.ID)
			}
		})
	}
}

func journalIDs(j *pasupgrade.Journal) []string {
	var ids []string
	for _, rec := range j.Steps {
		ids = append(ids, rec.ID)
	}
	return ids
}

func TestLockRejectsSecondRun(t *testing.T) {
	plan, sys := prepare(t, planCases()[0])
	lock, err := pasupgrade.AcquireLock(plan.Options.WorkDir)
	require.NoError(t, err)
	defer lock.Release()

	_, err = runPlan(t, plan, sys, pasupgrade.RunConfig{})
	require.ErrorIs(t, err, pasupgrade.ErrLocked)
	assert.Contains(t, err.Error(), "process "+strings.TrimSpace(itoa(os.Getpid())))
	assert.Empty(t, sys.Log())
}

func TestNodeLockRejectsRunInOtherWorkDir(t *testing.T) {
	plan, sys := prepare(t, planCases()[0])
	nodeLock := filepath.Join(t.TempDir(), "run", "lock", "pasupgrade.lock")
	lock, err := pasupgrade.AcquireLockFile(nodeLock)
	require.NoError(t, err)
	defer lock.Release()

	_, err = runPlan(t, plan, sys, pasupgrade.RunConfig{NodeLock: nodeLock})
	require.ErrorIs(t, err, pasupgrade.ErrLocked)
	assert.Contains(t, err.Error(), "another upgrade or restore is running on this node")
	assert.Contains(t, err.Error(), nodeLock)
	assert.Empty(t, sys.Log())
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestInterruptedStepRunsAgain(t *testing.T) {
	plan, sys := prepare(t, planCases()[0])
	ctx, cancel := context.WithCancel(context.Background())
	interrupt := pasupgrade.Step{ID: "operator-check", Title: "Wait for the operator", Section: "local",
		User: pasupgrade.UserRoot, Changes: "nothing",
		Run: func(ctx context.Context, _ *pasupgrade.Env) error {
			cancel()
			<-ctx.Done()
			return ctx.Err()
		}}
	require.NoError(t, plan.InsertAfter("update-mgmt", interrupt))
	deps := sys.Deps(clock(), pasupgrade.ConfigconvEditor{})
	_, err := pasupgrade.Run(ctx, plan, deps, pasupgrade.RunConfig{})
	require.ErrorIs(t, err, context.Canceled)

	j, err := pasupgrade.ReadJournal(plan.Options.WorkDir)
	require.NoError(t, err)
	assert.Equal(t, pasupgrade.OutcomeFailed, j.Steps[len(j.Steps)-1].Outcome)

	ran := false
	for i := range plan.Steps {
		if plan.Steps[i].ID == "operator-check" {
			plan.Steps[i].Run = func(context.Context, *pasupgrade.Env) error { ran = true; return nil }
		}
	}
	sys.ResetLog()
	_, err = pasupgrade.Run(context.Background(), plan, sys.Deps(clock(), pasupgrade.ConfigconvEditor{}),
		pasupgrade.RunConfig{Resume: true})
	require.NoError(t, err)
	assert.True(t, ran, "the interrupted step runs again")
	assert.Equal(t, "run[pas] pas-storage-update", sys.Log()[0])
}

// killBetweenSteps runs plan until the change failing fails its step, then
// drops that step's record from the journal. The journal is then as a kill
// before that step leaves it: every recorded step done, the run unfinished.
func killBetweenSteps(t *testing.T, plan *pasupgrade.Plan, sys *pasupgradetest.System, failing string) []byte {
	t.Helper()
	sys.FailOn(failing, errors.New("injected failure"))
	_, err := runPlan(t, plan, sys, pasupgrade.RunConfig{})
	require.Error(t, err)

	path := filepath.Join(plan.Options.WorkDir, pasupgrade.JournalFile)
	var j map[string]any
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &j))
	steps := j["steps"].([]any)
	j["steps"] = steps[:len(steps)-1]
	data, err = json.Marshal(j)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data, 0o644))
	return data
}

func TestFreshRunRefusesJournalOfKilledRun(t *testing.T) {
	plan, sys := prepare(t, planCases()[0])
	before := killBetweenSteps(t, plan, sys, "run[pas] pas-mgmt-update")

	sys.ResetLog()
	_, err := runPlan(t, plan, sys, pasupgrade.RunConfig{})
	require.ErrorIs(t, err, pasupgrade.ErrUnfinishedRun)
	assert.Contains(t, err.Error(), "stopped after step update-core")
	assert.Contains(t, err.Error(), "/var/backups/pasupgrade/set-1")
	assert.Empty(t, sys.Log(), "the refused run changes nothing")

	after, err := os.ReadFile(filepath.Join(plan.Options.WorkDir, pasupgrade.JournalFile))
	require.NoError(t, err)
	assert.JSONEq(t, string(before), string(after), "the refused run keeps the journal")
}

func TestFreshRunRefusesUnreadableJournal(t *testing.T) {
	plan, sys := prepare(t, planCases()[0])
	path := filepath.Join(plan.Options.WorkDir, pasupgrade.JournalFile)
	require.NoError(t, os.WriteFile(path, []byte("{not json"), 0o644))

	_, err := runPlan(t, plan, sys, pasupgrade.RunConfig{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "move it away")
	assert.Empty(t, sys.Log())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "{not json", string(data))
}

func TestResumeWithoutStartedStepRunsPreflight(t *testing.T) {
	plan, sys := prepare(t, planCases()[0])
	sys.Uid = "1000"
	_, err := runPlan(t, plan, sys, pasupgrade.RunConfig{})
	require.ErrorIs(t, err, pasupgrade.ErrPreflightFailed)

	_, err = runPlan(t, plan, sys, pasupgrade.RunConfig{Resume: true})
	require.ErrorIs(t, err, pasupgrade.ErrPreflightFailed)
	assert.Empty(t, sys.Log(), "a resume with no step done checks before it changes anything")
}

func TestLockSymlinkRejected(t *testing.T) {
	dir := t.TempDir()
	// The work directory belongs to pas, who could point the lock at a
	// file that only root may write; taking the lock truncates it.
	target := filepath.Join(t.TempDir(), "root-only")
	require.NoError(t, os.WriteFile(target, []byte("keep\n"), 0o600))
	require.NoError(t, os.Symlink(target, filepath.Join(dir, pasupgrade.LockFile)))

	lock, err := pasupgrade.AcquireLock(dir)
	if lock != nil {
		lock.Release()
	}
	require.Error(t, err)
	assert.Contains(t, err.Error(), "symbolic link")
	data, err := os.ReadFile(target)
	require.NoError(t, err)
	assert.Equal(t, "keep\n", string(data))
}

// archivedJournals returns the journals moved aside in dir.
func archivedJournals(t *testing.T, dir string) []*pasupgrade.Journal {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "pasupgrade-journal-*.json"))
	require.NoError(t, err)
	var out []*pasupgrade.Journal
	for _, path := range paths {
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		var j pasupgrade.Journal
		require.NoError(t, json.Unmarshal(data, &j), path)
		out = append(out, &j)
	}
	return out
}

func TestFreshRunKeepsFinishedJournal(t *testing.T) {
	plan, sys := prepare(t, planCases()[0])
	_, err := runPlan(t, plan, sys, pasupgrade.RunConfig{})
	require.NoError(t, err)

	// The node is at 4.9.0 now, so a second upgrade fails its preflight
	// checks, after it started its own journal.
	_, err = runPlan(t, plan, sys, pasupgrade.RunConfig{})
	require.ErrorIs(t, err, pasupgrade.ErrPreflightFailed)

	archived := archivedJournals(t, plan.Options.WorkDir)
	require.Len(t, archived, 1, "the finished run's journal is kept")
	assert.NotNil(t, archived[0].Finished)
	assert.Equal(t, "/var/backups/pasupgrade/set-1", archived[0].State.BackupSet)
}

func TestUnfinishedRunRefusalSaysHowToGoOn(t *testing.T) {
	tests := []struct {
		name, failOn string
		want         []string
	}{
		{"before the backup", "backup create in /var/backups/pasupgrade multi=false",
			[]string{"before it made a backup set, so nothing was changed", "--resume", "--new-run"}},
		{"after the backup", "tool convert-config as pas",
			[]string{"stopped at step convert-config", "restore from backup set /var/backups/pasupgrade/set-1", "--new-run"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan, sys := prepare(t, planCases()[0])
			sys.FailOn(tc.failOn, errors.New("injected failure"))
			_, err := runPlan(t, plan, sys, pasupgrade.RunConfig{})
			require.Error(t, err)

			_, err = runPlan(t, plan, sys, pasupgrade.RunConfig{})
			require.ErrorIs(t, err, pasupgrade.ErrUnfinishedRun)
			for _, want := range tc.want {
				assert.Contains(t, err.Error(), want)
			}
			assert.NotContains(t, err.Error(), "backup set ;")
		})
	}
}

func TestNewRunMovesUnfinishedJournalAside(t *testing.T) {
	plan, sys := prepare(t, planCases()[0])
	sys.FailOn("tool pre-upgrade as pas", errors.New("injected failure"))
	_, err := runPlan(t, plan, sys, pasupgrade.RunConfig{})
	require.Error(t, err)

	summary, err := runPlan(t, plan, sys, pasupgrade.RunConfig{NewRun: true})
	require.NoError(t, err)
	assert.Empty(t, summary.Skipped, "a new run repeats every step")
	archived := archivedJournals(t, plan.Options.WorkDir)
	require.Len(t, archived, 1)
	assert.Nil(t, archived[0].Finished)
	assert.Equal(t, "pre-upgrade", archived[0].Steps[len(archived[0].Steps)-1].ID)

	_, err = runPlan(t, plan, sys, pasupgrade.RunConfig{NewRun: true, Resume: true})
	require.ErrorIs(t, err, pasupgrade.ErrInvalidOptions)
}

// After a restore the packages are at 4.8.0 again while the upgrade's
// journal records them installed at 4.9.0: resuming would stop core and
// run 4.9.0's steps on a 4.8.0 node.
func TestResumeRefusesRestoredNode(t *testing.T) {
	plan, sys := prepare(t, planCases()[0])
	sys.FailOn("systemctl stop proxedo-api-security", errors.New("unit failed to stop"))
	_, err := runPlan(t, plan, sys, pasupgrade.RunConfig{})
	require.Error(t, err)
	for _, p := range pasupgrade.Upgrade480To490.Packages {
		sys.Packages[p] = pasupgrade.PackageStatus{Version: "4.8.0", Status: "installed"}
	}
	sys.ResetLog()

	_, err = runPlan(t, plan, sys, pasupgrade.RunConfig{Resume: true})
	require.ErrorIs(t, err, pasupgrade.ErrStaleJournal)
	assert.Contains(t, err.Error(), "at 4.8.0 again")
	assert.Contains(t, err.Error(), "--new-run")
	assert.Empty(t, sys.Log(), "nothing was changed")

	_, err = runPlan(t, plan, sys, pasupgrade.RunConfig{})
	require.ErrorIs(t, err, pasupgrade.ErrUnfinishedRun)
	assert.Contains(t, err.Error(), "the node was restored since")
	assert.Contains(t, err.Error(), "--new-run")
}
