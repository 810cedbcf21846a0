package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/deb"
	"github.com/pasops/pasupgrade/deb/debtest"
	"github.com/pasops/pasupgrade/runner/runnertest"
)

func TestPackagesCheckCompleteSet(t *testing.T) {
	dir := t.TempDir()
	paths := debtest.BuildPASSet(t, dir, "4.9.0")

	code, out, errOut := runCLI(t, "packages", "check", dir)

	assert.Equal(t, exitOK, code, errOut)
	for _, p := range paths {
		assert.Contains(t, out, p)
	}
	assert.Contains(t, out, "the 4.9.0 package set is complete")
}

func TestPackagesCheckListsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	mgmt := debtest.Build(t, dir, debtest.PAS(deb.MgmtPackage, "4.9.0"))
	data, err := os.ReadFile(mgmt)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "mgmt-copy.deb"), data, 0o644))
	debtest.Build(t, dir, debtest.PAS(deb.StoragePackage, "4.8.0"))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.deb"), []byte("not a package\n"), 0o644))

	code, out, errOut := runCLI(t, "packages", "check", dir)

	assert.Equal(t, exitCheckFailed, code)
	problems := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "problem  ") {
			problems++
		}
	}
	assert.Equal(t, 4, problems, out)
	assert.Contains(t, out, "proxedo-api-security: missing")
	assert.Contains(t, out, "proxedo-api-security-mgmt: duplicate")
	assert.Contains(t, out, "proxedo-api-security-storage: wrong version")
	assert.Contains(t, out, "notes.deb: not a .deb")
	assert.Contains(t, errOut, "error: the package set for 4.9.0 is not complete: 4 problems")
}

func TestPackagesCheckJSON(t *testing.T) {
	dir := t.TempDir()
	debtest.BuildPASSet(t, dir, "4.8.0")

	code, out, _ := runCLI(t, "--json", "packages", "check", "--version", "4.8.0", dir)

	assert.Equal(t, exitOK, code)
	var types []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &ev), line)
		types = append(types, ev["type"].(string))
	}
	assert.Equal(t, []string{"package", "package", "package", "package_set_ok"}, types)
}

func TestPackagesCheckJSONProblems(t *testing.T) {
	dir := t.TempDir()
	debtest.Build(t, dir, debtest.PAS(deb.CorePackage, "4.9.0"))

	code, out, _ := runCLI(t, "--json", "packages", "check", dir)

	assert.Equal(t, exitCheckFailed, code)
	var problems []map[string]any
	var last map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &ev), line)
		if ev["type"] == "package_problem" {
			problems = append(problems, ev["data"].(map[string]any))
		}
		last = ev
	}
	require.Len(t, problems, 2)
	assert.Equal(t, "missing", problems[0]["kind"])
	assert.Equal(t, deb.MgmtPackage, problems[0]["package"])
	assert.Equal(t, deb.StoragePackage, problems[1]["package"])
	assert.Equal(t, "error", last["type"])
	assert.EqualValues(t, exitCheckFailed, last["data"].(map[string]any)["exit_code"])
}

func TestPackagesCheckUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no directory", []string{"packages", "check"}, "no package directory given"},
		{"status with argument", []string{"packages", "status", "core"}, `takes no arguments, got ["core"]`},
		{"invalid version", []string{"packages", "check", "--version", "4 9", "."}, `invalid package version "4 9"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, tt.args...)

			assert.Equal(t, exitUsage, code)
			assert.Contains(t, errOut, tt.want)
		})
	}
}

// fakePackageManager makes the packages commands run fake.
func fakePackageManager(t *testing.T, fake *runnertest.Fake) *deb.Manager {
	t.Helper()
	var m *deb.Manager
	saved := packageManager
	packageManager = func(a *app) *deb.Manager {
		m = saved(a)
		m.Runner = fake
		return m
	}
	t.Cleanup(func() { packageManager = saved })
	return m
}

const statusFormat = `--showformat=${Package}\t${db:Status-Abbrev}\t${Version}\n`

func TestPackagesStatus(t *testing.T) {
	fake := runnertest.New(t)
	fake.Expect("dpkg-query", "--show", statusFormat, deb.CorePackage, deb.MgmtPackage, deb.StoragePackage).
		Exit(1).Stdout(deb.CorePackage + "\tii \t4.8.0\n" + deb.MgmtPackage + "\trc \t4.8.0\n")
	fakePackageManager(t, fake)

	code, out, errOut := runCLI(t, "packages", "status")

	assert.Equal(t, exitOK, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 4)
	assert.Equal(t, []string{"PACKAGE", "STATE", "VERSION", "DPKG", "STATUS"}, strings.Fields(lines[0]))
	assert.Equal(t, []string{deb.CorePackage, "installed", "4.8.0", "installed"}, strings.Fields(lines[1]))
	assert.Equal(t, []string{deb.MgmtPackage, "config-files", "4.8.0", "config-files"}, strings.Fields(lines[2]))
	assert.Equal(t, []string{deb.StoragePackage, "not-installed", "-", "not-installed"}, strings.Fields(lines[3]))
}

func TestPackagesStatusBroken(t *testing.T) {
	fake := runnertest.New(t)
	fake.Expect("dpkg-query", "--show", statusFormat, deb.CorePackage, deb.MgmtPackage, deb.StoragePackage).
		Stdout(deb.CorePackage + "\tii \t4.9.0\n" + deb.MgmtPackage + "\tiF \t4.9.0\n" + deb.StoragePackage + "\tii \t4.9.0\n")
	fakePackageManager(t, fake)

	code, out, errOut := runCLI(t, "packages", "status")

	assert.Equal(t, exitCheckFailed, code)
	assert.Contains(t, out, "repair proxedo-api-security-mgmt with: dpkg --force-confdef --force-confold --configure -a")
	assert.Contains(t, errOut, "proxedo-api-security-mgmt is broken")
}

func TestPackagesStatusUnderRoot(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "var/lib/dpkg"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644))
	fake := runnertest.New(t)
	fake.Expect("dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"), "--show", statusFormat,
		deb.CorePackage, deb.MgmtPackage, deb.StoragePackage).Stdout(deb.CorePackage + "\tii \t4.8.0\n")
	fakePackageManager(t, fake)

	code, out, _ := runCLI(t, "--root", root, "--json", "packages", "status")

	assert.Equal(t, exitOK, code)
	var first map[string]any
	require.NoError(t, json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &first))
	assert.Equal(t, "package_status", first["type"])
	data := first["data"].(map[string]any)
	assert.Equal(t, deb.CorePackage, data["package"])
	assert.Equal(t, "installed", data["state"])
	assert.Equal(t, "4.8.0", data["version"])
}

// dpkg-query reads a missing database as an empty one, so a --root without
// one must not show the packages as not installed.
func TestPackagesStatusRootWithoutDatabase(t *testing.T) {
	root := t.TempDir()
	fakePackageManager(t, runnertest.New(t))

	code, out, errOut := runCLI(t, "--root", root, "packages", "status")

	assert.Equal(t, exitUsage, code)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "no dpkg database under --root")
	assert.Contains(t, errOut, filepath.Join(root, "var/lib/dpkg/status"))
}
