package mgmtapitest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/mgmtapi"
)

func TestFaultValidate(t *testing.T) {
	tests := []struct {
		name  string
		fault Fault
		want  string
	}{
		{"status below 400", Fault{Kind: FaultStatus, Status: 200}, "from 400 to 599"},
		{"html below 200", Fault{Kind: FaultHTML, Status: 100}, "from 200 to 599"},
		{"delay zero", Fault{Kind: FaultDelay}, "positive delay"},
		{"drop negative", Fault{Kind: FaultDrop, AfterBytes: -1}, "after_bytes >= 0"},
		{"apply fail without nodes", Fault{Kind: FaultApplyFail}, "at least one node"},
		{"unknown kind", Fault{Kind: "explode"}, `unknown fault kind "explode"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.fault.validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestFaultMatchesPath(t *testing.T) {
	tests := []struct {
		pattern, path string
		want          bool
	}{
		{"", "/api/status", true},
		{"/api/status", "/api/status", true},
		{"/api/status", "/api/statusx", false},
		{"/api/config/*", "/api/config/apply/apply-1", true},
		{"/api/config/*", "/api/status", false},
	}
	for _, tt := range tests {
		f := Fault{Path: tt.pattern}
		assert.Equal(t, tt.want, f.matches(tt.path), "pattern %q, path %q", tt.pattern, tt.path)
	}
}

func TestFaultCounts(t *testing.T) {
	h := newTestHandler(t, Options{})
	h.FailNext("/a", 2, 503)
	require.NoError(t, h.AddFault(Fault{Kind: FaultStatus, Path: "/b", Count: -1, Status: 500}))

	h.mu.Lock()
	defer h.mu.Unlock()
	assert.NotNil(t, h.takeRequestFault("/a"))
	assert.NotNil(t, h.takeRequestFault("/a"))
	assert.Nil(t, h.takeRequestFault("/a"), "a count of 2 was used three times")
	for i := 0; i < 5; i++ {
		assert.NotNil(t, h.takeRequestFault("/b"), "a negative count ran out")
	}
}

func TestHtpasswdFormats(t *testing.T) {
	bcryptLine, err := HtpasswdBcrypt("admin", "s3cret")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(bcryptLine, "admin:$2y$"))
	tests := []struct {
		name, file, user, password string
		want                       bool
		wantErr                    string
	}{
		{name: "sha match", file: HtpasswdSHA("admin", "s3cret"), user: "admin", password: "s3cret", want: true},
		{name: "sha mismatch", file: HtpasswdSHA("admin", "s3cret"), user: "admin", password: "other"},
		{name: "bcrypt match", file: bcryptLine, user: "admin", password: "s3cret", want: true},
		{name: "bcrypt mismatch", file: bcryptLine, user: "admin", password: "other"},
		{name: "unknown user", file: HtpasswdSHA("admin", "s3cret"), user: "root", password: "s3cret"},
		{name: "second line", file: "other:{SHA}x\n" + HtpasswdSHA("admin", "s3cret"), user: "admin",
			password: "s3cret", want: true},
		{name: "plain text entry", file: "admin:s3cret\n", user: "admin", password: "s3cret",
			wantErr: "unsupported password hash format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "users.htpass")
			require.NoError(t, os.WriteFile(path, []byte(tt.file), 0o600))
			ok, err := checkHtpasswd(path, tt.user, tt.password)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.NotContains(t, err.Error(), tt.password)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, ok)
		})
	}
}

func TestSyntheticReader(t *testing.T) {
	for _, size := range []int64{64, 1000, 3 * int64(len(fillerBlock))} {
		var buf bytes.Buffer
		n, err := io.CopyBuffer(&buf, newSyntheticReader("4.9.0", size), make([]byte, 777))
		require.NoError(t, err)
		assert.Equal(t, size, n)
		version, err := configVersion(bytes.NewReader(buf.Bytes()))
		require.NoError(t, err)
		assert.Equal(t, "4.9.0", version)
	}
}

func TestConfigVersion(t *testing.T) {
	tests := []struct {
		input, want, wantErr string
	}{
		{input: "pas_config_version: 4.8.0\nrest: 1\n", want: "4.8.0"},
		{input: "pas_config_version:4.9.0", want: "4.9.0"},
		{input: "services: []\n", wantErr: "first line"},
		{input: "pas_config_version:\n", wantErr: "first line"},
		{input: "", wantErr: "first line"},
	}
	for _, tt := range tests {
		got, err := configVersion(strings.NewReader(tt.input))
		if tt.wantErr != "" {
			assert.ErrorContains(t, err, tt.wantErr, "input %q", tt.input)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, tt.want, got)
	}
}

// serve sends one request to h and returns the recorded reply.
func serve(h http.Handler, method, path, token string, body io.Reader) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func login(t *testing.T, h http.Handler, password string) string {
	t.Helper()
	rec := serve(h, http.MethodPost, "/api/login", "", strings.NewReader(`{"username":"admin","password":"`+password+`"}`))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var reply mgmtapi.LoginReply
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &reply))
	return reply.Token
}

func TestHandlerRoutingErrors(t *testing.T) {
	h := newTestHandler(t, Options{Users: map[string]string{"admin": "pw"}})
	token := login(t, h, "pw")
	tests := []struct {
		name, method, path, token string
		wantStatus                int
		wantCode                  string
	}{
		{"no token", http.MethodGet, "/api/status", "", http.StatusUnauthorized, "unauthorized"},
		{"bad token", http.MethodGet, "/api/status", "nope", http.StatusUnauthorized, "unauthorized"},
		{"wrong method", http.MethodPost, "/api/status", token, http.StatusMethodNotAllowed, "method_not_allowed"},
		{"unknown path", http.MethodGet, "/api/nothing", token, http.StatusNotFound, "not_found"},
		{"unknown job", http.MethodGet, "/api/config/apply/apply-9", token, http.StatusNotFound, "not_found"},
		{"unknown kind", http.MethodGet, "/api/config/export?kind=staged", token, http.StatusBadRequest, "invalid_kind"},
		{"no pending", http.MethodGet, "/api/config/export?kind=pending", token, http.StatusNotFound, "not_found"},
		{"control off", http.MethodGet, "/_sim/state", token, http.StatusNotFound, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(h, tt.method, tt.path, tt.token, nil)
			assert.Equal(t, tt.wantStatus, rec.Code)
			var body mgmtapi.ErrorBody
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
			assert.Equal(t, tt.wantCode, body.Error.Code)
			assert.NotEmpty(t, body.Error.RequestID)
			assert.Equal(t, rec.Header().Get("X-Request-Id"), body.Error.RequestID)
		})
	}
}

func TestControlEndpoints(t *testing.T) {
	h := newTestHandler(t, Options{Users: map[string]string{"admin": "pw"}, EnableControl: true})
	token := login(t, h, "pw")

	rec := serve(h, http.MethodPost, "/_sim/faults", "", strings.NewReader(`{"kind":"status","status":99}`))
	assert.Equal(t, http.StatusBadRequest, rec.Code)
	assert.Contains(t, rec.Body.String(), "from 400 to 599")

	rec = serve(h, http.MethodPost, "/_sim/faults", "", strings.NewReader(`{"kind":"status","path":"/api/version","status":503}`))
	require.Equal(t, http.StatusNoContent, rec.Code)
	assert.Equal(t, http.StatusServiceUnavailable, serve(h, http.MethodGet, "/api/version", token, nil).Code)
	assert.Equal(t, http.StatusOK, serve(h, http.MethodGet, "/api/version", token, nil).Code)

	rec = serve(h, http.MethodPost, "/_sim/faults", "", strings.NewReader(`{"kind":"status","count":-1,"status":502}`))
	require.Equal(t, http.StatusNoContent, rec.Code)
	require.Equal(t, http.StatusNoContent, serve(h, http.MethodDelete, "/_sim/faults", "", nil).Code)
	assert.Equal(t, http.StatusOK, serve(h, http.MethodGet, "/api/version", token, nil).Code)

	config := "pas_config_version: 4.8.0\nfrom: control\n"
	rec = serve(h, http.MethodPut, "/_sim/running-config", "", strings.NewReader(config))
	require.Equal(t, http.StatusNoContent, rec.Code, rec.Body.String())
	rec = serve(h, http.MethodPut, "/_sim/running-config", "", strings.NewReader("no version line\n"))
	assert.Equal(t, http.StatusBadRequest, rec.Code)

	require.Equal(t, http.StatusNoContent, serve(h, http.MethodPost, "/_sim/expire-tokens", "", nil).Code)
	assert.Equal(t, http.StatusUnauthorized, serve(h, http.MethodGet, "/api/version", token, nil).Code)

	rec = serve(h, http.MethodGet, "/_sim/state", "", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	var dump Dump
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &dump))
	sum := sha256.Sum256([]byte(config))
	assert.Equal(t, hex.EncodeToString(sum[:]), dump.Running.SHA256)
	assert.Equal(t, int64(len(config)), dump.Running.Size)
	assert.NotEmpty(t, dump.Requests)
	assert.NotContains(t, rec.Body.String(), token)
	assert.NotContains(t, rec.Body.String(), `"pw"`)
}

func TestHandlerStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Users: map[string]string{"admin": "pw"}, StateDir: dir, ApplyDuration: time.Hour}
	h := newTestHandler(t, opts)
	h.FailNodeReload("core-1")
	require.NoError(t, h.SetRunningConfigSize(4096))
	token := login(t, h, "pw")
	rec := serve(h, http.MethodPost, "/api/config/apply", token, nil)
	require.Equal(t, http.StatusAccepted, rec.Code)

	restarted := newTestHandler(t, opts)

	info, err := restarted.RunningConfig()
	require.NoError(t, err)
	assert.Equal(t, int64(4096), info.Size)
	token = login(t, restarted, "pw")
	rec = serve(restarted, http.MethodPost, "/api/config/apply", token, nil)
	assert.Equal(t, http.StatusConflict, rec.Code, "the running apply was lost")
	restarted.mu.Lock()
	assert.Equal(t, mgmtapi.ReloadFailed, restarted.st.NodeReload["core-1"])
	restarted.mu.Unlock()
}

func TestNewHandlerRejectsMissingStateDir(t *testing.T) {
	_, err := NewHandler(Options{StateDir: filepath.Join(t.TempDir(), "missing")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "create it first")

	_, err = NewHandler(Options{})
	assert.ErrorContains(t, err, "missing state directory")
}

func TestCorruptStateFile(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, stateFile), []byte("{"), 0o600))
	_, err := NewHandler(Options{StateDir: dir})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "remove the file to start afresh")
}

func newTestHandler(t *testing.T, opts Options) *Handler {
	t.Helper()
	if opts.StateDir == "" {
		opts.StateDir = t.TempDir()
	}
	h, err := NewHandler(opts)
	require.NoError(t, err)
	return h
}

func TestSetNodes(t *testing.T) {
	h := newTestHandler(t, Options{Users: map[string]string{"admin": "pw"}})
	nodes := []mgmtapi.Node{
		{Name: "mgmt-1", Role: "mgmt", Components: []mgmtapi.Component{{Name: "mgmt", Version: "4.9.0"}}},
		{Name: "ha-1", Role: "ha", Components: []mgmtapi.Component{{Name: "ha", Version: "4.9.0"}}},
	}
	h.SetNodes(nodes)
	nodes[0].Components[0].Version = "changed by the caller"
	h.FailNodeReload("ha-1")
	token := login(t, h, "pw")

	rec := serve(h, http.MethodGet, "/api/status", token, nil)

	require.Equal(t, http.StatusOK, rec.Code)
	var status mgmtapi.Status
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &status))
	require.Len(t, status.Nodes, 2)
	assert.Equal(t, "4.9.0", status.Nodes[0].Components[0].Version)
	assert.Equal(t, mgmtapi.ReloadUnknown, status.Nodes[0].Components[0].ReloadSuccess)
	assert.Equal(t, []string{"ha-1"}, status.FailedReloads())
}

func TestSyntheticSizeMinimum(t *testing.T) {
	h, err := NewHandler(Options{StateDir: t.TempDir()})
	require.NoError(t, err)

	assert.ErrorContains(t, h.SetRunningConfigSize(63), "use at least 64 bytes")
	assert.NoError(t, h.SetRunningConfigSize(64))
}

func TestClearFaultsEndsHungApply(t *testing.T) {
	h := newTestHandler(t, Options{Users: map[string]string{"admin": "pw"}, EnableControl: true})
	token := login(t, h, "pw")
	h.HangNextApply()
	require.Equal(t, http.StatusAccepted, serve(h, http.MethodPost, "/api/config/apply", token, nil).Code)
	require.Equal(t, http.StatusConflict, serve(h, http.MethodPost, "/api/config/apply", token, nil).Code)

	require.Equal(t, http.StatusNoContent, serve(h, http.MethodDelete, "/_sim/faults", "", nil).Code)

	rec := serve(h, http.MethodGet, "/api/config/apply/apply-1", token, nil)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Contains(t, rec.Body.String(), `"state":"succeeded"`)
	assert.Equal(t, http.StatusAccepted, serve(h, http.MethodPost, "/api/config/apply", token, nil).Code)
}
