package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/backup"
	"github.com/pasops/pasupgrade/backup/backuptest"
	"github.com/pasops/pasupgrade/mgmtapi"
	"github.com/pasops/pasupgrade/mgmtapi/mgmtapitest"
)

func backupRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	require.NoError(t, backuptest.WriteTree(root, backuptest.TreeOptions{}))
	return root
}

// readManifest reads the manifest of the only set in dir.
func readManifest(t *testing.T, dir string) (string, backup.Manifest) {
	t.Helper()
	sets, err := filepath.Glob(filepath.Join(dir, "pas-backup-*"))
	require.NoError(t, err)
	require.Len(t, sets, 1)
	data, err := os.ReadFile(filepath.Join(sets[0], backup.ManifestName))
	require.NoError(t, err)
	var m backup.Manifest
	require.NoError(t, json.Unmarshal(data, &m))
	return sets[0], m
}

func TestBackupCreateStoresRunningConfig(t *testing.T) {
	srv := mgmtFake(t, mgmtapitest.Options{})
	config := "pas_config_version: 4.8.0\nservices: [backed-up]\n"
	require.NoError(t, srv.SetRunningConfig(strings.NewReader(config)))
	dir := filepath.Join(t.TempDir(), "backups")

	code, _, errOut := runMgmtCLI(t, "", "--root", backupRoot(t), "backup", "create",
		"--backup-dir", dir, "--mgmt-url", srv.URL)

	require.Equal(t, exitOK, code, errOut)
	set, m := readManifest(t, dir)
	require.NotNil(t, m.RunningConfig)
	assert.Equal(t, "pas-config-running-4.8.0.yaml", m.RunningConfig.Name)
	assert.Equal(t, sha256Hex(config), m.RunningConfig.SHA256)
	data, err := os.ReadFile(filepath.Join(set, m.RunningConfig.Name))
	require.NoError(t, err)
	assert.Equal(t, config, string(data))
}

func TestBackupCreateWithoutRunningConfig(t *testing.T) {
	srv := mgmtFake(t, mgmtapitest.Options{})
	dir := filepath.Join(t.TempDir(), "backups")

	code, _, errOut := runMgmtCLI(t, "", "--root", backupRoot(t), "backup", "create",
		"--backup-dir", dir, "--mgmt-url", srv.URL, "--no-running-config")

	require.Equal(t, exitOK, code, errOut)
	_, m := readManifest(t, dir)
	assert.Nil(t, m.RunningConfig)
	assert.Empty(t, srv.Requests())
}

func TestBackupCreateWrongPasswordWritesNothing(t *testing.T) {
	srv := mgmtFake(t, mgmtapitest.Options{})
	t.Setenv(passwordEnv, "Wr0ng-Pa55word")
	dir := filepath.Join(t.TempDir(), "backups")

	code, _, errOut := runMgmtCLI(t, "", "--root", backupRoot(t), "backup", "create",
		"--backup-dir", dir, "--mgmt-url", srv.URL)

	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errOut, "wrong user name or password")
	assert.Contains(t, errOut, "--no-running-config")
	_, err := os.Stat(dir)
	assert.True(t, os.IsNotExist(err), "the backup directory was created")
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestMgmtEndpointFlag(t *testing.T) {
	srv := mgmtFake(t, mgmtapitest.Options{Endpoints: mgmtapi.Endpoints{Login: "/v2/login", Export: "/v2/export"}})
	dir := t.TempDir()

	code, _, errOut := runMgmtCLI(t, "", "config", "export", "--mgmt-url", srv.URL, "--out", dir,
		"--mgmt-endpoint", "login=/v2/login", "--mgmt-endpoint", "export=/v2/export")
	require.Equal(t, exitOK, code, errOut)
	assert.Len(t, srv.RequestsTo(http.MethodGet, "/v2/export"), 1)

	code, _, errOut = runMgmtCLI(t, "", "config", "export", "--mgmt-url", srv.URL, "--mgmt-endpoint", "backup=/x")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, `unknown endpoint "backup"`)
}
