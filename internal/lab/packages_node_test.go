package lab

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/internal/testenv"
	"github.com/pasops/pasupgrade/runner"
)

// nodeShell runs commands in a node container for the package tests.
type nodeShell struct {
	t    *testing.T
	ctx  context.Context
	node *Node
}

// run runs argv as root (or as user) and fails the test unless it exits 0.
func (s nodeShell) run(user string, stdin string, argv ...string) string {
	s.t.Helper()
	res, err := s.try(user, stdin, argv...)
	require.NoError(s.t, err, "%v\nstdout: %s\nstderr: %s", argv, res.Stdout, res.Stderr)
	return string(res.Stdout)
}

func (s nodeShell) try(user string, stdin string, argv ...string) (runner.Result, error) {
	c := runner.Command{Argv: argv, User: user}
	if stdin != "" {
		c.Stdin = strings.NewReader(stdin)
	}
	return s.node.Run(s.ctx, c)
}

// sh runs a shell script as root.
func (s nodeShell) sh(script string) string {
	s.t.Helper()
	return s.run("", "", "sh", "-ec", script)
}

// installDebs installs the debs of version with dpkg, as an operator who
// keeps changed conffiles and answers nothing outside debconf would.
func (s nodeShell) installDebs(version string) string {
	s.t.Helper()
	script := "DEBIAN_FRONTEND=noninteractive dpkg -i --force-confdef --force-confold"
	for _, pkg := range Packages {
		script += " /tmp/debs/" + DebFileName(pkg, version)
	}
	return s.sh(script)
}

func TestPackagesInstallAndUpgradeInNode(t *testing.T) {
	t.Setenv("DOCKER_HOST", testenv.DockerHost(t))
	debs := packagesForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cli, err := Connect(ctx)
	require.NoError(t, err)
	defer cli.Close()

	node, err := StartNode(ctx, cli, NodeOptions{Name: UniqueName("labpkg-node")})
	require.NoError(t, err)
	t.Cleanup(func() {
		removeCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		assert.NoError(t, node.Remove(removeCtx))
	})
	s := nodeShell{t: t, ctx: ctx, node: node}
	for name, path := range debs {
		require.NoError(t, node.CopyFile(ctx, path, "/tmp/debs/"+name, 0o644))
	}
	systemctl := filepath.Join(t.TempDir(), "pas-systemctl")
	moduleDir, err := findModuleDir()
	require.NoError(t, err)
	require.NoError(t, goBuildStatic(ctx, moduleDir, "./cmd/pas-systemctl", systemctl))
	require.NoError(t, node.CopyFile(ctx, systemctl, "/usr/bin/systemctl", 0o755))

	// 4.8.0 with a preseeded admin password.
	const oldPassword, newPassword = "old-Pass 1", "new-Pass 2"
	s.run("", "proxedo-api-security-mgmt proxedo-api-security-mgmt/admin-password password "+oldPassword+"\n",
		"debconf-set-selections")
	s.installDebs("4.8.0")

	assert.Equal(t, "proxedo-api-security 4.8.0\nproxedo-api-security-mgmt 4.8.0\nproxedo-api-security-storage 4.8.0\n",
		s.run("", "", "dpkg-query", "-W", "-f", "${Package} ${Version}\n", "proxedo-api-security*"))
	assert.Equal(t, "/opt/balasys\n", s.sh("getent passwd pas | cut -d: -f6"))
	sum := sha1.Sum([]byte(oldPassword))
	assert.Equal(t, "admin:{SHA}"+base64.StdEncoding.EncodeToString(sum[:])+"\n",
		s.run("", "", "cat", "/opt/balasys/etc/mgmt/users.htpass"))
	assert.Equal(t, "640 pas\n640 pas\n640 pas\n",
		s.sh("stat -c '%a %U' /opt/balasys/etc/storage/certs/*.pem"))
	assert.NotContains(t, s.run("", "", "debconf-show", MgmtPackage), oldPassword)
	assert.Contains(t, s.sh("ls /opt/balasys/.ssh /opt/balasys/etc/automation"), "id_ed25519")
	assert.Contains(t, s.run("", "", "cat", "/opt/balasys/etc/automation/common_vars.yml"),
		"core_deb_path: /tmp/proxedo-api-security_4.8.0_all.deb\n")

	// Ports on the shared host network are chosen free, as the lab does.
	ports, err := freePorts(3)
	require.NoError(t, err)
	mgmtPort, corePort, storagePort := ports[0], ports[1], ports[2]
	for component, port := range map[string]int{"mgmt": mgmtPort, "core": corePort, "storage": storagePort} {
		s.run("", "", "sed", "-i", "s/^listen_port: .*/listen_port: "+strconv.Itoa(port)+"/",
			"/opt/balasys/etc/"+component+"/config.yml")
	}
	for _, unit := range []string{"proxedo-api-security-storage", "proxedo-api-security-mgmt", "proxedo-api-security"} {
		s.run("", "", "systemctl", "start", unit)
	}
	assert.Equal(t, http.StatusOK, pkgLoginStatus(t, mgmtPort, oldPassword))
	assert.Equal(t, "proxedo-api-security core 4.8.0\n", pkgHTTPBody(t, corePort))
	s.run("", "", "visudo", "--check")
	s.run("pas", "", "sudo", "-n", "systemctl", "is-active", "proxedo-api-security-mgmt")

	// The locally changed conffiles make dpkg ask; without a terminal
	// and without --force-conf* the install stops at the question.
	res, err := s.try("", "", "sh", "-c",
		"dpkg -i /tmp/debs/"+DebFileName(StoragePackage, "4.9.0")+" </dev/null")
	assert.Error(t, err)
	assert.Contains(t, string(res.Stdout)+string(res.Stderr),
		"Configuration file '/opt/balasys/etc/storage/config.yml'")

	// 4.9.0 with "overwrite" answered yes and a new password.
	var selections strings.Builder
	for _, pkg := range Packages {
		fmt.Fprintf(&selections, "%s %s/overwrite-config boolean true\n", pkg, pkg)
	}
	fmt.Fprintf(&selections, "%s %s/admin-password password %s\n", MgmtPackage, MgmtPackage, newPassword)
	s.run("", selections.String(), "debconf-set-selections")
	s.installDebs("4.9.0")

	assert.Equal(t, "proxedo-api-security 4.9.0\nproxedo-api-security-mgmt 4.9.0\nproxedo-api-security-storage 4.9.0\n",
		s.run("", "", "dpkg-query", "-W", "-f", "${Package} ${Version}\n", "proxedo-api-security*"))
	// The changed config.yml files were kept at the conffile question, so
	// their backups are the 4.8.0 files. dpkg replaced the unchanged
	// docker-compose.conf files before the postinst ran.
	for _, backup := range []string{
		"/opt/balasys/etc/storage/backups/config.yml.4.8.0",
		"/opt/balasys/etc/mgmt/backups/config.yml.4.8.0",
		"/opt/balasys/etc/core/backups/config.yml.4.8.0",
	} {
		assert.Contains(t, s.run("", "", "cat", backup), "config_version: 4.8.0\n", backup)
	}
	for _, backup := range []string{
		"/opt/balasys/etc/infrastructure/storage/backups/docker-compose.conf.4.8.0",
		"/opt/balasys/etc/infrastructure/mgmt/backups/docker-compose.conf.4.8.0",
		"/opt/balasys/etc/infrastructure/core/backups/docker-compose.conf.4.8.0",
	} {
		assert.Contains(t, s.run("", "", "cat", backup), "DOCKER_IMAGE_TAG=", backup)
	}
	mgmtConfig := s.run("", "", "cat", "/opt/balasys/etc/mgmt/config.yml")
	assert.Contains(t, mgmtConfig, "config_version: 4.9.0\n")
	assert.Contains(t, mgmtConfig, "  port: "+strconv.Itoa(mgmtPort)+"\n", "the overwrite keeps the port")
	assert.Contains(t, s.run("", "", "cat", "/opt/balasys/etc/mgmt/users.htpass"), "admin:$2y$")
	assert.NotContains(t, s.run("", "", "debconf-show", MgmtPackage), newPassword)
	assert.Equal(t, "640 pas\n640 pas\n640 pas\n",
		s.sh("stat -c '%a %U' /opt/balasys/etc/storage/certs/*.pem"), "an upgrade keeps the certificate modes")
	assert.Contains(t, s.sh("ls /opt/balasys/etc/storage/"), "config.yml.dpkg-dist")
	s.run("", "", "test", "-x", "/usr/bin/pas-mgmt-upgrade-config")

	// The guide's steps after the install, as pas.
	for _, command := range []string{"pas-update", "pas-mgmt-update", "pas-storage-update",
		"pas-mgmt-checkconfig", "pas-storage-checkconfig"} {
		s.run("pas", "", command)
	}
	for _, unit := range []string{"proxedo-api-security-mgmt", "proxedo-api-security-storage", "proxedo-api-security"} {
		s.run("", "", "systemctl", "restart", unit)
	}
	assert.Equal(t, http.StatusOK, pkgLoginStatus(t, mgmtPort, newPassword))
	assert.Equal(t, http.StatusUnauthorized, pkgLoginStatus(t, mgmtPort, oldPassword))
	assert.Equal(t, "proxedo-api-security core 4.9.0\n", pkgHTTPBody(t, corePort))

	// The guide's restore: stop, purge, remove the user, reinstall 4.8.0.
	for _, unit := range []string{"proxedo-api-security", "proxedo-api-security-mgmt", "proxedo-api-security-storage"} {
		s.run("", "", "systemctl", "stop", unit)
	}
	s.sh("DEBIAN_FRONTEND=noninteractive apt-get remove --purge -y -q " + strings.Join(Packages, " ") + " </dev/null")
	s.run("", "", "userdel", "--force", "--remove", "pas")
	s.run("", "", "test", "!", "-e", "/opt/balasys")
	for _, pkg := range Packages {
		assert.Empty(t, s.run("", "", "debconf-show", pkg), "purge removes the debconf answers of %s", pkg)
	}
	s.installDebs("4.8.0")
	assert.Equal(t, "/opt/balasys\n", s.sh("getent passwd pas | cut -d: -f6"))
	sum = sha1.Sum([]byte(DefaultAdminPassword))
	assert.Equal(t, "admin:{SHA}"+base64.StdEncoding.EncodeToString(sum[:])+"\n",
		s.run("", "", "cat", "/opt/balasys/etc/mgmt/users.htpass"), "no preseeded password leaves the default")
	s.run("pas", "", "pas-mgmt-checkconfig")
	s.run("pas", "", "pas-storage-checkconfig")
}

func pkgLoginStatus(t *testing.T, port int, password string) int {
	t.Helper()
	body := fmt.Sprintf(`{"username":"admin","password":%q}`, password)
	var status int
	require.Eventually(t, func() bool {
		resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/api/login", port), "application/json",
			bytes.NewReader([]byte(body)))
		if err != nil {
			return false
		}
		resp.Body.Close()
		status = resp.StatusCode
		return true
	}, 20*time.Second, 100*time.Millisecond)
	return status
}

func pkgHTTPBody(t *testing.T, port int) string {
	t.Helper()
	var body []byte
	require.Eventually(t, func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, err = io.ReadAll(resp.Body)
		return err == nil
	}, 20*time.Second, 100*time.Millisecond)
	return string(body)
}

func TestPackagesDebconfFrontends(t *testing.T) {
	t.Setenv("DOCKER_HOST", testenv.DockerHost(t))
	debs := packagesForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cli, err := Connect(ctx)
	require.NoError(t, err)
	defer cli.Close()
	node, err := StartNode(ctx, cli, NodeOptions{Name: UniqueName("labpkg-node")})
	require.NoError(t, err)
	t.Cleanup(func() {
		removeCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		assert.NoError(t, node.Remove(removeCtx))
	})
	s := nodeShell{t: t, ctx: ctx, node: node}
	for name, path := range debs {
		require.NoError(t, node.CopyFile(ctx, path, "/tmp/debs/"+name, 0o644))
	}
	// 4.8.0 with a preseeded admin password, as pas-lab up installs it.
	// The preseeded answer marks the question as seen.
	s.run("", "proxedo-api-security-mgmt proxedo-api-security-mgmt/admin-password password old-Pass 1\n",
		"debconf-set-selections")
	s.installDebs("4.8.0")

	// Without a preseeded answer the noninteractive frontend takes the
	// default, which keeps the configuration, and nothing reads stdin.
	s.sh("DEBIAN_FRONTEND=noninteractive dpkg -i /tmp/debs/" + DebFileName(StoragePackage, "4.9.0") + " </dev/null")
	s.run("", "", "test", "!", "-e", "/opt/balasys/etc/storage/backups")
	assert.Contains(t, s.run("", "", "cat", "/opt/balasys/etc/storage/config.yml"), "config_version: 4.9.0\n",
		"dpkg installed the unchanged conffile's new version")

	// On a terminal, debconf shows both questions at its default priority
	// and reads the answers typed there, also the password question that
	// the 4.8.0 installation answered. script(1) gives dpkg a
	// pseudo-terminal inside the node. The answers are written before the
	// questions, so the terminal may echo the password; whether debconf
	// hides it while typing is not checked here.
	const typedPassword = "Typed-Pass 3"
	res, err := s.try("", "yes\n"+typedPassword+"\n", "script", "-qefc",
		"DEBIAN_FRONTEND=teletype dpkg -i /tmp/debs/"+DebFileName(MgmtPackage, "4.9.0"),
		"/dev/null")
	require.NoError(t, err, "%s", res.Stderr)
	terminal := string(res.Stdout)
	assert.Contains(t, terminal, "Overwrite the existing configuration files? [yes/no]")
	assert.Contains(t, terminal, "Password of the management admin user:")
	assert.Contains(t, terminal, "stored the new admin password hash")
	assert.Contains(t, s.run("", "", "ls", "/opt/balasys/etc/mgmt/backups"), "config.yml.4.8.0")
	assert.Contains(t, s.run("", "", "cat", "/opt/balasys/etc/mgmt/users.htpass"), "admin:$2y$")
}
