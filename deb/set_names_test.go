package deb

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/deb/debtest"
)

// Checksum files named after the packages, such as NAME.deb.sha256, are
// skipped rather than reported as broken packages.
func TestFindSetSkipsChecksumFiles(t *testing.T) {
	dir := t.TempDir()
	paths := debtest.BuildPASSet(t, dir, "4.9.0")
	for _, p := range paths {
		require.NoError(t, os.WriteFile(p+".sha256", []byte("0123  "+filepath.Base(p)+"\n"), 0o644))
	}

	set, err := FindSet([]string{dir}, "4.9.0")

	require.NoError(t, err)
	assert.Equal(t, paths, set.Paths())
	var skipped []string
	for _, s := range set.Skipped {
		skipped = append(skipped, s.Path)
		assert.Contains(t, s.Reason, "not a Debian package")
	}
	assert.ElementsMatch(t, []string{paths[0] + ".sha256", paths[1] + ".sha256", paths[2] + ".sha256"}, skipped)
}

// A file named like a package that is not one is still a problem when it
// is named *.deb or given by name.
func TestFindSetBrokenFileNamedLikePackage(t *testing.T) {
	dir := t.TempDir()
	paths := debtest.BuildPASSet(t, dir, "4.9.0")
	explicit := filepath.Join(dir, "proxedo-api-security-mgmt_4.9.0_all")
	require.NoError(t, os.WriteFile(explicit, []byte("<html>\n"), 0o644))

	_, err := FindSet(append(paths, explicit), "4.9.0")

	var setErr *SetError
	require.ErrorAs(t, err, &setErr)
	require.Len(t, setErr.Problems, 1, err.Error())
	assert.Equal(t, ProblemNotDeb, setErr.Problems[0].Kind)
}

// A damaged file of another version does not hide that the wanted
// version of the package is missing.
func TestFindSetDamagedOldVersion(t *testing.T) {
	dir := t.TempDir()
	paths := debtest.BuildPASSet(t, dir, "4.9.0")
	require.NoError(t, os.Remove(paths[0]))
	copyFile(t, filepath.Join("testdata", "download-error.deb"), filepath.Join(dir, "proxedo-api-security_4.8.0_all.deb"))

	_, err := FindSet([]string{dir}, "4.9.0")

	var setErr *SetError
	require.ErrorAs(t, err, &setErr)
	var kinds []ProblemKind
	for _, p := range setErr.Problems {
		kinds = append(kinds, p.Kind)
	}
	assert.ElementsMatch(t, []ProblemKind{ProblemMissing, ProblemNotDeb}, kinds, err.Error())
}

// Debian file names leave the epoch out, so the name FindSet asks for does
// too.
func TestFindSetEpochFileName(t *testing.T) {
	dir := t.TempDir()
	debtest.BuildPASSet(t, dir, "4.9.0")

	_, err := FindSet([]string{dir}, "1:4.9.0")

	require.Error(t, err)
	assert.Contains(t, err.Error(), "expected 1:4.9.0; replace it with proxedo-api-security_4.9.0_all.deb")
	assert.NotContains(t, err.Error(), "_1:4.9.0_")
}
