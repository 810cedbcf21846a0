package configconv

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/internal/testenv"
)

// testPrefix starts the name of everything the tests create in the engine.
// Its random part keeps test binaries that share an engine from counting
// each other's containers as left over and from removing each other's
// images while they are in use.
var testPrefix = "configconv-test-" + randomSuffix()[:8] + "-"

// testImage is the fake tool's image, imported once per test binary.
var testImage = testPrefix + "faketool:latest"

var (
	imageOnce sync.Once
	imageErr  error
	imageMade bool
)

func TestMain(m *testing.M) {
	code := m.Run()
	if imageMade {
		if cli, err := NewDockerClient(); err == nil {
			_, _ = cli.ImageRemove(context.Background(), testImage, image.RemoveOptions{Force: true, PruneChildren: true})
		}
	}
	os.Exit(code)
}

// dockerClient returns a client for the lab engine, or skips the test.
func dockerClient(t *testing.T) *client.Client {
	t.Helper()
	testenv.DockerHost(t)
	cli, err := NewDockerClient()
	require.NoError(t, err)
	t.Cleanup(func() { cli.Close() })
	return cli
}

// fakeToolImage builds the fake tool statically and imports it as
// testImage with the binary as its entrypoint.
func fakeToolImage(t *testing.T, cli *client.Client) string {
	t.Helper()
	imageOnce.Do(func() { imageErr = importFakeTool(cli) })
	require.NoError(t, imageErr)
	return testImage
}

func importFakeTool(cli *client.Client) error {
	dir, err := os.MkdirTemp("", testPrefix)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	binary := filepath.Join(dir, "tool")
	build := exec.Command("go", "build", "-trimpath", "-o", binary, "./testdata/faketool")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return errors.New("building the fake tool: " + string(out))
	}
	data, err := os.ReadFile(binary)
	if err != nil {
		return err
	}

	var archive bytes.Buffer
	tw := tar.NewWriter(&archive)
	if err := tw.WriteHeader(&tar.Header{Name: "tool", Mode: 0o755, Size: int64(len(data))}); err != nil {
		return err
	}
	if _, err := tw.Write(data); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}

	// NOTE: a test binary killed before TestMain's cleanup leaves its
	// image behind; docker images 'configconv-test-*' lists such images.
	out, err := cli.ImageImport(context.Background(),
		image.ImportSource{Source: &archive, SourceName: "-"}, testImage,
		image.ImportOptions{Changes: []string{`ENTRYPOINT ["/tool"]`}})
	if err != nil {
		return err
	}
	defer out.Close()
	if _, err := bytes.NewBuffer(nil).ReadFrom(out); err != nil {
		return err
	}
	imageMade = true
	return nil
}

// newTestRunner returns a DockerRunner for the fake tool's image.
func newTestRunner(t *testing.T) (*DockerRunner, *client.Client) {
	t.Helper()
	cli := dockerClient(t)
	return &DockerRunner{
		Client:     cli,
		Image:      fakeToolImage(t, cli),
		NamePrefix: testPrefix,
	}, cli
}

// leftoverContainers lists the containers the tests created that still
// exist, running or not.
func leftoverContainers(t *testing.T, cli *client.Client) []string {
	t.Helper()
	list, err := cli.ContainerList(context.Background(), container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("name", testPrefix)),
	})
	require.NoError(t, err)
	var names []string
	for _, c := range list {
		names = append(names, strings.Join(c.Names, ","))
	}
	return names
}

// syncBuffer is a bytes.Buffer safe for a writer and a polling reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls until cond holds, failing the test after a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDockerRunnerExitCodeLoop(t *testing.T) {
	d, cli := newTestRunner(t)
	runs := 200
	if testing.Short() {
		runs = 20
	}
	for i := range runs {
		code, err := d.Run(context.Background(), Invocation{Args: []string{"exit", "3"}, WorkDir: t.TempDir()})
		require.NoError(t, err, "run %d", i)
		require.Equal(t, 3, code, "run %d", i)
	}
	assert.Empty(t, leftoverContainers(t, cli))
}

func TestDockerRunnerStreams(t *testing.T) {
	d, _ := newTestRunner(t)
	var stdout, stderr, transcript bytes.Buffer
	d.Transcript = &transcript

	code, err := d.Run(context.Background(), Invocation{
		Args: []string{"streams"}, WorkDir: t.TempDir(), Stdout: &stdout, Stderr: &stderr,
	})
	require.NoError(t, err)
	assert.Equal(t, 0, code)
	assert.Equal(t, "a\nb\n", stdout.String())
	assert.Equal(t, "err\n", stderr.String())
	assert.Contains(t, transcript.String(), testImage+" streams\n")
	assert.Contains(t, transcript.String(), "exit 0 after")
}

func TestDockerRunnerRedactsSecrets(t *testing.T) {
	d, _ := newTestRunner(t)
	var stdout, stderr, transcript bytes.Buffer
	d.Transcript = &transcript

	code, err := d.Run(context.Background(), Invocation{
		Args: []string{"echo"}, WorkDir: t.TempDir(),
		Stdin: strings.NewReader("hunter2\n"), Stdout: &stdout, Stderr: &stderr,
		Secrets: []string{"hunter2"},
	})
	require.NoError(t, err)
	assert.Equal(t, 0, code)
	assert.Equal(t, "read: ***\n", stdout.String())
	assert.Equal(t, "no newline: ***", stderr.String(), "a partial last line is flushed at exit")
	assert.NotContains(t, transcript.String(), "hunter2")
	assert.Contains(t, transcript.String(), "read: ***")
}

func TestDockerRunnerPromptWithoutTerminal(t *testing.T) {
	tests := []struct {
		name       string
		stdin      string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"no answer", "", 3, "Proceed? [y/N] ", "no answer\n"},
		{"answer yes", "y\n", 0, "Proceed? [y/N] answer=y\n", ""},
		{"answer no", "n\n", 3, "Proceed? [y/N] answer=n\n", ""},
	}
	d, _ := newTestRunner(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code, err := d.Run(context.Background(), Invocation{
				Args: []string{"prompt"}, WorkDir: t.TempDir(),
				Stdin: strings.NewReader(tt.stdin), Stdout: &stdout, Stderr: &stderr,
			})
			require.NoError(t, err)
			assert.Equal(t, tt.wantCode, code)
			assert.Equal(t, tt.wantStdout, stdout.String())
			assert.Equal(t, tt.wantStderr, stderr.String())
		})
	}
}

func TestDockerRunnerCancel(t *testing.T) {
	d, cli := newTestRunner(t)
	d.StopTimeout = time.Second
	logs := &syncBuffer{}
	d.Logger = slog.New(slog.NewTextHandler(logs, nil))
	stdout := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	done := make(chan error, 1)
	go func() {
		_, err := d.Run(ctx, Invocation{Args: []string{"sleep"}, WorkDir: t.TempDir(), Stdout: stdout})
		done <- err
	}()
	waitFor(t, "the tool to start", func() bool { return strings.Contains(stdout.String(), "sleeping") })
	cancel()

	select {
	case err := <-done:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(2 * time.Minute):
		t.Fatal("Run did not return after the cancel")
	}
	assert.Empty(t, leftoverContainers(t, cli), "the container must be gone when Run returns")
	assert.Contains(t, logs.String(), "stopping and removing the upgrade tool's container", "the wait is explained")
}

func TestDockerRunnerMissingImage(t *testing.T) {
	cli := dockerClient(t)
	d := &DockerRunner{
		Client:      cli,
		Image:       "127.0.0.1:1/" + testPrefix + "missing:1",
		Credentials: DockerConfig{Dir: t.TempDir()},
		NamePrefix:  testPrefix,
	}
	_, err := d.Run(context.Background(), Invocation{Args: []string{"exit", "0"}, WorkDir: t.TempDir()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "pulling 127.0.0.1:1/"+testPrefix+"missing:1")
	assert.Empty(t, leftoverContainers(t, cli))
}

// cancelAfterCreate passes requests to the engine, but cancels the run's
// context once the engine has created a container and reports the request
// as cancelled, as an interrupt arriving during ContainerCreate does.
type cancelAfterCreate struct {
	base   http.RoundTripper
	cancel context.CancelFunc
}

func (c *cancelAfterCreate) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(req)
	if err != nil || !strings.HasSuffix(req.URL.Path, "/containers/create") {
		return resp, err
	}
	resp.Body.Close()
	c.cancel()
	return nil, context.Canceled
}

func TestDockerRunnerCancelDuringCreate(t *testing.T) {
	host := testenv.DockerHost(t)
	socket := strings.TrimPrefix(host, "unix://")
	d, cli := newTestRunner(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	transport := &cancelAfterCreate{
		base: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, "unix", socket)
		}},
		cancel: cancel,
	}
	// WithHost configures only an *http.Transport, so the wrapping
	// client replaces the default one after it.
	interrupted, err := client.NewClientWithOpts(client.WithHost(host),
		client.WithHTTPClient(&http.Client{Transport: transport}), client.WithAPIVersionNegotiation())
	require.NoError(t, err)
	t.Cleanup(func() { interrupted.Close() })
	d.Client = interrupted

	_, err = d.Run(ctx, Invocation{Args: []string{"exit", "0"}, WorkDir: t.TempDir()})
	require.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, leftoverContainers(t, cli), "a container created as the run was cancelled must be removed")
}

func TestNamesRegistry(t *testing.T) {
	tests := []struct {
		ref  string
		want bool
	}{
		{"pas-upgrade-tool:4.9.0", false},
		{"balasys/pas-upgrade-tool:4.9.0", false},
		{"registry.example.com/pas/upgrade-tool:4.9.0", true},
		{"127.0.0.1:5000/pas-upgrade-tool:4.9.0", true},
		{"localhost/pas-upgrade-tool", true},
		{"docker.io/library/busybox", true},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			assert.Equal(t, tt.want, namesRegistry(tt.ref))
		})
	}
}

func TestEnsureImageWithoutRegistryDoesNotPull(t *testing.T) {
	cli := dockerClient(t)
	runner := &DockerRunner{Client: cli, Image: testPrefix + "-absent:0", NamePrefix: testPrefix}

	err := runner.EnsureImage(context.Background())
	require.ErrorIs(t, err, ErrNoRegistry)
	assert.Contains(t, err.Error(), testPrefix+"-absent:0")
	assert.Contains(t, err.Error(), "docker load")
}

// A CLI killed while the tool ran leaves the tool's container running;
// the next run in the same work directory waits for it to end.
func TestDockerRunnerWaitsForEarlierRun(t *testing.T) {
	d, cli := newTestRunner(t)
	logs := &syncBuffer{}
	d.Logger = slog.New(slog.NewTextHandler(logs, nil))
	workDir := t.TempDir()
	ctx := context.Background()

	earlier, err := cli.ContainerCreate(ctx, &container.Config{
		Image: d.Image, Cmd: []string{"sleep"}, Labels: map[string]string{WorkDirLabel: workDir},
	}, &container.HostConfig{AutoRemove: true}, nil, nil, testPrefix+"earlier")
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = cli.ContainerRemove(context.Background(), earlier.ID, container.RemoveOptions{Force: true})
	})
	require.NoError(t, cli.ContainerStart(ctx, earlier.ID, container.StartOptions{}))

	done := make(chan error, 1)
	go func() {
		_, err := d.Run(ctx, Invocation{Args: []string{"exit", "0"}, WorkDir: workDir})
		done <- err
	}()
	waitFor(t, "the wait to be logged", func() bool {
		return strings.Contains(logs.String(), "earlier run is still running in this work directory")
	})
	select {
	case err := <-done:
		t.Fatalf("Run returned while the earlier run's container ran: %v", err)
	default:
	}

	timeout := 1
	require.NoError(t, cli.ContainerStop(ctx, earlier.ID, container.StopOptions{Timeout: &timeout}))
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(2 * time.Minute):
		t.Fatal("Run did not go on after the earlier container ended")
	}
}
