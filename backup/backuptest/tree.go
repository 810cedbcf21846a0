// Package backuptest writes sample PAS file trees for tests, examples and
// the README's first commands.
package backuptest

import (
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ModTime is the modification time of every object WriteTree creates, so
// that two trees written with the same options are identical.
var ModTime = time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)

// TreeOptions configures WriteTree.
type TreeOptions struct {
	// Policies is the number of extra policy files per component; each
	// is a few kilobytes of YAML. Zero writes a minimal node.
	Policies int
}

// Links of the sample tree, relative to the root, with their targets.
// OutsideLinks point outside /opt/balasys, as real nodes have.
var (
	InsideLinks = map[string]string{
		"opt/balasys/etc/mgmt/active.yml": "config.yml",
		"opt/balasys/etc/mgmt/old.yml":    "gone.yml", // dangling
	}
	OutsideLinks = map[string]string{
		"opt/balasys/etc/core/certs/ca-bundle.pem": "/etc/ssl/certs/ca-certificates.crt",
		"opt/balasys/.ssh/known_hosts":             "/dev/null",
	}
)

// WriteTree writes a deterministic /opt/balasys tree of a PAS 4.8.0
// management node under root. The tree has the four components'
// configuration, certificates and the admin password file (mode 0600),
// the automation files and the pas user's SSH directory. It also has
// symbolic links inside and outside the tree. root must exist, and
// existing files are overwritten. A root that is this machine's "/" is
// rejected, because the tree would overwrite a real node's configuration
// and the pas user's authorized_keys.
func WriteTree(root string, opts TreeOptions) error {
	if err := checkNotFilesystemRoot(root); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(42, uint64(opts.Policies)))
	files := map[string]string{
		"opt/balasys/etc/mgmt/users.htpass":                                 "admin:{SHA}0DPiKuNIrrVmD8IUCuw1hQxNqZc=\n",
		"opt/balasys/etc/automation/common_vars.yml":                        "common:\n  docker:\n    PAS_IMAGE_TAG: 4.8.0\nstorage_deb_path: /tmp/proxedo-api-security-storage_4.8.0_all.deb\ncore_deb_path: /tmp/proxedo-api-security_4.8.0_all.deb\n",
		"opt/balasys/.ssh/id_ed25519.pub":                                   "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyOnly pas@mgmt\n",
		"opt/balasys/.ssh/authorized_keys":                                  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyOnly pas@mgmt\n",
		"opt/balasys/usr/share/automation/deploy-core.yml":                  "- hosts: core\n  roles: [deploy-core]\n",
		"opt/balasys/usr/share/automation/inventory.yml":                    "all:\n  children:\n    core:\n      hosts:\n        core-1:\n",
		"opt/balasys/usr/share/automation/host_vars/core-1.yml":             "ansible_host: 192.0.2.10\n",
		"opt/balasys/usr/share/automation/roles/deploy-core/vars/main.yml":  "pas_user: pas\n",
		"opt/balasys/usr/share/automation/roles/deploy-core/tasks/main.yml": "- name: not backed up\n  debug: {}\n",
	}
	secret := map[string]bool{"opt/balasys/etc/mgmt/users.htpass": true}
	for _, c := range []string{"mgmt", "storage", "core", "ha"} {
		files["opt/balasys/etc/"+c+"/config.yml"] = yamlText(rng, "pas_config_version: 4.8.0", 40)
		key := "opt/balasys/etc/" + c + "/certs/" + c + ".key.pem"
		files[key] = pemText(rng, "PRIVATE KEY")
		secret[key] = true
		files["opt/balasys/etc/"+c+"/certs/"+c+".pem"] = pemText(rng, "CERTIFICATE")
		for i := range opts.Policies {
			files[fmt.Sprintf("opt/balasys/etc/%s/policies/policy-%03d.yml", c, i)] = yamlText(rng, "# policy", 60)
		}
	}
	for _, c := range []string{"pas", "mgmt", "storage"} {
		files["opt/balasys/etc/infrastructure/"+c+"/docker-compose.conf"] =
			"DOCKER_IMAGE_TAG=4.8.0\nCOMPOSE_PROJECT_NAME=pas\n"
	}
	files["opt/balasys/.ssh/id_ed25519"] = pemText(rng, "OPENSSH PRIVATE KEY")
	secret["opt/balasys/.ssh/id_ed25519"] = true

	if err := writeFiles(root, files, secret); err != nil {
		return err
	}
	if err := writeLinks(root); err != nil {
		return err
	}
	return setTimes(root)
}

func checkNotFilesystemRoot(root string) error {
	resolved, err := filepath.EvalSymlinks(root)
	if err != nil {
		return fmt.Errorf("checking root %s: %w", root, err)
	}
	if abs, err := filepath.Abs(resolved); err == nil && abs == "/" {
		return fmt.Errorf("invalid root %s: it is this machine's /, whose /opt/balasys the sample "+
			"tree would overwrite; give a scratch directory such as /tmp/pas-demo", root)
	}
	return nil
}

func writeFiles(root string, files map[string]string, secret map[string]bool) error {
	for _, name := range slices.Sorted(maps.Keys(files)) {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		mode := fs.FileMode(0o644)
		if secret[name] {
			mode = 0o600
		}
		if err := os.WriteFile(path, []byte(files[name]), mode); err != nil {
			return err
		}
		if err := os.Chmod(path, mode); err != nil {
			return err
		}
	}
	return os.Chmod(filepath.Join(root, "opt/balasys/.ssh"), 0o700)
}

func writeLinks(root string) error {
	for _, links := range []map[string]string{InsideLinks, OutsideLinks} {
		for name, target := range links {
			path := filepath.Join(root, name)
			if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
				return err
			}
			if err := os.Symlink(target, path); err != nil {
				return err
			}
		}
	}
	return nil
}

// setTimes sets every object's modification time to ModTime, files and
// links first, then directories deepest first.
func setTimes(root string) error {
	var dirs []string
	err := filepath.WalkDir(filepath.Join(root, "opt/balasys"), func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir():
			dirs = append(dirs, path)
		case d.Type() == fs.ModeSymlink:
			return lchtimes(path, ModTime)
		default:
			return os.Chtimes(path, ModTime, ModTime)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, d := range slices.Backward(dirs) {
		if err := os.Chtimes(d, ModTime, ModTime); err != nil {
			return err
		}
	}
	return nil
}

func yamlText(rng *rand.Rand, header string, lines int) string {
	var b strings.Builder
	b.WriteString(header + "\n")
	for i := range lines {
		fmt.Fprintf(&b, "key_%d: value-%d  # setting %d\n", i, rng.IntN(1_000_000_000), i)
	}
	return b.String()
}

func pemText(rng *rand.Rand, kind string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var b strings.Builder
	b.WriteString("-----BEGIN " + kind + "-----\n")
	for range 20 {
		for range 64 {
			b.WriteByte(alphabet[rng.IntN(len(alphabet))])
		}
		b.WriteByte('\n')
	}
	b.WriteString("-----END " + kind + "-----\n")
	return b.String()
}
