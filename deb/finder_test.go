package deb

import (
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/deb/debtest"
)

// countingFinder returns a SetFinder that counts its reads of each file.
func countingFinder() (*SetFinder, func(path string) int) {
	var mu sync.Mutex
	reads := map[string]int{}
	f := &SetFinder{inspectFile: func(path string) (Package, error) {
		mu.Lock()
		reads[path]++
		mu.Unlock()
		return Inspect(path)
	}}
	return f, func(path string) int {
		mu.Lock()
		defer mu.Unlock()
		return reads[path]
	}
}

func TestSetFinderReadsUnchangedFilesOnce(t *testing.T) {
	dir := t.TempDir()
	paths := debtest.BuildPASSet(t, dir, "4.9.0")
	junk := filepath.Join(dir, "notes.deb")
	require.NoError(t, os.WriteFile(junk, []byte("not a package"), 0o644))
	f, reads := countingFinder()

	for range 3 {
		_, err := f.FindSet([]string{dir}, "4.9.0")
		var setErr *SetError
		require.ErrorAs(t, err, &setErr, "the junk file is reported every time")
		require.Len(t, setErr.Problems, 1)
		assert.Equal(t, ProblemNotDeb, setErr.Problems[0].Kind)
	}
	for _, path := range append(paths, junk) {
		assert.Equal(t, 1, reads(path), "reads of %s", path)
	}
}

func TestSetFinderRereadsChangedFile(t *testing.T) {
	dir := t.TempDir()
	paths := debtest.BuildPASSet(t, dir, "4.9.0")
	f, reads := countingFinder()
	set, err := f.FindSet([]string{dir}, "4.9.0")
	require.NoError(t, err)
	require.Len(t, set.Packages, 3)

	// Cut the core package in place: same path and inode, new content.
	core := paths[0]
	info, err := os.Stat(core)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(core, info.Size()-3))

	_, err = f.FindSet([]string{dir}, "4.9.0")
	var setErr *SetError
	require.ErrorAs(t, err, &setErr, "the cut file must be read again")
	require.Len(t, setErr.Problems, 1)
	assert.Equal(t, []string{core}, setErr.Problems[0].Paths)
	assert.Equal(t, 2, reads(core))
	assert.Equal(t, 1, reads(paths[1]))
}

func TestSetFinderKeepsNoUnreadableResult(t *testing.T) {
	dir := t.TempDir()
	debtest.BuildPASSet(t, dir, "4.9.0")
	var calls atomic.Int32
	f := &SetFinder{inspectFile: func(path string) (Package, error) {
		calls.Add(1)
		return Package{}, &os.PathError{Op: "read", Path: path, Err: os.ErrPermission}
	}}
	for range 2 {
		_, err := f.FindSet([]string{dir}, "4.9.0")
		require.Error(t, err)
	}
	assert.Equal(t, int32(6), calls.Load(), "an I/O error is not remembered")
}
