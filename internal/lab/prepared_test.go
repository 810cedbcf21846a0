package lab

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/runner"
)

func TestPreparedImageKey(t *testing.T) {
	dir := t.TempDir()
	for _, pkg := range Packages {
		require.NoError(t, os.WriteFile(filepath.Join(dir, DebFileName(pkg, labVersion)), []byte(pkg), 0o644))
	}
	base, err := PreparedImageKey("node:1", Options{Topology: TopologySingle}, dir)
	require.NoError(t, err)

	tests := []struct {
		name      string
		nodeImage string
		opts      Options
	}{
		{"other node image", "node:2", Options{Topology: TopologySingle}},
		{"other topology", "node:1", Options{Topology: TopologyMulti}},
		{"ha", "node:1", Options{Topology: TopologyMulti, HA: true}},
		{"core on mgmt", "node:1", Options{Topology: TopologyMulti, CoreOnMgmt: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key, err := PreparedImageKey(tc.nodeImage, tc.opts, dir)
			require.NoError(t, err)
			assert.NotEqual(t, base, key)
		})
	}

	t.Run("other package contents", func(t *testing.T) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, DebFileName(CorePackage, labVersion)), []byte("changed"), 0o644))
		key, err := PreparedImageKey("node:1", Options{Topology: TopologySingle}, dir)
		require.NoError(t, err)
		assert.NotEqual(t, base, key)
	})

	t.Run("missing package", func(t *testing.T) {
		_, err := PreparedImageKey("node:1", Options{Topology: TopologySingle}, t.TempDir())
		assert.ErrorContains(t, err, DebFileName(Packages[0], labVersion))
	})
}

// TestPreparedImageReused starts two labs with PreparedImages: the second
// management node must start from the image that the first committed, with
// its own admin password and none of the first lab's.
func TestPreparedImageReused(t *testing.T) {
	opts := Options{Topology: TopologySingle, PreparedImages: true}
	first, cli := upForTest(t, opts)
	ctx := context.Background()
	t.Cleanup(func() {
		assert.NoError(t, RemovePreparedImages(context.Background(), cli))
	})
	key, err := PreparedImageKey(first.NodeImage, opts, first.PackageDir())
	require.NoError(t, err)
	ref := PreparedImageRepository + ":" + key
	ok, err := imageExists(ctx, cli, ref)
	require.NoError(t, err)
	require.True(t, ok, "the first lab must leave the prepared image %s", ref)
	firstPassword, err := first.AdminPassword()
	require.NoError(t, err)

	second, _ := upForTest(t, opts)
	inspect, err := cli.ContainerInspect(ctx, second.NodeByName("mgmt").ContainerID)
	require.NoError(t, err)
	assert.Equal(t, ref, inspect.Config.Image, "the second management node's image")

	password, err := second.AdminPassword()
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, loginStatus(t, second.MgmtURL(), password))
	assert.Equal(t, http.StatusUnauthorized, loginStatus(t, second.MgmtURL(), firstPassword))

	node, err := second.Node(cli, "mgmt")
	require.NoError(t, err)
	for _, pkg := range Packages {
		assert.Equal(t, labVersion, installedVersion(t, node, pkg), "package %s", pkg)
	}
	res, err := node.Run(ctx, runner.Command{
		Argv:    []string{"sh", "-c", "grep -r -l -F -f - /var/cache/debconf /opt/balasys /etc /root /tmp || true"},
		Stdin:   strings.NewReader(firstPassword + "\n"),
		Secrets: []string{firstPassword},
	})
	require.NoError(t, err)
	assert.Empty(t, strings.TrimSpace(string(res.Stdout)), "files of the prepared image with the first lab's password")
}

// TestPreparedCoreImageReused starts two multi-node labs with
// PreparedImages: the second core node must start from the image with
// 4.8.0 deployed that the first committed, and respond on its own ports.
func TestPreparedCoreImageReused(t *testing.T) {
	opts := Options{Topology: TopologyMulti, PreparedImages: true}
	first, cli := upForTest(t, opts)
	ctx := context.Background()
	t.Cleanup(func() {
		assert.NoError(t, RemovePreparedImages(context.Background(), cli))
	})
	key, err := preparedKey(first.NodeImage, "core", opts, first.PackageDir(), []string{StoragePackage, CorePackage})
	require.NoError(t, err)
	ref := PreparedImageRepository + ":" + key
	ok, err := imageExists(ctx, cli, ref)
	require.NoError(t, err)
	require.True(t, ok, "the first lab must leave the prepared core image %s", ref)

	second, _ := upForTest(t, opts)
	core := second.NodeByName(coreNodeName)
	inspect, err := cli.ContainerInspect(ctx, core.ContainerID)
	require.NoError(t, err)
	assert.Equal(t, ref, inspect.Config.Image, "the second core node's image")
	for _, c := range []string{"storage", "core"} {
		assert.NotEqual(t, first.NodeByName(coreNodeName).Ports[c], core.Ports[c])
		assert.Equal(t, labVersion, componentVersion(t, core.Ports[c]), "%s on port %d", c, core.Ports[c])
	}
}
