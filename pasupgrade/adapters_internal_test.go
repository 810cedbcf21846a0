package pasupgrade

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/backup"
)

func TestRemapOwnerGivesOldPASFilesToNewUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing file owners needs root")
	}
	root := t.TempDir()
	for _, dir := range []string{"opt/balasys/etc/mgmt", "opt/balasys/etc/root-owned"} {
		require.NoError(t, os.MkdirAll(filepath.Join(root, dir), 0o755))
	}
	require.NoError(t, os.WriteFile(filepath.Join(root, "opt/balasys/etc/mgmt/config.yml"), nil, 0o644))
	members := []backup.Member{
		{Name: "opt/balasys/etc/", UID: 4242, GID: 4242},
		{Name: "opt/balasys/etc/mgmt/", UID: 4242, GID: 4242},
		{Name: "opt/balasys/etc/mgmt/config.yml", UID: 4242, GID: 0},
		{Name: "opt/balasys/etc/root-owned/", UID: 0, GID: 0},
	}
	for _, m := range members {
		require.NoError(t, os.Lchown(filepath.Join(root, m.Name), int(m.UID), int(m.GID)))
	}

	require.NoError(t, remapOwner(root, members, 4343, 4344))

	owner := func(name string) (uint32, uint32) {
		info, err := os.Lstat(filepath.Join(root, name))
		require.NoError(t, err)
		st := info.Sys().(*syscall.Stat_t)
		return st.Uid, st.Gid
	}
	uid, gid := owner("opt/balasys/etc/mgmt")
	assert.Equal(t, [2]uint32{4343, 4344}, [2]uint32{uid, gid})
	uid, gid = owner("opt/balasys/etc/mgmt/config.yml")
	assert.Equal(t, [2]uint32{4343, 0}, [2]uint32{uid, gid})
	uid, gid = owner("opt/balasys/etc/root-owned")
	assert.Equal(t, [2]uint32{0, 0}, [2]uint32{uid, gid})
}
