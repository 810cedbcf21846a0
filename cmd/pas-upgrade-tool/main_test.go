package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/mgmtapi"
	"github.com/pasops/pasupgrade/mgmtapi/mgmtapitest"
)

const testPassword = "s3cret-admin"

// runResult is the outcome of one in-process run of the tool.
type runResult struct {
	code           int
	stdout, stderr string
}

// runTool runs the tool in workDir with stdin as its standard input.
func runTool(t *testing.T, workDir, stdin string, args ...string) runResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	tl := &tool{
		workDir: workDir,
		stdin:   bufio.NewReader(strings.NewReader(stdin)),
		stdout:  &stdout,
		stderr:  &stderr,
		readSecret: func(int) ([]byte, error) {
			t.Fatal("the password was read from a terminal, but stdin is not one")
			return nil, nil
		},
	}
	code := tl.main(context.Background(), args)
	return runResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func startServer(t *testing.T, version string) *mgmtapitest.Server {
	t.Helper()
	return mgmtapitest.Start(t, mgmtapitest.Options{
		Version: version,
		Users:   map[string]string{"admin": testPassword},
	})
}

func assertNoSecret(t *testing.T, r runResult) {
	t.Helper()
	assert.NotContains(t, r.stdout, testPassword)
	assert.NotContains(t, r.stderr, testPassword)
}

func TestPreUpgradeWritesExport(t *testing.T) {
	srv := startServer(t, "4.8.0")
	running := "pas_config_version: 4.8.0\nservices:\n  - name: api\n"
	require.NoError(t, srv.SetRunningConfig(strings.NewReader(running)))
	work := t.TempDir()

	r := runTool(t, work, testPassword+"\n", "--frontend-baseurl", srv.URL, "pre-upgrade")

	require.Equal(t, exitOK, r.code, r.stderr)
	data, err := os.ReadFile(filepath.Join(work, exportFile))
	require.NoError(t, err)
	assert.Equal(t, running, string(data))
	assertNoSecret(t, r)
}

func TestPreUpgradeWrongPassword(t *testing.T) {
	srv := startServer(t, "4.8.0")
	work := t.TempDir()

	r := runTool(t, work, "wrong-password\n", "--frontend-baseurl", srv.URL, "pre-upgrade")

	assert.Equal(t, exitError, r.code)
	assert.Contains(t, r.stderr, "wrong user name or password")
	assert.NotContains(t, r.stderr, "wrong-password")
	assert.NoFileExists(t, filepath.Join(work, exportFile))
}

func TestPreUpgradeDroppedExportLeavesNoFile(t *testing.T) {
	srv := startServer(t, "4.8.0")
	require.NoError(t, srv.SetRunningConfigSize(1<<20))
	// More drops than the client retries a GET.
	srv.DropNext("/api/config/export", 10, 1000)
	work := t.TempDir()

	r := runTool(t, work, testPassword+"\n", "--frontend-baseurl", srv.URL, "pre-upgrade")

	assert.Equal(t, exitError, r.code)
	assert.Contains(t, r.stderr, "exporting the running configuration")
	entries, err := os.ReadDir(work)
	require.NoError(t, err)
	assert.Empty(t, entries, "no partial or temporary file is left")
}

func TestPreUpgradeTLSWithCACert(t *testing.T) {
	srv := mgmtapitest.StartTLS(t, mgmtapitest.Options{Users: map[string]string{"admin": testPassword}})
	tests := []struct {
		name    string
		caPEM   []byte
		code    int
		message string
	}{
		{"matching CA", srv.CACertPEM, exitOK, ""},
		{"not PEM", []byte{0x30, 0x82, 0x01, 0x0a}, exitError, "no PEM certificates in"},
		{"other CA", otherCAPEM(t), exitError, "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			work := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(work, "ca.pem"), tt.caPEM, 0o644))

			r := runTool(t, work, testPassword+"\n",
				"--frontend-baseurl", srv.URL, "--cacert", "ca.pem", "pre-upgrade")

			assert.Equal(t, tt.code, r.code, r.stderr)
			assert.Contains(t, r.stderr, tt.message)
		})
	}
}

func otherCAPEM(t *testing.T) []byte {
	t.Helper()
	ca, err := mgmtapitest.NewCA()
	require.NoError(t, err)
	return ca.CertPEM
}

func TestPasswordFromTerminal(t *testing.T) {
	srv := startServer(t, "4.8.0")
	work := t.TempDir()
	var stdout, stderr bytes.Buffer
	tl := &tool{
		workDir:    work,
		stdin:      bufio.NewReader(strings.NewReader("")),
		stdinIsTTY: true,
		stdout:     &stdout,
		stderr:     &stderr,
		readSecret: func(int) ([]byte, error) { return []byte(testPassword), nil },
	}

	code := tl.main(context.Background(), []string{"--frontend-baseurl", srv.URL, "pre-upgrade"})

	require.Equal(t, exitOK, code, stderr.String())
	assert.Contains(t, stdout.String(), "Password for admin: ")
	assert.NotContains(t, stdout.String(), testPassword)
}

func TestPasswordNotFromEnvironment(t *testing.T) {
	srv := startServer(t, "4.8.0")
	t.Setenv("PAS_ADMIN_PASSWORD", testPassword)
	t.Setenv("PASSWORD", testPassword)

	r := runTool(t, t.TempDir(), "", "--frontend-baseurl", srv.URL, "pre-upgrade")

	assert.Equal(t, exitError, r.code)
	assert.Contains(t, r.stderr, "reading the password from stdin")
	assert.Empty(t, srv.RequestsTo("POST", "/api/login"), "no login without a password")
}

func TestConvertConfigCommand(t *testing.T) {
	export := "pas_config_version: 4.8.0\nkeep: 1\nlegacy_auth:\n  mode: basic\nafter: 2\n"
	tests := []struct {
		name      string
		stdin     string
		code      int
		converted string // empty: no file is written
		message   string
	}{
		{"answer yes", "y\n", exitOK, "pas_config_version: 4.9.0\nkeep: 1\nafter: 2\n", ""},
		{"answer no", "n\n", exitNeedAnswer, "", "conversion aborted at legacy_auth"},
		{"empty answer", "\n", exitNeedAnswer, "", "conversion aborted at legacy_auth"},
		{"no answer", "", exitNeedAnswer, "", "legacy_auth cannot be converted automatically and stdin ended"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			work := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(work, exportFile), []byte(export), 0o644))

			r := runTool(t, work, tt.stdin, "convert-config")

			assert.Equal(t, tt.code, r.code, r.stderr)
			assert.Contains(t, r.stdout, "Convert legacy_auth by dropping it? Proceed? [y/N] ")
			assert.Contains(t, r.stderr, tt.message)
			data, err := os.ReadFile(filepath.Join(work, convertedFile))
			if tt.converted == "" {
				assert.ErrorIs(t, err, os.ErrNotExist)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.converted, string(data))
		})
	}
}

func TestConvertConfigWithoutExport(t *testing.T) {
	r := runTool(t, t.TempDir(), "", "convert-config")

	assert.Equal(t, exitError, r.code)
	assert.Contains(t, r.stderr, "run pre-upgrade in this directory first")
}

func TestPostUpgrade(t *testing.T) {
	converted := "pas_config_version: 4.9.0\nservices: []\n"
	tests := []struct {
		name    string
		version string
		fault   func(*mgmtapitest.Server)
		file    string
		timeout string
		code    int
		message string
	}{
		{"applied", "4.9.0", nil, converted, "5", exitOK, ""},
		{"apply fails", "4.9.0", func(s *mgmtapitest.Server) { s.FailNextApply("mgmt") }, converted, "5",
			exitApply, "failed on nodes mgmt (FAILED: reload failed"},
		{"apply hangs", "4.9.0", func(s *mgmtapitest.Server) { s.HangNextApply() }, converted, "1",
			exitApply, "still running after 1s; nodes not finished: mgmt"},
		{"old server", "4.8.0", nil, converted, "5", exitError, "incompatible_config"},
		{"no converted file", "4.9.0", nil, "", "5", exitError, "run convert-config in this directory first"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, tt.version)
			if tt.fault != nil {
				tt.fault(srv)
			}
			work := t.TempDir()
			if tt.file != "" {
				require.NoError(t, os.WriteFile(filepath.Join(work, convertedFile), []byte(tt.file), 0o644))
			}

			r := runTool(t, work, testPassword+"\n", "--frontend-baseurl", srv.URL,
				"post-upgrade", "--config-apply-timeout", tt.timeout)

			assert.Equal(t, tt.code, r.code, r.stderr)
			assert.Contains(t, r.stderr, tt.message)
			assertNoSecret(t, r)
			if tt.code == exitOK {
				info, err := srv.RunningConfig()
				require.NoError(t, err)
				assert.Equal(t, "4.9.0", info.Version)
			}
		})
	}
}

func TestPostUpgradeTimeoutIsBounded(t *testing.T) {
	srv := startServer(t, "4.9.0")
	srv.HangNextApply()
	work := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(work, convertedFile),
		[]byte("pas_config_version: 4.9.0\n"), 0o644))

	done := make(chan runResult, 1)
	go func() {
		done <- runTool(t, work, testPassword+"\n", "--frontend-baseurl", srv.URL,
			"post-upgrade", "--config-apply-timeout", "1")
	}()
	select {
	case r := <-done:
		assert.Equal(t, exitApply, r.code)
	case <-time.After(time.Minute):
		t.Fatal("post-upgrade did not return after its timeout")
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		message string
	}{
		{"no subcommand", nil, "missing subcommand"},
		{"unknown subcommand", []string{"upgrade"}, `unknown subcommand "upgrade"`},
		{"unknown flag", []string{"--password", "x", "pre-upgrade"}, "flag provided but not defined"},
		{"bad base URL", []string{"--frontend-baseurl", "localhost:80", "pre-upgrade"}, "is not an http:// or https:// URL"},
		{"zero timeout", []string{"post-upgrade", "--config-apply-timeout", "0"}, "at least 1"},
		{"overflowing timeout", []string{"post-upgrade", "--config-apply-timeout", "9300000000"}, "at most 9223372036"},
		{"extra argument", []string{"convert-config", "file.yaml"}, "takes no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runTool(t, t.TempDir(), "password\n", tt.args...)

			assert.Equal(t, exitUsage, r.code)
			assert.Contains(t, r.stderr, tt.message)
		})
	}
}

func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"post-upgrade", "--help"}} {
		r := runTool(t, t.TempDir(), "", args...)

		assert.Equal(t, exitOK, r.code, args)
		assert.Contains(t, r.stderr, "config-apply-timeout", args)
	}
}

func TestPostUpgradeUnconfirmedApply(t *testing.T) {
	srv := startServer(t, "4.9.0")
	srv.DelayNext("/api/config/apply", 1, 3*time.Second)
	work := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(work, convertedFile),
		[]byte("pas_config_version: 4.9.0\n"), 0o644))
	var stdout, stderr bytes.Buffer
	tl := &tool{
		workDir:       work,
		stdin:         bufio.NewReader(strings.NewReader(testPassword + "\n")),
		stdout:        &stdout,
		stderr:        &stderr,
		clientOptions: []mgmtapi.Option{mgmtapi.WithTimeout(500 * time.Millisecond)},
	}

	code := tl.main(context.Background(), []string{"--frontend-baseurl", srv.URL, "post-upgrade"})

	assert.Equal(t, exitApply, code, stderr.String())
	assert.Contains(t, stderr.String(), "starting the config apply")
}

func TestMessagesNameTheProgram(t *testing.T) {
	var stdout, stderr bytes.Buffer
	tl := &tool{
		program: "pas-mgmt-upgrade-config",
		workDir: t.TempDir(),
		stdin:   bufio.NewReader(strings.NewReader("")),
		stdout:  &stdout,
		stderr:  &stderr,
	}

	code := tl.main(context.Background(), nil)

	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr.String(), "usage: pas-mgmt-upgrade-config [--frontend-baseurl URL]")
	assert.Contains(t, stderr.String(), "pas-mgmt-upgrade-config: missing subcommand")
	assert.NotContains(t, stderr.String(), "pas-upgrade-tool")
}
