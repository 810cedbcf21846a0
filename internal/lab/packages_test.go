package lab

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// builtPackagesDir is the directory of the packages that builtPackages
// built, removed by TestMain; empty when no test needed them.
var builtPackagesDir string

// builtPackages builds the packages once for all tests of this package.
var builtPackages = sync.OnceValues(func() (map[string]string, error) {
	dir, err := os.MkdirTemp("", "labpkg-test-")
	if err != nil {
		return nil, err
	}
	builtPackagesDir = dir
	return BuildPackages(context.Background(), dir, BuildOptions{})
})

func packagesForTest(t *testing.T) map[string]string {
	t.Helper()
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb is not installed; install the dpkg package")
	}
	debs, err := builtPackages()
	require.NoError(t, err)
	return debs
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtPackagesDir != "" {
		os.RemoveAll(builtPackagesDir)
	}
	os.Exit(code)
}

func dpkgDeb(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("dpkg-deb", args...).CombinedOutput()
	require.NoError(t, err, "dpkg-deb %v: %s", args, out)
	return string(out)
}

func TestBuildPackagesFileSet(t *testing.T) {
	debs := packagesForTest(t)

	require.Len(t, debs, 6)
	for _, version := range Versions {
		for _, pkg := range Packages {
			name := DebFileName(pkg, version)
			path, ok := debs[name]
			require.True(t, ok, "missing %s", name)
			assert.Equal(t, name, filepath.Base(path))
			fields := dpkgDeb(t, "--field", path, "Package", "Version", "Architecture")
			assert.Contains(t, fields, "Package: "+pkg+"\n")
			assert.Contains(t, fields, "Version: "+version+"\n")
			assert.Contains(t, fields, "Architecture: all\n")
		}
	}
}

func TestBuildPackagesControlMembers(t *testing.T) {
	debs := packagesForTest(t)
	tests := []struct {
		pkg, version string
		want         []string // control members that must exist
		absent       []string // control members that must not exist
	}{
		{CorePackage, "4.8.0", []string{"postinst", "prerm", "postrm", "conffiles"}, []string{"config", "templates"}},
		{CorePackage, "4.9.0", []string{"config", "templates"}, nil},
		{StoragePackage, "4.8.0", []string{"postinst", "conffiles"}, []string{"config", "templates"}},
		{StoragePackage, "4.9.0", []string{"config", "templates"}, nil},
		{MgmtPackage, "4.8.0", []string{"config", "templates"}, nil},
		{MgmtPackage, "4.9.0", []string{"config", "templates"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.pkg+"_"+tt.version, func(t *testing.T) {
			dir := t.TempDir()
			dpkgDeb(t, "--control", debs[DebFileName(tt.pkg, tt.version)], dir)
			for _, name := range tt.want {
				assert.FileExists(t, filepath.Join(dir, name))
			}
			for _, name := range tt.absent {
				assert.NoFileExists(t, filepath.Join(dir, name))
			}
		})
	}
}

func TestBuildPackagesDebconfTemplates(t *testing.T) {
	debs := packagesForTest(t)
	tests := []struct {
		pkg, version string
		want         []string
		absent       []string
	}{
		{CorePackage, "4.9.0", []string{"Template: proxedo-api-security/overwrite-config\nType: boolean\nDefault: false\n"}, nil},
		{StoragePackage, "4.9.0", []string{"Template: proxedo-api-security-storage/overwrite-config\nType: boolean\nDefault: false\n"}, nil},
		{MgmtPackage, "4.9.0", []string{
			"Template: proxedo-api-security-mgmt/overwrite-config\nType: boolean\nDefault: false\n",
			"Template: proxedo-api-security-mgmt/admin-password\nType: password\n",
		}, nil},
		{MgmtPackage, "4.8.0", []string{"Template: proxedo-api-security-mgmt/admin-password\nType: password\n"},
			[]string{"overwrite-config"}},
	}
	for _, tt := range tests {
		t.Run(tt.pkg+"_"+tt.version, func(t *testing.T) {
			templates := dpkgDeb(t, "--info", debs[DebFileName(tt.pkg, tt.version)], "templates")
			for _, s := range tt.want {
				assert.Contains(t, templates, s)
			}
			for _, s := range tt.absent {
				assert.NotContains(t, templates, s)
			}
		})
	}
}

func TestBuildPackagesConfigAsksThroughDebconf(t *testing.T) {
	debs := packagesForTest(t)
	tests := []struct {
		pkg, version, want string
	}{
		{CorePackage, "4.9.0", "db_input high proxedo-api-security/overwrite-config"},
		{StoragePackage, "4.9.0", "db_input high proxedo-api-security-storage/overwrite-config"},
		{MgmtPackage, "4.9.0", "db_input high proxedo-api-security-mgmt/overwrite-config"},
		{MgmtPackage, "4.8.0", "db_input high proxedo-api-security-mgmt/admin-password"},
		{MgmtPackage, "4.9.0", "db_input high proxedo-api-security-mgmt/admin-password"},
	}
	for _, tt := range tests {
		t.Run(tt.pkg+"_"+tt.version, func(t *testing.T) {
			config := dpkgDeb(t, "--info", debs[DebFileName(tt.pkg, tt.version)], "config")
			assert.Contains(t, config, ". /usr/share/debconf/confmodule")
			assert.Contains(t, config, tt.want)
		})
	}
}

func TestBuildPackagesPostinstClearsPassword(t *testing.T) {
	debs := packagesForTest(t)
	for _, version := range Versions {
		postinst := dpkgDeb(t, "--info", debs[DebFileName(MgmtPackage, version)], "postinst")
		assert.Contains(t, postinst, `db_set proxedo-api-security-mgmt/admin-password ""`, version)
		assert.Contains(t, postinst, "db_fset proxedo-api-security-mgmt/admin-password seen false", version)
		assert.Contains(t, postinst, `printf '%s\n' "$RET" | /opt/balasys/usr/bin/pas-mgmt set-password`, version)
		assert.NotContains(t, postinst, "[[", version)
		assert.NotContains(t, postinst, "read ", "maintainer scripts never prompt outside debconf")
	}
}

// contents returns "mode owner path" per entry of dpkg-deb --contents,
// keyed by path, with symlink targets after " -> ".
func contents(t *testing.T, deb string) map[string]string {
	t.Helper()
	entries := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(dpkgDeb(t, "--contents", deb)), "\n") {
		fields := strings.Fields(line)
		require.GreaterOrEqual(t, len(fields), 6, "line %q", line)
		path := strings.TrimPrefix(fields[5], ".")
		rest := fields[0] + " " + fields[1]
		if len(fields) >= 8 && fields[6] == "->" {
			rest += " -> " + fields[7]
		}
		entries[strings.TrimSuffix(path, "/")] = rest
	}
	return entries
}

func TestBuildPackagesContents(t *testing.T) {
	debs := packagesForTest(t)
	tests := []struct {
		pkg, version string
		want         map[string]string // path -> "mode owner[ -> target]"
		absent       []string
	}{
		{CorePackage, "4.8.0", map[string]string{
			"/opt/balasys/usr/bin/pas-core":                           "-rwxr-xr-x root/root",
			"/opt/balasys/usr/bin/pas-ha":                             "lrwxrwxrwx root/root -> pas-core",
			"/usr/bin/pas-update":                                     "lrwxrwxrwx root/root -> /opt/balasys/usr/bin/pas-core",
			"/opt/balasys/etc/core/config.yml":                        "-rw-r--r-- root/root",
			"/opt/balasys/etc/ha/config.yml":                          "-rw-r--r-- root/root",
			"/opt/balasys/etc/infrastructure/pas/docker-compose.conf": "-rw-r--r-- root/root",
			"/lib/systemd/system/proxedo-api-security.service":        "-rw-r--r-- root/root",
			"/lib/systemd/system/proxedo-api-security-ha.service":     "-rw-r--r-- root/root",
			"/etc/sudoers.d/proxedo-api-security":                     "-r--r----- root/root",
			"/opt/balasys/usr/share/proxedo-api-security/version":     "-rw-r--r-- root/root",
		}, nil},
		{MgmtPackage, "4.8.0", map[string]string{
			"/opt/balasys/usr/bin/pas-mgmt":                                     "-rwxr-xr-x root/root",
			"/opt/balasys/usr/bin/pas-mgmt-sim":                                 "-rwxr-xr-x root/root",
			"/usr/bin/pas-mgmt-update":                                          "lrwxrwxrwx root/root -> /opt/balasys/usr/bin/pas-mgmt",
			"/usr/bin/pas-mgmt-checkconfig":                                     "lrwxrwxrwx root/root -> /opt/balasys/usr/bin/pas-mgmt",
			"/usr/bin/pas-mgmt-deploy-core":                                     "lrwxrwxrwx root/root -> /opt/balasys/usr/bin/pas-mgmt",
			"/opt/balasys/etc/mgmt/users.htpass":                                "-rw-r----- root/root",
			"/opt/balasys/etc/mgmt/config.yml":                                  "-rw-r--r-- root/root",
			"/opt/balasys/etc/infrastructure/mgmt/docker-compose.conf":          "-rw-r--r-- root/root",
			"/opt/balasys/usr/share/automation/deploy-core.yml":                 "-rw-r--r-- root/root",
			"/opt/balasys/usr/share/automation/roles/deploy-core/vars/main.yml": "-rw-r--r-- root/root",
			"/lib/systemd/system/proxedo-api-security-mgmt.service":             "-rw-r--r-- root/root",
		}, []string{"/usr/bin/pas-mgmt-upgrade-config"}},
		{MgmtPackage, "4.9.0", map[string]string{
			"/usr/bin/pas-mgmt-upgrade-config": "-rwxr-xr-x root/root",
		}, nil},
		{StoragePackage, "4.8.0", map[string]string{
			"/opt/balasys/etc/storage/certs/ca.pem":          "-rw-r----- root/root",
			"/opt/balasys/etc/storage/certs/storage.pem":     "-rw-r----- root/root",
			"/opt/balasys/etc/storage/certs/storage-key.pem": "-rw-r----- root/root",
			"/usr/bin/pas-storage-update":                    "lrwxrwxrwx root/root -> /opt/balasys/usr/bin/pas-storage",
			"/usr/bin/pas-storage-checkconfig":               "lrwxrwxrwx root/root -> /opt/balasys/usr/bin/pas-storage",
		}, nil},
		{StoragePackage, "4.9.0", map[string]string{
			"/opt/balasys/etc/storage/certs/ca.pem":          "-rw------- root/root",
			"/opt/balasys/etc/storage/certs/storage-key.pem": "-rw------- root/root",
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.pkg+"_"+tt.version, func(t *testing.T) {
			entries := contents(t, debs[DebFileName(tt.pkg, tt.version)])
			for path, want := range tt.want {
				assert.Equal(t, want, entries[path], path)
			}
			for _, path := range tt.absent {
				assert.NotContains(t, entries, path)
			}
		})
	}
}

func TestBuildPackagesConffiles(t *testing.T) {
	debs := packagesForTest(t)
	tests := []struct {
		pkg  string
		want []string
	}{
		{CorePackage, []string{
			"/etc/sudoers.d/proxedo-api-security",
			"/opt/balasys/etc/core/config.yml",
			"/opt/balasys/etc/ha/config.yml",
			"/opt/balasys/etc/infrastructure/pas/docker-compose.conf",
		}},
		{MgmtPackage, []string{
			"/etc/sudoers.d/proxedo-api-security-mgmt",
			"/opt/balasys/etc/infrastructure/mgmt/docker-compose.conf",
			"/opt/balasys/etc/mgmt/config.yml",
			"/opt/balasys/etc/mgmt/users.htpass",
		}},
		{StoragePackage, []string{
			"/etc/sudoers.d/proxedo-api-security-storage",
			"/opt/balasys/etc/infrastructure/storage/docker-compose.conf",
			"/opt/balasys/etc/storage/certs/ca.pem",
			"/opt/balasys/etc/storage/certs/storage-key.pem",
			"/opt/balasys/etc/storage/certs/storage.pem",
			"/opt/balasys/etc/storage/config.yml",
		}},
	}
	for _, tt := range tests {
		for _, version := range Versions {
			t.Run(tt.pkg+"_"+version, func(t *testing.T) {
				conffiles := dpkgDeb(t, "--info", debs[DebFileName(tt.pkg, version)], "conffiles")
				assert.Equal(t, strings.Join(tt.want, "\n")+"\n", conffiles)
			})
		}
	}
}

func TestBuildPackagesConfigFormats(t *testing.T) {
	debs := packagesForTest(t)
	tests := []struct {
		version string
		want    string
	}{
		{"4.8.0", "config_version: 4.8.0\nlisten_address: 127.0.0.1\nlisten_port: 8090\n"},
		{"4.9.0", "config_version: 4.9.0\nlisten:\n  address: 127.0.0.1\n  port: 8090\n"},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			dir := t.TempDir()
			dpkgDeb(t, "--extract", debs[DebFileName(MgmtPackage, tt.version)], dir)
			config, err := os.ReadFile(filepath.Join(dir, "opt/balasys/etc/mgmt/config.yml"))
			require.NoError(t, err)
			assert.Contains(t, string(config), tt.want)
			compose, err := os.ReadFile(filepath.Join(dir, "opt/balasys/etc/infrastructure/mgmt/docker-compose.conf"))
			require.NoError(t, err)
			assert.Contains(t, string(compose), "\nDOCKER_IMAGE_TAG="+tt.version+"\n")
			htpass, err := os.ReadFile(filepath.Join(dir, "opt/balasys/etc/mgmt/users.htpass"))
			require.NoError(t, err)
			assert.Regexp(t, `^admin:\{SHA\}[A-Za-z0-9+/]{27}=\n$`, string(htpass))
		})
	}
}

func TestBuildPackagesSameCertificatesInBothVersions(t *testing.T) {
	debs := packagesForTest(t)
	read := func(version string) []byte {
		dir := t.TempDir()
		dpkgDeb(t, "--extract", debs[DebFileName(StoragePackage, version)], dir)
		data, err := os.ReadFile(filepath.Join(dir, "opt/balasys/etc/storage/certs/storage.pem"))
		require.NoError(t, err)
		return data
	}
	assert.Equal(t, read("4.8.0"), read("4.9.0"),
		"an unchanged conffile keeps its installed mode on upgrade")
}

func TestBuildPackagesWithoutDpkgDeb(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	out := filepath.Join(t.TempDir(), "debs")

	_, err := BuildPackages(context.Background(), out, BuildOptions{})

	require.Error(t, err)
	assert.Contains(t, err.Error(), "install Debian's dpkg package")
	assert.NoDirExists(t, out, "nothing is created before the check")
}

// linkTree fills dir with a symbolic link to every entry of source except
// the names in skip.
func linkTree(t *testing.T, source, dir string, skip ...string) {
	t.Helper()
	entries, err := os.ReadDir(source)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for _, e := range entries {
		if slices.Contains(skip, e.Name()) {
			continue
		}
		require.NoError(t, os.Symlink(filepath.Join(source, e.Name()), filepath.Join(dir, e.Name())))
	}
}

func TestBuildPackagesReadsModuleSources(t *testing.T) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb is not installed; install the dpkg package")
	}
	moduleDir, err := findModuleDir()
	require.NoError(t, err)

	// A copy of the module whose package sources differ from the ones
	// compiled into this test binary, as after editing pkgsrc without
	// rebuilding pas-lab.
	copyDir := t.TempDir()
	linkTree(t, moduleDir, copyDir, "internal")
	linkTree(t, filepath.Join(moduleDir, "internal"), filepath.Join(copyDir, "internal"), "lab")
	labDir := filepath.Join(copyDir, "internal", "lab")
	linkTree(t, filepath.Join(moduleDir, "internal", "lab"), labDir, "pkgsrc")
	require.NoError(t, os.CopyFS(filepath.Join(labDir, "pkgsrc"), os.DirFS(filepath.Join(moduleDir, "internal", "lab", "pkgsrc"))))
	control := filepath.Join(labDir, "pkgsrc", "common", "control.tmpl")
	data, err := os.ReadFile(control)
	require.NoError(t, err)
	edited := strings.Replace(string(data), "(simulated)", "(simulated, edited)", 1)
	require.NoError(t, os.WriteFile(control, []byte(edited), 0o644))

	debs, err := BuildPackages(context.Background(), t.TempDir(), BuildOptions{ModuleDir: copyDir})
	require.NoError(t, err)

	description := dpkgDeb(t, "--field", debs[DebFileName(MgmtPackage, "4.9.0")], "Description")
	assert.Contains(t, description, "(simulated, edited)", "the package sources come from ModuleDir")
}
