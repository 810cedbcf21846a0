package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/internal/lab"
	"github.com/pasops/pasupgrade/internal/testenv"
)

func TestUpStatusDown(t *testing.T) {
	t.Setenv("DOCKER_HOST", testenv.DockerHost(t))
	if os.Geteuid() != 0 {
		testenv.SkipOrFail(t, "pas-lab up needs root to build the node image with debootstrap")
	}
	ctx := context.Background()
	debs := t.TempDir()
	_, err := lab.BuildPackages(ctx, debs, lab.BuildOptions{})
	require.NoError(t, err)

	name := strings.TrimPrefix(lab.UniqueName("c"), "c-")
	dir := filepath.Join(t.TempDir(), "lab")
	common := []string{"--name", name, "--dir", dir}
	t.Cleanup(func() { runCLI(t, append([]string{"down"}, common...)...) })

	code, stdout, stderr := runCLI(t, append([]string{"up", "--package-dir", debs}, common...)...)
	require.Equal(t, 0, code, "stderr: %s", stderr)
	assert.Contains(t, stdout, "lab "+name+" (single)")
	assert.Contains(t, stdout, "management API:  http://127.0.0.1:")

	code, stdout, stderr = runCLI(t, append([]string{"status", "--json"}, common...)...)
	require.Equal(t, 0, code, "stderr: %s", stderr)
	var status struct {
		Nodes []lab.NodeStatus `json:"nodes"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &status))
	require.Len(t, status.Nodes, 1)
	assert.Equal(t, "running", status.Nodes[0].State)
	for _, unit := range status.Nodes[0].Units {
		assert.Equal(t, "active", status.Nodes[0].UnitStates[unit], unit)
	}

	// The lab directory is outside the cache directory, so list names it
	// with the container.
	code, stdout, stderr = runCLI(t, "list")
	require.Equal(t, 0, code, "stderr: %s", stderr)
	assert.Contains(t, stdout, "'pas-lab down --name "+name+" --dir "+dir+"' removes it")

	code, stdout, stderr = runCLI(t, append([]string{"up"}, common...)...)
	assert.Equal(t, exitError, code, "a second up of the same lab must fail")
	assert.Contains(t, stderr, "pas-lab down --name "+name)

	code, stdout, stderr = runCLI(t, append([]string{"down"}, common...)...)
	require.Equal(t, 0, code, "stderr: %s", stderr)
	assert.Equal(t, "lab "+name+" removed\n", stdout)
	_, err = os.Stat(dir)
	assert.True(t, os.IsNotExist(err), "down must remove the lab directory")

	cli, err := lab.Connect(ctx)
	require.NoError(t, err)
	defer cli.Close()
	left, err := cli.ContainerList(ctx, container.ListOptions{
		All: true, Filters: filters.NewArgs(filters.Arg("label", lab.LabelLab+"="+name)),
	})
	require.NoError(t, err)
	assert.Empty(t, left, "down must remove the lab's containers")
}

func TestDownInvalidRecord(t *testing.T) {
	t.Setenv("DOCKER_HOST", testenv.DockerHost(t))
	dir := filepath.Join(t.TempDir(), "lab")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "work"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "lab.json"), []byte(`{"name": "to`), 0o644))
	name := strings.TrimPrefix(lab.UniqueName("c"), "c-")

	code, stdout, stderr := runCLI(t, "down", "--name", name, "--dir", dir)
	require.Equal(t, 0, code, "stderr: %s", stderr)
	assert.Contains(t, stderr, "invalid lab record")
	assert.Equal(t, "lab "+name+" removed\n", stdout)
	_, err := os.Stat(dir)
	assert.True(t, os.IsNotExist(err), "down must remove a lab directory with an invalid record")
}
