package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/internal/lab"
	"github.com/pasops/pasupgrade/pasupgrade"
)

// bootstrapPaths are the files that the guide's backup saves and that a
// restore must bring back byte for byte, with mode and owner.
var bootstrapPaths = []string{
	"/opt/balasys/etc",
	"/opt/balasys/usr/share/automation/deploy-core.yml",
	"/opt/balasys/usr/share/automation/host_vars",
	"/opt/balasys/usr/share/automation/inventory.yml",
	"/opt/balasys/usr/share/automation/roles/deploy-core/vars/main.yml",
}

// snapshotBootstrap returns one line per file, directory and symbolic link
// under bootstrapPaths: type, mode, owner, group, path and, for files, the
// SHA-256 of the content.
func (l *testLab) snapshotBootstrap(ctx context.Context) string {
	l.t.Helper()
	script := `for p in "$@"; do
	[ -e "$p" ] || { echo "missing $p"; continue; }
	find "$p" -printf '%y %m %u %g %p\n' | while read -r type mode user group path; do
		sum=
		[ "$type" = f ] && sum=$(sha256sum "$path" | cut -d' ' -f1)
		echo "$type $mode $user $group $path $sum"
	done
done | sort -k5`
	paths := bootstrapPaths
	if l.lab.Topology == lab.TopologyMulti {
		// A multi-node backup also holds the pas user's SSH key.
		paths = append([]string{pasupgrade.PASSSHDir}, paths...)
	}
	argv := append([]string{"sh", "-c", script, "snapshot"}, paths...)
	return l.inNode(ctx, argv...)
}

// assertRestored checks what a restore must leave: the bootstrap files as
// before the upgrade, the 4.8.0 packages, the pre-upgrade running
// configuration and every unit running.
func (l *testLab) assertRestored(ctx context.Context, snapshot, runningSHA256 string) {
	t := l.t
	t.Helper()
	mgmt := l.lab.NodeByName("mgmt")

	after := l.snapshotBootstrap(ctx)
	assert.Equal(t, snapshot, after, "the bootstrap files differ from before the upgrade")

	versions := l.packageVersions(ctx)
	for _, pkg := range mgmt.Packages {
		assert.Equal(t, "4.8.0 install ok installed", versions[pkg], "package %s", pkg)
	}

	state := l.simState(ctx)
	assert.Equal(t, "4.8.0", state.Running.Version, "running configuration version")
	assert.Equal(t, runningSHA256, state.Running.SHA256,
		"the running configuration is not the one exported before the upgrade")

	for _, unit := range mgmt.Units {
		res := l.inNode(ctx, "sh", "-c", "systemctl is-active "+unit+" || true")
		assert.Equal(t, "active", strings.TrimSpace(res), "unit %s", unit)
	}
}

// restore runs "pasupgrade-cli restore" with the backup set the journal of
// the upgrade names, and checks that it succeeded.
func (l *testLab) restore(ctx context.Context, backupSet string) cliRun {
	l.t.Helper()
	require.NotEmpty(l.t, backupSet, "no backup set to restore")
	// The restore keeps its journal in a work directory of its own: the
	// upgrade's holds the journal of the upgrade, which a failed upgrade
	// leaves unfinished. The restore plan installs the 4.8.0 packages from
	// the same deb-dir, which holds both versions.
	workDir := filepath.Join(l.lab.Dir, "restore-work")
	l.inNode(ctx, "install", "-d", "-o", "root", "-g", "root", workDir)
	run := l.runCLI(ctx, nil, l.withConfig("restore", "--yes", "--backup", backupSet, "--work-dir", workDir,
		"--transcript", filepath.Join(workDir, "transcript.log"))...)
	require.Equal(l.t, 0, run.ExitCode, "pasupgrade-cli restore failed; stdout:\n%s", run.Stdout)
	return run
}

// TestRestoreAfterUpgrade upgrades a single-node lab and restores the
// backup set the upgrade made.
func TestRestoreAfterUpgrade(t *testing.T) {
	t.Parallel()
	l := startLab(t, lab.Options{Topology: lab.TopologySingle})
	ctx, cancel := context.WithTimeout(context.Background(), labTimeout)
	defer cancel()

	snapshot := l.snapshotBootstrap(ctx)
	running := l.simState(ctx).Running

	run := l.runCLI(ctx, nil, l.upgradeArgs()...)
	require.Equal(t, 0, run.ExitCode, "pasupgrade-cli upgrade failed; stdout:\n%s", run.Stdout)
	require.NotEqual(t, snapshot, l.snapshotBootstrap(ctx), "the upgrade changed no bootstrap file")

	l.restore(ctx, run.summary(t).Summary.BackupSet)
	l.assertRestored(ctx, snapshot, running.SHA256)
}
