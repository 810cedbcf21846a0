package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stand-in runs the built binary with every path under root, as a service
// manager would be run, because start leaves real detached processes.
type standIn struct {
	t    *testing.T
	bin  string
	root string
}

func newStandIn(t *testing.T) *standIn {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real processes")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "pas-systemctl")
	build := exec.Command("go", "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "building pas-systemctl: %s", out)

	s := &standIn{t: t, bin: bin, root: filepath.Join(dir, "root")}
	require.NoError(t, os.MkdirAll(filepath.Join(s.root, "lib/systemd/system"), 0o755))
	return s
}

func (s *standIn) writeUnit(name, text string) {
	s.t.Helper()
	path := filepath.Join(s.root, "lib/systemd/system", name+".service")
	require.NoError(s.t, os.WriteFile(path, []byte(text), 0o644))
	// Stop whatever the test started, also when it fails.
	s.t.Cleanup(func() { s.run("stop", name) })
}

func (s *standIn) writeFile(path, text string) {
	s.t.Helper()
	full := filepath.Join(s.root, path)
	require.NoError(s.t, os.MkdirAll(filepath.Dir(full), 0o755))
	require.NoError(s.t, os.WriteFile(full, []byte(text), 0o644))
}

// run returns the exit code and the combined output.
func (s *standIn) run(args ...string) (int, string) {
	cmd := exec.Command(s.bin, args...)
	cmd.Env = append(os.Environ(), "PAS_SYSTEMCTL_ROOT="+s.root)
	out, err := cmd.CombinedOutput()
	if exitErr, ok := err.(*exec.ExitError); ok {
		return exitErr.ExitCode(), string(out)
	}
	require.NoError(s.t, err)
	return 0, string(out)
}

func (s *standIn) state(unit string) unitState {
	data, err := os.ReadFile(filepath.Join(s.root, stateDir, unit+".service.json"))
	require.NoError(s.t, err)
	var st unitState
	require.NoError(s.t, json.Unmarshal(data, &st))
	return st
}

const sleeperUnit = `[Unit]
Description=Sleeper
[Service]
EnvironmentFile=-/etc/default/sleeper
Environment=GREETING=hello
ExecStart=/bin/sh -c "echo $GREETING $EXTRA; exec sleep 300"
`

func TestStartStopLifecycle(t *testing.T) {
	s := newStandIn(t)
	s.writeFile("etc/default/sleeper", "EXTRA='from file'\n")
	s.writeUnit("sleeper", sleeperUnit)

	code, out := s.run("is-active", "sleeper")
	assert.Equal(t, exitNotActive, code)
	assert.Equal(t, "inactive\n", out)

	code, out = s.run("start", "sleeper")
	require.Equal(t, exitOK, code, out)
	st := s.state("sleeper")
	assert.Equal(t, stateActive, st.State)
	assert.True(t, alive(st.MainPID), "the main process must run after start")

	code, out = s.run("is-active", "sleeper.service")
	assert.Equal(t, exitOK, code)
	assert.Equal(t, "active\n", out)

	code, out = s.run("status", "sleeper")
	assert.Equal(t, exitOK, code)
	assert.Contains(t, out, "Active: active (running)")
	assert.Contains(t, out, "hello from file", "status shows the unit's log")

	oldPID := st.MainPID
	code, out = s.run("restart", "sleeper")
	require.Equal(t, exitOK, code, out)
	st = s.state("sleeper")
	assert.NotEqual(t, oldPID, st.MainPID, "restart must start a new process")
	assert.False(t, alive(oldPID), "restart must end the old process")

	code, out = s.run("stop", "sleeper")
	require.Equal(t, exitOK, code, out)
	assert.False(t, alive(st.MainPID), "stop must end the process")
	code, _ = s.run("is-active", "--quiet", "sleeper")
	assert.Equal(t, exitNotActive, code)
}

func TestStartFailsOnEarlyExit(t *testing.T) {
	s := newStandIn(t)
	s.writeUnit("broken", "[Service]\nExecStart=/bin/sh -c \"echo bad config >&2; exit 2\"\n")

	code, out := s.run("start", "broken")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, out, "exit status 2")

	code, out = s.run("is-active", "broken")
	assert.Equal(t, exitNotActive, code)
	assert.Equal(t, "failed\n", out)

	code, out = s.run("status", "broken")
	assert.Equal(t, exitNotActive, code)
	assert.Contains(t, out, "bad config")
}

func TestProcessDeathMarksFailed(t *testing.T) {
	s := newStandIn(t)
	s.writeUnit("dies", "[Service]\nExecStart=/bin/sleep 300\n")
	code, out := s.run("start", "dies")
	require.Equal(t, exitOK, code, out)

	pid := s.state("dies").MainPID
	require.NoError(t, syscallKill(pid))
	require.Eventually(t, func() bool {
		code, _ := s.run("is-failed", "--quiet", "dies")
		return code == exitOK
	}, 10e9, 50e6, "a killed process must leave the unit failed")
}

func TestProcessDeathNamesSignal(t *testing.T) {
	s := newStandIn(t)
	s.writeUnit("dies", "[Service]\nExecStart=/bin/sleep 300\n")
	code, out := s.run("start", "dies")
	require.Equal(t, exitOK, code, out)

	require.NoError(t, syscallKill(s.state("dies").MainPID))
	require.Eventually(t, func() bool {
		return s.state("dies").State == stateFailed
	}, 10e9, 50e6, "a killed process must leave the unit failed")
	_, out = s.run("status", "dies")
	assert.Contains(t, out, "killed by SIGKILL")
	assert.NotContains(t, out, "killed by killed")
}

// TestStopAfterSupervisorKilled checks that stop leaves the unit inactive,
// not failed, when the supervisor died before it and cannot record the
// end of the process.
func TestStopAfterSupervisorKilled(t *testing.T) {
	s := newStandIn(t)
	s.writeUnit("orphan", "[Service]\nExecStart=/bin/sleep 300\n")
	code, out := s.run("start", "orphan")
	require.Equal(t, exitOK, code, out)
	st := s.state("orphan")
	require.NoError(t, syscallKill(st.SupervisorPID))
	require.Eventually(t, func() bool { return !alive(st.SupervisorPID) }, 10e9, 50e6)

	code, out = s.run("stop", "orphan")
	require.Equal(t, exitOK, code, out)
	assert.False(t, alive(st.MainPID), "stop must end the process")
	code, out = s.run("is-active", "orphan")
	assert.Equal(t, exitNotActive, code)
	assert.Equal(t, "inactive\n", out)
}

func TestUnknownUnit(t *testing.T) {
	s := newStandIn(t)
	code, out := s.run("start", "nosuch")
	assert.Equal(t, exitNoUnitOp, code)
	assert.Contains(t, out, "nosuch.service not found")

	assert.NotContains(t, out, "not found: unit not found")

	code, _ = s.run("status", "nosuch")
	assert.Equal(t, exitNoUnit, code)
}

func TestEnableDisable(t *testing.T) {
	s := newStandIn(t)
	s.writeUnit("sleeper", sleeperUnit)

	code, out := s.run("is-enabled", "sleeper")
	assert.Equal(t, exitFailure, code)
	assert.Equal(t, "disabled\n", out)

	code, _ = s.run("enable", "sleeper")
	require.Equal(t, exitOK, code)
	code, out = s.run("is-enabled", "sleeper")
	assert.Equal(t, exitOK, code)
	assert.Equal(t, "enabled\n", out)

	code, _ = s.run("disable", "sleeper")
	require.Equal(t, exitOK, code)
	code, _ = s.run("is-enabled", "sleeper")
	assert.Equal(t, exitFailure, code)

	code, _ = s.run("daemon-reload")
	assert.Equal(t, exitOK, code)
}

func TestStatusFile(t *testing.T) {
	s := newStandIn(t)
	statusFile := filepath.Join(s.root, "lab", "status.json")
	s.writeFile(nodeConfigFile, `{"node":"mgmt-1","role":"mgmt","status_file":"`+statusFile+`"}`)
	// Another node's entry must survive this node's updates.
	s.writeFile("lab/status.json", `{"nodes":[{"name":"core-1","role":"core","components":[]}]}`)
	s.writeUnit("proxedo-api-security-mgmt", "[Service]\nExecStart=/bin/sleep 300\n")
	s.writeUnit("proxedo-api-security-storage", "[Service]\nExecStart=/bin/sleep 300\n")
	// Installed but neither enabled nor started, as HA on a node without HA.
	s.writeUnit("proxedo-api-security-ha", "[Service]\nExecStart=/bin/sleep 300\n")
	code, out := s.run("enable", "proxedo-api-security-storage")
	require.Equal(t, exitOK, code, out)

	code, out = s.run("start", "proxedo-api-security-mgmt")
	require.Equal(t, exitOK, code, out)

	var st Status
	data, err := os.ReadFile(statusFile)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &st))
	require.Len(t, st.Nodes, 2)
	assert.Equal(t, "core-1", st.Nodes[0].Name)
	mgmt := st.Nodes[1]
	assert.Equal(t, "mgmt-1", mgmt.Name)
	assert.Equal(t, "mgmt", mgmt.Role)
	require.Len(t, mgmt.Components, 2, "one component per PAS unit in use")
	assert.Equal(t, Component{Name: "mgmt", State: "running"}, mgmt.Components[0])
	assert.Equal(t, Component{Name: "storage", State: "stopped"}, mgmt.Components[1])

	code, out = s.run("stop", "proxedo-api-security-mgmt")
	require.Equal(t, exitOK, code, out)
	data, err = os.ReadFile(statusFile)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &st))
	assert.Equal(t, "stopped", st.Nodes[1].Components[0].State)
}

func TestNonRootCannotStart(t *testing.T) {
	var stderr strings.Builder
	env := &environment{euid: 1000, stdout: &strings.Builder{}, stderr: &stderr}
	code := run(env, []string{"restart", "proxedo-api-security-mgmt"})
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, stderr.String(), "Interactive authentication required")
}

func TestRestartOnFailure(t *testing.T) {
	s := newStandIn(t)
	s.writeUnit("restarts", "[Service]\nRestart=on-failure\nRestartSec=0.1\nExecStart=/bin/sleep 300\n")
	code, out := s.run("start", "restarts")
	require.Equal(t, exitOK, code, out)

	first := s.state("restarts").MainPID
	require.NoError(t, syscallKill(first))
	require.Eventually(t, func() bool {
		st := s.state("restarts")
		return st.State == stateActive && st.MainPID != first && alive(st.MainPID)
	}, 10e9, 50e6, "a killed process of a Restart=on-failure unit must be started again")

	code, out = s.run("stop", "restarts")
	require.Equal(t, exitOK, code, out)
	code, out = s.run("is-active", "restarts")
	assert.Equal(t, exitNotActive, code)
	assert.Equal(t, "inactive\n", out, "stop must not be followed by a restart")
}

func TestRestartSkipsEarlyFailure(t *testing.T) {
	s := newStandIn(t)
	s.writeUnit("crashes", "[Service]\nRestart=always\nExecStart=/bin/sh -c \"exit 1\"\n")
	code, out := s.run("start", "crashes")
	assert.Equal(t, exitFailure, code, "a process that fails at once fails start, Restart= or not")
	assert.Contains(t, out, "exit status 1")
}

func TestOptionParsing(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"status flags are accepted", []string{"--no-pager", "status", "-n", "0", "--lines=5", "nosuch"}, exitNoUnit, "nosuch.service could not be found"},
		{"unsupported option", []string{"--user", "start", "x"}, exitFailure, "unsupported option --user"},
		{"missing command", []string{"--quiet"}, exitFailure, "missing command"},
		{"unknown verb", []string{"mask", "x"}, exitFailure, "Unknown command verb mask"},
		{"start without unit", []string{"start"}, exitFailure, "Too few arguments"},
		{"is-active without unit", []string{"is-active"}, exitFailure, "Too few arguments"},
		{"is-enabled without unit", []string{"is-enabled"}, exitFailure, "Too few arguments"},
		{"unit name with a slash", []string{"start", "../../etc/passwd"}, exitFailure, "Unit name ../../etc/passwd is not valid"},
		{"status of a path", []string{"status", "/tmp/x.service"}, exitFailure, "Unit name /tmp/x.service is not valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr strings.Builder
			env := &environment{root: t.TempDir(), euid: 0, stdout: &strings.Builder{}, stderr: &stderr}
			assert.Equal(t, tt.wantCode, run(env, tt.args))
			assert.Contains(t, stderr.String(), tt.wantStderr)
		})
	}
}
