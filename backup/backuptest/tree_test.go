package backuptest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The check is tested on its own: a broken check called through
// WriteTree would overwrite this machine's /opt/balasys.
func TestCheckNotFilesystemRoot(t *testing.T) {
	linkToRoot := filepath.Join(t.TempDir(), "slash")
	require.NoError(t, os.Symlink("/", linkToRoot))
	for _, root := range []string{"/", "/tmp/..", linkToRoot} {
		err := checkNotFilesystemRoot(root)
		require.Error(t, err, root)
		assert.Contains(t, err.Error(), "scratch directory", root)
	}
	assert.NoError(t, checkNotFilesystemRoot(t.TempDir()))
}

func TestWriteTreeIntoDirectory(t *testing.T) {
	root := t.TempDir()

	require.NoError(t, WriteTree(root, TreeOptions{Policies: 1}))

	info, err := os.Stat(filepath.Join(root, "opt/balasys/etc/mgmt/users.htpass"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
}
