package main

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/mgmtapi"
	"github.com/pasops/pasupgrade/mgmtapi/mgmtapitest"
)

func TestStatusAllOK(t *testing.T) {
	srv := mgmtFake(t, mgmtapitest.Options{})

	code, out, errOut := runMgmtCLI(t, "", "status", "--mgmt-url", srv.URL)

	assert.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "NODE")
	assert.Contains(t, out, "RELOAD SUCCESS")
	assert.Regexp(t, `mgmt\s+mgmt\s+storage\s+4\.8\.0\s+running\s+UNKNOWN`, out)
}

func TestStatusFailedReload(t *testing.T) {
	srv := mgmtFake(t, mgmtapitest.Options{})
	srv.FailNodeReload("mgmt")

	code, out, errOut := runMgmtCLI(t, "", "status", "--mgmt-url", srv.URL)

	assert.Equal(t, exitCheckFailed, code)
	assert.Contains(t, out, "FAILED")
	assert.Contains(t, errOut, "reload success is FAILED on mgmt")
	assert.Contains(t, errOut, "status --fix")
	assert.Empty(t, srv.RequestsTo(http.MethodPost, "/api/config/apply"))
}

func TestStatusFix(t *testing.T) {
	srv := mgmtFake(t, mgmtapitest.Options{})
	srv.FailNodeReload("mgmt")

	code, out, errOut := runMgmtCLI(t, "", "status", "--mgmt-url", srv.URL, "--fix", "--yes")

	assert.Equal(t, exitOK, code, errOut)
	assert.Len(t, srv.RequestsTo(http.MethodPost, "/api/config/apply"), 1)
	assert.Regexp(t, `mgmt\s+mgmt\s+core\s+4\.8\.0\s+running\s+OK`, out)
}

func TestStatusFixStillFailing(t *testing.T) {
	srv := mgmtFake(t, mgmtapitest.Options{})
	srv.FailNodeReload("mgmt")
	srv.FailNextApply("mgmt")

	code, _, errOut := runMgmtCLI(t, "", "status", "--mgmt-url", srv.URL, "--fix", "--yes")

	assert.Equal(t, exitCheckFailed, code)
	assert.Contains(t, errOut, "failed on nodes mgmt")
}

func TestStatusFixDryRun(t *testing.T) {
	srv := mgmtFake(t, mgmtapitest.Options{})
	srv.FailNodeReload("mgmt")

	code, out, errOut := runMgmtCLI(t, "", "status", "--mgmt-url", srv.URL, "--fix", "--dry-run")

	assert.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "would run a config apply")
	assert.Empty(t, srv.RequestsTo(http.MethodPost, "/api/config/apply"))
}

// TestCommandsAgainstSimulator builds pas-mgmt-sim and runs the upgrade's
// management steps against it as a separate process.
func TestCommandsAgainstSimulator(t *testing.T) {
	if testing.Short() {
		t.Skip("builds pas-mgmt-sim; skipped with -short")
	}
	dir := t.TempDir()
	sim := filepath.Join(dir, "pas-mgmt-sim")
	build := exec.Command("go", "build", "-o", sim, "github.com/pasops/pasupgrade/cmd/pas-mgmt-sim")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())

	htpasswd := filepath.Join(dir, "users.htpass")
	require.NoError(t, os.WriteFile(htpasswd, []byte(mgmtapitest.HtpasswdSHA("admin", mgmtTestPassword)), 0o600))
	passwordFile := filepath.Join(dir, "password")
	require.NoError(t, os.WriteFile(passwordFile, []byte(mgmtTestPassword+"\n"), 0o600))
	url := startSimProcess(t, sim, "--htpasswd", htpasswd, "--state-dir", filepath.Join(dir, "state"),
		"--enable-control", "--apply-duration", "50ms")
	mgmt := []string{"--mgmt-url", url, "--password-file", passwordFile}

	exportDir := filepath.Join(dir, "export")
	require.NoError(t, os.Mkdir(exportDir, 0o700))
	code, _, errOut := runMgmtCLI(t, "", append([]string{"config", "export", "--out", exportDir}, mgmt...)...)
	require.Equal(t, exitOK, code, errOut)
	exported, err := os.ReadFile(filepath.Join(exportDir, "pas-config-running-4.8.0.yaml"))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(exported), "pas_config_version: 4.8.0\n"))

	changed := filepath.Join(dir, "changed.yaml")
	require.NoError(t, os.WriteFile(changed, []byte("pas_config_version: 4.8.0\nservices: [changed]\n"), 0o600))
	code, _, errOut = runMgmtCLI(t, "", append([]string{"config", "import", "--yes", changed}, mgmt...)...)
	require.Equal(t, exitOK, code, errOut)
	code, _, errOut = runMgmtCLI(t, "", append([]string{"config", "apply", "--yes", "--timeout", "10s"}, mgmt...)...)
	require.Equal(t, exitOK, code, errOut)

	resp, err := http.Post(url+"/_sim/faults", "application/json",
		strings.NewReader(`{"kind":"node_reload_failed","nodes":["mgmt"]}`))
	require.NoError(t, err)
	resp.Body.Close()
	code, _, _ = runMgmtCLI(t, "", append([]string{"status"}, mgmt...)...)
	assert.Equal(t, exitCheckFailed, code)
	code, out, errOut := runMgmtCLI(t, "", append([]string{"status", "--fix", "--yes"}, mgmt...)...)
	assert.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `mgmt\s+mgmt\s+mgmt\s+4\.8\.0\s+running\s+OK`, out)

	code, _, errOut = runMgmtCLI(t, "", append([]string{"config", "export", "--out", exportDir}, mgmt...)...)
	require.Equal(t, exitOK, code, errOut)
	exported, err = os.ReadFile(filepath.Join(exportDir, "pas-config-running-4.8.0.yaml"))
	require.NoError(t, err)
	assert.Equal(t, "pas_config_version: 4.8.0\nservices: [changed]\n", string(exported))
}

// startSimProcess starts the simulator on a free loopback port, waits for
// its first reply and stops it when the test ends.
func startSimProcess(t *testing.T, sim string, args ...string) string {
	t.Helper()
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port := freePort(t)
		cmd := exec.Command(sim, append([]string{"--listen", "127.0.0.1:" + port}, args...)...)
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		url := "http://127.0.0.1:" + port
		if lastErr = waitForHTTP(url + "/api/version"); lastErr == nil {
			t.Cleanup(func() {
				cmd.Process.Signal(os.Interrupt)
				cmd.Wait()
			})
			return url
		}
		cmd.Process.Kill()
		cmd.Wait()
	}
	t.Fatalf("pas-mgmt-sim did not start: %v", lastErr)
	return ""
}

func waitForHTTP(url string) error {
	var err error
	for i := 0; i < 100; i++ {
		var resp *http.Response
		resp, err = http.Get(url)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	require.NoError(t, err)
	return port
}

func TestStatusJSON(t *testing.T) {
	srv := mgmtFake(t, mgmtapitest.Options{})
	srv.FailNodeReload("mgmt")

	code, out, _ := runMgmtCLI(t, "", "--json", "status", "--mgmt-url", srv.URL)

	assert.Equal(t, exitCheckFailed, code)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2, "one status event and one error event")
	var ev struct {
		Type string `json:"type"`
		Data struct {
			Nodes         []mgmtapi.Node `json:"nodes"`
			FailedReloads []string       `json:"failed_reloads"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &ev))
	assert.Equal(t, "status", ev.Type)
	assert.Equal(t, []string{"mgmt"}, ev.Data.FailedReloads)
	require.Len(t, ev.Data.Nodes, 1)
	assert.Len(t, ev.Data.Nodes[0].Components, 3)
	assert.Contains(t, lines[1], `"type":"error"`)
}

func TestStatusJSONNoFailedReloads(t *testing.T) {
	srv := mgmtFake(t, mgmtapitest.Options{})

	code, out, errOut := runMgmtCLI(t, "", "--json", "status", "--mgmt-url", srv.URL)

	assert.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, `"failed_reloads":[]`, "an empty list, not null")
}
