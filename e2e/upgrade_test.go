package e2e

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/internal/lab"
	"github.com/pasops/pasupgrade/pasupgrade"
)

// TestSingleNodeUpgrade upgrades a single-node lab from 4.8.0 to 4.9.0 with
// "pasupgrade-cli upgrade --yes" run in the node, while a prober sends a
// request through the core proxy every 10 ms.
func TestSingleNodeUpgrade(t *testing.T) {
	t.Parallel()
	l := startLab(t, lab.Options{Topology: lab.TopologySingle})
	ctx, cancel := context.WithTimeout(context.Background(), labTimeout)
	defer cancel()

	before := l.packageVersions(ctx)
	for _, pkg := range lab.Packages {
		require.Equal(t, "4.8.0 install ok installed", before[pkg], "package %s before the upgrade", pkg)
	}

	prober := &Prober{URL: l.coreURL("mgmt")}
	prober.Start()
	run := l.runCLI(ctx, nil, l.upgradeArgs(
		"--transcript", filepath.Join(l.lab.WorkDir(), "transcript.log"))...)
	probe := prober.Stop()
	require.Equal(t, 0, run.ExitCode, "pasupgrade-cli upgrade failed; stdout:\n%s", run.Stdout)

	journal := l.assertUpgraded(ctx, run)
	summary := run.summary(t).Summary
	assert.Positive(t, summary.Downtime, "the summary reports no core downtime")
	assert.Equal(t, journal.State.BackupSet, summary.BackupSet, "summary and journal name different backup sets")

	// The install re-entered the admin password, so users.htpass holds a
	// bcrypt hash, and the lab's password still logs in (the status check
	// above used it).
	assert.Equal(t, pasupgrade.HashBcrypt, summary.HashScheme, "hash scheme in the summary")
	htpass := l.inNode(ctx, "cat", pasupgrade.UsersHtpass)
	assert.Contains(t, htpass, "admin:$2", "users.htpass does not hold a bcrypt hash")

	// Core was unreachable only while the journal records it as stopped.
	// The prober runs on this machine and the CLI in the node, which share
	// the kernel's clock.
	start, end, ok := coreStoppedWindow(journal)
	require.True(t, ok, "the journal records no step with core stopped")
	assert.Positive(t, probe.Failures, "the prober never saw core down")
	gapEnd := probe.GapStart.Add(probe.MaxGap)
	assert.False(t, probe.GapStart.Before(start.Add(-time.Second)),
		"core stopped answering at %s, before the stop step began at %s", probe.GapStart, start)
	assert.False(t, gapEnd.After(end.Add(time.Second)),
		"core answered again at %s, after the start step ended at %s", gapEnd, end)
	postUpgrade, ok := stepDuration(journal, pasupgrade.StepPostUpgrade)
	require.True(t, ok, "the journal has no finished %s step", pasupgrade.StepPostUpgrade)
	t.Logf("core downtime: prober %s (%d of %d requests failed), summary %s, post-upgrade step %s",
		probe.MaxGap, probe.Failures, probe.Requests, summary.Downtime, postUpgrade)
}
