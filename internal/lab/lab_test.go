package lab

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
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

	"github.com/pasops/pasupgrade/runner"
)

// upForTest starts a lab from the packages built once for this test binary
// and checks after the test that Down left nothing behind.
func upForTest(t *testing.T, opts Options) (*Lab, *client.Client) {
	t.Helper()
	cli := connectForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	l, err := Up(ctx, cli, testOptions(t, opts))
	require.NoError(t, err)
	downAfterTest(t, cli, l)
	return l, cli
}

// testOptions gives opts a unique name, a temporary directory and the
// packages built once for this test binary.
func testOptions(t *testing.T, opts Options) Options {
	t.Helper()
	var anyDeb string
	for _, path := range packagesForTest(t) {
		anyDeb = path
		break
	}
	opts.Name = strings.TrimPrefix(UniqueName("t"), "t-")
	opts.Dir = filepath.Join(t.TempDir(), "lab")
	if opts.PackageDir == "" {
		opts.PackageDir = filepath.Dir(anyDeb)
	}
	opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	return opts
}

func downAfterTest(t *testing.T, cli client.APIClient, l *Lab) {
	t.Cleanup(func() {
		require.NoError(t, l.Down(context.Background(), cli))
		assertNothingLeft(t, cli, l)
	})
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func assertNothingLeft(t *testing.T, cli client.APIClient, l *Lab) {
	t.Helper()
	ctx := context.Background()
	containers, err := cli.ContainerList(ctx, container.ListOptions{
		All: true, Filters: filters.NewArgs(filters.Arg("label", LabelLab+"="+l.Name)),
	})
	require.NoError(t, err)
	assert.Empty(t, containers, "down must remove every container of the lab")
	_, err = cli.ImageInspect(ctx, l.ToolImage)
	assert.Error(t, err, "down must remove the lab's tool image %s", l.ToolImage)
	_, err = os.Stat(l.Dir)
	assert.True(t, os.IsNotExist(err), "down must remove the lab directory")
	_, err = cli.ImageInspect(ctx, l.NodeImage)
	assert.NoError(t, err, "down must keep the cached node image")
}

func TestSingleNodeLab(t *testing.T) {
	l, cli := upForTest(t, Options{Topology: TopologySingle})
	ctx := context.Background()
	mgmt, err := l.Node(cli, "mgmt")
	require.NoError(t, err)

	// 4.8.0 is installed, according to dpkg in the node.
	for _, pkg := range Packages {
		res, err := mgmt.Run(ctx, runner.Command{Argv: []string{"dpkg-query", "--showformat=${Version}", "--show", pkg}})
		require.NoError(t, err)
		assert.Equal(t, "4.8.0", string(res.Stdout), "version of %s", pkg)
	}

	// Every service runs, according to the systemctl stand-in.
	res, err := mgmt.Run(ctx, runner.Command{Argv: []string{"systemctl", "is-active", unitStorage, unitMgmt, unitCore}})
	require.NoError(t, err)
	assert.Equal(t, "active\nactive\nactive\n", string(res.Stdout))
	status, err := l.Status(ctx, cli)
	require.NoError(t, err)
	require.Len(t, status, 1)
	assert.Equal(t, "running", status[0].State)

	// The management API accepts the admin password and rejects another.
	password, err := l.AdminPassword()
	require.NoError(t, err)
	fi, err := os.Stat(l.PasswordFile())
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	assert.Equal(t, http.StatusOK, loginStatus(t, l.MgmtURL(), password))
	assert.Equal(t, http.StatusUnauthorized, loginStatus(t, l.MgmtURL(), password+"x"))

	// The components run as pas, and the management API reports them
	// from the status file that the systemctl stand-in keeps.
	_, err = mgmt.Run(ctx, runner.Command{Argv: []string{"pgrep", "-u", "pas", "-f", "pas-mgmt-sim"}})
	assert.NoError(t, err, "the management simulator must run as pas")
	components := apiComponents(t, l.MgmtURL(), password)
	assert.Equal(t, map[string]string{
		"mgmt": "running 4.8.0", "storage": "running 4.8.0", "core": "running 4.8.0",
	}, components)

	// Services stop and start as real processes: a stopped core refuses
	// connections, and pas restarts mgmt through the package's sudoers
	// rule.
	corePort := l.NodeByName("mgmt").Ports["core"]
	_, err = mgmt.Run(ctx, runner.Command{Argv: []string{"systemctl", "stop", unitCore}})
	require.NoError(t, err)
	_, err = http.Get("http://127.0.0.1:" + strconv.Itoa(corePort) + "/")
	assert.Error(t, err, "core must not answer while stopped")
	_, err = mgmt.Run(ctx, runner.Command{Argv: []string{"systemctl", "start", unitCore}})
	require.NoError(t, err)
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(corePort) + "/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	_, err = mgmt.Run(ctx, runner.Command{Argv: []string{"sudo", "-n", "systemctl", "restart", unitMgmt}, User: "pas"})
	require.NoError(t, err)
	require.NoError(t, waitListening(ctx, l.NodeByName("mgmt").Ports["mgmt"]))

	// The guide's pre-upgrade command, run as pas in the work directory,
	// starts the tool image on the engine behind the node's socket and
	// writes the export into the work directory. The guide passes -it;
	// without a terminal only -i applies, and the password comes on stdin.
	cmd := `docker run --user $(id -u):$(id -g) --rm -i --network=host --volume $(pwd):/upgrade "$1" ` +
		`--frontend-baseurl "$2" pre-upgrade`
	res, err = mgmt.Run(ctx, runner.Command{
		Argv:    []string{"sh", "-c", cmd, "sh", l.ToolImage, l.MgmtURL()},
		User:    "pas",
		Dir:     l.WorkDir(),
		Stdin:   strings.NewReader(password + "\n"),
		Secrets: []string{password},
	})
	require.NoError(t, err, "pre-upgrade output: %s %s", res.Stdout, res.Stderr)
	export, err := os.ReadFile(filepath.Join(l.WorkDir(), "pas-config-4.8.0.yaml"))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(export), "pas_config_version: 4.8.0"), "export starts with: %.60s", export)
}

// loginStatus posts the admin credentials to the management API's login
// endpoint and returns the HTTP status.
func loginStatus(t *testing.T, baseURL, password string) int {
	t.Helper()
	body := strings.NewReader(`{"username":"admin","password":"` + password + `"}`)
	resp, err := http.Post(baseURL+"/api/login", "application/json", body)
	require.NoError(t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func TestMultiNodeLab(t *testing.T) {
	l, cli := upForTest(t, Options{Topology: TopologyMulti})
	ctx := context.Background()
	mgmt, err := l.Node(cli, "mgmt")
	require.NoError(t, err)
	core, err := l.Node(cli, coreNodeName)
	require.NoError(t, err)

	// The up step deployed 4.8.0 to the core node with the guide's tool.
	assert.Equal(t, "4.8.0", installedVersion(t, core, CorePackage))
	res, err := core.Run(ctx, runner.Command{Argv: []string{"systemctl", "is-active", unitStorage, unitCore}})
	require.NoError(t, err)
	assert.Equal(t, "active\nactive\n", string(res.Stdout))

	// The management node's pas user reaches the core node over SSH with
	// its key, and the inventory lists the core node.
	sshPort := l.NodeByName(coreNodeName).Ports["ssh"]
	res, err = mgmt.Run(ctx, runner.Command{
		Argv: []string{"ssh", "-p", strconv.Itoa(sshPort), "-i", "/opt/balasys/.ssh/id_ed25519",
			"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new", "pas@127.0.0.1", "id -un"},
		User: "pas",
	})
	require.NoError(t, err)
	assert.Equal(t, "pas\n", string(res.Stdout))
	inventory, err := mgmt.ReadFile(ctx, inventoryPath)
	require.NoError(t, err)
	assert.Contains(t, string(inventory), "ansible_port: "+strconv.Itoa(sshPort))

	// pas-mgmt-deploy-core --deploy-core changes the core node: pointed at
	// the 4.9.0 packages, it installs them there.
	for _, pkg := range []string{StoragePackage, CorePackage} {
		name := DebFileName(pkg, "4.9.0")
		_, err := mgmt.Run(ctx, runner.Command{Argv: []string{"install", "-m", "0644",
			filepath.Join(l.PackageDir(), name), "/tmp/" + name}})
		require.NoError(t, err)
	}
	_, err = mgmt.Run(ctx, runner.Command{Argv: []string{"sed", "-i", "-e", "s/4\\.8\\.0/4.9.0/g",
		"/opt/balasys/etc/automation/common_vars.yml"}})
	require.NoError(t, err)
	res, err = mgmt.Run(ctx, runner.Command{Argv: []string{"pas-mgmt-deploy-core", "--deploy-core"}, User: "pas"})
	require.NoError(t, err, "deploy output: %s %s", res.Stdout, res.Stderr)
	assert.Equal(t, "4.9.0", installedVersion(t, core, CorePackage))
	assert.Equal(t, "4.9.0", installedVersion(t, core, StoragePackage))

	// Both nodes' components are in the status file the mgmt server reads.
	status, err := os.ReadFile(l.StatusFile())
	require.NoError(t, err)
	assert.Contains(t, string(status), `"name": "`+coreNodeName+`"`)
	assert.Contains(t, string(status), `"name": "mgmt"`)
}

func installedVersion(t *testing.T, node *Node, pkg string) string {
	t.Helper()
	res, err := node.Run(context.Background(), runner.Command{
		Argv: []string{"dpkg-query", "--showformat=${Version}", "--show", pkg}})
	require.NoError(t, err)
	return string(res.Stdout)
}

func TestLabsSideBySide(t *testing.T) {
	cli := connectForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	options := []Options{
		testOptions(t, Options{Topology: TopologySingle}),
		testOptions(t, Options{Topology: TopologyMulti, HA: true, CoreOnMgmt: true}),
	}

	labs := make([]*Lab, len(options))
	errs := make([]error, len(options))
	var wg sync.WaitGroup
	for i, opts := range options {
		wg.Add(1)
		go func() {
			defer wg.Done()
			labs[i], errs[i] = Up(ctx, cli, opts)
		}()
	}
	wg.Wait()
	for i := range labs {
		require.NoError(t, errs[i], "lab %d", i)
		downAfterTest(t, cli, labs[i])
	}

	single, multi := labs[0], labs[1]
	assert.NotEqual(t, single.MgmtURL(), multi.MgmtURL())
	for _, l := range labs {
		password, err := l.AdminPassword()
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, loginStatus(t, l.MgmtURL(), password), "lab %s", l.Name)
	}

	// HA runs on both nodes of the multi-node lab, core on its mgmt node.
	status, err := multi.Status(ctx, cli)
	require.NoError(t, err)
	require.Len(t, status, 2)
	assert.Equal(t, "active", status[0].UnitStates[unitCore], "core on the management node")
	assert.Equal(t, "active", status[0].UnitStates[unitHA], "HA on the management node")
	assert.Equal(t, "active", status[1].UnitStates[unitHA], "HA on the core node")
}

func TestUpFailureRemovesEverything(t *testing.T) {
	cli := connectForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	// A truncated mgmt package makes dpkg fail after the node started.
	broken := t.TempDir()
	for name, path := range packagesForTest(t) {
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		if name == DebFileName(MgmtPackage, labVersion) {
			data = data[:len(data)/2]
		}
		require.NoError(t, os.WriteFile(filepath.Join(broken, name), data, 0o644))
	}
	opts := testOptions(t, Options{PackageDir: broken})

	l, err := Up(ctx, cli, opts)
	require.Error(t, err)
	assert.Nil(t, l)
	assert.Contains(t, err.Error(), "installing PAS 4.8.0")
	assertNothingLeft(t, cli, &Lab{Name: opts.Name, Dir: opts.Dir, ToolImage: "pasupgrade-lab-" + opts.Name + "/" + DefaultToolImage, NodeImage: NodeImageRef()})
}

// TestUpKeepsLabOfSameName checks that neither a rejected Up nor down
// with the wrong directory removes the containers of another lab with the
// same name, although both remove containers by the lab's label.
func TestUpKeepsLabOfSameName(t *testing.T) {
	cli := connectForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	opts := testOptions(t, Options{})
	otherDir := filepath.Join(t.TempDir(), "other")
	node, err := StartNode(ctx, cli, NodeOptions{
		Name:    containerName(opts.Name, "mgmt"),
		WorkDir: otherDir,
		Labels:  map[string]string{LabelLab: opts.Name},
	})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, node.Remove(context.Background())) })
	record := filepath.Join(otherDir, stateFile)
	require.NoError(t, os.WriteFile(record, []byte(`{"name":"`+opts.Name+`"}`), 0o644))

	l, err := Up(ctx, cli, opts)
	require.ErrorIs(t, err, ErrLabExists)
	assert.Nil(t, l)
	assert.Contains(t, err.Error(), node.Name)
	assert.Contains(t, err.Error(), otherDir)
	_, err = cli.ContainerInspect(ctx, node.ID)
	assert.NoError(t, err, "a rejected up must keep the other lab's container")
	_, err = os.Stat(opts.Dir)
	assert.True(t, os.IsNotExist(err), "a rejected up must not create its directory")

	// Without a record in opts.Dir, down must not take the other lab's
	// container while that lab's record exists.
	_, err = StrayLab(ctx, cli, opts.Name, opts.Dir)
	require.ErrorIs(t, err, ErrNoLab)
	assert.Contains(t, err.Error(), "pas-lab down --dir "+otherDir)

	// Once that record is gone, the container is a stray that down removes.
	require.NoError(t, os.Remove(record))
	stray, err := StrayLab(ctx, cli, opts.Name, opts.Dir)
	require.NoError(t, err)
	require.NoError(t, stray.Down(ctx, cli))
	_, err = cli.ContainerInspect(ctx, node.ID)
	assert.Error(t, err, "down must remove the stray container")
}

func TestDownKeepsSharedToolImage(t *testing.T) {
	cli := connectForTest(t)
	ctx := context.Background()
	suffix := strings.TrimPrefix(UniqueName("t"), "t-")
	ref := "pasupgrade-labtest-" + suffix + "/tool:1"
	require.NoError(t, importTool(ctx, cli, ref, []byte("#!/bin/sh\n"), "test"))
	t.Cleanup(func() { _, _ = cli.ImageRemove(context.Background(), ref, image.RemoveOptions{Force: true}) })
	other, err := StartNode(ctx, cli, NodeOptions{
		Name:   UniqueName("pasupgrade-labtest"),
		Labels: map[string]string{LabelLab: "labtest-other-" + suffix, LabelToolImage: ref},
	})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, other.Remove(context.Background())) })

	mine := &Lab{Name: "labtest-mine-" + suffix, Dir: filepath.Join(t.TempDir(), "lab"), ToolImage: ref}
	require.NoError(t, mine.Down(ctx, cli))
	_, err = cli.ImageInspect(ctx, ref)
	assert.NoError(t, err, "down must keep a tool image that another lab uses")

	require.NoError(t, other.Remove(ctx))
	require.NoError(t, mine.Down(ctx, cli))
	_, err = cli.ImageInspect(ctx, ref)
	assert.Error(t, err, "the last lab's down must remove the tool image")
}

func TestListSkipsInvalidRecord(t *testing.T) {
	t.Setenv(LabDirEnv, t.TempDir())
	good := &Lab{Name: "good", Dir: DefaultDir("good")}
	require.NoError(t, os.MkdirAll(good.Dir, 0o755))
	require.NoError(t, good.save())
	require.NoError(t, os.MkdirAll(DefaultDir("torn"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(DefaultDir("torn"), stateFile), []byte(`{"name": "to`), 0o644))

	labs, err := List()
	assert.ErrorIs(t, err, ErrInvalidRecord)
	require.Len(t, labs, 1)
	assert.Equal(t, "good", labs[0].Name)
	entries, err := os.ReadDir(good.Dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "save must leave only lab.json")
}

// TestUpRejectsRemoteEngine checks that Up rejects an engine that is not
// on a Unix socket before it builds anything.
func TestUpRejectsRemoteEngine(t *testing.T) {
	// The fake engine answers only the ping, as a remote engine would.
	engine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/_ping") {
			w.Header().Set("API-Version", "1.41")
			return
		}
		http.Error(w, "not part of the fake", http.StatusInternalServerError)
	}))
	defer engine.Close()
	cli, err := client.NewClientWithOpts(client.WithHost("tcp://"+engine.Listener.Addr().String()),
		client.WithAPIVersionNegotiation())
	require.NoError(t, err)
	defer cli.Close()

	dir := filepath.Join(t.TempDir(), "lab")
	_, err = Up(context.Background(), cli, Options{Name: "remote", Dir: dir})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "is not a unix:// socket")
	_, statErr := os.Stat(dir)
	assert.True(t, os.IsNotExist(statErr), "up must stop before it creates the lab directory")
}

func TestLabCreateOnce(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, (&Lab{Name: "once", Dir: dir}).create())
	err := (&Lab{Name: "once", Dir: dir}).create()
	assert.ErrorIs(t, err, ErrLabExists)
}

func TestUpWithoutMirror(t *testing.T) {
	cli := connectForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// A repository of its own makes the node image missing, and nothing
	// listens on port 1 of loopback, so debootstrap cannot download.
	opts := testOptions(t, Options{NodeImage: NodeImage{
		Mirror:     "http://127.0.0.1:1/debian",
		Repository: "pasupgrade-labtest-nomirror",
		CacheDir:   t.TempDir(),
	}})
	l, err := Up(ctx, cli, opts)
	require.ErrorIs(t, err, ErrMirrorUnreachable)
	assert.Nil(t, l)
	assert.Contains(t, err.Error(), "http://127.0.0.1:1/debian")
	assert.Contains(t, err.Error(), "pas-lab up --mirror URL")
	_, statErr := os.Stat(opts.Dir)
	assert.True(t, os.IsNotExist(statErr), "a failed up must remove the lab directory")
}

// apiComponents logs in to the management API and returns the components
// of its status reply as "STATE VERSION" by name.
func apiComponents(t *testing.T, baseURL, password string) map[string]string {
	t.Helper()
	body := strings.NewReader(`{"username":"admin","password":"` + password + `"}`)
	resp, err := http.Post(baseURL+"/api/login", "application/json", body)
	require.NoError(t, err)
	var login struct {
		Token string `json:"token"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&login))
	resp.Body.Close()

	req, err := http.NewRequest(http.MethodGet, baseURL+"/api/status", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+login.Token)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var status struct {
		Nodes []struct {
			Components []struct {
				Name, Version, State string
			} `json:"components"`
		} `json:"nodes"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&status))
	components := map[string]string{}
	for _, n := range status.Nodes {
		for _, c := range n.Components {
			components[c.Name] = c.State + " " + c.Version
		}
	}
	return components
}
