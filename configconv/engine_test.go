package configconv

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/docker/docker/api"
	"github.com/docker/docker/api/types/versions"
	"github.com/docker/docker/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeEngine serves only /_ping, with the given API version, on a Unix
// socket, and records the paths of all requests.
func fakeEngine(t *testing.T, apiVersion string) (*client.Client, func() []string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "cc-engine")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "docker.sock")
	listener, err := net.Listen("unix", socket)
	require.NoError(t, err)

	var mu sync.Mutex
	var paths []string
	server := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		if r.URL.Path != "/_ping" {
			http.Error(w, `{"message":"unexpected request"}`, http.StatusInternalServerError)
			return
		}
		w.Header().Set("Api-Version", apiVersion)
		w.WriteHeader(http.StatusOK)
	})}
	go func() { _ = server.Serve(listener) }()
	t.Cleanup(func() { server.Close() })

	cli, err := client.NewClientWithOpts(client.WithHost("unix://"+socket), client.WithAPIVersionNegotiation())
	require.NoError(t, err)
	t.Cleanup(func() { cli.Close() })
	return cli, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), paths...)
	}
}

func TestDockerRunnerEngineTooOld(t *testing.T) {
	tests := []struct {
		name, version, wantVersion string
	}{
		{"old API", "1.12", "API 1.12"},
		{"no version header", "", "API unknown (before 1.25)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cli, requests := fakeEngine(t, tt.version)
			d := &DockerRunner{Client: cli, Image: testImage}

			_, err := d.Run(context.Background(), Invocation{Args: []string{"exit", "0"}, WorkDir: t.TempDir()})
			require.ErrorIs(t, err, ErrEngineTooOld)
			assert.Contains(t, err.Error(), tt.wantVersion)
			assert.Contains(t, err.Error(), "at least API "+MinAPIVersion)
			assert.Equal(t, []string{"/_ping"}, requests(), "nothing but the ping may reach an old engine")
		})
	}
}

func TestDockerRunnerNegotiatesFirst(t *testing.T) {
	cli, requests := fakeEngine(t, "1.41")
	d := &DockerRunner{Client: cli, Image: testImage}

	err := d.Prepare(context.Background())
	require.Error(t, err, "the fake engine has no images")
	assert.Equal(t, "1.41", cli.ClientVersion())
	got := requests()
	require.NotEmpty(t, got)
	assert.Equal(t, "/_ping", got[0])
	for _, path := range got[1:] {
		assert.Regexp(t, `^/v1\.41/`, path)
	}
}

func TestDockerRunnerRealEngineVersion(t *testing.T) {
	d, cli := newTestRunner(t)
	require.NoError(t, d.Prepare(context.Background()))
	server, err := cli.ServerVersion(context.Background())
	require.NoError(t, err)
	want := server.APIVersion
	if versions.GreaterThan(want, api.DefaultVersion) {
		want = api.DefaultVersion
	}
	assert.Equal(t, want, cli.ClientVersion(), "the client speaks the older of the two API versions")
}

func TestDockerRunnerEngineUnreachable(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "missing.sock")
	cli, err := client.NewClientWithOpts(client.WithHost("unix://"+socket), client.WithAPIVersionNegotiation())
	require.NoError(t, err)
	defer cli.Close()
	d := &DockerRunner{Client: cli}

	for range 2 {
		err := d.Prepare(context.Background())
		require.Error(t, err, "a failed check is tried again, never remembered as a success")
		assert.Contains(t, err.Error(), "connecting to the Docker engine at unix://"+socket)
	}
}

// Below API 1.30 the client ignores the wait condition and waits with the
// old endpoint, which returns at once, with exit code 0, for a container
// that has not started yet.
func TestDockerRunnerPinnedClientVersionTooOld(t *testing.T) {
	engine, requests := fakeEngine(t, "1.41")
	t.Setenv("DOCKER_HOST", engine.DaemonHost())
	t.Setenv("DOCKER_API_VERSION", "1.29")
	cli, err := NewDockerClient()
	require.NoError(t, err)
	defer cli.Close()
	d := &DockerRunner{Client: cli, Image: testImage}

	_, err = d.Run(context.Background(), Invocation{Args: []string{"exit", "0"}, WorkDir: t.TempDir()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "DOCKER_API_VERSION=1.29")
	assert.Contains(t, err.Error(), "at least API "+MinAPIVersion)
	assert.Equal(t, []string{"/_ping"}, requests(), "nothing but the ping may be sent at the old version")
}
