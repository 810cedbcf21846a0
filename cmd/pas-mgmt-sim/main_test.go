package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
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

func TestParseFlagsErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing htpasswd", []string{"--state-dir", "d"}, "missing --htpasswd"},
		{"missing state dir", []string{"--htpasswd", "f"}, "missing --state-dir"},
		{"cert without key", []string{"--htpasswd", "f", "--state-dir", "d", "--tls-cert", "c"}, "go together"},
		{"argument", []string{"--htpasswd", "f", "--state-dir", "d", "extra"}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseFlags(tt.args, io.Discard)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestHelpListsControlEndpoints(t *testing.T) {
	var out bytes.Buffer
	_, err := parseFlags([]string{"--help"}, &out)
	require.Error(t, err)
	for _, want := range []string{"/_sim/faults", "apply_hang", "node_reload_failed", "/_sim/state", "--status-file"} {
		assert.Contains(t, out.String(), want)
	}
}

// sim is a running simulator for one test.
type sim struct {
	url    string
	client *http.Client
	stop   func()
}

func startSim(t *testing.T, c config) *sim {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() { done <- serve(ctx, c, &logs, ready) }()

	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("simulator did not start: %v", err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		require.NoError(t, <-done)
	}
	t.Cleanup(stop)

	s := &sim{url: "http://" + addr, client: &http.Client{Timeout: 10 * time.Second}, stop: stop}
	if c.tlsCert != "" {
		s.url = "https://" + addr
	}
	return s
}

func (s *sim) login(t *testing.T, password string) (string, int) {
	t.Helper()
	body, _ := json.Marshal(mgmtapi.LoginRequest{Username: "admin", Password: password})
	resp, err := s.client.Post(s.url+"/api/login", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var reply mgmtapi.LoginReply
	_ = json.NewDecoder(resp.Body).Decode(&reply)
	return reply.Token, resp.StatusCode
}

func (s *sim) do(t *testing.T, token, method, path string, body io.Reader, contentType string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, body)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := s.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, data
}

func (s *sim) upload(t *testing.T, token string, content string) (*http.Response, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	part, err := mw.CreateFormFile("file", "config.yaml")
	require.NoError(t, err)
	part.Write([]byte(content))
	require.NoError(t, mw.Close())
	return s.do(t, token, http.MethodPost, "/api/config/import", &buf, mw.FormDataContentType())
}

func writeHtpasswd(t *testing.T, line string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users.htpass")
	require.NoError(t, os.WriteFile(path, []byte(line), 0o600))
	return path
}

func TestSimulatorKeepsStateAcrossRestart(t *testing.T) {
	c := config{
		listen:        "127.0.0.1:0",
		htpasswd:      writeHtpasswd(t, mgmtapitest.HtpasswdSHA("admin", "s3cret")),
		stateDir:      filepath.Join(t.TempDir(), "state"),
		version:       "4.8.0",
		enableControl: true,
	}
	first := startSim(t, c)
	token, status := first.login(t, "s3cret")
	require.Equal(t, http.StatusOK, status)

	config := "pas_config_version: 4.8.0\nservices: [restored]\n"
	resp, body := first.upload(t, token, config)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	resp, body = first.do(t, token, http.MethodPost, "/api/config/apply", nil, "")
	require.Equal(t, http.StatusAccepted, resp.StatusCode, string(body))
	first.stop()

	// The restarted simulator has the applied configuration and the
	// finished job, but no tokens.
	second := startSim(t, c)
	resp, _ = second.do(t, token, http.MethodGet, "/api/version", nil, "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	token, status = second.login(t, "s3cret")
	require.Equal(t, http.StatusOK, status)

	resp, body = second.do(t, token, http.MethodGet, "/api/config/export?kind=running", nil, "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, config, string(body))
	assert.Equal(t, `attachment; filename="pas-config-running-4.8.0.yaml"`, resp.Header.Get("Content-Disposition"))

	resp, body = second.do(t, token, http.MethodGet, "/api/config/apply/apply-2", nil, "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var job mgmtapi.ApplyJob
	require.NoError(t, json.Unmarshal(body, &job))
	assert.Equal(t, mgmtapi.ApplySucceeded, job.State)
}

func TestSimulatorRereadsHtpasswdAtLogin(t *testing.T) {
	path := writeHtpasswd(t, mgmtapitest.HtpasswdSHA("admin", "old-password"))
	s := startSim(t, config{listen: "127.0.0.1:0", htpasswd: path, stateDir: t.TempDir(), version: "4.9.0"})
	_, status := s.login(t, "old-password")
	require.Equal(t, http.StatusOK, status)

	// The 4.9.0 package re-hashes the admin password with bcrypt.
	line, err := mgmtapitest.HtpasswdBcrypt("admin", "new-password")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, []byte(line), 0o600))

	_, status = s.login(t, "old-password")
	assert.Equal(t, http.StatusUnauthorized, status)
	_, status = s.login(t, "new-password")
	assert.Equal(t, http.StatusOK, status)
}

func TestSimulatorRejectsOldConfigOn490(t *testing.T) {
	s := startSim(t, config{
		listen: "127.0.0.1:0", htpasswd: writeHtpasswd(t, mgmtapitest.HtpasswdSHA("admin", "pw")),
		stateDir: t.TempDir(), version: "4.9.0",
	})
	token, _ := s.login(t, "pw")
	resp, body := s.upload(t, token, "pas_config_version: 4.8.0\n")
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	var e mgmtapi.ErrorBody
	require.NoError(t, json.Unmarshal(body, &e))
	assert.Equal(t, "incompatible_config", e.Error.Code)
}

func TestSimulatorStatusFile(t *testing.T) {
	statusFile := filepath.Join(t.TempDir(), "status.json")
	nodes := mgmtapi.Status{Nodes: []mgmtapi.Node{
		{Name: "mgmt-1", Role: "mgmt", Components: []mgmtapi.Component{{Name: "mgmt", Version: "4.9.0", State: "running"}}},
		{Name: "core-1", Role: "core", Components: []mgmtapi.Component{{Name: "core", Version: "4.8.0", State: "stopped"}}},
	}}
	data, _ := json.Marshal(nodes)
	require.NoError(t, os.WriteFile(statusFile, data, 0o644))
	s := startSim(t, config{
		listen: "127.0.0.1:0", htpasswd: writeHtpasswd(t, mgmtapitest.HtpasswdSHA("admin", "pw")),
		stateDir: t.TempDir(), version: "4.9.0", statusFile: statusFile, enableControl: true,
	})
	token, _ := s.login(t, "pw")

	fault := `{"kind":"node_reload_failed","nodes":["core-1"]}`
	resp, body := s.do(t, "", http.MethodPost, "/_sim/faults", strings.NewReader(fault), "application/json")
	require.Equal(t, http.StatusNoContent, resp.StatusCode, string(body))

	resp, body = s.do(t, token, http.MethodGet, "/api/status", nil, "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var got mgmtapi.Status
	require.NoError(t, json.Unmarshal(body, &got))
	require.Len(t, got.Nodes, 2)
	assert.Equal(t, "stopped", got.Nodes[1].Components[0].State)
	assert.Equal(t, mgmtapi.ReloadUnknown, got.Nodes[0].Components[0].ReloadSuccess)
	assert.Equal(t, mgmtapi.ReloadFailed, got.Nodes[1].Components[0].ReloadSuccess)
	assert.Equal(t, []string{"core-1"}, got.FailedReloads())
}

func TestSimulatorRejectsBadKeyPair(t *testing.T) {
	dir := t.TempDir()
	certFile := filepath.Join(dir, "cert.pem")
	require.NoError(t, os.WriteFile(certFile, []byte("not a certificate"), 0o600))
	c := config{
		listen: "127.0.0.1:0", htpasswd: writeHtpasswd(t, mgmtapitest.HtpasswdSHA("admin", "pw")),
		stateDir: t.TempDir(), version: "4.8.0", tlsCert: certFile, tlsKey: certFile,
	}

	err := serve(context.Background(), c, io.Discard, nil)

	require.Error(t, err)
	assert.Contains(t, err.Error(), "loading --tls-cert and --tls-key")
}

func TestSimulatorServesTLS(t *testing.T) {
	ca, err := mgmtapitest.NewCA()
	require.NoError(t, err)
	certPEM, keyPEM, err := ca.IssuePEM("localhost", "127.0.0.1")
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, certPEM, 0o600))
	require.NoError(t, os.WriteFile(keyFile, keyPEM, 0o600))

	s := startSim(t, config{
		listen: "127.0.0.1:0", htpasswd: writeHtpasswd(t, mgmtapitest.HtpasswdSHA("admin", "pw")),
		stateDir: t.TempDir(), version: "4.8.0", tlsCert: certFile, tlsKey: keyFile,
	})
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(ca.CertPEM))
	s.client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	_, status := s.login(t, "pw")
	assert.Equal(t, http.StatusOK, status)
}
