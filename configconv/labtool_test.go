package configconv

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/internal/lab"
	"github.com/pasops/pasupgrade/mgmtapi/mgmtapitest"
)

// labToolImage is the lab's upgrade tool, tagged under this package's
// prefix so that the lab's own tag is left alone.
var labToolImage = testPrefix + "labtool:4.9.0"

// TestLabToolUpgradeFlow runs the three subcommands of the lab's upgrade
// tool image against the fake management API over HTTPS, with the CA
// bundle copied into the working directory.
func TestLabToolUpgradeFlow(t *testing.T) {
	cli := dockerClient(t)
	ctx := context.Background()
	require.NoError(t, lab.EnsureToolImage(ctx, cli, labToolImage))
	t.Cleanup(func() {
		_, _ = cli.ImageRemove(context.Background(), labToolImage, image.RemoveOptions{Force: true})
	})

	const password = "Adm1n+/secret"
	server := mgmtapitest.StartTLS(t, mgmtapitest.Options{
		Version: "4.9.0",
		Users:   map[string]string{"admin": password},
	})
	require.NoError(t, server.SetRunningConfig(strings.NewReader(
		"pas_config_version: 4.8.0\nendpoints:\n  - name: orders\nlegacy_auth: basic\n")))

	work := t.TempDir()
	var stdout, stderr bytes.Buffer
	tool := &Tool{
		Runner:   &DockerRunner{Client: cli, Image: labToolImage, NamePrefix: testPrefix},
		WorkDir:  work,
		BaseURL:  server.URL,
		CACert:   server.CAFile(t),
		Password: password,
		Stdout:   &stdout,
		Stderr:   &stderr,
	}

	exported, err := tool.PreUpgrade(ctx)
	require.NoError(t, err, "output: %s%s", stdout.String(), stderr.String())
	data, err := os.ReadFile(exported)
	require.NoError(t, err)
	assert.Contains(t, string(data), "legacy_auth: basic")
	assert.FileExists(t, work+"/ca.pem", "the CA bundle is copied into the working directory")

	_, err = tool.ConvertConfig(ctx)
	require.ErrorIs(t, err, ErrNeedsAnswer, "without a terminal or answers the prompt fails")
	assert.Contains(t, err.Error(), "legacy_auth")

	tool.Answers = strings.NewReader("y\n")
	converted, err := tool.ConvertConfig(ctx)
	require.NoError(t, err, "output: %s%s", stdout.String(), stderr.String())
	data, err = os.ReadFile(converted)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(data), "pas_config_version: 4.9.0\n"))
	assert.NotContains(t, string(data), "legacy_auth")

	outcome, err := tool.PostUpgrade(ctx, 20*time.Second)
	require.NoError(t, err, "output: %s%s", stdout.String(), stderr.String())
	assert.True(t, outcome.Applied)
	running, err := server.RunningConfig()
	require.NoError(t, err)
	assert.Equal(t, "4.9.0", running.Version)

	server.FailNextApply("core-1")
	outcome, err = tool.PostUpgrade(ctx, 20*time.Second)
	require.ErrorIs(t, err, ErrApplyFailed)
	assert.Equal(t, 4, outcome.ExitCode)

	assert.NotContains(t, stdout.String()+stderr.String(), password)
	assert.Empty(t, leftoverContainers(t, cli))
}
