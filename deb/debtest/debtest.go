// Package debtest builds small .deb files for tests with the host's
// dpkg-deb. Building only writes the archive; nothing is installed.
package debtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pasops/pasupgrade/internal/testenv"
)

// Spec describes a package for Build.
type Spec struct {
	Name    string
	Version string

	// Arch is the Architecture field. Empty means "all".
	Arch string

	// Files maps absolute paths inside the package to their content.
	Files map[string]string

	// Conffiles are listed in DEBIAN/conffiles and must be in Files.
	Conffiles []string

	// Scripts maps maintainer script names, such as postinst, to their
	// content.
	Scripts map[string]string

	// Templates is the DEBIAN/templates member, left out when empty.
	Templates string

	// Compression is dpkg-deb's -Z argument. Empty means "xz".
	Compression string
}

// PASNames are the three PAS packages, core first.
var PASNames = []string{"proxedo-api-security", "proxedo-api-security-mgmt", "proxedo-api-security-storage"}

// Build builds spec into dir as NAME_VERSION_ARCH.deb and returns its
// path. Without dpkg-deb the test is skipped, or failed when
// PASUPGRADE_REQUIRE_LAB=1.
func Build(t testing.TB, dir string, spec Spec) string {
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
	if output, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb --build %s: %v: %s", spec.Name, err, output)
	}
	return out
}

// PAS returns the Spec of a PAS-like package: one conffile under
// /opt/balasys/etc, a postinst and an overwrite-config debconf template.
func PAS(name, version string) Spec {
	component := strings.TrimPrefix(strings.TrimPrefix(name, PASNames[0]), "-")
	if component == "" {
		component = "core"
	}
	conf := "/opt/balasys/etc/" + component + "/config.yml"
	return Spec{
		Name:      name,
		Version:   version,
		Files:     map[string]string{conf: "pas_version: " + version + "\n"},
		Conffiles: []string{conf},
		Scripts:   map[string]string{"postinst": "#!/bin/sh\nset -e\nexit 0\n"},
		Templates: "Template: " + name + "/overwrite-config\nType: boolean\nDefault: false\nDescription: overwrite?\n",
	}
}

// BuildPASSet builds the three PAS packages at version into dir and
// returns their paths, core first.
func BuildPASSet(t testing.TB, dir, version string) []string {
	t.Helper()
	var paths []string
	for _, name := range PASNames {
		paths = append(paths, Build(t, dir, PAS(name, version)))
	}
	return paths
}

func writeFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}
