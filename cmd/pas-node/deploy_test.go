package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testInventory = `all:
  children:
    core:
      hosts:
        core-2: {ansible_host: 127.0.0.2, ansible_port: 2202}
        core-1:
          ansible_host: 127.0.0.1
          ansible_port: 2201
          ansible_user: pas
    ha:
      hosts: {}
`

const testCommonVars = `storage_deb_path: /tmp/proxedo-api-security-storage_4.9.0_all.deb
core_deb_path: /tmp/proxedo-api-security_4.9.0_all.deb
common:
  docker:
    PAS_IMAGE_TAG: 4.9.0
`

// fakeTools puts fake ssh, scp and dpkg-deb first in PATH. Each appends
// its arguments as one line to the returned log file; dpkg-deb prints the
// fields of a .deb whose version is debVersion.
func fakeTools(t *testing.T, debVersion string) string {
	t.Helper()
	bin := t.TempDir()
	log := filepath.Join(bin, "calls.log")
	record := "#!/bin/sh\necho \"$(basename \"$0\") $*\" >>" + log + "\n"
	for _, name := range []string{"ssh", "scp"} {
		require.NoError(t, os.WriteFile(filepath.Join(bin, name), []byte(record), 0o755))
	}
	dpkgDeb := record + "case \"$2\" in */proxedo-api-security-storage_*) p=proxedo-api-security-storage ;;" +
		" *) p=proxedo-api-security ;; esac\nprintf 'Package: %s\\nVersion: " + debVersion + "\\n' \"$p\"\n"
	require.NoError(t, os.WriteFile(filepath.Join(bin, "dpkg-deb"), []byte(dpkgDeb), 0o755))
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	return log
}

func calls(t *testing.T, log string) []string {
	t.Helper()
	data, err := os.ReadFile(log)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

func deployNode(t *testing.T) *node {
	n := newNode(t)
	n.write(inventoryFile, testInventory)
	n.write(commonVarsFile, testCommonVars)
	n.write(sshDir+"/id_ed25519", "key\n")
	return n
}

func TestDeployCoreAndRestartStorage(t *testing.T) {
	log := fakeTools(t, "4.9.0")
	n := deployNode(t)

	code, stdout, stderr := n.run("", "pas-mgmt-deploy-core", "--deploy-core", "--restart-storage")

	require.Equal(t, 0, code, stderr)
	key := n.root + "/opt/balasys/.ssh/id_ed25519"
	opts := "-i " + key + " -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=" +
		n.root + "/opt/balasys/.ssh/known_hosts -o ConnectTimeout=10"
	storageDeb := n.root + "/tmp/proxedo-api-security-storage_4.9.0_all.deb"
	coreDeb := n.root + "/tmp/proxedo-api-security_4.9.0_all.deb"
	install := "sudo -n DEBIAN_FRONTEND=noninteractive dpkg -i --force-confdef --force-confold " +
		"/tmp/proxedo-api-security-storage_4.9.0_all.deb /tmp/proxedo-api-security_4.9.0_all.deb </dev/null"
	update := "pas-storage-update --image-tag 4.9.0 && pas-update --image-tag 4.9.0"
	var want []string
	want = append(want,
		"dpkg-deb --field "+storageDeb+" Package Version",
		"dpkg-deb --field "+coreDeb+" Package Version")
	for _, h := range []struct{ addr, port string }{{"127.0.0.1", "2201"}, {"127.0.0.2", "2202"}} {
		want = append(want,
			"scp -q -P "+h.port+" "+opts+" "+storageDeb+" pas@"+h.addr+":/tmp/proxedo-api-security-storage_4.9.0_all.deb",
			"scp -q -P "+h.port+" "+opts+" "+coreDeb+" pas@"+h.addr+":/tmp/proxedo-api-security_4.9.0_all.deb",
			"ssh -p "+h.port+" "+opts+" pas@"+h.addr+" "+install,
			"ssh -p "+h.port+" "+opts+" pas@"+h.addr+" "+update)
	}
	for _, h := range []struct{ addr, port string }{{"127.0.0.1", "2201"}, {"127.0.0.2", "2202"}} {
		want = append(want, "ssh -p "+h.port+" "+opts+" pas@"+h.addr+" sudo -n systemctl restart proxedo-api-security-storage")
	}
	assert.Equal(t, want, calls(t, log))
	assert.Contains(t, stdout, "core-1: restarting proxedo-api-security-storage")
}

func TestDeployCoreRejects(t *testing.T) {
	tests := []struct {
		name       string
		debVersion string
		setup      func(n *node)
		args       []string
		code       int
		message    string
	}{
		{"no flags", "4.9.0", nil, nil, 2, "give at least one of the flags"},
		{"as root", "4.9.0", func(n *node) { n.uid = 0 }, []string{"--restart-core"}, 1,
			"run pas-mgmt-deploy-core as the pas user"},
		{"unknown flag", "4.9.0", nil, []string{"--deploy-everything"}, 2, "flag provided but not defined"},
		{"version mismatch", "4.8.0", nil, []string{"--deploy-core"}, 1,
			"is version 4.8.0 but common.docker.PAS_IMAGE_TAG is 4.9.0"},
		{"no HA hosts", "4.9.0", nil, []string{"--restart-ha"}, 1, `has no hosts in group "ha"`},
		{"no key", "4.9.0", func(n *node) {
			require.NoError(t, os.Remove(filepath.Join(n.root, sshDir, "id_ed25519")))
		}, []string{"--restart-core"}, 1, "no SSH key"},
		{"core and missing HA group", "4.9.0", nil, []string{"--restart-core", "--restart-ha"}, 1,
			`has no hosts in group "ha"`},
		{"tag with shell characters", "4.9.0", func(n *node) {
			n.write(commonVarsFile, "common:\n  docker:\n    PAS_IMAGE_TAG: 4.9.0;reboot\n")
		}, []string{"--restart-core"}, 1, `PAS_IMAGE_TAG "4.9.0;reboot" is not a version`},
		{"no tag", "4.9.0", func(n *node) {
			n.write(commonVarsFile, "core_deb_path: /tmp/x.deb\n")
		}, []string{"--restart-core"}, 1, "common.docker.PAS_IMAGE_TAG is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := fakeTools(t, tt.debVersion)
			n := deployNode(t)
			if tt.setup != nil {
				tt.setup(n)
			}

			code, _, stderr := n.run("", "pas-mgmt-deploy-core", tt.args...)

			assert.Equal(t, tt.code, code)
			assert.Contains(t, stderr, tt.message)
			for _, call := range calls(t, log) {
				assert.False(t, strings.HasPrefix(call, "ssh") || strings.HasPrefix(call, "scp"),
					"nothing reaches a node: %s", call)
			}
		})
	}
}

func TestReadInventoryDefaults(t *testing.T) {
	n := newNode(t)
	n.write(inventoryFile, "all:\n  children:\n    core:\n      hosts:\n        core-9:\n")

	groups, err := readInventory(filepath.Join(n.root, inventoryFile))

	require.NoError(t, err)
	assert.Equal(t, []host{{Name: "core-9", Addr: "core-9", Port: 22, User: "pas"}}, groups["core"])
}

func TestDeployHAAndRestart(t *testing.T) {
	log := fakeTools(t, "4.9.0")
	n := deployNode(t)
	n.write(inventoryFile, "all:\n  children:\n    core:\n      hosts: {}\n    ha:\n      hosts:\n"+
		"        ha-1: {ansible_host: 127.0.0.3, ansible_port: 2203}\n")

	code, _, stderr := n.run("", "pas-mgmt-deploy-core", "--deploy-ha", "--restart-ha")

	require.Equal(t, 0, code, stderr)
	got := calls(t, log)
	require.Len(t, got, 5)
	assert.Contains(t, got[0], "dpkg-deb --field "+n.root+"/tmp/proxedo-api-security_4.9.0_all.deb")
	assert.Contains(t, got[1], "scp -q -P 2203 ")
	assert.True(t, strings.HasSuffix(got[2],
		"pas@127.0.0.3 sudo -n DEBIAN_FRONTEND=noninteractive dpkg -i --force-confdef --force-confold "+
			"/tmp/proxedo-api-security_4.9.0_all.deb </dev/null"), got[2])
	assert.True(t, strings.HasSuffix(got[3], "pas@127.0.0.3 pas-update --image-tag 4.9.0"), got[3])
	assert.True(t, strings.HasSuffix(got[4], "pas@127.0.0.3 sudo -n systemctl restart proxedo-api-security-ha"), got[4])
}

func TestDeployStopsAtFailedSSH(t *testing.T) {
	log := fakeTools(t, "4.9.0")
	bin := filepath.Dir(log)
	failing := "#!/bin/sh\necho \"ssh $*\" >>" + log + "\necho 'ssh: connect to host 127.0.0.1 port 2201: Connection refused' >&2\nexit 255\n"
	require.NoError(t, os.WriteFile(filepath.Join(bin, "ssh"), []byte(failing), 0o755))
	n := deployNode(t)

	code, _, stderr := n.run("", "pas-mgmt-deploy-core", "--restart-core")

	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "node core-1 (127.0.0.1): ssh sudo -n systemctl restart proxedo-api-security: exit status 255")
	assert.Len(t, calls(t, log), 1, "the second node is not tried after the first fails")
}

func TestShellQuote(t *testing.T) {
	tests := map[string]string{
		"/tmp/proxedo-api-security_4.9.0_all.deb": "/tmp/proxedo-api-security_4.9.0_all.deb",
		"/tmp/a b.deb":      "'/tmp/a b.deb'",
		"/tmp/x;reboot.deb": "'/tmp/x;reboot.deb'",
		"it's":              `'it'\''s'`,
		"":                  "''",
	}
	for in, want := range tests {
		assert.Equal(t, want, shellQuote(in), in)
	}
}

func TestDeployCoreSetsPortsFromHostVars(t *testing.T) {
	log := fakeTools(t, "4.9.0")
	n := deployNode(t)
	n.write(inventoryFile, `all:
  children:
    core:
      hosts:
        core-1: {ansible_host: 127.0.0.1, ansible_port: 2201, core_listen_port: 18443, storage_listen_port: 19200}
    ha:
      hosts:
        core-1: {ansible_host: 127.0.0.1, ansible_port: 2201, ha_listen_port: 18600}
`)

	code, _, stderr := n.run("", "pas-mgmt-deploy-core", "--deploy-core", "--deploy-ha")

	require.Equal(t, 0, code, stderr)
	var updates []string
	for _, call := range calls(t, log) {
		if strings.Contains(call, "--image-tag") {
			updates = append(updates, call[strings.Index(call, "pas@127.0.0.1 ")+len("pas@127.0.0.1 "):])
		}
	}
	assert.Equal(t, []string{
		"pas-storage-update --image-tag 4.9.0 && pas-update --image-tag 4.9.0" +
			" && /opt/balasys/usr/bin/pas-storage set-listen-port 19200 && /opt/balasys/usr/bin/pas-core set-listen-port 18443",
		"pas-update --image-tag 4.9.0 && /opt/balasys/usr/bin/pas-ha set-listen-port 18600",
	}, updates)
}
