package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/internal/lab"
	"github.com/pasops/pasupgrade/mgmtapi/mgmtapitest"
	"github.com/pasops/pasupgrade/pasupgrade"
)

// localEditMarker is added to a conffile before an upgrade. dpkg must keep
// the locally edited file, so the marker must survive.
const localEditMarker = "# e2e: a local edit that the upgrade must keep"

// editedConffile returns the conffile the tests edit in the management
// node. Where the core package is installed it is the HA configuration:
// the 4.9.0 package ships a new version of it and its postinst leaves it
// alone, so only dpkg's "keep the installed version" decides what it
// holds. Otherwise it is the storage configuration, which a multi-node
// upgrade keeps because every overwrite question is answered no.
func (l *testLab) editedConffile() string {
	if l.mgmtHasCore() {
		return "/opt/balasys/etc/ha/config.yml"
	}
	return "/opt/balasys/etc/storage/config.yml"
}

// mgmtHasCore reports whether the core package is installed on the
// management node.
func (l *testLab) mgmtHasCore() bool {
	for _, pkg := range l.lab.NodeByName("mgmt").Packages {
		if pkg == lab.CorePackage {
			return true
		}
	}
	return false
}

// installerBackupDirs are the directories where the 4.9.0 installer keeps
// the configuration it overwrites, as the upgrade guide lists them.
var installerBackupDirs = []string{
	"/opt/balasys/etc/infrastructure/storage/backups",
	"/opt/balasys/etc/storage/backups",
	"/opt/balasys/etc/infrastructure/mgmt/backups",
	"/opt/balasys/etc/mgmt/backups",
	"/opt/balasys/etc/infrastructure/core/backups",
}

// editConffileLocally inserts localEditMarker as the first line of
// editedConffile. The first line is part of the file's head
// comment, which pas-update keeps when it migrates the file. A comment
// after the last key would be dropped.
func (l *testLab) editConffileLocally(ctx context.Context) {
	l.t.Helper()
	l.inNode(ctx, "sed", "-i", "1i "+localEditMarker, l.editedConffile())
}

// packageVersions returns dpkg's version and status of each PAS package
// in the management node.
func (l *testLab) packageVersions(ctx context.Context) map[string]string {
	l.t.Helper()
	out := l.inNode(ctx, "dpkg-query", "-W", "-f", "${Package} ${Version} ${Status}\n", "proxedo-api-security*")
	versions := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		name, rest, ok := strings.Cut(line, " ")
		if ok && !strings.HasSuffix(rest, "not-installed") {
			versions[name] = rest
		}
	}
	return versions
}

// simState returns the management simulator's state dump.
func (l *testLab) simState(ctx context.Context) mgmtapitest.Dump {
	l.t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.lab.MgmtURL()+"/_sim/state", nil)
	require.NoError(l.t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(l.t, err, "reading the simulator's state")
	defer resp.Body.Close()
	require.Equal(l.t, http.StatusOK, resp.StatusCode, "GET /_sim/state")
	var dump mgmtapitest.Dump
	require.NoError(l.t, json.NewDecoder(resp.Body).Decode(&dump))
	return dump
}

// addFault installs a fault in the management simulator; see the help of
// pas-mgmt-sim for the kinds.
func (l *testLab) addFault(ctx context.Context, fault string) {
	l.t.Helper()
	l.simRequest(ctx, http.MethodPost, "/_sim/faults", fault)
}

// coreURL returns the core proxy's URL on the node called name.
func (l *testLab) coreURL(name string) string {
	return fmt.Sprintf("http://127.0.0.1:%d/", l.lab.NodeByName(name).Ports["core"])
}

// assertUpgraded checks the state an upgrade of the management node must
// leave, as the upgrade guide describes it, and returns the journal.
func (l *testLab) assertUpgraded(ctx context.Context, run cliRun) *pasupgrade.Journal {
	t := l.t
	t.Helper()
	mgmt := l.lab.NodeByName("mgmt")

	// The packages of the node are at 4.9.0 and fully installed.
	versions := l.packageVersions(ctx)
	for _, pkg := range mgmt.Packages {
		assert.Equal(t, "4.9.0 install ok installed", versions[pkg], "package %s", pkg)
	}

	// dpkg kept the locally edited conffile.
	conffile := l.editedConffile()
	edited := l.inNode(ctx, "cat", conffile)
	assert.Contains(t, edited, localEditMarker, "%s lost its local edit", conffile)
	dist := l.inNode(ctx, "sh", "-c", "test -f "+conffile+".dpkg-dist && echo present || true")
	assert.Equal(t, "present", strings.TrimSpace(dist),
		"dpkg left no .dpkg-dist beside %s, so it never offered the package's version", conffile)

	// The installer saved the configuration it overwrote (single node:
	// every overwrite question is answered yes).
	if l.lab.Topology == "single" {
		for _, dir := range installerBackupDirs {
			out := l.inNode(ctx, "find", dir, "-type", "f", "-name", "*.4.8.0*")
			assert.NotEmpty(t, strings.TrimSpace(out), "%s holds no copy of the 4.8.0 configuration", dir)
		}
	}

	// The converted configuration is the running one, in 4.9.0 format.
	converted, err := os.ReadFile(filepath.Join(l.lab.WorkDir(), pasupgrade.Upgrade480To490.ConvertedFile))
	if assert.NoError(t, err, "reading the converted configuration") {
		assert.True(t, strings.HasPrefix(string(converted), "pas_config_version: 4.9.0\n"),
			"the converted configuration is not in 4.9.0 format")
		sum := sha256.Sum256(converted)
		state := l.simState(ctx)
		assert.Equal(t, "4.9.0", state.Running.Version, "running configuration version")
		assert.Equal(t, hex.EncodeToString(sum[:]), state.Running.SHA256,
			"the running configuration is not the converted file")
		assert.Empty(t, state.Pending, "changes still pending after the upgrade")
		for node, reload := range state.NodeReload {
			assert.NotEqual(t, pasupgrade.ReloadFailed, reload, "node %s reports reload FAILED", node)
		}
	}

	// Storage certificates are readable by their owner only.
	modes := l.inNode(ctx, "find", "/opt/balasys/etc/storage", "-name", "*.pem", "-printf", "%m %p\n")
	require.NotEmpty(t, strings.TrimSpace(modes), "no storage certificates found")
	for _, line := range strings.Split(strings.TrimSpace(modes), "\n") {
		assert.True(t, strings.HasPrefix(line, "600 "), "certificate mode: %s", line)
	}

	// Every unit of the node runs.
	for _, unit := range mgmt.Units {
		res := l.inNode(ctx, "sh", "-c", "systemctl is-active "+unit+" || true")
		assert.Equal(t, "active", strings.TrimSpace(res), "unit %s", unit)
	}

	// The status check is clean.
	status := l.runCLI(ctx, nil, l.withMgmt("status")...)
	assert.Equal(t, 0, status.ExitCode, "pasupgrade-cli status:\n%s", status.Stdout)

	// The journal records every step of the plan as done.
	journal, err := pasupgrade.ReadJournal(l.lab.WorkDir())
	require.NoError(t, err, "reading the journal")
	assert.NotNil(t, journal.Finished, "the journal has no end time")
	outcomes := map[string]string{}
	for _, step := range journal.Steps {
		outcomes[step.ID] = step.Outcome
		assert.NotNil(t, step.End, "step %s has no end time", step.ID)
	}
	for _, step := range journal.Plan {
		assert.Contains(t, []string{pasupgrade.OutcomeDone, pasupgrade.OutcomeSkipped}, outcomes[step.ID],
			"step %s", step.ID)
	}

	// The backup set verifies.
	require.NotEmpty(t, journal.State.BackupSet, "the journal names no backup set")
	verify := l.runCLI(ctx, nil, "backup", "verify", journal.State.BackupSet)
	assert.Equal(t, 0, verify.ExitCode, "pasupgrade-cli backup verify:\n%s", verify.Stdout)
	return journal
}

// coreStoppedWindow returns when the first step that stops core started
// and when the last one ended, from the journal.
func coreStoppedWindow(j *pasupgrade.Journal) (start, end time.Time, ok bool) {
	stopped := map[string]bool{}
	for _, info := range j.Plan {
		stopped[info.ID] = info.CoreStopped
	}
	for _, step := range j.Steps {
		if !stopped[step.ID] || step.End == nil {
			continue
		}
		if !ok || step.Start.Before(start) {
			start = step.Start
		}
		if step.End.After(end) {
			end = *step.End
		}
		ok = true
	}
	return start, end, ok
}

// stepDuration returns how long the journal's step id took.
func stepDuration(j *pasupgrade.Journal, id string) (time.Duration, bool) {
	for _, step := range j.Steps {
		if step.ID == id && step.End != nil {
			return step.End.Sub(step.Start), true
		}
	}
	return 0, false
}
