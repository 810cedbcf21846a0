package deb

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/internal/testenv"
)

// debSpec describes a small package for buildDeb.
type debSpec struct {
	Name    string
	Version string
	Arch    string // "all" when empty

	// Files maps absolute paths inside the package to their content.
	Files map[string]string

	// Conffiles are listed in DEBIAN/conffiles and must be in Files.
	Conffiles []string

	// Scripts maps maintainer script names (postinst, ...) to their body.
	Scripts map[string]string

	// Templates is the DEBIAN/templates member, if not empty.
	Templates string

	// Compression is dpkg-deb's -Z argument, "xz" when empty.
	Compression string
}

// buildDeb builds spec with the host's dpkg-deb into dir and returns the
// path of the .deb, named NAME_VERSION_ARCH.deb. Building is harmless on
// the host: dpkg-deb only writes the archive.
func buildDeb(t testing.TB, dir string, spec debSpec) string {
	t.Helper()
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		testenv.SkipOrFail(t, "dpkg-deb is not installed; install the dpkg package to build test packages")
	}
	if spec.Arch == "" {
		spec.Arch = "all"
	}
	if spec.Compression == "" {
		spec.Compression = "xz"
	}

	tree := t.TempDir()
	control := filepath.Join(tree, "DEBIAN")
	require.NoError(t, os.MkdirAll(control, 0o755))
	writeFile(t, filepath.Join(control, "control"), fmt.Sprintf(
		"Package: %s\nVersion: %s\nArchitecture: %s\nMaintainer: Test <test@example.invalid>\n"+
			"Description: test package %s\n", spec.Name, spec.Version, spec.Arch, spec.Name), 0o644)
	for path, content := range spec.Files {
		writeFile(t, filepath.Join(tree, path), content, 0o644)
	}
	if len(spec.Conffiles) > 0 {
		writeFile(t, filepath.Join(control, "conffiles"), strings.Join(spec.Conffiles, "\n")+"\n", 0o644)
	}
	for name, body := range spec.Scripts {
		writeFile(t, filepath.Join(control, name), body, 0o755)
	}
	if spec.Templates != "" {
		writeFile(t, filepath.Join(control, "templates"), spec.Templates, 0o644)
	}

	out := filepath.Join(dir, fmt.Sprintf("%s_%s_%s.deb", spec.Name, spec.Version, spec.Arch))
	cmd := exec.Command("dpkg-deb", "--root-owner-group", "-Z"+spec.Compression, "--build", tree, out)
	output, err := cmd.CombinedOutput()
	require.NoError(t, err, "dpkg-deb --build: %s", output)
	return out
}

func writeFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), mode))
}

// pasSpec returns a PAS-like package with one conffile and a postinst.
func pasSpec(name, version string) debSpec {
	conf := "/opt/balasys/etc/" + strings.TrimPrefix(strings.TrimPrefix(name, CorePackage), "-") + "/config.yml"
	if name == CorePackage {
		conf = "/opt/balasys/etc/core/config.yml"
	}
	return debSpec{
		Name:      name,
		Version:   version,
		Files:     map[string]string{conf: "pas_version: " + version + "\n"},
		Conffiles: []string{conf},
		Scripts:   map[string]string{"postinst": "#!/bin/sh\nset -e\nexit 0\n"},
		Templates: "Template: " + name + "/overwrite-config\nType: boolean\nDefault: false\nDescription: overwrite?\n",
	}
}

// buildSet builds the three PAS packages at version into dir.
func buildSet(t testing.TB, dir, version string) []string {
	t.Helper()
	var paths []string
	for _, name := range SetNames() {
		paths = append(paths, buildDeb(t, dir, pasSpec(name, version)))
	}
	return paths
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }
