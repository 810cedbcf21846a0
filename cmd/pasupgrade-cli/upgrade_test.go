package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/pasupgrade"
	"github.com/pasops/pasupgrade/pasupgrade/pasupgradetest"
	"github.com/pasops/pasupgrade/runner"
)

const testPassword = "s3cret-Pa55"

// fakeNode replaces the real dependencies with a fake installation for the
// duration of the test and returns it.
func fakeNode(t *testing.T, hosts ...string) *pasupgradetest.System {
	t.Helper()
	sys := pasupgradetest.NewSystem(t, pasupgrade.Upgrade480To490, hosts...)
	if len(hosts) > 0 {
		sys.Units[pasupgrade.UnitCore] = false
	}
	old := newDeps
	newDeps = func(_ context.Context, a *app, f *planFlags, plan *pasupgrade.Plan) (pasupgrade.Deps, func(), error) {
		password, err := f.mgmt.password(a)
		if err != nil {
			return pasupgrade.Deps{}, nil, err
		}
		plan.Options.AdminPassword = password
		clock := pasupgradetest.NewClock(time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC), time.Second)
		return sys.Deps(clock, pasupgrade.ConfigconvEditor{}), func() {}, nil
	}
	t.Cleanup(func() { newDeps = old })
	return sys
}

// runArgs returns the common flags of a run in a fresh work directory.
func runArgs(t *testing.T, args ...string) []string {
	t.Helper()
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	require.NoError(t, os.WriteFile(pw, []byte(testPassword+"\n"), 0o600))
	return append(args, "--work-dir", dir, "--deb-dir", "/srv/debs", "--password-file", pw)
}

func TestUpgradeJSONEvents(t *testing.T) {
	sys := fakeNode(t)
	code, out, errOut := runCLI(t, runArgs(t, "--json", "upgrade", "--yes")...)
	require.Equal(t, exitOK, code, errOut)
	assert.Len(t, sys.Log(), 16)

	kinds := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev struct {
			Type string `json:"type"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &ev), line)
		kinds[ev.Type]++
	}
	assert.Equal(t, 1, kinds["plan"])
	assert.Equal(t, 10, kinds["check"])
	assert.Equal(t, 18, kinds["step_start"])
	assert.Equal(t, 18, kinds["step_end"])
	assert.Equal(t, 1, kinds["summary"])
	assert.NotContains(t, out+errOut, testPassword)
}

func TestUpgradeTextSummary(t *testing.T) {
	fakeNode(t)
	code, out, errOut := runCLI(t, runArgs(t, "upgrade", "--yes")...)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "[1/18] Back up the bootstrap files and the running configuration (guide 2.1, 2.2, as root)")
	assert.Contains(t, out, "PASS  root")
	assert.Contains(t, out, "upgrade from 4.8.0 to 4.9.0 finished")
	assert.Contains(t, out, "core down:   ")
	assert.Contains(t, out, "own work:    ")
	assert.Contains(t, out, "admin password hash: bcrypt")
	assert.Contains(t, out, "backup set:  /var/backups/pasupgrade/set-1")
}

func TestUpgradeWithoutTerminalNeedsYes(t *testing.T) {
	sys := fakeNode(t)
	code, _, errOut := runCLI(t, runArgs(t, "upgrade")...)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "pass --yes")
	assert.Empty(t, sys.Log())
}

func TestUpgradeFailurePrintsNextSteps(t *testing.T) {
	sys := fakeNode(t)
	sys.FailOn("run[pas] pas-storage-checkconfig", errors.New("storage config.yml: invalid"))
	args := runArgs(t, "upgrade", "--yes", "--ignore-check", "root", "--ignore-check", "ssh-key")
	code, out, errOut := runCLI(t, args...)
	assert.Equal(t, exitStepFailed, code)
	assert.Contains(t, errOut, "step checkconfig-storage (guide 3.2.8) failed: storage config.yml: invalid")
	assert.Contains(t, errOut, "backup set: /var/backups/pasupgrade/set-1")
	assert.Contains(t, out, "pasupgrade-cli upgrade --deb-dir=/srv/debs --ignore-check=root --ignore-check=ssh-key --password-file=")
	assert.Contains(t, out, "--yes=true --resume")
	assert.Contains(t, out, "pasupgrade-cli restore --backup=/var/backups/pasupgrade/set-1 --work-dir=/var/backups/pasupgrade --topology=single")

	sys.ResetLog()
	code, out, errOut = runCLI(t, append(args, "--resume")...)
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, "run[pas] pas-storage-checkconfig", sys.Log()[0])
	assert.Contains(t, out, "changed (this and earlier runs): backup,")
	assert.Contains(t, out, "already done before this run: backup,")
}

func TestUpgradeDryRunChangesNothing(t *testing.T) {
	sys := fakeNode(t, "core-1")
	code, out, errOut := runCLI(t, runArgs(t, "upgrade", "--dry-run", "--topology", "multi")...)
	require.Equal(t, exitOK, code, errOut)
	assert.Empty(t, sys.Log())
	assert.Contains(t, out, "would run (as pas) pas-mgmt-deploy-core --restart-core")
	assert.Contains(t, out, "  +export DOCKER_IMAGE_TAG=\"4.9.0\"")
	assert.Contains(t, out, "dry run finished; nothing was changed")
}

func TestPreflightExitCodeAndIgnore(t *testing.T) {
	sys := fakeNode(t)
	sys.Uid = "1000"
	args := runArgs(t, "preflight")
	code, out, errOut := runCLI(t, args...)
	assert.Equal(t, exitCheckFailed, code)
	assert.Contains(t, out, "FAIL  root            running as uid 1000, not root\n      fix: run as root")
	assert.Contains(t, errOut, "preflight checks failed: root")

	code, out, _ = runCLI(t, append(args, "--ignore-check", "root")...)
	assert.Equal(t, exitOK, code)
	assert.Contains(t, out, "(ignored with --ignore-check)")

	code, _, errOut = runCLI(t, append(args, "--ignore-check", "rot")...)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "unknown --ignore-check rot")
}

func TestPlanPrintsGuideOrder(t *testing.T) {
	code, out, _ := runCLI(t, "plan", "--work-dir", t.TempDir())
	require.Equal(t, exitOK, code)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 19)
	assert.Regexp(t, `^STEP\s+GUIDE\s+USER\s+ACTION$`, lines[0])
	assert.Regexp(t, `^update-mgmt\s+3\.2\.6\s+pas\s+pas-mgmt-update$`, lines[7])
	assert.Regexp(t, `^stop-core\s+3\.2\.10\s+root\s+systemctl stop proxedo-api-security  \[core down\]$`, lines[14])

	code, out, _ = runCLI(t, "plan", "--restore", "--backup", "/var/backups/pasupgrade/s", "--work-dir", t.TempDir())
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, "remove-pas-user")
}

func TestConfigFileWithFlagOverride(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "pasupgrade.yaml")
	require.NoError(t, os.WriteFile(config, []byte("topology: multi\nha: true\nwork-dir: "+dir+
		"\nignore-check: [root, ssh-key]\nkeep-pem-modes: true\n"), 0o600))

	code, out, errOut := runCLI(t, "plan", "--config", config, "--json")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, `"id":"deploy-remote-ha"`)
	assert.NotContains(t, out, `"id":"restrict-pem-modes"`)

	code, out, errOut = runCLI(t, "plan", "--config", config, "--topology", "single", "--ha=false", "--json")
	require.Equal(t, exitOK, code, errOut)
	assert.NotContains(t, out, `"id":"deploy-remote-ha"`)

	require.NoError(t, os.WriteFile(config, []byte("topolgy: multi\n"), 0o600))
	code, _, errOut = runCLI(t, "plan", "--config", config)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, `unknown setting "topolgy"`)
}

func TestRestoreNeedsBackup(t *testing.T) {
	code, _, errOut := runCLI(t, "restore", "--yes", "--work-dir", t.TempDir())
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "restore needs --backup DIR")
}

func TestRestoreRuns(t *testing.T) {
	sys := fakeNode(t)
	sys.AddBackupSet("/var/backups/pasupgrade/set-9")
	config := filepath.Join(t.TempDir(), "pasupgrade.yaml")
	require.NoError(t, os.WriteFile(config, []byte("backup-dir: /srv/backups\n"), 0o600))
	code, out, errOut := runCLI(t, runArgs(t, "restore", "--yes", "--backup", "/var/backups/pasupgrade/set-9", "--config", config)...)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "restore to 4.8.0 finished")
	assert.Equal(t, "run[root] userdel --force --remove pas", sys.Log()[5])
}

func TestUpgradeInterruptedExitCode(t *testing.T) {
	sys := fakeNode(t)
	sys.FailOn("run[pas] pas-mgmt-update", context.Canceled)
	code, out, _ := runCLI(t, runArgs(t, "upgrade", "--yes")...)
	assert.Equal(t, exitInterrupted, code)
	assert.Contains(t, out, "--resume")
}

func TestUpgradeDryRunSummary(t *testing.T) {
	fakeNode(t)
	code, out, errOut := runCLI(t, runArgs(t, "upgrade", "--dry-run")...)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "  would change: backup, pre-upgrade")
	assert.NotContains(t, out, "admin password hash")
	assert.NotContains(t, errOut, "not bcrypt")
}

func TestTranscriptRedactsPassword(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	require.NoError(t, os.WriteFile(pw, []byte(testPassword+"\n"), 0o600))
	a := &app{streams: streams{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard}}
	require.NoError(t, a.setup())
	f := &planFlags{mgmt: mgmtFlags{url: "http://127.0.0.1:1", user: "admin", passwordFile: pw}}
	plan, err := pasupgrade.NewUpgradePlan(pasupgrade.Upgrade480To490, pasupgrade.Options{
		Topology: pasupgrade.TopologySingle, WorkDir: dir, DebDir: dir,
	})
	require.NoError(t, err)

	deps, closeDeps, err := buildDeps(context.Background(), a, f, plan)
	require.NoError(t, err)
	// echo prints the password without registering it as a secret; the
	// transcript still must not show it.
	_, err = deps.Runner.Run(context.Background(), runner.Command{Argv: []string{"echo", "token=" + testPassword}})
	require.NoError(t, err)
	closeDeps()

	data, err := os.ReadFile(filepath.Join(dir, transcriptFile))
	require.NoError(t, err)
	assert.Contains(t, string(data), "token=***")
	assert.NotContains(t, string(data), testPassword)
	assert.Equal(t, testPassword, plan.Options.AdminPassword)
}

func TestMissingWorkDirNamesFix(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	pw := filepath.Join(t.TempDir(), "password")
	require.NoError(t, os.WriteFile(pw, []byte(testPassword+"\n"), 0o600))
	code, _, errOut := runCLI(t, "preflight", "--work-dir", dir, "--password-file", pw)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "install -d -o pas -g pas "+dir)
}

func TestRestoreBackupFlagOverridesConfig(t *testing.T) {
	sys := fakeNode(t)
	set := "/var/backups/pasupgrade/set-7"
	sys.AddBackupSet(set)
	// One config file serves upgrade and restore, so it may name the
	// upgrade's backup directory; --backup names the set to restore.
	config := filepath.Join(t.TempDir(), "pasupgrade.yaml")
	require.NoError(t, os.WriteFile(config, []byte("backup-dir: /srv/other-backups\n"), 0o600))

	for _, command := range [][]string{{"preflight", "--restore"}, {"plan", "--restore", "--json"}} {
		args := append(command, "--backup", set, "--config", config)
		code, out, errOut := runCLI(t, runArgs(t, args...)...)
		assert.NotContains(t, out+errOut, "/srv/other-backups", "%v", command)
		if command[0] == "preflight" {
			assert.Equal(t, exitOK, code, "%v: %s%s", command, out, errOut)
			assert.Regexp(t, `PASS\s+backup-set`, out+errOut)
		}
	}

	code, _, errOut := runCLI(t, runArgs(t, "preflight", "--backup", set)...)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "add --restore")
}

func TestRestoreCommandKeepsManagementFlags(t *testing.T) {
	sys := fakeNode(t)
	sys.FailOn("run[pas] pas-storage-checkconfig", errors.New("storage config.yml: invalid"))
	args := runArgs(t, "upgrade", "--yes", "--mgmt-url", "https://mgmt.example:8443", "--user", "operator",
		"--mgmt-endpoint", "status=/api/v2/status", "--apply-timeout", "45s", "--cacert", "ca.pem", "--ignore-check", "ca-bundle")
	code, out, _ := runCLI(t, args...)
	require.Equal(t, exitStepFailed, code)

	var restore string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "pasupgrade-cli restore") {
			restore = line
		}
	}
	require.NotEmpty(t, restore, out)
	// The restore uploads and applies the saved configuration through the
	// same management API as the upgrade.
	assert.Contains(t, restore, "--mgmt-url=https://mgmt.example:8443")
	assert.Contains(t, restore, "--user=operator")
	assert.Contains(t, restore, "--mgmt-endpoint=status=/api/v2/status")
	assert.Contains(t, restore, "--apply-timeout=45s")
	workDir := args[len(args)-5]
	require.Equal(t, "--work-dir", args[len(args)-6])
	assert.Contains(t, restore, "--cacert="+filepath.Join(workDir, "ca.pem"))

	// The printed command is valid: the restore runs no upgrade tool, so
	// its CA bundle may lie outside its work directory.
	sys.AddBackupSet("/var/backups/pasupgrade/set-1")
	restoreArgs := strings.Fields(strings.Replace(restore, "DIR-WITH-THE-4.8.0-PACKAGES", "/srv/debs", 1))[1:]
	code, out, errOut := runCLI(t, append(restoreArgs, "--dry-run")...)
	assert.Equal(t, exitOK, code, "%s%s", out, errOut)
}

func TestTranscriptSymlinkRejected(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	require.NoError(t, os.WriteFile(pw, []byte(testPassword+"\n"), 0o600))
	// The work directory belongs to pas, who could point the transcript
	// at a file that only root may write.
	target := filepath.Join(t.TempDir(), "root-only")
	require.NoError(t, os.WriteFile(target, []byte("keep\n"), 0o600))
	require.NoError(t, os.Symlink(target, filepath.Join(dir, transcriptFile)))

	a := &app{streams: streams{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard}}
	require.NoError(t, a.setup())
	f := &planFlags{mgmt: mgmtFlags{url: "http://127.0.0.1:1", user: "admin", passwordFile: pw}}
	plan, err := pasupgrade.NewUpgradePlan(pasupgrade.Upgrade480To490, pasupgrade.Options{
		Topology: pasupgrade.TopologySingle, WorkDir: dir, DebDir: dir,
	})
	require.NoError(t, err)

	_, _, err = buildDeps(context.Background(), a, f, plan)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "symbolic link")
	data, err := os.ReadFile(target)
	require.NoError(t, err)
	assert.Equal(t, "keep\n", string(data))
}

func TestConfirmListsStepsBeforeAsking(t *testing.T) {
	sys := fakeNode(t)
	var out, errOut bytes.Buffer
	code := run(context.Background(), runArgs(t, "upgrade"), streams{
		In: strings.NewReader("n\n"), Out: &out, ErrOut: &errOut, InIsTerminal: true,
	})
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errOut.String(), "aborted: nothing was changed")
	assert.Empty(t, sys.Log())

	// The question refers to the steps, so they are listed right above it.
	prompt := errOut.String()
	question := strings.Index(prompt, "Proceed? [y/N]")
	require.GreaterOrEqual(t, question, 0, prompt)
	for _, step := range []string{"backup", "install-packages (guide 3.2.3, as root)", "stop-core", "post-upgrade (guide 3.2.11, as pas)", "start-core"} {
		i := strings.Index(prompt, step)
		assert.True(t, i >= 0 && i < question, "step %q listed before the question:\n%s", step, prompt)
	}
}

func TestRestoreDeploysFromPASHome(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	require.NoError(t, os.WriteFile(pw, []byte(testPassword+"\n"), 0o600))
	a := &app{streams: streams{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard}}
	require.NoError(t, a.setup())
	f := &planFlags{mgmt: mgmtFlags{url: "http://127.0.0.1:1", user: "admin", passwordFile: pw}}
	// The restore's work directory defaults to the backup set's parent,
	// which backup creates with mode 0700 for root: pas cannot enter it.
	plan, err := pasupgrade.NewRestorePlan(pasupgrade.Upgrade480To490, pasupgrade.Options{
		Topology: pasupgrade.TopologyMulti, WorkDir: dir, DebDir: dir, BackupDir: filepath.Join(dir, "set"),
	})
	require.NoError(t, err)

	deps, closeDeps, err := buildDeps(context.Background(), a, f, plan)
	require.NoError(t, err)
	defer closeDeps()
	remote, ok := deps.Remote.(pasupgrade.Remote)
	require.True(t, ok)
	assert.Equal(t, pasupgrade.PASHome, remote.Dir, "pas-mgmt-deploy-core runs in the pas home, as after sudo -iu pas")
}

func TestFailureWhileCoreStoppedSaysSo(t *testing.T) {
	sys := fakeNode(t)
	sys.FailPrefix("tool post-upgrade", errors.New("config apply failed"), 1)
	code, out, errOut := runCLI(t, runArgs(t, "upgrade", "--yes")...)
	require.Equal(t, exitStepFailed, code)
	// The proxy stays down until the operator acts, so the output warns.
	assert.Contains(t, out+errOut, "core ("+pasupgrade.UnitCore+") is stopped since")
	assert.Contains(t, out+errOut, "until the upgrade is resumed or restored")

	sys2 := fakeNode(t)
	sys2.FailOn("run[pas] pas-storage-checkconfig", errors.New("storage config.yml: invalid"))
	code, out, errOut = runCLI(t, runArgs(t, "upgrade", "--yes")...)
	require.Equal(t, exitStepFailed, code)
	assert.NotContains(t, out+errOut, "is stopped since")
}

func TestUpgradeAfterRestoreNeedsNewRun(t *testing.T) {
	sys := fakeNode(t)
	sys.FailOn("systemctl stop proxedo-api-security", errors.New("unit failed to stop"))
	args := runArgs(t, "upgrade", "--yes", "--ignore-check", "root", "--ignore-check", "ssh-key")
	code, _, errOut := runCLI(t, args...)
	require.Equal(t, exitStepFailed, code, errOut)
	// A restore puts the 4.8.0 packages back.
	for _, p := range pasupgrade.Upgrade480To490.Packages {
		sys.Packages[p] = pasupgrade.PackageStatus{Version: "4.8.0", Status: "installed"}
	}

	code, _, errOut = runCLI(t, append(args, "--resume")...)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "they are at 4.8.0 again, so the node was restored since")

	code, _, errOut = runCLI(t, append(args, "--resume", "--new-run")...)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "give one of them")

	code, _, errOut = runCLI(t, append(args, "--new-run")...)
	require.Equal(t, exitOK, code, errOut)
	journals, err := filepath.Glob(filepath.Join(args[len(args)-5], "pasupgrade-journal-*.json"))
	require.NoError(t, err)
	assert.Len(t, journals, 1, "the failed run's journal is kept")
}

func TestConfigFilePathsAndSeconds(t *testing.T) {
	sys := fakeNode(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pw"), []byte(testPassword+"\n"), 0o600))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "work"), 0o755))
	config := filepath.Join(dir, "pasupgrade.yaml")
	require.NoError(t, os.WriteFile(config, []byte("password-file: pw\nwork-dir: work\napply-timeout: 45\n"), 0o600))

	// The test runs in the package's directory, where neither pw nor work
	// exists: both are found beside the config file.
	code, _, errOut := runCLI(t, "upgrade", "--yes", "--config", config, "--deb-dir", "/srv/debs",
		"--ignore-check", "root", "--ignore-check", "ssh-key")
	require.Equal(t, exitOK, code, errOut)
	assert.FileExists(t, filepath.Join(dir, "work", pasupgrade.JournalFile))
	assert.Contains(t, strings.Join(sys.Log(), "\n"), "timeout=45s", "a bare number is seconds")
}
