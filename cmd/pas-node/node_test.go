package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

// node is a temporary node root for one test.
type node struct {
	t    *testing.T
	root string
	uid  int // the uid commands run as
}

func newNode(t *testing.T) *node {
	return &node{t: t, root: t.TempDir(), uid: 1000}
}

func (n *node) write(path, text string) {
	n.t.Helper()
	file := filepath.Join(n.root, path)
	require.NoError(n.t, os.MkdirAll(filepath.Dir(file), 0o755))
	require.NoError(n.t, os.WriteFile(file, []byte(text), 0o644))
}

func (n *node) read(path string) string {
	n.t.Helper()
	data, err := os.ReadFile(filepath.Join(n.root, path))
	require.NoError(n.t, err)
	return string(data)
}

// install writes what the package of component c at version installs,
// with the configuration in configVersion's format.
func (n *node) install(c component, version, configVersion string, port int) {
	n.t.Helper()
	n.write(versionFile(c.pkg), version+"\n")
	n.write(c.configFile, configText(c, configVersion, port))
	n.write(c.composeFile, "# compose\nCOMPOSE_PROJECT_NAME=pas\nDOCKER_IMAGE_TAG="+version+"\n")
}

func configText(c component, version string, port int) string {
	text := "# " + c.name + " configuration\nconfig_version: " + version + "\n"
	if version == version480 {
		text += fmt.Sprintf("listen_address: 127.0.0.1\n# the port\nlisten_port: %d\n", port)
	} else {
		text += fmt.Sprintf("listen:\n  address: 127.0.0.1\n  port: %d\n", port)
	}
	switch c.name {
	case "mgmt":
		text += "users_file: /opt/balasys/etc/mgmt/users.htpass\nstate_dir: /opt/balasys/var/mgmt\n" +
			"tls_cert: \"\"\ntls_key: \"\"\nstatus_file: \"\"\nenable_control: false\n"
	case "storage":
		text += "certificate: /opt/balasys/etc/storage/certs/storage.pem\n" +
			"private_key: /opt/balasys/etc/storage/certs/storage-key.pem\n"
	case "core":
		text += "upstream: \"\"\n"
	}
	return text
}

// run runs the binary as name with args and returns the exit code and output.
func (n *node) run(stdin string, name string, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	env := &environment{root: n.root, uid: n.uid, stdin: strings.NewReader(stdin), stdout: &stdout, stderr: &stderr}
	code := dispatch(env, append([]string{"/usr/bin/" + name}, args...))
	return code, stdout.String(), stderr.String()
}

func TestUpdateMigratesConfig(t *testing.T) {
	n := newNode(t)
	n.install(components["mgmt"], version490, version480, 18090)

	code, stdout, stderr := n.run("", "pas-mgmt-update")

	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "migrated /opt/balasys/etc/mgmt/config.yml to config_version 4.9.0")
	config := n.read(components["mgmt"].configFile)
	assert.Contains(t, config, "# mgmt configuration\n")
	assert.Contains(t, config, "config_version: 4.9.0\n")
	assert.Contains(t, config, "# the port\nlisten:\n  address: 127.0.0.1\n  port: 18090\n")
	assert.NotContains(t, config, "listen_port")
	assert.NotContains(t, config, "listen_address")
	assert.Contains(t, config, "users_file: /opt/balasys/etc/mgmt/users.htpass\n")

	code, stdout, _ = n.run("", "pas-mgmt-update")
	assert.Equal(t, 0, code)
	assert.Contains(t, stdout, "already in the 4.9.0 format")
	assert.Equal(t, config, n.read(components["mgmt"].configFile), "a second run changes nothing")
}

func TestUpdateCases(t *testing.T) {
	tests := []struct {
		name             string
		command          string
		installed        string
		configVersion    string
		args             []string
		code             int
		message          string
		wantImageTagLine string
	}{
		{"nothing to do on 4.8.0", "pas-storage-update", version480, version480, nil, 0,
			"already in the 4.8.0 format", "DOCKER_IMAGE_TAG=4.8.0\n"},
		{"newer config than package", "pas-storage-update", version480, version490, nil, 1,
			"newer than the installed proxedo-api-security-storage 4.8.0", "DOCKER_IMAGE_TAG=4.8.0\n"},
		{"image tag set", "pas-storage-update", version490, version480, []string{"--image-tag", "4.9.0"}, 0,
			"DOCKER_IMAGE_TAG=4.9.0 in", "DOCKER_IMAGE_TAG=4.9.0\n"},
		{"unknown flag", "pas-storage-update", version490, version480, []string{"--force"}, 2,
			"usage:", "DOCKER_IMAGE_TAG=4.9.0\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t)
			c := components["storage"]
			n.install(c, tt.installed, tt.configVersion, 19200)
			if tt.args != nil && tt.code == 0 {
				n.write(c.composeFile, "# compose\nDOCKER_IMAGE_TAG=4.8.0\n")
			}

			code, stdout, stderr := n.run("", tt.command, tt.args...)

			assert.Equal(t, tt.code, code, stderr)
			assert.Contains(t, stdout+stderr, tt.message)
			assert.Contains(t, n.read(c.composeFile), tt.wantImageTagLine)
		})
	}
}

func TestUpdateCoreMigratesHA(t *testing.T) {
	n := newNode(t)
	n.install(components["core"], version490, version480, 18080)
	n.write(components["ha"].configFile, configText(components["ha"], version480, 18100))

	code, _, stderr := n.run("", "pas-update")

	require.Equal(t, 0, code, stderr)
	assert.Contains(t, n.read(components["core"].configFile), "config_version: 4.9.0\n")
	assert.Contains(t, n.read(components["ha"].configFile), "config_version: 4.9.0\n")
}

func TestCheckconfig(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(n *node)
		code     int
		messages []string
	}{
		{"migrated", func(n *node) {
			n.install(components["mgmt"], version490, version490, 18090)
		}, 0, []string{"mgmt: configuration OK"}},
		{"not migrated", func(n *node) {
			n.install(components["mgmt"], version490, version480, 18090)
		}, 1, []string{"config_version 4.8.0 but proxedo-api-security-mgmt 4.9.0 is installed; run pas-mgmt-update"}},
		{"old image tag", func(n *node) {
			n.install(components["mgmt"], version490, version490, 18090)
			n.write(components["mgmt"].composeFile, "DOCKER_IMAGE_TAG=4.8.0\n")
		}, 1, []string{"DOCKER_IMAGE_TAG=4.8.0 in /opt/balasys/etc/infrastructure/mgmt/docker-compose.conf",
			"set it to 4.9.0"}},
		{"bad port", func(n *node) {
			n.install(components["mgmt"], version490, version490, 18090)
			n.write(components["mgmt"].configFile, "config_version: 4.9.0\nlisten:\n  port: http\n")
		}, 1, []string{`listening port "http" is not a number from 1 to 65535`}},
		{"old key in new format", func(n *node) {
			n.install(components["mgmt"], version490, version490, 18090)
			n.write(components["mgmt"].configFile, "config_version: 4.9.0\nlisten_port: 1\n")
		}, 1, []string{"listen_port is the 4.8.0 key"}},
		{"not installed", func(n *node) {}, 1, []string{"proxedo-api-security-mgmt is not installed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t)
			n.write("/opt/balasys/etc/mgmt/users.htpass", "admin:{SHA}x\n")
			tt.setup(n)

			code, stdout, stderr := n.run("", "pas-mgmt-checkconfig")

			assert.Equal(t, tt.code, code)
			for _, m := range tt.messages {
				assert.Contains(t, stdout+stderr, m)
			}
		})
	}
}

func TestStorageCheckconfigLoadsCertificates(t *testing.T) {
	n := newNode(t)
	n.install(components["storage"], version490, version490, 19200)
	n.write("/opt/balasys/etc/storage/certs/storage.pem", "not a certificate\n")
	n.write("/opt/balasys/etc/storage/certs/storage-key.pem", "not a key\n")

	code, _, stderr := n.run("", "pas-storage-checkconfig")

	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "loading the storage certificate /opt/balasys/etc/storage/certs/storage.pem")
}

func TestResetConfigKeepsNodeSettings(t *testing.T) {
	n := newNode(t)
	c := components["mgmt"]
	n.install(c, version490, version480, 18555)
	old := strings.Replace(n.read(c.configFile), `status_file: ""`, "status_file: /run/status.json", 1)
	n.write(c.configFile, old)
	defaults := "/opt/balasys/usr/share/" + c.pkg + "/defaults/"
	n.write(defaults+"mgmt/config.yml", "# default\n"+configText(c, version490, 8090))
	n.write(defaults+"infrastructure/mgmt/docker-compose.conf", "DOCKER_IMAGE_TAG=4.9.0\n")

	code, _, stderr := n.run("", "pas-mgmt", "reset-config")

	require.Equal(t, 0, code, stderr)
	config := n.read(c.configFile)
	assert.Contains(t, config, "# default\n")
	assert.Contains(t, config, "config_version: 4.9.0\n")
	assert.Contains(t, config, "  port: 18555\n")
	assert.Contains(t, config, "status_file: /run/status.json\n")
	assert.Equal(t, "DOCKER_IMAGE_TAG=4.9.0\n", n.read(c.composeFile))
}

func TestResetConfigKeepsEmptyStrings(t *testing.T) {
	n := newNode(t)
	c := components["mgmt"]
	n.install(c, version490, version480, 18555)
	defaults := "/opt/balasys/usr/share/" + c.pkg + "/defaults/"
	n.write(defaults+"mgmt/config.yml", configText(c, version490, 8090))
	n.write(defaults+"infrastructure/mgmt/docker-compose.conf", "DOCKER_IMAGE_TAG=4.9.0\n")

	code, _, stderr := n.run("", "pas-mgmt", "reset-config")

	require.Equal(t, 0, code, stderr)
	config := n.read(c.configFile)
	assert.Contains(t, config, "tls_cert: \"\"\n", "an empty string must not turn into null")
	assert.Contains(t, config, "tls_key: \"\"\n")
	assert.Contains(t, config, "status_file: \"\"\n")
}

func TestSetPassword(t *testing.T) {
	tests := []struct {
		scheme string
		check  func(t *testing.T, hash string)
	}{
		{"sha", func(t *testing.T, hash string) {
			sum := sha1.Sum([]byte("new secret"))
			assert.Equal(t, "{SHA}"+base64.StdEncoding.EncodeToString(sum[:]), hash)
		}},
		{"bcrypt", func(t *testing.T, hash string) {
			assert.True(t, strings.HasPrefix(hash, "$2y$"), hash)
			assert.NoError(t, bcrypt.CompareHashAndPassword([]byte(hash), []byte("new secret")))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.scheme, func(t *testing.T) {
			n := newNode(t)
			n.write("/opt/balasys/etc/mgmt/users.htpass", "operator:{SHA}abc\nadmin:{SHA}old\n")

			code, stdout, stderr := n.run("new secret\n", "pas-mgmt", "set-password", "--scheme", tt.scheme)

			require.Equal(t, 0, code, stderr)
			assert.NotContains(t, stdout+stderr, "new secret")
			lines := strings.Split(strings.TrimSpace(n.read("/opt/balasys/etc/mgmt/users.htpass")), "\n")
			require.Len(t, lines, 2)
			assert.Equal(t, "operator:{SHA}abc", lines[0])
			hash, ok := strings.CutPrefix(lines[1], "admin:")
			require.True(t, ok, lines[1])
			tt.check(t, hash)
		})
	}
}

func TestSetPasswordRejectsEmpty(t *testing.T) {
	n := newNode(t)
	n.write("/opt/balasys/etc/mgmt/users.htpass", "admin:{SHA}old\n")

	code, _, stderr := n.run("", "pas-mgmt", "set-password")

	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "the password on stdin is empty")
	assert.Equal(t, "admin:{SHA}old\n", n.read("/opt/balasys/etc/mgmt/users.htpass"))
}

func TestMgmtSimArgv(t *testing.T) {
	n := newNode(t)
	c := components["mgmt"]
	n.install(c, version490, version490, 18090)
	config := strings.NewReplacer(`status_file: ""`, "status_file: /run/status.json",
		"enable_control: false", "enable_control: true").Replace(n.read(c.configFile))
	n.write(c.configFile, config)
	env := &environment{root: n.root}

	s, err := loadConfig(env, c)
	require.NoError(t, err)

	assert.Equal(t, []string{
		n.root + "/opt/balasys/usr/bin/pas-mgmt-sim",
		"--listen", "127.0.0.1:18090",
		"--htpasswd", n.root + "/opt/balasys/etc/mgmt/users.htpass",
		"--state-dir", n.root + "/opt/balasys/var/mgmt",
		"--version", "4.9.0",
		"--status-file", n.root + "/run/status.json",
		"--enable-control",
	}, mgmtSimArgv(env, s))
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestCoreServesAndStops(t *testing.T) {
	n := newNode(t)
	port := freePort(t)
	n.install(components["core"], version480, version480, port)
	env := &environment{root: n.root, stderr: io.Discard}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serveComponent(ctx, env, components["core"], slog.New(slog.DiscardHandler))
	}()

	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	var resp *http.Response
	require.Eventually(t, func() bool {
		var err error
		resp, err = http.Get(base + "/any/path")
		return err == nil
	}, 5*time.Second, 20*time.Millisecond)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "4.8.0", resp.Header.Get("X-PAS-Version"))
	assert.Equal(t, "proxedo-api-security core 4.8.0\n", string(body))

	resp, err := http.Get(base + healthPath)
	require.NoError(t, err)
	var h health
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&h))
	resp.Body.Close()
	assert.Equal(t, health{Component: "core", Version: "4.8.0", State: "running"}, h)

	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("core did not stop after its context ended")
	}
}

func TestComponentRejectsUnmigratedConfig(t *testing.T) {
	n := newNode(t)
	n.install(components["core"], version490, version480, freePort(t))
	env := &environment{root: n.root, stderr: io.Discard}

	err := serveComponent(context.Background(), env, components["core"], slog.New(slog.DiscardHandler))

	require.Error(t, err)
	assert.Contains(t, err.Error(), "not starting")
	assert.Contains(t, err.Error(), "run pas-update")
}

func TestDispatchUnknownName(t *testing.T) {
	n := newNode(t)

	code, _, stderr := n.run("", "pas-frobnicate")

	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, `unknown command "pas-frobnicate"`)
}

func TestSetImageTagKeepsFormat(t *testing.T) {
	tests := []struct {
		name, before, after string
	}{
		{"plain", "# c\nDOCKER_IMAGE_TAG=4.8.0\nX=1\n", "# c\nDOCKER_IMAGE_TAG=4.9.0\nX=1\n"},
		{"export and quotes", "export DOCKER_IMAGE_TAG=\"4.8.0\"\n", "export DOCKER_IMAGE_TAG=\"4.9.0\"\n"},
		{"single quotes", "DOCKER_IMAGE_TAG='4.8.0'\n", "DOCKER_IMAGE_TAG='4.9.0'\n"},
		{"missing", "X=1", "X=1\nDOCKER_IMAGE_TAG=4.9.0\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "docker-compose.conf")
			require.NoError(t, os.WriteFile(file, []byte(tt.before), 0o644))

			require.NoError(t, setImageTag(file, "4.9.0"))

			data, err := os.ReadFile(file)
			require.NoError(t, err)
			assert.Equal(t, tt.after, string(data))
			tag, err := imageTag(file)
			require.NoError(t, err)
			assert.Equal(t, "4.9.0", tag)
		})
	}
}

func TestStorageCheckconfigWarnsGroupReadablePEM(t *testing.T) {
	tests := []struct {
		installed string
		mode      os.FileMode
		warn      bool
	}{
		{version490, 0o640, true},
		{version490, 0o600, false},
		{version480, 0o640, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s_%04o", tt.installed, tt.mode), func(t *testing.T) {
			n := newNode(t)
			n.install(components["storage"], tt.installed, tt.installed, 19200)
			writeTestCertificate(t, n)
			for _, name := range []string{"storage.pem", "storage-key.pem"} {
				require.NoError(t, os.Chmod(filepath.Join(n.root, "/opt/balasys/etc/storage/certs", name), tt.mode))
			}

			code, stdout, stderr := n.run("", "pas-storage-checkconfig")

			require.Equal(t, 0, code, stderr)
			assert.Contains(t, stdout, "storage: configuration OK")
			if tt.warn {
				assert.Contains(t, stderr, "storage: warning: /opt/balasys/etc/storage/certs/storage.pem has mode 0640")
				assert.Contains(t, stderr, `find "/opt/balasys/etc/storage/" -type f -name '*.pem' -exec chmod 600 {} +`)
			} else {
				assert.Empty(t, stderr)
			}
		})
	}
}

// writeTestCertificate writes a self-signed certificate and key where the
// storage configuration of configText expects them.
func writeTestCertificate(t *testing.T, n *node) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	template := &x509.Certificate{SerialNumber: big.NewInt(1), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	n.write("/opt/balasys/etc/storage/certs/storage.pem",
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	n.write("/opt/balasys/etc/storage/certs/storage-key.pem",
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
}

func TestHelpPrintsUsage(t *testing.T) {
	n := newNode(t)

	code, stdout, _ := n.run("", "pas-mgmt-deploy-core", "--help")

	assert.Equal(t, 0, code)
	assert.Equal(t, "usage: "+deployUsage+"\n", stdout)
}

func TestSetListenPortInEitherFormat(t *testing.T) {
	for _, v := range []string{version480, version490} {
		t.Run(v, func(t *testing.T) {
			n := newNode(t)
			c := components["core"]
			n.install(c, v, v, 18443)

			code, _, stderr := n.run("", "pas-core", "set-listen-port", "19443")

			require.Equal(t, 0, code, stderr)
			doc, err := readYAML(filepath.Join(n.root, c.configFile))
			require.NoError(t, err)
			s, err := parseSettings(doc, c.configFile)
			require.NoError(t, err)
			assert.Equal(t, v, s.version, "the format is kept")
			assert.Equal(t, 19443, s.port)
		})
	}
}

func TestSetListenPortRejectsBadPort(t *testing.T) {
	n := newNode(t)
	n.install(components["core"], version480, version480, 18443)
	code, _, stderr := n.run("", "pas-core", "set-listen-port", "70000")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, `port "70000" is not a number from 1 to 65535`)
}
