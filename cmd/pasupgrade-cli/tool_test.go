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

	"github.com/pasops/pasupgrade/configconv"
)

// fakeTool builds configconv's stand-in for the upgrade tool into a
// temporary directory of the test and returns its path. The Go build cache
// makes the builds after the first one quick.
func fakeTool(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), configconv.DefaultHostCommand)
	out, err := exec.Command("go", "build", "-o", path, "../../configconv/testdata/faketool").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return path
}

func TestToolHostRunnerSubcommands(t *testing.T) {
	t.Setenv(passwordEnv, mgmtTestPassword)
	work := t.TempDir()
	base := []string{"--runner", "host", "--host-command", fakeTool(t), "--work-dir", work}

	code, out, errOut := runMgmtCLI(t, "", append([]string{"tool", "pre-upgrade"}, base...)...)
	require.Equal(t, exitOK, code, errOut)
	exported := filepath.Join(work, configconv.DefaultExportFile)
	assert.Contains(t, out, "pre-upgrade wrote "+exported)
	assert.FileExists(t, exported)

	code, _, errOut = runMgmtCLI(t, "", append([]string{"tool", "convert-config"}, base...)...)
	assert.Equal(t, exitCheckFailed, code, "no terminal and no answers")
	assert.Contains(t, errOut, "answer y on a terminal or in an answers file")
	assert.Contains(t, errOut, "legacy_auth")

	answers := filepath.Join(t.TempDir(), "answers")
	require.NoError(t, os.WriteFile(answers, []byte("y\n"), 0o600))
	code, out, errOut = runMgmtCLI(t, "", append([]string{"tool", "convert-config", "--answers", answers}, base...)...)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "convert-config wrote "+filepath.Join(work, configconv.DefaultConvertedFile))

	code, out, errOut = runMgmtCLI(t, "", append([]string{"tool", "post-upgrade", "--config-apply-timeout", "30s"}, base...)...)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "config applied within 30s")
	assert.Contains(t, out, "post-upgrade finished")

	require.NoError(t, os.WriteFile(filepath.Join(work, "faketool.conf"), []byte("apply-fails\n"), 0o644))
	code, _, errOut = runMgmtCLI(t, "", append([]string{"tool", "post-upgrade"}, base...)...)
	assert.Equal(t, exitStepFailed, code)
	assert.Contains(t, errOut, "core-1")
	assert.NotContains(t, errOut, mgmtTestPassword)
}

func TestToolHostRunnerUnderRoot(t *testing.T) {
	t.Setenv(passwordEnv, mgmtTestPassword)
	root := t.TempDir()
	bin := filepath.Join(root, "usr", "bin")
	require.NoError(t, os.MkdirAll(bin, 0o755))
	data, err := os.ReadFile(fakeTool(t))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(bin, configconv.DefaultHostCommand), data, 0o755))
	work := t.TempDir()

	code, _, errOut := runMgmtCLI(t, "", "--root", root, "tool", "pre-upgrade", "--runner", "host", "--work-dir", work)
	require.Equal(t, exitOK, code, errOut)
	assert.FileExists(t, filepath.Join(work, configconv.DefaultExportFile))
}

func TestToolFlagErrors(t *testing.T) {
	t.Setenv(passwordEnv, mgmtTestPassword)
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("not a certificate"), 0o600))
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"unknown runner", []string{"tool", "pre-upgrade", "--runner", "podman"}, `invalid --runner "podman"`},
		{"missing work dir", []string{"tool", "pre-upgrade", "--work-dir", "/nonexistent-work"}, "invalid --work-dir"},
		{"missing answers", []string{"tool", "convert-config", "--runner", "host", "--answers", "/nonexistent-answers"}, "reading --answers"},
		{"invalid CA bundle", []string{"tool", "pre-upgrade", "--runner", "host", "--host-command", "/bin/false", "--work-dir", t.TempDir(), "--cacert", notPEM}, "invalid CA bundle"},
		{"zero apply timeout", []string{"tool", "post-upgrade", "--runner", "host", "--config-apply-timeout", "0"}, "invalid --config-apply-timeout 0s"},
		{"negative apply timeout", []string{"tool", "post-upgrade", "--runner", "host", "--config-apply-timeout", "-5s"}, "invalid --config-apply-timeout -5s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runMgmtCLI(t, "", tt.args...)
			assert.Equal(t, exitUsage, code, errOut)
			assert.Contains(t, errOut, tt.wantErr)
		})
	}
}

func TestToolNoPasswordWithoutTerminal(t *testing.T) {
	t.Setenv(passwordEnv, "")
	os.Unsetenv(passwordEnv)
	code, _, errOut := runMgmtCLI(t, "", "tool", "post-upgrade", "--runner", "host", "--host-command", "/bin/true", "--work-dir", t.TempDir())
	assert.Equal(t, exitUsage, code)
	assert.True(t, strings.Contains(errOut, "--password-file"), errOut)
}

func TestToolJSONKeepsStdoutJSON(t *testing.T) {
	t.Setenv(passwordEnv, mgmtTestPassword)
	work := t.TempDir()
	script := filepath.Join(t.TempDir(), "tool")
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\nread password\n"+
		"echo 'Exported the running configuration'\n"+
		"echo 'pas_config_version: 4.8.0' > "+configconv.DefaultExportFile+"\n"), 0o755))
	code, out, errOut := runMgmtCLI(t, "", "--json", "tool", "pre-upgrade",
		"--runner", "host", "--host-command", script, "--work-dir", work)
	require.Equal(t, exitOK, code, errOut)

	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.NotEmpty(t, lines)
	for _, line := range lines {
		assert.True(t, json.Valid([]byte(line)), "stdout line is not JSON: %q", line)
	}
	assert.Contains(t, out, `"type":"tool_finished"`)
	assert.Contains(t, errOut, "Exported the running configuration", "the tool's output goes to stderr")
}

func TestDefaultRunAsIsTheSudoUser(t *testing.T) {
	env := func(vars map[string]string) func(string) string {
		return func(name string) string { return vars[name] }
	}
	tests := []struct {
		name string
		uid  int
		vars map[string]string
		want string
	}{
		{"root through sudo", 0, map[string]string{"SUDO_USER": "ops"}, "ops"},
		{"root without sudo", 0, nil, ""},
		{"sudo from root", 0, map[string]string{"SUDO_USER": "root"}, ""},
		{"not root", 1000, map[string]string{"SUDO_USER": "ops"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, defaultRunAs(tc.uid, env(tc.vars)))
		})
	}
}
