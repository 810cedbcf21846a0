package pasupgrade_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/mgmtapi"
	"github.com/pasops/pasupgrade/mgmtapi/mgmtapitest"
	"github.com/pasops/pasupgrade/pasupgrade"
)

func TestMgmtAPIAdapter(t *testing.T) {
	srv := mgmtapitest.Start(t, mgmtapitest.Options{
		StateDir: t.TempDir(), Users: map[string]string{"admin": password},
	})
	require.NoError(t, srv.SetRunningConfig(strings.NewReader("pas_config_version: 4.8.0\nx: 1\n")))
	client, err := mgmtapi.New(srv.URL)
	require.NoError(t, err)
	api := pasupgrade.MgmtAPI{Client: client, Password: password}
	ctx := context.Background()

	// The first call logs in by itself.
	status, err := api.Status(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, status.Nodes)
	assert.Equal(t, "mgmt", status.Nodes[0].Name)
	assert.NotEmpty(t, status.Nodes[0].Components)

	var export bytes.Buffer
	_, err = api.ExportRunning(ctx, &export)
	require.NoError(t, err)
	assert.Equal(t, "pas_config_version: 4.8.0\nx: 1\n", export.String())

	file := filepath.Join(t.TempDir(), "pas-config-4.8.0.yaml")
	require.NoError(t, os.WriteFile(file, []byte("pas_config_version: 4.8.0\nx: 2\n"), 0o600))
	require.NoError(t, api.Import(ctx, file))
	require.NoError(t, api.Apply(ctx, 10*time.Second))
	running, err := srv.RunningConfig()
	require.NoError(t, err)
	assert.NotEmpty(t, running)

	srv.FailNodeReload("mgmt")
	status, err = api.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, pasupgrade.ReloadFailed, status.Nodes[0].Components[0].ReloadSuccess)

	wrong := pasupgrade.MgmtAPI{Client: client, Password: "not-the-Pa55"}
	err = wrong.Login(ctx)
	require.ErrorIs(t, err, pasupgrade.ErrLoginRejected)
	assert.NotContains(t, err.Error(), "not-the-Pa55")
}

func TestOSFilesWriteKeepsMode(t *testing.T) {
	root := t.TempDir()
	name := "/opt/balasys/etc/infrastructure/mgmt/docker-compose.conf"
	require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, name), []byte("A=1\n"), 0o640))
	me, err := user.Current()
	require.NoError(t, err)

	files := pasupgrade.OSFiles{Root: root}
	ctx := context.Background()
	require.NoError(t, files.WriteFile(ctx, name, []byte("A=2\n"), me.Username))
	data, err := files.ReadFile(ctx, name)
	require.NoError(t, err)
	assert.Equal(t, "A=2\n", string(data))
	info, err := files.Stat(ctx, name)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o640), info.Mode().Perm())

	err = files.WriteFile(ctx, name, []byte("A=3\n"), "no-such-user-pasupgrade")
	assert.ErrorContains(t, err, `looking up user "no-such-user-pasupgrade"`)
}

func TestBackupSetsAdapter(t *testing.T) {
	root := t.TempDir()
	for name, body := range map[string]string{
		"opt/balasys/etc/mgmt/config.yml":                                  "mgmt: {}\n",
		"opt/balasys/etc/mgmt/users.htpass":                                "admin:{SHA}x\n",
		"opt/balasys/.ssh/id_ed25519":                                      "key\n",
		"opt/balasys/.ssh/known_hosts":                                     "core-1 ssh-ed25519 AAAA\n",
		"opt/balasys/usr/share/automation/deploy-core.yml":                 "- hosts: all\n",
		"opt/balasys/usr/share/automation/inventory.yml":                   "all:\n  hosts:\n    core-1:\n",
		"opt/balasys/usr/share/automation/host_vars/core-1.yml":            "a: 1\n",
		"opt/balasys/usr/share/automation/roles/deploy-core/vars/main.yml": "b: 2\n",
	} {
		path := filepath.Join(root, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(body), 0o644))
	}
	me, err := user.Current()
	require.NoError(t, err)
	store := pasupgrade.BackupSets{Root: root, ToolVersion: "test"}
	ctx := context.Background()
	backupDir := filepath.Join(t.TempDir(), "backups")

	set, err := store.Create(ctx, pasupgrade.BackupRequest{Dir: backupDir, Multi: true,
		ExportRunning: func(_ context.Context, w io.Writer) (string, error) {
			_, err := w.Write([]byte("pas_config_version: 4.8.0\n"))
			return "pas-config-4.8.0.yaml", err
		}})
	require.NoError(t, err)
	require.NoError(t, store.Verify(ctx, set))

	copyDir := set + ".restore-copy"
	require.NoError(t, store.Copy(ctx, set, copyDir))
	require.NoError(t, store.Verify(ctx, copyDir))
	key, err := store.ReadBootstrapFile(ctx, copyDir, "/opt/balasys/.ssh/id_ed25519")
	require.NoError(t, err)
	assert.Equal(t, "key\n", string(key))
	running, err := os.ReadFile(store.RunningConfig(copyDir))
	require.NoError(t, err)
	assert.Equal(t, "pas_config_version: 4.8.0\n", string(running))

	require.NoError(t, os.RemoveAll(filepath.Join(root, "opt")))
	require.NoError(t, store.RestoreBootstrap(ctx, copyDir, me.Username))
	data, err := os.ReadFile(filepath.Join(root, "opt/balasys/etc/mgmt/users.htpass"))
	require.NoError(t, err)
	assert.Equal(t, "admin:{SHA}x\n", string(data))

	err = store.Copy(ctx, set, copyDir)
	assert.ErrorContains(t, err, "already exists")
}
