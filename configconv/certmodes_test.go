package configconv

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func writeFile(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte("cert\n"), mode))
	require.NoError(t, os.Chmod(path, mode))
}

func modeOf(t *testing.T, path string) os.FileMode {
	t.Helper()
	info, err := os.Lstat(path)
	require.NoError(t, err)
	return info.Mode().Perm()
}

func TestCertModes(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "storage")
	outside := filepath.Join(base, "outside.pem")
	writeFile(t, outside, 0o644)
	outsideDir := filepath.Join(base, "outside-dir")
	writeFile(t, filepath.Join(outsideDir, "deep.pem"), 0o644)

	writeFile(t, filepath.Join(dir, "ca.pem"), 0o644)
	writeFile(t, filepath.Join(dir, "tls", "server.pem"), 0o640)
	writeFile(t, filepath.Join(dir, "backups", "old.pem"), 0o666)
	writeFile(t, filepath.Join(dir, "done.pem"), 0o600)
	writeFile(t, filepath.Join(dir, "config.yml"), 0o644)
	writeFile(t, filepath.Join(dir, "key.pem.bak"), 0o644)
	require.NoError(t, os.Symlink(outside, filepath.Join(dir, "link.pem")))
	require.NoError(t, os.Symlink(outsideDir, filepath.Join(dir, "linked-dir")))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "dir.pem"), 0o755))

	changes, err := PlanCertModes(dir)
	require.NoError(t, err)
	want := []ModeChange{
		{Path: filepath.Join(dir, "backups", "old.pem"), From: 0o666, To: 0o600},
		{Path: filepath.Join(dir, "ca.pem"), From: 0o644, To: 0o600},
		{Path: filepath.Join(dir, "tls", "server.pem"), From: 0o640, To: 0o600},
	}
	assert.Equal(t, want, changes)
	assert.Equal(t, "chmod 600 "+filepath.Join(dir, "ca.pem")+" (was 644)", changes[1].String())
	assert.Equal(t, os.FileMode(0o644), modeOf(t, filepath.Join(dir, "ca.pem")), "planning must change nothing")

	require.NoError(t, ApplyModeChanges(dir, changes))
	for _, c := range want {
		assert.Equal(t, os.FileMode(0o600), modeOf(t, c.Path), c.Path)
	}
	assert.Equal(t, os.FileMode(0o644), modeOf(t, outside), "a link target outside the tree")
	assert.Equal(t, os.FileMode(0o644), modeOf(t, filepath.Join(outsideDir, "deep.pem")))
	assert.Equal(t, os.FileMode(0o644), modeOf(t, filepath.Join(dir, "config.yml")))
	assert.Equal(t, os.FileMode(0o644), modeOf(t, filepath.Join(dir, "key.pem.bak")))
	assert.Equal(t, os.FileMode(0o755), modeOf(t, filepath.Join(dir, "dir.pem")))

	again, err := PlanCertModes(dir)
	require.NoError(t, err)
	assert.Empty(t, again)
}

func TestApplyModeChangesSwappedForLink(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "storage")
	outside := filepath.Join(base, "secret.pem")
	writeFile(t, outside, 0o644)
	cert := filepath.Join(dir, "ca.pem")
	writeFile(t, cert, 0o644)

	changes, err := PlanCertModes(dir)
	require.NoError(t, err)
	require.Len(t, changes, 1)

	// Replace the planned file with a link that leads out of the tree.
	require.NoError(t, os.Remove(cert))
	require.NoError(t, os.Symlink(outside, cert))

	err = ApplyModeChanges(dir, changes)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no longer a regular file")
	assert.Equal(t, os.FileMode(0o644), modeOf(t, outside))
}

func TestApplyModeChangesRejectsOutsidePath(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "storage")
	require.NoError(t, os.Mkdir(dir, 0o755))
	outside := filepath.Join(base, "x.pem")
	writeFile(t, outside, 0o644)

	err := ApplyModeChanges(dir, []ModeChange{{Path: outside, From: 0o644, To: 0o600}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "outside")
	assert.Equal(t, os.FileMode(0o644), modeOf(t, outside))
}

func TestPlanCertModesMissingDir(t *testing.T) {
	_, err := PlanCertModes(filepath.Join(t.TempDir(), "missing"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// find "/opt/balasys/etc/storage/" follows the directory when it is a
// symbolic link, because of the trailing slash.
func TestPlanCertModesLinkedStorageDir(t *testing.T) {
	base := t.TempDir()
	target := filepath.Join(base, "data", "storage")
	writeFile(t, filepath.Join(target, "certs", "ca.pem"), 0o644)
	dir := filepath.Join(base, "storage")
	require.NoError(t, os.Symlink(target, dir))

	changes, err := PlanCertModes(dir)
	require.NoError(t, err)
	want := []ModeChange{{Path: filepath.Join(dir, "certs", "ca.pem"), From: 0o644, To: 0o600}}
	assert.Equal(t, want, changes)

	require.NoError(t, ApplyModeChanges(dir, changes))
	assert.Equal(t, os.FileMode(0o600), modeOf(t, filepath.Join(target, "certs", "ca.pem")))
}
