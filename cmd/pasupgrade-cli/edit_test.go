package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/configconv"
)

const composeConf = "# compose settings\nexport DOCKER_IMAGE_TAG=\"4.8.0\"\nDB_PASS=abc#123\n"

const commonVars = `storage_deb_path: /tmp/proxedo-api-security-storage_4.8.0_all.deb
nodes:
- core-1
core_deb_path: /tmp/proxedo-api-security_4.8.0_all.deb   # keep in sync
common:
  docker:
    PAS_IMAGE_TAG: 4.8.0
`

// editRoot returns a --root with the three docker-compose.conf files,
// common_vars.yml and two storage certificates.
func editRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	write := func(rel, content string, mode os.FileMode) {
		path := filepath.Join(root, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(content), mode))
		require.NoError(t, os.Chmod(path, mode))
	}
	for _, rel := range configconv.ComposeConfPaths {
		write(rel, composeConf, 0o640)
	}
	write(configconv.CommonVarsPath, commonVars, 0o640)
	write(configconv.StorageConfigDir+"/ca.pem", "cert\n", 0o644)
	write(configconv.StorageConfigDir+"/tls/key.pem", "key\n", 0o640)
	return root
}

func readRootFile(t *testing.T, root, rel string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, rel))
	require.NoError(t, err)
	return string(data)
}

func TestEditImageTagDryRun(t *testing.T) {
	root := editRoot(t)
	code, out, errOut := runMgmtCLI(t, "", "--root", root, "edit", "image-tag", "--to", "4.9.0", "--dry-run")

	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, 3, strings.Count(out, "+export DOCKER_IMAGE_TAG=\"4.9.0\"\n"))
	assert.Equal(t, 3, strings.Count(out, "-export DOCKER_IMAGE_TAG=\"4.8.0\"\n"))
	assert.Contains(t, out, "+++ b/"+strings.TrimPrefix(root, "/")+"/opt/balasys/etc/infrastructure/mgmt/docker-compose.conf\n")
	assert.Contains(t, errOut, "dry run: 3 files not written")
	for _, rel := range configconv.ComposeConfPaths {
		assert.Equal(t, composeConf, readRootFile(t, root, rel), rel)
	}
}

func TestEditImageTagWrites(t *testing.T) {
	root := editRoot(t)
	code, _, errOut := runMgmtCLI(t, "", "--root", root, "edit", "image-tag", "--to", "4.9.0", "--yes")
	require.Equal(t, exitOK, code, errOut)
	want := strings.Replace(composeConf, "4.8.0", "4.9.0", 1)
	for _, rel := range configconv.ComposeConfPaths {
		assert.Equal(t, want, readRootFile(t, root, rel), rel)
	}

	code, out, errOut := runMgmtCLI(t, "", "--root", root, "edit", "image-tag", "--to", "4.9.0", "--yes")
	require.Equal(t, exitOK, code, errOut)
	assert.Empty(t, out, "a second run changes nothing")
	assert.Equal(t, 3, strings.Count(errOut, "already up to date"))
}

func TestEditImageTagConfirmation(t *testing.T) {
	tests := []struct {
		name     string
		terminal bool
		stdin    string
		wantCode int
		wantErr  string
		written  bool
	}{
		{"no terminal without yes", false, "", exitUsage, "pass --yes", false},
		{"terminal answers no", true, "n\n", exitFailure, "cancelled", false},
		{"terminal answers yes", true, "y\n", exitOK, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := editRoot(t)
			var out, errOut strings.Builder
			code := run(t.Context(), []string{"--root", root, "edit", "image-tag", "--to", "4.9.0"},
				streams{In: strings.NewReader(tt.stdin), Out: &out, ErrOut: &errOut, InIsTerminal: tt.terminal})

			assert.Equal(t, tt.wantCode, code, errOut.String())
			assert.Contains(t, errOut.String(), tt.wantErr)
			got := readRootFile(t, root, configconv.ComposeConfPaths[0])
			assert.Equal(t, tt.written, got != composeConf)
		})
	}
}

func TestEditImageTagErrors(t *testing.T) {
	root := editRoot(t)
	code, _, errOut := runMgmtCLI(t, "", "--root", root, "edit", "image-tag", "--to", "4.9.0 x", "--yes")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, `image tag "4.9.0 x"`)

	require.NoError(t, os.Remove(filepath.Join(root, configconv.ComposeConfPaths[2])))
	code, _, errOut = runMgmtCLI(t, "", "--root", root, "edit", "image-tag", "--to", "4.9.0", "--yes")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errOut, "storage/docker-compose.conf")
	assert.Equal(t, composeConf, readRootFile(t, root, configconv.ComposeConfPaths[0]), "nothing is written when one file fails")
}

func TestEditCommonVars(t *testing.T) {
	root := editRoot(t)
	debDir := t.TempDir()
	for _, name := range []string{"proxedo-api-security_4.9.0_all.deb", "proxedo-api-security-storage_4.9.0_all.deb"} {
		require.NoError(t, os.WriteFile(filepath.Join(debDir, name), []byte("deb"), 0o644))
	}

	code, out, errOut := runMgmtCLI(t, "", "--root", root, "edit", "common-vars", "--to", "4.9.0", "--deb-dir", debDir, "--dry-run")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "+    PAS_IMAGE_TAG: 4.9.0\n")
	assert.Equal(t, commonVars, readRootFile(t, root, configconv.CommonVarsPath))

	code, _, errOut = runMgmtCLI(t, "", "--root", root, "edit", "common-vars", "--to", "4.9.0", "--deb-dir", debDir, "--yes")
	require.Equal(t, exitOK, code, errOut)
	want := strings.NewReplacer(
		"/tmp/proxedo-api-security-storage_4.8.0_all.deb", debDir+"/proxedo-api-security-storage_4.9.0_all.deb",
		"/tmp/proxedo-api-security_4.8.0_all.deb", debDir+"/proxedo-api-security_4.9.0_all.deb",
		"PAS_IMAGE_TAG: 4.8.0", "PAS_IMAGE_TAG: 4.9.0",
	).Replace(commonVars)
	assert.Equal(t, want, readRootFile(t, root, configconv.CommonVarsPath))
}

func TestEditCommonVarsDebDir(t *testing.T) {
	tests := []struct {
		name, debDir, wantErr string
	}{
		{"relative", "debs", "give an absolute path"},
		{"packages missing", "/nonexistent-debs", "put the 4.9.0 packages there"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := editRoot(t)
			code, _, errOut := runMgmtCLI(t, "", "--root", root, "edit", "common-vars", "--to", "4.9.0", "--deb-dir", tt.debDir, "--yes")
			assert.Equal(t, exitUsage, code)
			assert.Contains(t, errOut, tt.wantErr)
			assert.Equal(t, commonVars, readRootFile(t, root, configconv.CommonVarsPath))
		})
	}
}

func TestEditCertModes(t *testing.T) {
	root := editRoot(t)
	ca := filepath.Join(root, configconv.StorageConfigDir, "ca.pem")

	code, out, errOut := runMgmtCLI(t, "", "--root", root, "edit", "cert-modes", "--dry-run")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "chmod 600 "+ca+" (was 644)\n")
	assert.Contains(t, out, "/tls/key.pem (was 640)\n")
	info, err := os.Stat(ca)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), info.Mode().Perm(), "a dry run changes nothing")

	code, _, errOut = runMgmtCLI(t, "", "--root", root, "edit", "cert-modes", "--yes")
	require.Equal(t, exitOK, code, errOut)
	info, err = os.Stat(ca)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	code, out, errOut = runMgmtCLI(t, "", "--root", root, "edit", "cert-modes", "--yes")
	require.Equal(t, exitOK, code, errOut)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "already has mode 600")
}

func TestEditJSONEvents(t *testing.T) {
	root := editRoot(t)
	code, out, errOut := runMgmtCLI(t, "", "--json", "--root", root, "edit", "image-tag", "--to", "4.9.0", "--dry-run")
	require.Equal(t, exitOK, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	assert.Len(t, lines, 4, "three diffs and the dry-run note")
	assert.Contains(t, lines[0], `"type":"file_diff"`)
	assert.Contains(t, lines[0], `"dry_run":true`)
}
