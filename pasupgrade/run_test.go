package pasupgrade_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/pasupgrade"
	"github.com/pasops/pasupgrade/runner"
)

func TestDryRunChangesNothing(t *testing.T) {
	for _, tc := range planCases() {
		t.Run(tc.name, func(t *testing.T) {
			plan, sys := prepare(t, tc)
			var would []string
			summary, err := runPlan(t, plan, sys, pasupgrade.RunConfig{DryRun: true, Events: func(ev pasupgrade.Event) {
				if ev.Kind == pasupgrade.EventWould {
					would = append(would, ev.Message)
				}
			}})
			require.NoError(t, err)
			assert.Empty(t, sys.Log())
			assert.True(t, summary.DryRun)
			assert.NoFileExists(t, filepath.Join(plan.Options.WorkDir, pasupgrade.JournalFile))
			assert.NoFileExists(t, filepath.Join(plan.Options.WorkDir, pasupgrade.LockFile))
			text := strings.Join(would, "\n")
			assert.NotContains(t, text, password)
			if tc.restore {
				assert.Contains(t, text, "run (as root) userdel --force --remove pas")
				return
			}
			assert.Contains(t, text, "systemctl restart proxedo-api-security-mgmt")
			assert.Contains(t, text, "run (as pas) pas-mgmt-update (in "+plan.Options.WorkDir+")")
			assert.Contains(t, text, "proxedo-api-security-mgmt/admin-password=***")
		})
	}
}

func TestDryRunClaimsNoBackupWritten(t *testing.T) {
	plan, sys := prepare(t, planCases()[0])
	var infos []string
	_, err := runPlan(t, plan, sys, pasupgrade.RunConfig{DryRun: true, Events: func(ev pasupgrade.Event) {
		if ev.Kind == pasupgrade.EventInfo {
			infos = append(infos, ev.Message)
		}
	}})
	require.NoError(t, err)
	assert.NotContains(t, strings.Join(infos, "\n"), "written and verified")
}

func TestDryRunShowsEditDiffs(t *testing.T) {
	plan, sys := prepare(t, planCases()[1])
	var would []string
	_, err := runPlan(t, plan, sys, pasupgrade.RunConfig{DryRun: true, Events: func(ev pasupgrade.Event) {
		if ev.Kind == pasupgrade.EventWould {
			would = append(would, ev.Message)
		}
	}})
	require.NoError(t, err)
	text := strings.Join(would, "\n")
	assert.Contains(t, text, "write /opt/balasys/etc/infrastructure/mgmt/docker-compose.conf (owner pas):\n"+
		"  -export DOCKER_IMAGE_TAG=\"4.8.0\"\n  +export DOCKER_IMAGE_TAG=\"4.9.0\"")
	assert.Contains(t, text, "write /opt/balasys/etc/automation/common_vars.yml (owner pas):\n"+
		"  -storage_deb_path: /tmp/proxedo-api-security-storage_4.8.0_all.deb\n"+
		"  -core_deb_path: /tmp/proxedo-api-security_4.8.0_all.deb\n"+
		"  +storage_deb_path: /srv/debs/proxedo-api-security-storage_4.9.0_all.deb\n"+
		"  +core_deb_path: /srv/debs/proxedo-api-security_4.9.0_all.deb\n"+
		"  -    PAS_IMAGE_TAG: 4.8.0\n"+
		"  +    PAS_IMAGE_TAG: 4.9.0")
}

func TestEditsKeepFileLayout(t *testing.T) {
	plan, sys := prepare(t, planCases()[1])
	_, err := runPlan(t, plan, sys, pasupgrade.RunConfig{})
	require.NoError(t, err)
	assert.Equal(t, "# compose settings\nexport DOCKER_IMAGE_TAG=\"4.9.0\"\n",
		string(sys.Files["/opt/balasys/etc/infrastructure/mgmt/docker-compose.conf"]))
	assert.Equal(t, "storage_deb_path: /srv/debs/proxedo-api-security-storage_4.9.0_all.deb\n"+
		"core_deb_path: /srv/debs/proxedo-api-security_4.9.0_all.deb\ncommon:\n  docker:\n    PAS_IMAGE_TAG: 4.9.0\n",
		string(sys.Files[pasupgrade.CommonVarsPath]))
	assert.Equal(t, "pas", sys.Owners[pasupgrade.CommonVarsPath])
}

func TestDowntimeCoversCoreStoppedWindow(t *testing.T) {
	plan, sys := prepare(t, planCases()[0])
	var downStart, downEnd time.Time
	summary, err := runPlan(t, plan, sys, pasupgrade.RunConfig{Events: func(ev pasupgrade.Event) {
		switch {
		case ev.Kind == pasupgrade.EventStepStart && ev.Step.ID == "stop-core":
			downStart = ev.Time
		case ev.Kind == pasupgrade.EventStepEnd && ev.Step.ID == "start-core":
			downEnd = ev.Time
		}
	}})
	require.NoError(t, err)
	assert.Less(t, summary.Downtime, summary.Duration)
	// The window runs from the stop step's start to the start step's end.
	// The fake clock advances a second per reading, so the events bracket
	// it with one reading on either side.
	assert.LessOrEqual(t, summary.Downtime, downEnd.Sub(downStart))
	assert.GreaterOrEqual(t, summary.Downtime, downEnd.Sub(downStart)-2*time.Second)

	var inside []string
	for _, s := range plan.Steps {
		if s.CoreStopped {
			inside = append(inside, s.ID)
		}
	}
	assert.Equal(t, []string{"stop-core", "post-upgrade", "start-core"}, inside)
}

func TestSummaryReportsHashAndReapply(t *testing.T) {
	plan, sys := prepare(t, planCases()[1])
	sys.OnCall("run[pas] pas-mgmt-deploy-core --restart-core", func() { sys.ReloadFailed = []string{"core-2"} })
	summary, err := runPlan(t, plan, sys, pasupgrade.RunConfig{})
	require.NoError(t, err)
	assert.Equal(t, "api apply timeout=20s", sys.Log()[len(sys.Log())-1])
	assert.Equal(t, []string{"core-2"}, summary.Reapplied)
	assert.Equal(t, pasupgrade.HashBcrypt, summary.HashScheme)
	assert.Contains(t, summary.Changed, "install-packages")
	assert.NotContains(t, summary.Changed, "verify-versions")
}

func TestKeepPasswordHashReportsSHA(t *testing.T) {
	pc := planCases()[0]
	pc.opts.KeepPasswordHash = true
	plan, sys := prepare(t, pc)
	summary, err := runPlan(t, plan, sys, pasupgrade.RunConfig{})
	require.NoError(t, err)
	assert.Equal(t, pasupgrade.HashSHA1, summary.HashScheme)
	assert.NotContains(t, sys.Log()[4], "admin-password")
}

func TestInsertStepsAroundNamedStep(t *testing.T) {
	plan, sys := prepare(t, planCases()[0])
	var order []string
	mark := func(id string) pasupgrade.Step {
		return pasupgrade.Step{ID: id, Title: "Notify " + id, Section: "local", User: pasupgrade.UserRoot,
			Run: func(context.Context, *pasupgrade.Env) error { order = append(order, id); return nil }}
	}
	require.NoError(t, plan.InsertBefore("stop-core", mark("drain-traffic")))
	require.NoError(t, plan.InsertAfter("start-core", mark("undrain-traffic")))
	_, err := runPlan(t, plan, sys, pasupgrade.RunConfig{Events: func(ev pasupgrade.Event) {
		if ev.Kind == pasupgrade.EventStepStart {
			order = append(order, "start:"+ev.Step.ID)
		}
	}})
	require.NoError(t, err)
	joined := strings.Join(order, " ")
	assert.Contains(t, joined, "start:restart-storage start:drain-traffic drain-traffic start:stop-core")
	assert.Contains(t, joined, "start:start-core start:undrain-traffic undrain-traffic start:verify-versions")
}

func TestInsertRejectsBadSteps(t *testing.T) {
	opts := options(pasupgrade.TopologySingle, false, false)
	opts.WorkDir = t.TempDir()
	plan, err := pasupgrade.NewUpgradePlan(pasupgrade.Upgrade480To490, opts)
	require.NoError(t, err)
	noop := func(context.Context, *pasupgrade.Env) error { return nil }

	tests := []struct {
		name string
		at   string
		step pasupgrade.Step
		want string
	}{
		{"unknown anchor", "no-such-step", pasupgrade.Step{ID: "x", Title: "x", User: "root", Run: noop}, "no such step"},
		{"duplicate id", "backup", pasupgrade.Step{ID: "post-upgrade", Title: "x", User: "root", Run: noop}, `step id "post-upgrade" appears twice`},
		{"slow inside window", "post-upgrade", pasupgrade.Step{ID: "pull", Title: "x", User: "root", Slow: true, Run: noop}, "would run while core is stopped"},
		{"bad user", "backup", pasupgrade.Step{ID: "x", Title: "x", User: "admin", Run: noop}, `runs as "admin"`},
		{"no run", "backup", pasupgrade.Step{ID: "x", Title: "x", User: "root"}, "has no Run function"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := plan.IDs()
			err := plan.InsertAfter(tc.at, tc.step)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Equal(t, before, plan.IDs(), "the plan is unchanged")
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*pasupgrade.Options)
		want   string
	}{
		{"ha on single", func(o *pasupgrade.Options) { o.HA = true }, "multi node topology only"},
		{"bad topology", func(o *pasupgrade.Options) { o.Topology = "cluster" }, `topology "cluster"`},
		{"relative work dir", func(o *pasupgrade.Options) { o.WorkDir = "upgrade" }, `work directory "upgrade"`},
		{"backup in pas home", func(o *pasupgrade.Options) { o.BackupDir = "/opt/balasys/backup" }, "restore deletes with the pas user"},
		{"ca outside work dir", func(o *pasupgrade.Options) { o.CACert = "/etc/ssl/ca.pem" }, "outside the work directory"},
		{"no deb dir", func(o *pasupgrade.Options) { o.DebDir = "" }, "deb-dir"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := options(pasupgrade.TopologySingle, false, false)
			opts.WorkDir = "/srv/upgrade"
			tc.modify(&opts)
			err := opts.Validate(false)
			require.ErrorIs(t, err, pasupgrade.ErrInvalidOptions)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestRestoreRejectsDebDirInPASHome(t *testing.T) {
	opts := options(pasupgrade.TopologySingle, false, false)
	opts.WorkDir = "/srv/upgrade"
	opts.BackupDir = "/var/backups/pasupgrade/set-7"
	opts.DebDir = "/opt/balasys/pas-4.8.0"

	// remove-pas-user deletes the pas home before reinstall-packages
	// reads the 4.8.0 packages from it.
	err := opts.Validate(true)
	require.ErrorIs(t, err, pasupgrade.ErrInvalidOptions)
	assert.Contains(t, err.Error(), `directory of .deb files "/opt/balasys/pas-4.8.0"`)

	require.NoError(t, opts.Validate(false), "the upgrade installs before anything is deleted")
}

func TestStepOutputKeptForFailure(t *testing.T) {
	plan, sys := prepare(t, planCases()[0])
	sys.FailOn("run[pas] pas-storage-checkconfig", errors.New("config.yml: line 3: invalid key "+password))
	_, err := runPlan(t, plan, sys, pasupgrade.RunConfig{})
	var stepErr *pasupgrade.StepError
	require.ErrorAs(t, err, &stepErr)
	assert.NotContains(t, err.Error(), password)
	assert.Contains(t, err.Error(), "invalid key ***")

	j, err := pasupgrade.ReadJournal(plan.Options.WorkDir)
	require.NoError(t, err)
	for _, rec := range j.Steps {
		if rec.ID == "update-mgmt" {
			assert.True(t, strings.HasPrefix(rec.Output, "sha256:"), rec.Output)
		}
	}
	data, err := os.ReadFile(j.Path())
	require.NoError(t, err)
	assert.NotContains(t, string(data), password)
}

func TestDryRunRestoreReadsOriginalSet(t *testing.T) {
	tc := planCases()[6]
	plan, sys := prepare(t, tc)
	var warnings []string
	_, err := runPlan(t, plan, sys, pasupgrade.RunConfig{DryRun: true, Events: func(ev pasupgrade.Event) {
		if ev.Kind == pasupgrade.EventWarning {
			warnings = append(warnings, ev.Message)
		}
	}})
	require.NoError(t, err)
	assert.Empty(t, warnings)
	assert.Empty(t, sys.Log())
}

func TestDowntimeIncludesInsertedSteps(t *testing.T) {
	plan, sys := prepare(t, planCases()[0])
	// An in-house step between the tool run and the start of core keeps
	// core down; it reads the fake clock ten times, so it lasts ten seconds.
	slowNotify := pasupgrade.Step{ID: "notify", Title: "Notify", Section: "local", User: pasupgrade.UserRoot,
		Run: func(_ context.Context, env *pasupgrade.Env) error {
			for range 10 {
				env.Deps.Clock.Now()
			}
			return nil
		}}
	require.NoError(t, plan.InsertAfter("post-upgrade", slowNotify))
	summary, err := runPlan(t, plan, sys, pasupgrade.RunConfig{})
	require.NoError(t, err)
	assert.GreaterOrEqual(t, summary.Downtime, 10*time.Second)
}

// handClock is a Clock that moves only when the test moves it.
type handClock struct{ now time.Time }

func (c *handClock) Now() time.Time          { return c.now }
func (c *handClock) advance(d time.Duration) { c.now = c.now.Add(d) }

// slowRunner makes every command take cost on clock. It runs the command
// "probe" itself, doing nothing, and passes the others on.
type slowRunner struct {
	next  runner.Runner
	clock *handClock
	cost  time.Duration
	calls *int
}

func (r slowRunner) Run(ctx context.Context, cmd runner.Command) (runner.Result, error) {
	r.clock.advance(r.cost)
	*r.calls++
	if cmd.String() == "probe" {
		return runner.Result{}, nil
	}
	return r.next.Run(ctx, cmd)
}

func TestRunSeparatesWaitsFromOwnWork(t *testing.T) {
	plan, sys := prepare(t, planCases()[0])
	clock := &handClock{now: time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)}
	deps := sys.Deps(clock, pasupgrade.ConfigconvEditor{})
	calls := 0
	deps.Runner = slowRunner{deps.Runner, clock, 2 * time.Second, &calls}

	// The step works 5 s itself and waits 2 s for one command.
	own := pasupgrade.Step{ID: "own-work", Title: "work in the tool's process", Section: "in-house",
		User: pasupgrade.UserRoot, Action: "compute",
		Run: func(ctx context.Context, e *pasupgrade.Env) error {
			clock.advance(5 * time.Second)
			_, err := e.Run(ctx, runner.Command{Argv: []string{"probe"}})
			return err
		}}
	require.NoError(t, plan.InsertAfter(pasupgrade.StepBackup, own))

	summary, err := pasupgrade.Run(context.Background(), plan, deps, pasupgrade.RunConfig{})
	require.NoError(t, err)
	require.Greater(t, calls, 1)
	assert.Equal(t, time.Duration(calls)*2*time.Second, summary.Waited, "every command's time is a wait")
	assert.Equal(t, 5*time.Second, summary.Duration-summary.Waited, "the rest is the step's own work")

	j, err := pasupgrade.ReadJournal(plan.Options.WorkDir)
	require.NoError(t, err)
	assert.Equal(t, summary.Waited, j.Waited)
	for _, rec := range j.Steps {
		if rec.ID == own.ID {
			assert.Equal(t, 2*time.Second, rec.Waited)
			assert.Equal(t, 7*time.Second, rec.End.Sub(rec.Start))
		}
	}
}

func TestResumeAddsUpWaits(t *testing.T) {
	plan, sys := prepare(t, planCases()[0])
	clock := &handClock{now: time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)}
	deps := sys.Deps(clock, pasupgrade.ConfigconvEditor{})
	calls := 0
	deps.Runner = slowRunner{deps.Runner, clock, time.Second, &calls}
	sys.FailOn("systemctl stop proxedo-api-security", errors.New("unit failed to stop"))

	_, err := pasupgrade.Run(context.Background(), plan, deps, pasupgrade.RunConfig{})
	require.Error(t, err)
	first := calls
	require.Positive(t, first)

	sys.ResetLog()
	summary, err := pasupgrade.Run(context.Background(), plan, deps, pasupgrade.RunConfig{Resume: true})
	require.NoError(t, err)
	assert.Equal(t, time.Duration(calls-first)*time.Second, summary.Waited, "the summary counts this run")
	j, err := pasupgrade.ReadJournal(plan.Options.WorkDir)
	require.NoError(t, err)
	assert.Equal(t, time.Duration(calls)*time.Second, j.Waited, "the journal counts every run")
}

// Case: Ctrl-C arrives while a step waits on a command that runs to its end
// anyway, such as dpkg. The step completes, and the run stops before the
// next step instead of starting it with the cancelled context.
func TestRunStopsBetweenStepsWhenCancelled(t *testing.T) {
	plan, sys := prepare(t, planCases()[0])
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	interrupted := pasupgrade.Step{ID: "interrupted", Title: "a step during which Ctrl-C arrives",
		Section: "in-house", User: pasupgrade.UserRoot, Action: "wait",
		Run: func(context.Context, *pasupgrade.Env) error {
			cancel()
			return nil
		}}
	next := false
	after := pasupgrade.Step{ID: "after", Title: "the step after it", Section: "in-house",
		User: pasupgrade.UserRoot, Action: "work",
		Run: func(context.Context, *pasupgrade.Env) error {
			next = true
			return nil
		}}
	require.NoError(t, plan.InsertAfter(pasupgrade.StepBackup, interrupted))
	require.NoError(t, plan.InsertAfter(interrupted.ID, after))

	_, err := pasupgrade.Run(ctx, plan, sys.Deps(clock(), pasupgrade.ConfigconvEditor{}), pasupgrade.RunConfig{})

	require.ErrorIs(t, err, context.Canceled)
	var stepErr *pasupgrade.StepError
	require.ErrorAs(t, err, &stepErr, "the CLI prints how to resume for a step error")
	assert.Equal(t, after.ID, stepErr.Step.ID)
	assert.Contains(t, err.Error(), "interrupted")
	assert.False(t, next, "the step after the interruption ran")
	j, err := pasupgrade.ReadJournal(plan.Options.WorkDir)
	require.NoError(t, err)
	last := j.Steps[len(j.Steps)-1]
	assert.Equal(t, interrupted.ID, last.ID, "the step after the interruption is not recorded")
	assert.Equal(t, pasupgrade.OutcomeDone, last.Outcome)
}
