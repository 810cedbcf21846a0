package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/mgmtapi/mgmtapitest"
)

const mgmtTestPassword = "Adm1n-Pa55word-For-Tests"

// mgmtFake starts the fake management API with the admin user and puts the
// password in PAS_ADMIN_PASSWORD.
func mgmtFake(t *testing.T, opts mgmtapitest.Options) *mgmtapitest.Server {
	t.Helper()
	opts.Users = map[string]string{"admin": mgmtTestPassword}
	t.Setenv(passwordEnv, mgmtTestPassword)
	return mgmtapitest.Start(t, opts)
}

// runMgmtCLI runs the CLI with stdin and returns the exit code, stdout and
// stderr. It puts back PAS_ADMIN_PASSWORD, which the CLI removes from its
// environment once read, so a test can run several commands.
func runMgmtCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	if password, ok := os.LookupEnv(passwordEnv); ok {
		defer os.Setenv(passwordEnv, password)
	}
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, streams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut})
	return code, out.String(), errOut.String()
}

func TestConfigExport(t *testing.T) {
	srv := mgmtFake(t, mgmtapitest.Options{})
	config := "pas_config_version: 4.8.0\nservices: [exported]\n"
	require.NoError(t, srv.SetRunningConfig(strings.NewReader(config)))
	dir := t.TempDir()

	code, out, errOut := runMgmtCLI(t, "", "config", "export", "--mgmt-url", srv.URL, "--out", dir)

	require.Equal(t, exitOK, code, errOut)
	path := filepath.Join(dir, "pas-config-running-4.8.0.yaml")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, config, string(data))
	assert.Contains(t, out, "running configuration written to "+path)
}

func TestConfigExportJSON(t *testing.T) {
	srv := mgmtFake(t, mgmtapitest.Options{})
	path := filepath.Join(t.TempDir(), "running.yaml")

	code, out, errOut := runMgmtCLI(t, "", "--json", "config", "export", "--mgmt-url", srv.URL, "-o", path)

	require.Equal(t, exitOK, code, errOut)
	var ev struct {
		Type string         `json:"type"`
		Data map[string]any `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &ev))
	assert.Equal(t, "config_exported", ev.Type)
	assert.Equal(t, path, ev.Data["path"])
	assert.Len(t, ev.Data["sha256"], 64)
}

func TestConfigExportOverTLS(t *testing.T) {
	srv := mgmtapitest.StartTLS(t, mgmtapitest.Options{Users: map[string]string{"admin": mgmtTestPassword}})
	t.Setenv(passwordEnv, mgmtTestPassword)
	dir := t.TempDir()

	code, _, errOut := runMgmtCLI(t, "", "config", "export", "--mgmt-url", srv.URL, "--cacert", srv.CAFile(t),
		"--out", dir)
	require.Equal(t, exitOK, code, errOut)

	derFile := filepath.Join(t.TempDir(), "ca.der")
	require.NoError(t, os.WriteFile(derFile, []byte{0x30, 0x82, 0x01}, 0o644))
	code, _, errOut = runMgmtCLI(t, "", "config", "export", "--mgmt-url", srv.URL, "--cacert", derFile)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "no PEM certificates in "+derFile)
}

func TestConfigExportWrongPassword(t *testing.T) {
	srv := mgmtFake(t, mgmtapitest.Options{})
	t.Setenv(passwordEnv, "Wr0ng-Pa55word")

	code, _, errOut := runMgmtCLI(t, "", "config", "export", "--mgmt-url", srv.URL, "--out", t.TempDir())

	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errOut, "wrong user name or password")
	assert.Contains(t, errOut, "check --user and the password source")
	assert.NotContains(t, errOut, "Wr0ng-Pa55word")
}

func TestConfigImportNeedsConfirmation(t *testing.T) {
	srv := mgmtFake(t, mgmtapitest.Options{})
	file := filepath.Join(t.TempDir(), "new.yaml")
	require.NoError(t, os.WriteFile(file, []byte("pas_config_version: 4.8.0\n"), 0o600))

	code, _, errOut := runMgmtCLI(t, "", "config", "import", "--mgmt-url", srv.URL, file)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "pass --yes")

	code, out, errOut := runMgmtCLI(t, "", "config", "import", "--mgmt-url", srv.URL, "--dry-run", file)
	assert.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "would upload "+file)
	assert.Empty(t, srv.RequestsTo(http.MethodPost, "/api/config/import"))

	code, out, errOut = runMgmtCLI(t, "", "config", "import", "--mgmt-url", srv.URL, "--yes", file)
	assert.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "1 pending change(s)")
	assert.Len(t, srv.PendingChanges(), 1)
}

func TestConfigImportMissingFile(t *testing.T) {
	code, _, errOut := runMgmtCLI(t, "", "config", "import", "--yes", filepath.Join(t.TempDir(), "missing.yaml"))
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "missing.yaml: no such file")
}

func TestConfigApply(t *testing.T) {
	srv := mgmtFake(t, mgmtapitest.Options{})

	code, out, errOut := runMgmtCLI(t, "", "config", "apply", "--mgmt-url", srv.URL, "--yes")

	assert.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "mgmt")
	assert.Contains(t, out, "OK")
	assert.Contains(t, out, "succeeded")
}

func TestConfigApplyFailureNamesNode(t *testing.T) {
	srv := mgmtFake(t, mgmtapitest.Options{})
	srv.FailNextApply("mgmt")

	code, _, errOut := runMgmtCLI(t, "", "config", "apply", "--mgmt-url", srv.URL, "--yes")

	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errOut, "failed on nodes mgmt (FAILED")
}

// TestCLISecretsStayOutOfOutput runs a failed login, a failed import and a
// timed-out apply with --debug and checks that the password and the
// tokens appear in no output and no file written.
func TestCLISecretsStayOutOfOutput(t *testing.T) {
	srv := mgmtFake(t, mgmtapitest.Options{Version: "4.9.0"})
	dir := t.TempDir()
	oldConfig := filepath.Join(dir, "old.yaml")
	require.NoError(t, os.WriteFile(oldConfig, []byte("pas_config_version: 4.8.0\n"), 0o600))
	passwordFile := filepath.Join(dir, "password")
	require.NoError(t, os.WriteFile(passwordFile, []byte("Wr0ng-Pa55word\n"), 0o600))
	var outputs []string
	runAndKeep := func(wantCode int, args ...string) {
		t.Helper()
		code, out, errOut := runMgmtCLI(t, "", append([]string{"--debug"}, args...)...)
		assert.Equal(t, wantCode, code, errOut)
		outputs = append(outputs, out, errOut)
	}

	runAndKeep(exitFailure, "config", "export", "--mgmt-url", srv.URL, "--password-file", passwordFile, "--out", dir)
	runAndKeep(exitFailure, "config", "import", "--mgmt-url", srv.URL, "--yes", oldConfig)
	srv.HangNextApply()
	runAndKeep(exitFailure, "config", "apply", "--mgmt-url", srv.URL, "--yes", "--timeout", "1ms")
	runAndKeep(exitOK, "config", "export", "--mgmt-url", srv.URL, "--out", dir)

	secrets := append([]string{mgmtTestPassword, "Wr0ng-Pa55word"}, srv.Tokens()...)
	require.Len(t, secrets, 5, "three successful logins")
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	require.NoError(t, err)
	for _, f := range files {
		if filepath.Base(f) == "password" {
			continue
		}
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		outputs = append(outputs, string(data))
	}
	all := strings.Join(outputs, "\n")
	assert.Contains(t, all, "level=DEBUG")
	assert.Contains(t, all, "still running after 1ms")
	for _, s := range secrets {
		assert.NotContains(t, all, s)
	}
}
