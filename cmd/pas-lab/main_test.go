package main

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runCLI runs pas-lab in-process with the lab directory under a temporary
// directory and returns the exit code, stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr strings.Builder
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestBadInput(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	busyPort := strconv.Itoa(busy.Addr().(*net.TCPAddr).Port)

	existing := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(existing, "lab.json"), []byte(`{"name":"old"}`), 0o644))
	foreign := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(foreign, "notes.txt"), []byte("mine"), 0o644))

	tests := []struct {
		name       string
		dockerHost string
		args       []string
		wantCode   int
		wantStderr []string
	}{
		{
			name:       "no engine",
			dockerHost: "unix:///nonexistent/pasupgrade/docker.sock",
			args:       []string{"up"},
			wantCode:   exitError,
			wantStderr: []string{"no Docker engine", "unix:///nonexistent/pasupgrade/docker.sock", "make lab-engine-start"},
		},
		{
			name:       "DOCKER_HOST unset",
			args:       []string{"up"},
			wantCode:   exitError,
			wantStderr: []string{"DOCKER_HOST is not set", "make lab-engine-start"},
		},
		{
			name:       "DOCKER_HOST invalid",
			dockerHost: "garbage",
			args:       []string{"up"},
			wantCode:   exitError,
			wantStderr: []string{"DOCKER_HOST=garbage", "make lab-engine-start"},
		},
		{
			name:       "port in use",
			dockerHost: "unix:///nonexistent/pasupgrade/docker.sock",
			args:       []string{"up", "--mgmt-port", busyPort},
			wantCode:   exitError,
			wantStderr: []string{"port " + busyPort, "taken", "pass 0 for a free one"},
		},
		{
			name:       "invalid topology",
			args:       []string{"up", "--topology", "triple"},
			wantCode:   exitUsage,
			wantStderr: []string{`invalid topology "triple"`, `"single" or "multi"`},
		},
		{
			name:       "core on mgmt with single",
			args:       []string{"up", "--core-on-mgmt"},
			wantCode:   exitUsage,
			wantStderr: []string{"multi topology only"},
		},
		{
			name:       "invalid name",
			args:       []string{"up", "--name", "Bad_Name"},
			wantCode:   exitUsage,
			wantStderr: []string{`invalid lab name "Bad_Name"`},
		},
		{
			name:       "privileged port",
			args:       []string{"up", "--mgmt-port", "1"},
			wantCode:   exitUsage,
			wantStderr: []string{"management port 1 is below", "runs as the pas user"},
		},
		{
			name:       "name ending in a dash",
			args:       []string{"up", "--name", "lab-"},
			wantCode:   exitUsage,
			wantStderr: []string{`invalid lab name "lab-"`, "ending with a letter or digit"},
		},
		{
			name:       "lab already up",
			args:       []string{"up", "--dir", existing},
			wantCode:   exitError,
			wantStderr: []string{"has a lab", "pas-lab down"},
		},
		{
			name:       "directory with other files",
			args:       []string{"up", "--dir", foreign},
			wantCode:   exitUsage,
			wantStderr: []string{"exists and is not empty", "pas-lab down removes it"},
		},
		{
			name:       "status without lab",
			args:       []string{"status", "--name", "absent"},
			wantCode:   exitError,
			wantStderr: []string{"lab.json is missing", "pas-lab up --name absent"},
		},
		{
			name:       "unknown flag",
			args:       []string{"up", "--nodes", "3"},
			wantCode:   exitUsage,
			wantStderr: []string{"unknown flag: --nodes"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "privileged port" && unprivilegedPortStart(t) <= 1 {
				t.Skip("this machine lets any user listen on port 1 (net.ipv4.ip_unprivileged_port_start)")
			}
			t.Setenv("DOCKER_HOST", tt.dockerHost)
			t.Setenv("PASUPGRADE_LAB_DIR", t.TempDir())
			code, _, stderr := runCLI(t, tt.args...)
			assert.Equal(t, tt.wantCode, code, "stderr: %s", stderr)
			for _, want := range tt.wantStderr {
				assert.Contains(t, stderr, want)
			}
		})
	}
}

func unprivilegedPortStart(t *testing.T) int {
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	if err != nil {
		return 1024
	}
	port, err := strconv.Atoi(strings.TrimSpace(string(data)))
	require.NoError(t, err)
	return port
}

func TestDownLeavesForeignDirectory(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/pasupgrade/docker.sock")
	dir := t.TempDir()
	keep := filepath.Join(dir, "notes.txt")
	require.NoError(t, os.WriteFile(keep, []byte("mine"), 0o644))

	code, _, stderr := runCLI(t, "down", "--dir", dir)
	assert.Equal(t, exitError, code)
	assert.Contains(t, stderr, "no Docker engine")
	_, err := os.Stat(keep)
	assert.NoError(t, err, "down must not touch a directory without lab.json")
}
