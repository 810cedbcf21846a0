package deb

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/deb/debtest"
)

func TestFindSetCompleteDirectory(t *testing.T) {
	dir := t.TempDir()
	paths := debtest.BuildPASSet(t, dir, "4.9.0")
	// Leftovers an operator's download directory typically holds.
	old := debtest.Build(t, dir, debtest.PAS(StoragePackage, "4.8.0"))
	other := debtest.Build(t, dir, debtest.Spec{Name: "unrelated-tool", Version: "1.0"})
	require.NoError(t, os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte("abc  x.deb\n"), 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "proxedo-api-security-docs"), 0o755))

	set, err := FindSet([]string{dir}, "4.9.0")

	require.NoError(t, err)
	assert.Equal(t, paths, set.Paths())
	assert.Equal(t, SetNames(), set.Names())
	assert.Equal(t, "4.9.0", set.Version.String())
	assert.ElementsMatch(t, []string{old, other}, skippedPaths(set))
}

func TestFindSetExplicitFiles(t *testing.T) {
	dir := t.TempDir()
	paths := debtest.BuildPASSet(t, dir, "4.9.0")
	reversed := []string{paths[2], paths[1], paths[0]}

	set, err := FindSet(reversed, "0:4.9.0")

	require.NoError(t, err)
	assert.Equal(t, paths, set.Paths(), "install order is core, mgmt, storage")
}

// Case: the directory holds the mgmt package twice under different names,
// a 4.8.0 storage package in place of 4.9.0, a file that is not a .deb,
// and no core package. Every problem is in one error.
func TestFindSetWrongFiles(t *testing.T) {
	dir := t.TempDir()
	mgmt := debtest.Build(t, dir, debtest.PAS(MgmtPackage, "4.9.0"))
	mgmtCopy := filepath.Join(dir, "proxedo-api-security-mgmt_4.9.0_all (1).deb")
	copyFile(t, mgmt, mgmtCopy)
	storage := debtest.Build(t, dir, debtest.PAS(StoragePackage, "4.8.0"))
	notDeb := filepath.Join(dir, "proxedo-api-security-manual.deb")
	copyFile(t, filepath.Join("testdata", "download-error.deb"), notDeb)

	_, err := FindSet([]string{dir}, "4.9.0")

	require.ErrorIs(t, err, ErrIncompleteSet)
	var setErr *SetError
	require.ErrorAs(t, err, &setErr)
	kinds := map[ProblemKind][]string{}
	for _, p := range setErr.Problems {
		kinds[p.Kind] = append(kinds[p.Kind], p.Package)
	}
	assert.Equal(t, []string{CorePackage}, kinds[ProblemMissing])
	assert.Equal(t, []string{MgmtPackage}, kinds[ProblemDuplicate])
	assert.Equal(t, []string{StoragePackage}, kinds[ProblemWrongVersion])
	assert.Equal(t, []string{""}, kinds[ProblemNotDeb])
	assert.Len(t, setErr.Problems, 4)

	msg := err.Error()
	for _, want := range []string{mgmt, mgmtCopy, storage, notDeb, "4 problems",
		"no proxedo-api-security_4.9.0_all.deb found", "is version 4.8.0, expected 4.9.0"} {
		assert.Contains(t, msg, want)
	}
}

func TestFindSetProblems(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(t *testing.T, dir string) []string
		wantKind ProblemKind
		wantText string
	}{
		{
			name: "wrong architecture",
			setup: func(t *testing.T, dir string) []string {
				paths := debtest.BuildPASSet(t, dir, "4.9.0")
				spec := debtest.PAS(CorePackage, "4.9.0")
				spec.Arch = "amd64"
				require.NoError(t, os.Remove(paths[0]))
				debtest.Build(t, dir, spec)
				return []string{dir}
			},
			wantKind: ProblemWrongArchitecture,
			wantText: `built for "amd64", expected "all"`,
		},
		{
			name: "unrelated package named explicitly",
			setup: func(t *testing.T, dir string) []string {
				paths := debtest.BuildPASSet(t, dir, "4.9.0")
				return append(paths, debtest.Build(t, dir, debtest.Spec{Name: "curl", Version: "7.88"}))
			},
			wantKind: ProblemUnexpected,
			wantText: "curl_7.88_all",
		},
		{
			name: "path does not exist",
			setup: func(t *testing.T, dir string) []string {
				return append(debtest.BuildPASSet(t, dir, "4.9.0"), filepath.Join(dir, "nowhere"))
			},
			wantKind: ProblemUnreadable,
			wantText: "does not exist; check the path",
		},
		{
			name: "truncated package",
			setup: func(t *testing.T, dir string) []string {
				paths := debtest.BuildPASSet(t, dir, "4.9.0")
				require.NoError(t, os.Truncate(paths[1], 100))
				return []string{dir}
			},
			wantKind: ProblemNotDeb,
			wantText: "proxedo-api-security-mgmt_4.9.0_all.deb",
		},
		{
			name: "error page saved under the package name",
			setup: func(t *testing.T, dir string) []string {
				paths := debtest.BuildPASSet(t, dir, "4.9.0")
				copyFile(t, filepath.Join("testdata", "download-error.deb"), paths[0])
				return []string{dir}
			},
			wantKind: ProblemNotDeb,
			wantText: "proxedo-api-security: not a .deb: ",
		},
		{
			name: "newer version only",
			setup: func(t *testing.T, dir string) []string {
				debtest.BuildPASSet(t, dir, "4.9.0")
				require.NoError(t, os.Remove(filepath.Join(dir, "proxedo-api-security_4.9.0_all.deb")))
				debtest.Build(t, dir, debtest.PAS(CorePackage, "4.9.0+hotfix1"))
				return []string{dir}
			},
			wantKind: ProblemWrongVersion,
			wantText: "is version 4.9.0+hotfix1, expected 4.9.0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			paths := tt.setup(t, t.TempDir())

			_, err := FindSet(paths, "4.9.0")

			var setErr *SetError
			require.ErrorAs(t, err, &setErr)
			require.Len(t, setErr.Problems, 1, err.Error())
			assert.Equal(t, tt.wantKind, setErr.Problems[0].Kind)
			assert.Contains(t, err.Error(), tt.wantText)
		})
	}
}

func TestFindSetSameFileTwice(t *testing.T) {
	dir := t.TempDir()
	paths := debtest.BuildPASSet(t, dir, "4.9.0")
	require.NoError(t, os.Symlink(filepath.Base(paths[1]), filepath.Join(dir, "proxedo-api-security-mgmt_latest.deb")))

	set, err := FindSet([]string{dir, paths[0], dir}, "4.9.0")

	require.NoError(t, err)
	assert.Len(t, set.Packages, 3)
}

func TestFindSetDanglingLink(t *testing.T) {
	dir := t.TempDir()
	debtest.BuildPASSet(t, dir, "4.9.0")
	dangling := filepath.Join(dir, "proxedo-api-security-extra.deb")
	require.NoError(t, os.Symlink("/nonexistent/target.deb", dangling))

	_, err := FindSet([]string{dir}, "4.9.0")

	var setErr *SetError
	require.ErrorAs(t, err, &setErr)
	require.Len(t, setErr.Problems, 1)
	assert.Equal(t, ProblemUnreadable, setErr.Problems[0].Kind)
	assert.Equal(t, []string{dangling}, setErr.Problems[0].Paths)
}

func TestFindSetNamedPipe(t *testing.T) {
	dir := t.TempDir()
	debtest.BuildPASSet(t, dir, "4.9.0")
	pipe := filepath.Join(dir, "incoming.deb")
	require.NoError(t, syscall.Mkfifo(pipe, 0o600))

	_, err := FindSet([]string{dir}, "4.9.0")

	var setErr *SetError
	require.ErrorAs(t, err, &setErr)
	require.Len(t, setErr.Problems, 1)
	assert.Equal(t, ProblemUnreadable, setErr.Problems[0].Kind)
	assert.Contains(t, setErr.Problems[0].Detail, "is not a regular file")
}

func TestFindSetInvalidArguments(t *testing.T) {
	_, err := FindSet([]string{t.TempDir()}, "4.9 .0")
	assert.ErrorContains(t, err, `invalid package version "4.9 .0"`)

	_, err = FindSet(nil, "4.9.0")
	assert.ErrorContains(t, err, "no package files or directories given")
}

func TestFindSetEmptyDirectory(t *testing.T) {
	_, err := FindSet([]string{t.TempDir()}, "4.9.0")

	var setErr *SetError
	require.ErrorAs(t, err, &setErr)
	require.Len(t, setErr.Problems, 3)
	for i, name := range SetNames() {
		assert.Equal(t, ProblemMissing, setErr.Problems[i].Kind)
		assert.Equal(t, name, setErr.Problems[i].Package)
	}
}

func skippedPaths(set Set) []string {
	var paths []string
	for _, s := range set.Skipped {
		paths = append(paths, s.Path)
	}
	return paths
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(to, data, 0o644))
}
