package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/docker/docker/client"
)

// ErrNoEngine is returned when no Docker engine responds at DOCKER_HOST.
var ErrNoEngine = errors.New("lab: no Docker engine")

// LabDirEnv names the directory where the lab keeps its caches and build
// trees; it is the same variable scripts/lab-engine.sh reads.
const LabDirEnv = "PASUPGRADE_LAB_DIR"

// defaultLabDir is used when LabDirEnv is unset.
const defaultLabDir = "/var/cache/pasupgrade-lab"

// CacheDir returns the directory for the lab's caches: $PASUPGRADE_LAB_DIR,
// or /var/cache/pasupgrade-lab when that is unset.
func CacheDir() string {
	if dir := os.Getenv(LabDirEnv); dir != "" {
		return dir
	}
	return defaultLabDir
}

// Connect returns a Docker client for the engine that DOCKER_HOST names,
// with the API version negotiated, after checking that the engine answers
// a ping. Without an answering engine it returns an error wrapping
// ErrNoEngine that says how to start one. The caller closes the client.
func Connect(ctx context.Context) (*client.Client, error) {
	host := os.Getenv("DOCKER_HOST")
	if host == "" {
		return nil, fmt.Errorf("%w: DOCKER_HOST is not set; start the lab's engine with "+
			"'make lab-engine-start' and export the DOCKER_HOST=... line it prints", ErrNoEngine)
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("creating a Docker client for DOCKER_HOST=%s: %w; set it to the "+
			"unix:///... line that 'make lab-engine-start' prints", host, err)
	}

	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ping, err := cli.Ping(pingCtx)
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("%w responds at DOCKER_HOST=%s (%v); start it with "+
			"'make lab-engine-start' or fix DOCKER_HOST", ErrNoEngine, host, err)
	}
	// The client negotiates lazily on its first API call and does so
	// without a lock, so two goroutines sharing a fresh client race on
	// it. Negotiating here, before the client is shared, avoids that.
	cli.NegotiateAPIVersionPing(ping)
	return cli, nil
}

// dockerSocket returns the path of the engine's Unix socket, which node
// containers mount so that the tools inside reach the same engine.
func dockerSocket(cli client.APIClient) (string, error) {
	host := cli.DaemonHost()
	const prefix = "unix://"
	if len(host) <= len(prefix) || host[:len(prefix)] != prefix {
		return "", fmt.Errorf("docker host %q is not a unix:// socket; node containers "+
			"mount the engine's socket, so use a local engine", host)
	}
	return filepath.Clean(host[len(prefix):]), nil
}
