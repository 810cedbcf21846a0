package backup

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/backup/backuptest"
	"github.com/pasops/pasupgrade/internal/testenv"
)

// lookInfoZIP returns the path of an Info-ZIP program, or skips the test
// (fails it in CI) when it is not installed.
func lookInfoZIP(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		testenv.SkipOrFail(t, "Info-ZIP "+name+" is not installed: apt-get install zip unzip")
	}
	return path
}

func TestInfoZIPUnzipsOurArchive(t *testing.T) {
	unzip := lookInfoZIP(t, "unzip")
	root := sampleRoot(t)
	set := createSet(t, root, TopologyMulti)
	dest := t.TempDir()

	out, err := exec.Command(unzip, "-o", "-d", dest, set.ArchivePath()).CombinedOutput()

	require.NoError(t, err, "%s", out)
	assert.Equal(t, backedUp(snapshot(t, root), true), backedUp(snapshot(t, dest), true))
	info, err := os.Stat(filepath.Join(dest, "opt/balasys/etc/mgmt/config.yml"))
	require.NoError(t, err)
	assert.True(t, info.ModTime().Equal(backuptest.ModTime), "unzip set time %v", info.ModTime())
	for _, name := range []string{"opt/balasys/etc/mgmt/active.yml", "opt/balasys/.ssh/known_hosts"} {
		_, err := os.Readlink(filepath.Join(dest, name))
		assert.NoError(t, err, "%s is not a link", name)
	}
}

func TestRestoreReadsInfoZIPArchive(t *testing.T) {
	zipProgram := lookInfoZIP(t, "zip")
	root := sampleRoot(t)
	zipPath := filepath.Join(t.TempDir(), "bootstrap.zip")
	cmd := exec.Command(zipProgram, "-q", "--recurse-paths", "--symlinks", zipPath,
		"opt/balasys/.ssh/", "opt/balasys/etc/",
		"opt/balasys/usr/share/automation/deploy-core.yml",
		"opt/balasys/usr/share/automation/host_vars",
		"opt/balasys/usr/share/automation/inventory.yml",
		"opt/balasys/usr/share/automation/roles/deploy-core/vars/main.yml")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)

	t.Run("outside links rejected without manifest", func(t *testing.T) {
		_, err := Restore(context.Background(), zipPath, RestoreOptions{Root: t.TempDir()})
		require.ErrorIs(t, err, ErrUnsafeArchive)
		assert.Contains(t, err.Error(), "points outside")
	})
	t.Run("restored with outside links allowed", func(t *testing.T) {
		dest := t.TempDir()
		report, err := Restore(context.Background(), zipPath, RestoreOptions{Root: dest, AllowOutsideLinks: true})
		require.NoError(t, err)
		assert.Equal(t, backedUp(snapshot(t, root), true), backedUp(snapshot(t, dest), true))
		assert.Len(t, report.OutsideLinks, 2)
	})
}
