package pasupgrade_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/pasupgrade"
	"github.com/pasops/pasupgrade/pasupgrade/pasupgradetest"
)

func checksOf(events []pasupgrade.Event) map[string]pasupgrade.CheckResult {
	out := map[string]pasupgrade.CheckResult{}
	for _, ev := range events {
		if ev.Kind == pasupgrade.EventCheck {
			out[ev.Check.Name] = *ev.Check
		}
	}
	return out
}

func TestPreflightFailures(t *testing.T) {
	tests := []struct {
		name    string
		multi   bool
		breakIt func(*pasupgradetest.System)
		check   string
		message string
	}{
		{"not root", false, func(s *pasupgradetest.System) { s.Uid = "1000" }, pasupgrade.CheckRoot, "running as uid 1000, not root"},
		{"no pas user", false, func(s *pasupgradetest.System) { s.PASUser = false }, pasupgrade.CheckPASUser, "the pas user does not exist"},
		{"broken package", false, func(s *pasupgradetest.System) {
			s.Packages[pasupgrade.PackageMgmt] = pasupgrade.PackageStatus{Version: "4.8.0", Status: "half-configured"}
		}, pasupgrade.CheckPackages, "proxedo-api-security-mgmt is half-configured"},
		{"wrong version", false, func(s *pasupgradetest.System) {
			s.Packages[pasupgrade.PackageCore] = pasupgrade.PackageStatus{Version: "4.7.2", Status: "installed"}
		}, pasupgrade.CheckPackages, "proxedo-api-security is at 4.7.2"},
		{"deb set missing", false, func(s *pasupgradetest.System) { s.DebSets["4.9.0"] = false }, pasupgrade.CheckDebSet, "no 4.9.0 packages in /srv/debs"},
		{"service stopped", false, func(s *pasupgradetest.System) { s.Units[pasupgrade.UnitStorage] = false }, pasupgrade.CheckServices, "proxedo-api-security-storage not running"},
		{"reload failed", false, func(s *pasupgradetest.System) { s.ReloadFailed = []string{"mgmt"} }, pasupgrade.CheckAPI, "reload success is FAILED on mgmt"},
		{"api down", false, func(s *pasupgradetest.System) { s.FailOn("api.login", errors.New("connection refused")) }, pasupgrade.CheckAPI, "logging in to the management API: connection refused"},
		{"engine down", false, func(s *pasupgradetest.System) { s.FailOn("tool.image-present", errors.New("no engine")) }, pasupgrade.CheckToolImage, "cannot reach the Docker engine: no engine"},
		{"pull fails", false, func(s *pasupgradetest.System) {
			s.HasImage = false
			s.FailOn("tool pull pas-upgrade-tool:4.9.0", errors.New("denied"))
		}, pasupgrade.CheckToolImage, "pulling pas-upgrade-tool:4.9.0: denied"},
		{"no space", false, func(s *pasupgradetest.System) { s.FreeBytes = 1 << 20 }, pasupgrade.CheckBackupSpace, "has 1 MiB free"},
		{"no ssh key", true, func(s *pasupgradetest.System) { delete(s.Files, pasupgrade.PASSSHDir+"/id_ed25519") }, pasupgrade.CheckSSHKey, "no pas SSH key"},
		{"no common vars", true, func(s *pasupgradetest.System) { delete(s.Files, pasupgrade.CommonVarsPath) }, pasupgrade.CheckCommonVars, "common_vars.yml is missing"},
		{"remote down", true, func(s *pasupgradetest.System) { s.FailOn("ssh core-2 [root] true", errors.New("timeout")) }, pasupgrade.CheckRemoteNodes, "core-2 (timeout)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pc := planCases()[0]
			if tc.multi {
				pc = planCases()[1]
			}
			plan, sys := prepare(t, pc)
			tc.breakIt(sys)
			var events []pasupgrade.Event
			_, err := runPlan(t, plan, sys, pasupgrade.RunConfig{Events: func(ev pasupgrade.Event) { events = append(events, ev) }})

			var pre *pasupgrade.PreflightError
			require.ErrorAs(t, err, &pre)
			assert.ErrorIs(t, err, pasupgrade.ErrPreflightFailed)
			assert.Contains(t, pre.Report.Failed(), tc.check)
			got := checksOf(events)[tc.check]
			assert.Equal(t, pasupgrade.CheckFail, got.Status)
			assert.Contains(t, got.Message, tc.message)
			assert.NotEmpty(t, got.Fix)
			changes := sys.Log()
			if tc.name == "pull fails" {
				assert.Equal(t, []string{"tool pull pas-upgrade-tool:4.9.0"}, changes)
				return
			}
			assert.Empty(t, changes, "nothing changes when a check fails")
		})
	}
}

func TestPreflightIgnoreCheck(t *testing.T) {
	pc := planCases()[0]
	pc.opts.IgnoreChecks = []string{pasupgrade.CheckBackupSpace}
	plan, sys := prepare(t, pc)
	sys.FreeBytes = 1 << 20
	var events []pasupgrade.Event
	_, err := runPlan(t, plan, sys, pasupgrade.RunConfig{Events: func(ev pasupgrade.Event) { events = append(events, ev) }})
	require.NoError(t, err)

	got := checksOf(events)[pasupgrade.CheckBackupSpace]
	assert.Equal(t, pasupgrade.CheckWarn, got.Status)
	assert.True(t, got.Ignored)
}

func TestPreflightPullsMissingImage(t *testing.T) {
	plan, sys := prepare(t, planCases()[0])
	sys.HasImage = false
	sys.Expect(append([]string{"tool pull pas-upgrade-tool:4.9.0"}, singleUpgrade...)...)
	_, err := runPlan(t, plan, sys, pasupgrade.RunConfig{})
	require.NoError(t, err)
}

func TestPreflightAllPass(t *testing.T) {
	for _, tc := range planCases() {
		t.Run(tc.name, func(t *testing.T) {
			plan, sys := prepare(t, tc)
			var events []pasupgrade.Event
			_, err := runPlan(t, plan, sys, pasupgrade.RunConfig{Events: func(ev pasupgrade.Event) { events = append(events, ev) }})
			require.NoError(t, err)
			checks := checksOf(events)
			require.Len(t, checks, len(plan.Checks()))
			for name, res := range checks {
				assert.Equal(t, pasupgrade.CheckPass, res.Status, "%s: %s", name, res.Message)
			}
		})
	}
}

func TestConfirmDeclinedChangesNothing(t *testing.T) {
	plan, sys := prepare(t, planCases()[0])
	declined := errors.New("declined")
	_, err := runPlan(t, plan, sys, pasupgrade.RunConfig{Confirm: func(_ context.Context, _ *pasupgrade.Plan) error { return declined }})
	require.ErrorIs(t, err, declined)
	assert.Empty(t, sys.Log())
}

func TestRestorePreflightNeedsValidSet(t *testing.T) {
	tc := planCases()[6]
	plan, sys := prepare(t, tc)
	other := plan.Options
	other.BackupDir = "/var/backups/pasupgrade/no-such-set"
	plan, err := pasupgrade.NewRestorePlan(pasupgrade.Upgrade480To490, other)
	require.NoError(t, err)

	var events []pasupgrade.Event
	_, err = runPlan(t, plan, sys, pasupgrade.RunConfig{Events: func(ev pasupgrade.Event) { events = append(events, ev) }})
	require.ErrorIs(t, err, pasupgrade.ErrPreflightFailed)
	checks := checksOf(events)
	assert.Equal(t, pasupgrade.CheckFail, checks[pasupgrade.CheckBackupSet].Status)
	assert.Equal(t, pasupgrade.CheckFail, checks[pasupgrade.CheckRemoteNodes].Status)
	assert.Empty(t, sys.Log(), "nothing is deleted when the set is not usable")
}

func TestRestoreRejectsWorkDirInPASHome(t *testing.T) {
	opts := options(pasupgrade.TopologySingle, false, false)
	opts.WorkDir = "/opt/balasys/upgrade"
	opts.BackupDir = "/var/backups/pasupgrade/set-7"
	_, err := pasupgrade.NewRestorePlan(pasupgrade.Upgrade480To490, opts)
	require.ErrorIs(t, err, pasupgrade.ErrInvalidOptions)
	assert.Contains(t, err.Error(), "which restore deletes")
}

func TestRestorePreflightChecksAdminPassword(t *testing.T) {
	tests := []struct {
		name   string
		fault  error
		status pasupgrade.CheckStatus
		text   string
	}{
		{"accepted", nil, pasupgrade.CheckPass, "accepts the admin password"},
		{"rejected", fmt.Errorf("%w: 401", pasupgrade.ErrLoginRejected), pasupgrade.CheckFail, "rejected the admin password"},
		{"unreachable", errors.New("connection refused"), pasupgrade.CheckWarn, "could not reach the management API"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan, sys := prepare(t, planCases()[6])
			if tc.fault != nil {
				sys.FailOn("api.login", tc.fault)
			}
			var events []pasupgrade.Event
			_, err := runPlan(t, plan, sys, pasupgrade.RunConfig{DryRun: true,
				Events: func(ev pasupgrade.Event) { events = append(events, ev) }})
			got := checksOf(events)[pasupgrade.CheckAdminLogin]
			assert.Equal(t, tc.status, got.Status)
			assert.Contains(t, got.Message, tc.text)
			if tc.status == pasupgrade.CheckFail {
				require.ErrorIs(t, err, pasupgrade.ErrPreflightFailed)
				assert.NotEmpty(t, got.Fix)
				return
			}
			require.NoError(t, err)
		})
	}
}
