package configconv

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/pasops/pasupgrade/internal/testenv"
)

const registryBinary = "/usr/bin/docker-registry"

// startRegistry starts Debian's docker-registry on a free loopback port
// with one htpasswd user and returns its host:port. It stops at the end of
// the test.
func startRegistry(t *testing.T, user, password string) string {
	t.Helper()
	if _, err := os.Stat(registryBinary); err != nil {
		testenv.SkipOrFail(t, registryBinary+" is missing; install Debian's docker-registry package")
	}
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	require.NoError(t, err)
	htpasswd := filepath.Join(dir, "htpasswd")
	require.NoError(t, os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o600))

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := listener.Addr().String()
	require.NoError(t, listener.Close())

	config := filepath.Join(dir, "config.yml")
	require.NoError(t, os.WriteFile(config, []byte(fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: %s
auth:
  htpasswd:
    realm: configconv-test
    path: %s
`, filepath.Join(dir, "data"), addr, htpasswd)), 0o600))

	logFile, err := os.Create(filepath.Join(dir, "registry.log"))
	require.NoError(t, err)
	cmd := exec.Command(registryBinary, "serve", config)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logFile.Close()
	})

	waitFor(t, "the registry on "+addr, func() bool {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized
	})
	return addr
}

// pushTestImage pushes the fake tool's image to ref and removes the local
// tag, so that a run has to pull it.
func pushTestImage(t *testing.T, cli *client.Client, ref, user, password string) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, cli.ImageTag(ctx, fakeToolImage(t, cli), ref))
	auth, err := EncodeRegistryAuth(registry.AuthConfig{Username: user, Password: password, ServerAddress: ref})
	require.NoError(t, err)
	stream, err := cli.ImagePush(ctx, ref, image.PushOptions{RegistryAuth: auth})
	require.NoError(t, err)
	defer stream.Close()
	require.NoError(t, readProgress(stream, func(string) {}))
	untag(t, cli, ref)
}

func untag(t *testing.T, cli *client.Client, ref string) {
	t.Helper()
	_, err := cli.ImageRemove(context.Background(), ref, image.RemoveOptions{})
	if err != nil && !client.IsErrNotFound(err) {
		require.NoError(t, err)
	}
}

func TestDockerRunnerPullCredentials(t *testing.T) {
	cli := dockerClient(t)
	const user = "puller"
	password := passwordWithBase64Symbols(t, user)
	host := startRegistry(t, user, password)
	ref := host + "/configconv-test/tool:1"
	pushTestImage(t, cli, ref, user, password)

	auth := func(user, password string) string {
		return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	}
	tests := []struct {
		name    string
		config  string
		helper  string
		image   string
		wantErr error
		wantMsg string
	}{
		{"auth field", `{"auths":{"` + host + `":{"auth":"` + auth(user, password) + `"}}}`, "", ref, nil, ""},
		{"DOCKER_CONFIG variable", `{"auths":{"` + host + `":{"auth":"` + auth(user, password) + `"}}}`, "", ref, nil, ""},
		{"cred helper", `{"credHelpers":{"` + host + `":"cctest"}}`,
			`{"ServerURL":"` + host + `","Username":"` + user + `","Secret":"` + password + `"}`, ref, nil, ""},
		{"creds store", `{"credsStore":"cctest"}`,
			`{"ServerURL":"` + host + `","Username":"` + user + `","Secret":"` + password + `"}`, ref, nil, ""},
		{"no credentials", `{}`, "", ref, ErrNotLoggedIn, "not logged in to " + host},
		{"wrong password", `{"auths":{"` + host + `":{"auth":"` + auth(user, "wrong") + `"}}}`, "", ref,
			ErrNoImageAccess, "no access to the image as puller"},
		{"image not in registry", `{"auths":{"` + host + `":{"auth":"` + auth(user, password) + `"}}}`, "",
			host + "/configconv-test/absent:1", ErrNoImageAccess, "no access to the image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.helper != "" {
				installCredentialHelper(t, "cctest", tt.helper, 0)
			}
			d := &DockerRunner{
				Client:      cli,
				Image:       tt.image,
				Credentials: DockerConfig{Dir: writeDockerConfig(t, tt.config)},
				NamePrefix:  testPrefix,
			}
			if tt.name == "DOCKER_CONFIG variable" {
				// The default source reads the directory the variable names.
				t.Setenv("DOCKER_CONFIG", writeDockerConfig(t, tt.config))
				d.Credentials = nil
			}
			var statuses []string
			d.PullStatus = func(image, status string) {
				assert.Equal(t, tt.image, image)
				statuses = append(statuses, status)
			}
			t.Cleanup(func() { untag(t, cli, tt.image) })

			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			present, err := d.HasImage(ctx)
			require.NoError(t, err)
			require.False(t, present, "the image must be pulled by the run")

			code, err := d.Run(ctx, Invocation{Args: []string{"exit", "0"}, WorkDir: t.TempDir()})
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				assert.Contains(t, err.Error(), tt.wantMsg)
				assert.NotContains(t, err.Error(), password)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, 0, code)
			assert.NotEmpty(t, statuses, "pull progress is reported")
			present, err = d.HasImage(ctx)
			require.NoError(t, err)
			assert.True(t, present)
		})
	}
}
