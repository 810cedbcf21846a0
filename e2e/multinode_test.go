package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/pasops/pasupgrade/internal/lab"
	"github.com/pasops/pasupgrade/pasupgrade"
	"github.com/pasops/pasupgrade/runner"
)

// coreNode is the lab's name of the remote core node.
const coreNode = "core-1"

// stepDeployRemoteCore is the id of the multi-node step that upgrades and
// restarts the remote core, which the pasupgrade package does not export.
const stepDeployRemoteCore = "deploy-remote-core"

// TestMultiNodeUpgrade upgrades multi-node labs with and without HA and
// with core on the management node and without. The remote core node
// reports reload FAILED after the post-upgrade apply, which the final
// status check must repair with a config apply.
func TestMultiNodeUpgrade(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		ha, coreOnMgmt bool
	}{
		{"plain", false, false},
		{"ha", true, false},
		{"core on mgmt", false, true},
		{"ha and core on mgmt", true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := startLab(t, lab.Options{Topology: lab.TopologyMulti, HA: tc.ha, CoreOnMgmt: tc.coreOnMgmt})
			ctx, cancel := context.WithTimeout(context.Background(), labTimeout)
			defer cancel()

			fault := `{"kind":"node_reload_failed","nodes":["` + coreNode + `"]}`
			run := l.runCLI(ctx, faultAtStep(l, stepDeployRemoteCore, fault), l.upgradeArgs()...)
			require.Equal(t, 0, run.ExitCode, "pasupgrade-cli upgrade failed; stdout:\n%s", run.Stdout)

			l.assertUpgraded(ctx, run)
			assert.Contains(t, run.summary(t).Summary.Reapplied, coreNode,
				"the summary must name the node whose reload was repaired")
			l.assertMultiNodeEdits(ctx)
			l.assertRemoteAt(ctx, "4.9.0")
		})
	}
}

// TestRestoreMultiNode upgrades a multi-node lab and restores it: the
// remote core node too must be back at 4.8.0 and running.
func TestRestoreMultiNode(t *testing.T) {
	t.Parallel()
	l := startLab(t, lab.Options{Topology: lab.TopologyMulti})
	ctx, cancel := context.WithTimeout(context.Background(), labTimeout)
	defer cancel()
	snapshot := l.snapshotBootstrap(ctx)
	running := l.simState(ctx).Running

	run := l.runCLI(ctx, nil, l.upgradeArgs()...)
	require.Equal(t, 0, run.ExitCode, "pasupgrade-cli upgrade failed; stdout:\n%s", run.Stdout)
	l.assertRemoteAt(ctx, "4.9.0")

	l.restore(ctx, run.summary(t).Summary.BackupSet)
	l.assertRestored(ctx, snapshot, running.SHA256)
	l.assertRemoteAt(ctx, "4.8.0")
}

// assertMultiNodeEdits checks the file edits of a multi-node upgrade on the
// management node: the image tag in the three docker-compose.conf files
// and the deployment settings in common_vars.yml.
func (l *testLab) assertMultiNodeEdits(ctx context.Context) {
	t := l.t
	t.Helper()
	for _, f := range pasupgrade.Upgrade480To490.ComposeFiles {
		if f.Component == "core" && !l.mgmtHasCore() {
			// Only the core package installs core's docker-compose.conf.
			continue
		}
		out := l.inNode(ctx, "sh", "-c", "grep '^DOCKER_IMAGE_TAG=' "+f.Path+" || true")
		assert.Equal(t, "DOCKER_IMAGE_TAG=4.9.0", strings.TrimSpace(out), "%s", f.Path)
	}

	var vars struct {
		StorageDebPath string `yaml:"storage_deb_path"`
		CoreDebPath    string `yaml:"core_deb_path"`
		Common         struct {
			Docker struct {
				Tag string `yaml:"PAS_IMAGE_TAG"`
			} `yaml:"docker"`
		} `yaml:"common"`
	}
	data := l.inNode(ctx, "cat", pasupgrade.CommonVarsPath)
	require.NoError(t, yaml.Unmarshal([]byte(data), &vars), "parsing %s", pasupgrade.CommonVarsPath)
	assert.True(t, strings.HasSuffix(vars.StorageDebPath, "/proxedo-api-security-storage_4.9.0_all.deb"),
		"storage_deb_path is %q", vars.StorageDebPath)
	assert.True(t, strings.HasSuffix(vars.CoreDebPath, "/proxedo-api-security_4.9.0_all.deb"),
		"core_deb_path is %q", vars.CoreDebPath)
	assert.Equal(t, "4.9.0", vars.Common.Docker.Tag, "common.docker.PAS_IMAGE_TAG")
}

// assertRemoteAt checks the remote core node: its packages at version and
// every unit it runs active.
func (l *testLab) assertRemoteAt(ctx context.Context, version string) {
	t := l.t
	t.Helper()
	node, err := l.lab.Node(l.docker, coreNode)
	require.NoError(t, err)
	info := l.lab.NodeByName(coreNode)

	res, err := node.Run(ctx, runner.Command{Argv: []string{"dpkg-query", "-W", "-f",
		"${Package} ${Version} ${Status}\n", "proxedo-api-security*"}})
	require.NoError(t, err)
	versions := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(res.Stdout)), "\n") {
		name, rest, _ := strings.Cut(line, " ")
		versions[name] = rest
	}
	for _, pkg := range info.Packages {
		assert.Equal(t, version+" install ok installed", versions[pkg], "package %s on %s", pkg, coreNode)
	}
	for _, unit := range info.Units {
		res, _ := node.Run(ctx, runner.Command{Argv: []string{"systemctl", "is-active", unit}})
		assert.Equal(t, "active", strings.TrimSpace(string(res.Stdout)), "unit %s on %s", unit, coreNode)
	}
	// Each component listens on the port the inventory's host variables
	// give it, also after a restore reinstalled the node's packages.
	for _, c := range []string{"storage", "core", "ha"} {
		if port, ok := info.Ports[c]; ok {
			assert.Equal(t, version, healthVersion(t, port), "%s on %s at port %d", c, coreNode, port)
		}
	}
}

// healthVersion returns the version a component reports on port, waiting
// up to 30 s for a response.
func healthVersion(t *testing.T, port int) string {
	t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d/_pas/health", port)
	var h struct {
		Version string `json:"version"`
	}
	ok := assert.Eventually(t, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&h) == nil
	}, 30*time.Second, 100*time.Millisecond, "no health response from %s", url)
	if !ok {
		return ""
	}
	return h.Version
}
