package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/runner"
)

// TestDeployCoreUpgradesCoreNode runs the remote part of a multi node
// upgrade: pas-mgmt-deploy-core installs 4.9.0 on the core node over SSH,
// and each restart flag makes the matching component run the new version.
func TestDeployCoreUpgradesCoreNode(t *testing.T) {
	l, cli := upForTest(t, Options{Topology: TopologyMulti, HA: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	mgmt, err := l.Node(cli, "mgmt")
	require.NoError(t, err)
	core, err := l.Node(cli, coreNodeName)
	require.NoError(t, err)
	ports := l.NodeByName(coreNodeName).Ports

	run := func(n *Node, user string, argv ...string) string {
		t.Helper()
		res, err := n.Run(ctx, runner.Command{Argv: argv, User: user, Dir: "/opt/balasys"})
		require.NoError(t, err, "%v: %s %s", argv, res.Stdout, res.Stderr)
		return string(res.Stdout)
	}

	// Guide steps for the automation: the new packages where
	// common_vars.yml points, and the new tag.
	for _, pkg := range []string{StoragePackage, CorePackage} {
		name := DebFileName(pkg, "4.9.0")
		run(mgmt, "", "install", "-m", "0644", filepath.Join(l.PackageDir(), name), "/tmp/"+name)
	}
	run(mgmt, "pas", "sed", "-i", "-e", "s/_4.8.0_all.deb/_4.9.0_all.deb/",
		"-e", "s/PAS_IMAGE_TAG: 4.8.0/PAS_IMAGE_TAG: 4.9.0/", "/opt/balasys/etc/automation/common_vars.yml")

	run(mgmt, "pas", "pas-mgmt-deploy-core", "--deploy-core", "--restart-storage")
	assert.Equal(t, "4.9.0", installedVersion(t, core, CorePackage))
	assert.Equal(t, "4.9.0", installedVersion(t, core, StoragePackage))
	assert.Contains(t, run(core, "", "cat", "/opt/balasys/etc/storage/config.yml"), "config_version: 4.9.0\n")
	assert.Contains(t, run(core, "", "cat", "/opt/balasys/etc/infrastructure/pas/docker-compose.conf"),
		"DOCKER_IMAGE_TAG=4.9.0\n")
	assert.Equal(t, "4.9.0", componentVersion(t, ports["storage"]))
	assert.Equal(t, "4.8.0", componentVersion(t, ports["core"]), "core keeps running until its restart")

	run(mgmt, "pas", "pas-mgmt-deploy-core", "--restart-core")
	assert.Equal(t, "4.9.0", componentVersion(t, ports["core"]))

	run(mgmt, "pas", "pas-mgmt-deploy-core", "--deploy-ha", "--restart-ha")
	assert.Equal(t, "4.9.0", componentVersion(t, ports["ha"]))
}

// componentVersion returns the version a component's health endpoint on
// 127.0.0.1:port reports, waiting for the component to listen.
func componentVersion(t *testing.T, port int) string {
	t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%s/_pas/health", strconv.Itoa(port))
	var h struct {
		Version string `json:"version"`
	}
	require.Eventually(t, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		return err == nil && resp.StatusCode == http.StatusOK && json.Unmarshal(data, &h) == nil
	}, 30*time.Second, 100*time.Millisecond, "no health response from %s", url)
	return h.Version
}
