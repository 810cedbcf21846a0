package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/backup"
	"github.com/pasops/pasupgrade/backup/backuptest"
	"github.com/pasops/pasupgrade/deb"
	"github.com/pasops/pasupgrade/runner/runnertest"
)

// sampleNodeRoot writes the sample PAS tree into a new directory.
func sampleNodeRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	require.NoError(t, backuptest.WriteTree(root, backuptest.TreeOptions{Policies: 2}))
	return root
}

// createSampleSet backs up a sample tree with the CLI and returns the set
// directory.
func createSampleSet(t *testing.T, root string) string {
	t.Helper()
	code, out, errOut := runCLI(t, "--root", root, "backup", "create", "--no-running-config",
		"--topology", "multi")
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "backup set written: ")
	return strings.TrimSpace(strings.TrimPrefix(out, "backup set written: "))
}

func TestBackupCLIRoundTrip(t *testing.T) {
	root := sampleNodeRoot(t)
	set := createSampleSet(t, root)
	assert.Equal(t, filepath.Join(root, backup.DefaultDir), filepath.Dir(set),
		"the default backup directory is resolved under --root")

	code, out, errOut := runCLI(t, "--root", root, "backup", "list")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, filepath.Base(set))
	assert.Contains(t, out, "multi")

	code, out, errOut = runCLI(t, "backup", "verify", set)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "backup set is intact")

	dest := t.TempDir()
	code, out, errOut = runCLI(t, "--root", dest, "backup", "restore-files", "--yes", set)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "restored ")
	assert.Contains(t, errOut, "/opt/balasys/.ssh/known_hosts -> /dev/null")
	want, err := os.ReadFile(filepath.Join(root, "opt/balasys/etc/mgmt/users.htpass"))
	require.NoError(t, err)
	got, err := os.ReadFile(filepath.Join(dest, "opt/balasys/etc/mgmt/users.htpass"))
	require.NoError(t, err)
	assert.Equal(t, string(want), string(got))
}

func TestBackupCLIExitCodes(t *testing.T) {
	root := sampleNodeRoot(t)
	set := createSampleSet(t, root)
	bare := filepath.Join(t.TempDir(), "bare.zip")
	data, err := os.ReadFile(filepath.Join(set, backup.ArchiveName))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bare, data, 0o600))
	bareNoExt := filepath.Join(t.TempDir(), "bootstrap-copy")
	require.NoError(t, os.WriteFile(bareNoExt, data, 0o600))
	damaged := filepath.Join(t.TempDir(), filepath.Base(set))
	require.NoError(t, os.CopyFS(damaged, os.DirFS(set)))
	require.NoError(t, os.Remove(filepath.Join(damaged, backup.ArchiveName)))

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantText string
	}{
		{"verify damaged set", []string{"backup", "verify", damaged}, exitCheckFailed, "bootstrap.zip is missing"},
		{"restore without yes", []string{"--root", t.TempDir(), "backup", "restore-files", set},
			exitUsage, "pass --yes"},
		{"restore bare zip with outside link", []string{"--root", t.TempDir(), "backup", "restore-files",
			"--yes", bare}, exitCheckFailed, "--allow-outside-links"},
		{"restore bare zip without extension", []string{"--root", t.TempDir(), "backup", "restore-files",
			"--yes", bareNoExt}, exitCheckFailed, "--allow-outside-links"},
		{"backup dir inside pas home", []string{"--root", root, "backup", "create", "--no-running-config",
			"--backup-dir", filepath.Join(root, "opt/balasys/backups")}, exitUsage, "is deleted when PAS is restored"},
		{"invalid topology", []string{"--root", root, "backup", "create", "--no-running-config",
			"--topology", "ha"}, exitUsage, `invalid topology "ha"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, tt.args...)
			assert.Equal(t, tt.wantCode, code, errOut)
			assert.Contains(t, errOut, tt.wantText)
		})
	}
}

func TestBackupCLIJSONEvents(t *testing.T) {
	root := sampleNodeRoot(t)
	createSampleSet(t, root)

	code, out, errOut := runCLI(t, "--json", "--root", root, "backup", "list")

	require.Equal(t, exitOK, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 1)
	var ev struct {
		Type string `json:"type"`
		Data struct {
			Set backup.SetInfo `json:"set"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &ev))
	assert.Equal(t, "backup_set", ev.Type)
	assert.Equal(t, backup.TopologyMulti, ev.Data.Set.Topology)
	assert.Empty(t, errOut, "no progress output without a terminal")
}

func TestBackupCLIRecordsPackageVersions(t *testing.T) {
	root := sampleNodeRoot(t)
	fake := runnertest.New(t)
	fake.Expect("dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"), "--show", statusFormat,
		deb.CorePackage, deb.MgmtPackage, deb.StoragePackage).
		Stdout(deb.CorePackage + "\tii \t4.8.0\n" + deb.MgmtPackage + "\tii \t4.8.0\n" +
			deb.StoragePackage + "\tii \t4.8.0\n")
	fakePackageManager(t, fake)

	set := createSampleSet(t, root)

	m, err := backup.ReadManifest(set)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{
		deb.CorePackage: "4.8.0", deb.MgmtPackage: "4.8.0", deb.StoragePackage: "4.8.0",
	}, m.Packages)
}

func TestBackupCLIWarnsOnce(t *testing.T) {
	root := sampleNodeRoot(t)
	require.NoError(t, os.RemoveAll(filepath.Join(root, "opt/balasys/usr/share/automation/host_vars")))

	code, _, errOut := runCLI(t, "--root", root, "backup", "create", "--no-running-config")

	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, 1, strings.Count(errOut, "host_vars does not exist"), errOut)
	assert.Contains(t, errOut, "warning: ")
}
