package lab

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/errdefs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/internal/testenv"
)

func TestEnsureToolImageRunsConvert(t *testing.T) {
	t.Setenv("DOCKER_HOST", testenv.DockerHost(t))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cli, err := Connect(ctx)
	require.NoError(t, err)
	defer cli.Close()

	ref := UniqueName("labpkg-tool-test") + ":4.9.0"
	t.Cleanup(func() {
		_, _ = cli.ImageRemove(context.Background(), ref, image.RemoveOptions{Force: true, PruneChildren: true})
	})
	require.NoError(t, EnsureToolImage(ctx, cli, ref))
	first, err := cli.ImageInspect(ctx, ref)
	require.NoError(t, err)
	assert.Equal(t, []string{toolBinaryPath}, []string(first.Config.Entrypoint))
	assert.Equal(t, "/upgrade", first.Config.WorkingDir)
	assert.NotEmpty(t, first.Config.Labels[toolContentLabel])

	require.NoError(t, EnsureToolImage(ctx, cli, ref))
	second, err := cli.ImageInspect(ctx, ref)
	require.NoError(t, err)
	assert.Equal(t, first.ID, second.ID, "an image with the same binary is kept")

	work := t.TempDir()
	require.NoError(t, os.Chmod(work, 0o777))
	export := "pas_config_version: 4.8.0\nservices: []\n"
	require.NoError(t, os.WriteFile(filepath.Join(work, "pas-config-4.8.0.yaml"), []byte(export), 0o644))

	created, err := cli.ContainerCreate(ctx,
		&container.Config{Image: ref, Cmd: []string{"convert-config"}, User: "65534:65534"},
		&container.HostConfig{
			NetworkMode: "host",
			Mounts:      []mount.Mount{{Type: mount.TypeBind, Source: work, Target: "/upgrade"}},
		}, nil, nil, UniqueName("labpkg-tool-run"))
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = cli.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	})
	waitC, errC := cli.ContainerWait(ctx, created.ID, container.WaitConditionNextExit)
	require.NoError(t, cli.ContainerStart(ctx, created.ID, container.StartOptions{}))
	select {
	case result := <-waitC:
		assert.Equal(t, int64(0), result.StatusCode)
	case err := <-errC:
		require.NoError(t, err)
	}

	converted, err := os.ReadFile(filepath.Join(work, "pas-config-4.9.0.yaml"))
	require.NoError(t, err)
	assert.Equal(t, "pas_config_version: 4.9.0\nservices: []\n", string(converted))
}

func TestEnsureToolImageReplacesStaleImage(t *testing.T) {
	t.Setenv("DOCKER_HOST", testenv.DockerHost(t))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cli, err := Connect(ctx)
	require.NoError(t, err)
	defer cli.Close()

	ref := UniqueName("labpkg-tool-test") + ":4.9.0"
	t.Cleanup(func() {
		_, _ = cli.ImageRemove(context.Background(), ref, image.RemoveOptions{Force: true, PruneChildren: true})
	})
	require.NoError(t, importTool(ctx, cli, ref, []byte("#!/bin/sh\nexit 0\n"), "stale"))
	stale, err := cli.ImageInspect(ctx, ref)
	require.NoError(t, err)

	require.NoError(t, EnsureToolImage(ctx, cli, ref))

	current, err := cli.ImageInspect(ctx, ref)
	require.NoError(t, err)
	assert.NotEqual(t, stale.ID, current.ID)
	assert.NotEqual(t, "stale", current.Config.Labels[toolContentLabel])
	assert.Len(t, current.Config.Labels[toolContentLabel], 64, "a hex SHA-256")
	_, err = cli.ImageInspect(ctx, stale.ID)
	assert.True(t, errdefs.IsNotFound(err), "the stale image is removed: %v", err)
}
