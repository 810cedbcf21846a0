package mgmtapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/mgmtapi"
	"github.com/pasops/pasupgrade/mgmtapi/mgmtapitest"
)

// twoNodes writes a status file with a mgmt and a core node.
func twoNodes(t *testing.T) string {
	t.Helper()
	status := mgmtapi.Status{Nodes: []mgmtapi.Node{
		{Name: "mgmt-1", Role: "mgmt", Components: []mgmtapi.Component{{Name: "mgmt", Version: "4.9.0", State: "running"}}},
		{Name: "core-1", Role: "core", Components: []mgmtapi.Component{{Name: "core", Version: "4.9.0", State: "running"}}},
	}}
	data, err := json.Marshal(status)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "status.json")
	require.NoError(t, os.WriteFile(path, data, 0o644))
	return path
}

func TestApplyMakesImportRunning(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{StatusFile: twoNodes(t), ApplyDuration: time.Hour,
		Now: steppingClock(time.Minute)})
	c, polls := loggedIn(t, srv.URL, mgmtapi.WithPollInterval(time.Second))
	ctx := context.Background()
	config := "pas_config_version: 4.8.0\nservices: [applied]\n"
	_, err := c.ImportConfig(ctx, strings.NewReader(config), "new.yaml")
	require.NoError(t, err)

	job, err := c.Apply(ctx, 2*time.Hour)

	require.NoError(t, err)
	assert.Equal(t, mgmtapi.ApplySucceeded, job.State)
	assert.Equal(t, []mgmtapi.NodeResult{
		{Name: "mgmt-1", ReloadSuccess: "OK"}, {Name: "core-1", ReloadSuccess: "OK"},
	}, job.Nodes)
	assert.NotEmpty(t, polls.recorded(), "the apply finished before the first poll")
	running, err := srv.RunningConfig()
	require.NoError(t, err)
	assert.Equal(t, sha256Hex([]byte(config)), running.SHA256)
	assert.Empty(t, srv.PendingChanges())
}

// steppingClock returns a clock that moves forward by step at each reading,
// so apply jobs finish after a few polls without the test waiting.
func steppingClock(step time.Duration) func() time.Time {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(step)
		return now
	}
}

func TestApplyFailureNamesNodes(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{StatusFile: twoNodes(t)})
	srv.FailNextApply("core-1")
	c, _ := loggedIn(t, srv.URL)

	job, err := c.Apply(context.Background(), time.Minute)

	require.Error(t, err)
	assert.ErrorIs(t, err, mgmtapi.ErrApplyFailed)
	assert.Contains(t, err.Error(), "core-1 (FAILED: reload failed")
	assert.NotContains(t, err.Error(), "mgmt-1")
	assert.Equal(t, mgmtapi.ApplyFailed, job.State)

	status, err := c.Status(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []string{"core-1"}, status.FailedReloads())
}

func TestApplyTimeoutNamesNodes(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{StatusFile: twoNodes(t)})
	srv.HangNextApply()
	c, polls := loggedIn(t, srv.URL, mgmtapi.WithPollInterval(10*time.Millisecond))

	job, err := c.Apply(context.Background(), 50*time.Millisecond)

	require.Error(t, err)
	assert.ErrorIs(t, err, mgmtapi.ErrApplyTimeout)
	assert.Contains(t, err.Error(), "still running after 50ms")
	assert.Contains(t, err.Error(), "mgmt-1, core-1")
	assert.Equal(t, mgmtapi.ApplyRunning, job.State)
	assert.NotEmpty(t, polls.recorded())
	assert.Len(t, srv.RequestsTo(http.MethodPost, "/api/config/apply"), 1)
}

func TestApplyAfterFailedReloadClearsIt(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{StatusFile: twoNodes(t)})
	srv.FailNodeReload("core-1")
	c, _ := loggedIn(t, srv.URL)
	ctx := context.Background()

	// No pending changes: the guide still requires an apply.
	changes, err := c.PendingChanges(ctx)
	require.NoError(t, err)
	require.Empty(t, changes)
	_, err = c.Apply(ctx, time.Minute)
	require.NoError(t, err)

	status, err := c.Status(ctx)
	require.NoError(t, err)
	assert.Empty(t, status.FailedReloads())
}

func TestApplyWhileAnotherRuns(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{})
	srv.HangNextApply()
	c, _ := loggedIn(t, srv.URL)
	_, err := c.ApplyConfig(context.Background())
	require.NoError(t, err)

	_, err = c.ApplyConfig(context.Background())

	assert.ErrorIs(t, err, mgmtapi.ErrConflict)
	assert.Contains(t, err.Error(), "still running")
}

func TestApplyReplyAfterTimeoutIsNotResent(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{})
	c, _ := loggedIn(t, srv.URL, mgmtapi.WithTimeout(100*time.Millisecond))
	srv.DelayNext("/api/config/apply", 1, time.Second)

	_, err := c.Apply(context.Background(), time.Minute)

	require.Error(t, err)
	assert.ErrorIs(t, err, mgmtapi.ErrApplyUnconfirmed)
	assert.Contains(t, err.Error(), "may have started an apply")
	assert.Equal(t, 1, strings.Count(err.Error(), srv.URL), "the URL is named once: %s", err)
	srv.Close() // waits for the delayed request
	applies := srv.RequestsTo(http.MethodPost, "/api/config/apply")
	require.Len(t, applies, 1, "the apply was sent more than once")
	assert.Equal(t, http.StatusAccepted, applies[0].Status)
}

func TestApplyReloginAfterRestart(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{})
	c, _ := loggedIn(t, srv.URL)
	srv.ExpireTokens() // as a restart of the mgmt service does

	_, err := c.ApplyConfig(context.Background())

	require.NoError(t, err)
	applies := srv.RequestsTo(http.MethodPost, "/api/config/apply")
	require.Len(t, applies, 2)
	assert.Equal(t, http.StatusUnauthorized, applies[0].Status)
	assert.Equal(t, http.StatusAccepted, applies[1].Status)
	assert.Len(t, srv.RequestsTo(http.MethodPost, "/api/login"), 2)
}

func TestImportNotRepeatedAfter401(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{})
	c, _ := loggedIn(t, srv.URL)
	srv.ExpireTokens()

	_, err := c.ImportConfig(context.Background(), strings.NewReader("pas_config_version: 4.8.0\n"), "c.yaml")

	assert.ErrorIs(t, err, mgmtapi.ErrUnauthorized)
	assert.Len(t, srv.RequestsTo(http.MethodPost, "/api/config/import"), 1)
}

func TestApplySucceededWithFailedNode(t *testing.T) {
	// A server whose job state and node results disagree.
	base := serveLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/api/login":
			w.Write([]byte(`{"token":"t"}`))
		case r.Method == http.MethodPost:
			w.WriteHeader(http.StatusAccepted)
			w.Write([]byte(`{"id":"apply-7"}`))
		default:
			w.Write([]byte(`{"id":"apply-7","state":"succeeded","nodes":[` +
				`{"name":"mgmt-1","reload_success":"OK"},` +
				`{"name":"core-1","reload_success":"FAILED","message":"syntax error"}]}`))
		}
	}))
	c, _ := loggedIn(t, base)

	job, err := c.Apply(context.Background(), time.Minute)

	require.Error(t, err)
	assert.ErrorIs(t, err, mgmtapi.ErrApplyFailed)
	assert.Contains(t, err.Error(), "core-1 (FAILED: syntax error)")
	assert.NotContains(t, err.Error(), "mgmt-1")
	assert.Equal(t, mgmtapi.ApplySucceeded, job.State, "the job is returned as read")
}
