package mgmtapi_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/mgmtapi"
	"github.com/pasops/pasupgrade/mgmtapi/mgmtapitest"
)

// TestSecretsStayOutOfLogsAndErrors runs a failed login, a failed import
// and a timed-out apply with debug logging, and checks that neither the
// password nor any token appears in a log line or an error.
func TestSecretsStayOutOfLogsAndErrors(t *testing.T) {
	const wrongPassword = "Wr0ng-Secret-Value"
	srv := startFake(t, mgmtapitest.Options{Version: "4.9.0"})
	var logs logBuffer
	c, _ := newClient(t, srv.URL, mgmtapi.WithLogger(debugLogger(&logs)),
		mgmtapi.WithPollInterval(time.Millisecond))
	ctx := context.Background()
	var errs []error

	errs = append(errs, c.Login(ctx, testUser, wrongPassword))
	require.NoError(t, c.Login(ctx, testUser, testPassword))

	_, err := c.ImportConfig(ctx, strings.NewReader("pas_config_version: 4.8.0\n"), "old.yaml")
	errs = append(errs, err)
	srv.FailNext("/api/config/import", 1, 503)
	_, err = c.ImportConfig(ctx, strings.NewReader("pas_config_version: 4.9.0\n"), "new.yaml")
	errs = append(errs, err)

	srv.HangNextApply()
	_, err = c.Apply(ctx, 20*time.Millisecond)
	errs = append(errs, err)

	srv.ExpireTokens()
	_, err = c.Status(ctx)
	require.NoError(t, err, "re-login after the tokens expired")

	secrets := append([]string{testPassword, wrongPassword}, srv.IssuedTokens()...)
	require.Len(t, secrets, 4, "the expired token and the one of the re-login")
	requests, err := json.Marshal(srv.Requests())
	require.NoError(t, err)
	for _, secret := range secrets {
		for i, err := range errs {
			require.Error(t, err, "step %d was expected to fail", i)
			assert.NotContains(t, err.Error(), secret, "error %d", i)
		}
		assert.NotContains(t, logs.String(), secret, "log")
		assert.NotContains(t, string(requests), secret, "request log of the fake")
	}
	assert.Contains(t, logs.String(), "level=DEBUG", "debug logging was on")
}
