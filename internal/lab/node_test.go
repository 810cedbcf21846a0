package lab

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/runner"
)

// startTestNode starts a node for one test and removes it afterwards.
func startTestNode(t *testing.T) (*Node, client.APIClient) {
	t.Helper()
	cli := connectForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	node, err := StartNode(ctx, cli, NodeOptions{
		Name:    UniqueName("pasupgrade-labtest"),
		WorkDir: filepath.Join(t.TempDir(), "work"),
		Labels:  map[string]string{LabelLab: "labtest"},
	})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, node.Remove(context.Background())) })
	return node, cli
}

// TestNode runs the node runner's cases against one container, because
// each container costs a full copy of the image on the vfs storage driver.
func TestNode(t *testing.T) {
	node, cli := startTestNode(t)
	t.Run("run", func(t *testing.T) { testNodeRun(t, node, cli) })
	t.Run("live output redacted", func(t *testing.T) { testNodeRunLiveOutput(t, node, cli) })
	t.Run("cancel kills command", func(t *testing.T) { testNodeRunCancel(t, node, cli) })
	t.Run("cancel kills children", func(t *testing.T) { testNodeRunCancelChildren(t, node, cli) })
	t.Run("interactive on terminal", func(t *testing.T) { testNodeRunInteractive(t, node, cli) })
	t.Run("interactive input across commands", func(t *testing.T) { testNodeRunInteractiveTwice(t, node, cli) })
	t.Run("files and work directory", func(t *testing.T) { testNodeFiles(t, node, cli) })
	t.Run("docker client reaches engine", func(t *testing.T) { testNodeReachesEngine(t, node, cli) })
	// Last, because it removes the node's docker group for a while.
	t.Run("grant without docker group", func(t *testing.T) { testNodeGrantWithoutGroup(t, node, cli) })
}

func testNodeRun(t *testing.T, node *Node, _ client.APIClient) {
	ctx := context.Background()
	t.Setenv("LANG", "en_US.UTF-8")

	tests := []struct {
		name     string
		cmd      runner.Command
		wantOut  string
		wantErr  string
		wantCode int
	}{
		{
			name:    "root by default",
			cmd:     runner.Command{Argv: []string{"id", "-un"}},
			wantOut: "root\n",
		},
		{
			name:    "as another user with login environment",
			cmd:     runner.Command{Argv: []string{"sh", "-c", `echo "$(id -un) $HOME $USER $LOGNAME"`}, User: "nobody"},
			wantOut: "nobody /nonexistent nobody nobody\n",
		},
		{
			// The node has no locale but C.UTF-8, whatever this machine uses.
			name:    "user gets a locale of the node",
			cmd:     runner.Command{Argv: []string{"sh", "-c", `perl -e 1 2>&1 | grep -q warning && exit 9; echo "$LANG"`}, User: "nobody"},
			wantOut: "C.UTF-8\n",
		},
		{
			name:    "env and dir",
			cmd:     runner.Command{Argv: []string{"sh", "-c", `echo "$GREETING $(pwd)"`}, Env: []string{"GREETING=hello"}, Dir: "/etc"},
			wantOut: "hello /etc\n",
		},
		{
			name:    "stdin reaches the command",
			cmd:     runner.Command{Argv: []string{"cat"}, Stdin: strings.NewReader("line one\nline two\n")},
			wantOut: "line one\nline two\n",
		},
		{
			name:    "no stdin means end of file",
			cmd:     runner.Command{Argv: []string{"cat"}},
			wantOut: "",
		},
		{
			name:     "exit code and stderr",
			cmd:      runner.Command{Argv: []string{"sh", "-c", "echo broken >&2; exit 3"}},
			wantErr:  "broken",
			wantCode: 3,
		},
		{
			name:     "secret redacted",
			cmd:      runner.Command{Argv: []string{"sh", "-c", "echo s3cret-pw; echo s3cret-pw >&2; exit 1"}, Secrets: []string{"s3cret-pw"}},
			wantOut:  "***\n",
			wantErr:  "***",
			wantCode: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := node.Run(ctx, tt.cmd)
			assert.Equal(t, tt.wantCode, res.ExitCode)
			if tt.wantOut != "" || tt.wantCode == 0 {
				assert.Equal(t, tt.wantOut, string(res.Stdout))
			}
			if tt.wantCode == 0 {
				require.NoError(t, err)
				return
			}
			var exitErr *runner.ExitError
			require.ErrorAs(t, err, &exitErr)
			assert.Contains(t, string(res.Stderr), tt.wantErr)
			for _, secret := range tt.cmd.Secrets {
				assert.NotContains(t, err.Error(), secret)
				assert.NotContains(t, string(res.Stdout)+string(res.Stderr), secret)
			}
		})
	}
}

func testNodeRunLiveOutput(t *testing.T, node *Node, _ client.APIClient) {
	var live bytes.Buffer
	_, err := node.Run(context.Background(), runner.Command{
		Argv:    []string{"sh", "-c", "echo token=abc123; echo done"},
		Stdout:  &live,
		Secrets: []string{"abc123"},
	})
	require.NoError(t, err)
	assert.Equal(t, "token=***\ndone\n", live.String())
}

func testNodeRunCancel(t *testing.T, node *Node, _ client.APIClient) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(500 * time.Millisecond)
		cancel()
	}()
	_, err := node.Run(ctx, runner.Command{Argv: []string{"sleep", "300"}})
	require.ErrorIs(t, err, context.Canceled)

	res, err := node.Run(context.Background(), runner.Command{Argv: []string{"pgrep", "-f", "sleep 300"}})
	assert.Error(t, err, "the cancelled sleep must be gone, pgrep found: %s", res.Stdout)
	assert.Equal(t, 1, res.ExitCode)
}

// testNodeRunCancelChildren checks that a cancelled command's children end
// with it, also one that ignores SIGTERM, as dpkg's maintainer scripts are
// children of dpkg.
func testNodeRunCancelChildren(t *testing.T, node *Node, _ client.APIClient) {
	scripts := []string{
		"sleep 311; echo after",
		"trap '' TERM; sleep 312; echo after",
	}
	for _, script := range scripts {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, err := node.Run(ctx, runner.Command{Argv: []string{"sh", "-c", script}})
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded)
	}

	res, err := node.Run(context.Background(), runner.Command{Argv: []string{"pgrep", "-a", "-f", "sleep 31[12]"}})
	assert.Error(t, err, "the cancelled commands' children must be gone, pgrep found: %s", res.Stdout)
	assert.Equal(t, 1, res.ExitCode)
}

func TestNodeRunRejectsInteractive(t *testing.T) {
	node := &Node{Name: "unused"}
	_, err := node.Run(context.Background(), runner.Command{Argv: []string{"sh"}, Interactive: true})
	assert.ErrorIs(t, err, runner.ErrInteractiveUnavailable)
}

func testNodeRunInteractive(t *testing.T, node *Node, _ client.APIClient) {
	var screen bytes.Buffer
	node.Terminal = &runner.Terminal{In: strings.NewReader("yes\n"), Out: &screen}
	defer func() { node.Terminal = nil }()

	script := `printf 'Proceed? '; read answer; echo "answer=$answer"; tty; exit 4`
	res, err := node.Run(context.Background(), runner.Command{
		Argv: []string{"sh", "-c", script}, User: "nobody", Interactive: true})
	var exitErr *runner.ExitError
	require.ErrorAs(t, err, &exitErr)
	assert.Equal(t, 4, res.ExitCode)
	assert.Contains(t, screen.String(), "Proceed? ")
	assert.Contains(t, screen.String(), "answer=yes")
	assert.Contains(t, screen.String(), "/dev/pts/", "the command must run on a terminal")
}

// testNodeRunInteractiveTwice answers two interactive commands from one
// terminal input, the second answer written after the first command ended.
func testNodeRunInteractiveTwice(t *testing.T, node *Node, _ client.APIClient) {
	input, typing := io.Pipe()
	defer typing.Close()
	var screen bytes.Buffer
	node.Terminal = &runner.Terminal{In: input, Out: &screen}
	defer func() { node.Terminal = nil }()

	for _, answer := range []string{"first", "second"} {
		go func() { _, _ = typing.Write([]byte(answer + "\n")) }()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := node.Run(ctx, runner.Command{Argv: []string{"sh", "-c", "read a; echo got=$a"}, Interactive: true})
		cancel()
		require.NoError(t, err, "answer %q, screen: %q", answer, screen.String())
		assert.Contains(t, screen.String(), "got="+answer)
	}
}

func testNodeFiles(t *testing.T, node *Node, _ client.APIClient) {
	ctx := context.Background()

	require.NoError(t, node.WriteFile(ctx, "/opt/lab-test/deep/file.txt", []byte("content\n"), 0o640))
	got, err := node.ReadFile(ctx, "/opt/lab-test/deep/file.txt")
	require.NoError(t, err)
	assert.Equal(t, "content\n", string(got))

	res, err := node.Run(ctx, runner.Command{Argv: []string{"stat", "-c", "%a %U", "/opt/lab-test/deep/file.txt"}})
	require.NoError(t, err)
	assert.Equal(t, "640 root\n", string(res.Stdout))

	// ReadFile follows absolute and relative symbolic links, also chained.
	_, err = node.Run(ctx, runner.Command{Argv: []string{"sh", "-c",
		"ln -s /opt/lab-test/deep/file.txt /opt/lab-test/absolute && ln -s deep/file.txt /opt/lab-test/relative" +
			" && ln -s relative /opt/lab-test/chained && ln -s loop /opt/lab-test/loop"}})
	require.NoError(t, err)
	for _, link := range []string{"absolute", "relative", "chained"} {
		got, err := node.ReadFile(ctx, "/opt/lab-test/"+link)
		require.NoError(t, err, link)
		assert.Equal(t, "content\n", string(got), link)
	}
	_, err = node.ReadFile(ctx, "/opt/lab-test/loop")
	assert.Error(t, err, "a link to itself must fail, not loop")

	// The work directory is the same directory inside and outside.
	_, err = node.Run(ctx, runner.Command{Argv: []string{"sh", "-c", "echo from-node > " + node.WorkDir + "/probe"}})
	require.NoError(t, err)
	data, err := os.ReadFile(filepath.Join(node.WorkDir, "probe"))
	require.NoError(t, err)
	assert.Equal(t, "from-node\n", string(data))
}

func testNodeReachesEngine(t *testing.T, node *Node, cli client.APIClient) {
	ctx := context.Background()

	_, err := node.Run(ctx, runner.Command{Argv: []string{"useradd", "--create-home", "labuser"}})
	require.NoError(t, err)
	require.NoError(t, node.GrantDocker(ctx, "labuser"))

	res, err := node.Run(ctx, runner.Command{
		Argv: []string{"docker", "inspect", "--format", "{{.Name}}", node.Name}, User: "labuser"})
	require.NoError(t, err, "the docker client in the node must reach the engine as a docker group member")
	assert.Equal(t, "/"+node.Name+"\n", string(res.Stdout))

	inspect, err := cli.ContainerInspect(ctx, node.ID)
	require.NoError(t, err)
	assert.Equal(t, "host", string(inspect.HostConfig.NetworkMode))
	assert.Equal(t, "labtest", inspect.Config.Labels[LabelLab])
}

// testNodeGrantWithoutGroup checks the message for an engine socket of
// group root, for which the node gets no docker group.
func testNodeGrantWithoutGroup(t *testing.T, node *Node, _ client.APIClient) {
	ctx := context.Background()
	res, err := node.Run(ctx, runner.Command{Argv: []string{"getent", "group", "docker"}})
	require.NoError(t, err)
	fields := strings.Split(strings.TrimSpace(string(res.Stdout)), ":")
	require.Len(t, fields, 4)
	_, err = node.Run(ctx, runner.Command{Argv: []string{"groupdel", "docker"}})
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := node.Run(ctx, runner.Command{Argv: []string{"groupadd", "--non-unique", "--gid", fields[2], "docker"}})
		assert.NoError(t, err)
	})

	err = node.GrantDocker(ctx, "nobody")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no docker group")
	assert.Contains(t, err.Error(), "start dockerd with --group")
}

func TestNodeRemoveTwice(t *testing.T) {
	node, cli := startTestNode(t)
	ctx := context.Background()
	require.NoError(t, node.Remove(ctx))
	require.NoError(t, node.Remove(ctx))
	_, err := cli.ContainerInspect(ctx, node.ID)
	assert.Error(t, err, "the container must be gone")
}
