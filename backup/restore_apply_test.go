package backup

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/backup/backuptest"
)

// backedUp returns the snapshot entries of a tree that a single or multi
// node backup contains.
func backedUp(all map[string]string, multi bool) map[string]string {
	out := map[string]string{}
	for name, v := range all {
		switch {
		case strings.HasPrefix(name, "opt/balasys/etc"),
			multi && strings.HasPrefix(name, "opt/balasys/.ssh"),
			strings.HasPrefix(name, "opt/balasys/usr/share/automation/") &&
				!strings.Contains(name, "roles/deploy-core/tasks"):
			out[name] = v
		}
	}
	for _, dir := range []string{"opt", "opt/balasys", "opt/balasys/usr", "opt/balasys/usr/share",
		"opt/balasys/usr/share/automation", "opt/balasys/usr/share/automation/roles",
		"opt/balasys/usr/share/automation/roles/deploy-core",
		"opt/balasys/usr/share/automation/roles/deploy-core/vars"} {
		delete(out, dir)
	}
	return out
}

func TestRestoreSetRoundTrip(t *testing.T) {
	root := sampleRoot(t)
	set := createSet(t, root, TopologyMulti)
	dest := t.TempDir()

	report, err := Restore(context.Background(), set.ArchivePath(), RestoreOptions{Root: dest})

	require.NoError(t, err)
	want := backedUp(snapshot(t, root), true)
	got := backedUp(snapshot(t, dest), true)
	assert.Equal(t, want, got)
	assert.True(t, report.ManifestUsed)
	assert.Equal(t, 4, report.Links)
	assert.ElementsMatch(t, []Link{
		{Name: "opt/balasys/etc/core/certs/ca-bundle.pem", Target: "/etc/ssl/certs/ca-certificates.crt"},
		{Name: "opt/balasys/.ssh/known_hosts", Target: "/dev/null"},
	}, report.OutsideLinks)

	info, err := os.Stat(filepath.Join(dest, "opt/balasys/etc/mgmt/config.yml"))
	require.NoError(t, err)
	assert.True(t, info.ModTime().Equal(backuptest.ModTime), "file time %v", info.ModTime())
	info, err = os.Stat(filepath.Join(dest, "opt/balasys/etc/mgmt"))
	require.NoError(t, err)
	assert.True(t, info.ModTime().Equal(backuptest.ModTime), "directory time %v", info.ModTime())
	leftovers, err := filepath.Glob(filepath.Join(dest, "opt/balasys/etc/mgmt/.pasupgrade-restore-*"))
	require.NoError(t, err)
	assert.Empty(t, leftovers)
}

func TestRestoreChecksManifestDigest(t *testing.T) {
	set := createSet(t, sampleRoot(t), TopologySingle)
	m := *set.Manifest
	m.Members = append([]Member(nil), m.Members...)
	for i := range m.Members {
		if m.Members[i].Name == "opt/balasys/etc/mgmt/users.htpass" {
			m.Members[i].SHA256 = strings.Repeat("0", 64)
		}
	}
	dest := seedDest(t)
	before := snapshot(t, dest)

	_, err := Restore(context.Background(), set.ArchivePath(), RestoreOptions{Root: dest, Manifest: &m})

	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), `"opt/balasys/etc/mgmt/users.htpass"`)
	assert.Contains(t, err.Error(), "differs from the manifest")
	assert.Equal(t, before, snapshot(t, dest))
}

func TestRestoreOutsideLinks(t *testing.T) {
	members := []testMember{
		{name: "opt/balasys/etc/", mode: os.ModeDir | 0o755},
		{name: "opt/balasys/etc/x", mode: os.ModeSymlink | 0o777, data: "/etc/passwd"},
	}
	zipPath := filepath.Join(t.TempDir(), "bare.zip")
	writeTestZip(t, zipPath, members)

	t.Run("allowed", func(t *testing.T) {
		dest := t.TempDir()
		report, err := Restore(context.Background(), zipPath, RestoreOptions{Root: dest, AllowOutsideLinks: true})
		require.NoError(t, err)
		assert.Equal(t, []Link{{Name: "opt/balasys/etc/x", Target: "/etc/passwd"}}, report.OutsideLinks)
		target, err := os.Readlink(filepath.Join(dest, "opt/balasys/etc/x"))
		require.NoError(t, err)
		assert.Equal(t, "/etc/passwd", target)
	})
	dirMember := Member{Name: "opt/balasys/etc/", Type: TypeDir, Mode: 0o755}
	t.Run("recorded in manifest", func(t *testing.T) {
		dest := t.TempDir()
		m := &Manifest{Members: []Member{dirMember,
			{Name: "opt/balasys/etc/x", Type: TypeSymlink, Target: "/etc/passwd"}}}
		report, err := Restore(context.Background(), zipPath, RestoreOptions{Root: dest, Manifest: m})
		require.NoError(t, err)
		assert.Equal(t, []Link{{Name: "opt/balasys/etc/x", Target: "/etc/passwd"}}, report.OutsideLinks)
	})
	mismatches := []struct {
		name     string
		members  []Member
		wantText string
	}{
		{"another target", []Member{dirMember,
			{Name: "opt/balasys/etc/x", Type: TypeSymlink, Target: "/etc/hosts"}},
			`link to "/etc/passwd" in the archive, to "/etc/hosts" in the manifest`},
		{"another type", []Member{dirMember, {Name: "opt/balasys/etc/x", Type: TypeFile}},
			"a symlink in the archive, a file in the manifest"},
		{"member not listed", []Member{{Name: "opt/balasys/etc/x", Type: TypeSymlink, Target: "/etc/passwd"}},
			`"opt/balasys/etc/": corrupt archive member: the backup set's manifest does not list it`},
		{"listed member missing", []Member{dirMember,
			{Name: "opt/balasys/etc/x", Type: TypeSymlink, Target: "/etc/passwd"},
			{Name: "opt/balasys/etc/y", Type: TypeFile}},
			"the archive has 2 members, the backup set's manifest lists 3"},
	}
	for _, tt := range mismatches {
		t.Run("manifest with "+tt.name, func(t *testing.T) {
			dest := t.TempDir()
			_, err := Restore(context.Background(), zipPath,
				RestoreOptions{Root: dest, Manifest: &Manifest{Members: tt.members}})
			require.ErrorIs(t, err, ErrCorrupt)
			assert.Contains(t, err.Error(), tt.wantText)
			assert.NoDirExists(t, filepath.Join(dest, "opt"))
		})
	}
}

func TestRestoreReplacesExistingLink(t *testing.T) {
	dest := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	require.NoError(t, os.WriteFile(victim, []byte("original\n"), 0o600))
	link := filepath.Join(dest, "opt/balasys/etc/current")
	require.NoError(t, os.MkdirAll(filepath.Dir(link), 0o755))
	require.NoError(t, os.Symlink(victim, link))
	zipPath := filepath.Join(t.TempDir(), "bootstrap.zip")
	writeTestZip(t, zipPath, []testMember{{name: "opt/balasys/etc/current", data: "restored\n"}})

	_, err := Restore(context.Background(), zipPath, RestoreOptions{Root: dest})

	require.NoError(t, err)
	data, err := os.ReadFile(victim)
	require.NoError(t, err)
	assert.Equal(t, "original\n", string(data), "restore wrote through the link")
	info, err := os.Lstat(link)
	require.NoError(t, err)
	assert.True(t, info.Mode().IsRegular())
	data, err = os.ReadFile(link)
	require.NoError(t, err)
	assert.Equal(t, "restored\n", string(data))
}

func TestRestoreRejectsConflicts(t *testing.T) {
	tests := []struct {
		name     string
		prepare  func(t *testing.T, dest string)
		members  []testMember
		wantText string
	}{
		{
			name: "directory where the zip has a file",
			prepare: func(t *testing.T, dest string) {
				require.NoError(t, os.MkdirAll(filepath.Join(dest, "opt/balasys/etc/x"), 0o755))
			},
			members:  []testMember{{name: "opt/balasys/etc/x", data: "x"}},
			wantText: "/opt/balasys/etc/x is a directory where the archive has a file",
		},
		{
			name: "link where the zip has a directory",
			prepare: func(t *testing.T, dest string) {
				require.NoError(t, os.Symlink(t.TempDir(), filepath.Join(dest, "opt/balasys/etc/conf.d")))
			},
			members: []testMember{
				{name: "opt/balasys/etc/conf.d/", mode: os.ModeDir | 0o755},
				{name: "opt/balasys/etc/conf.d/keys", data: "x"},
			},
			wantText: "/opt/balasys/etc/conf.d is a symbolic link where the archive has a directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := seedDest(t)
			tt.prepare(t, dest)
			before := snapshot(t, dest)
			zipPath := filepath.Join(t.TempDir(), "bootstrap.zip")
			writeTestZip(t, zipPath, tt.members)

			_, err := Restore(context.Background(), zipPath, RestoreOptions{Root: dest})

			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantText)
			assert.Contains(t, err.Error(), "nothing was written")
			assert.Equal(t, before, snapshot(t, dest))
		})
	}
}

func TestRestoreUpdateOnly(t *testing.T) {
	zipPath := filepath.Join(t.TempDir(), "bootstrap.zip")
	writeTestZip(t, zipPath, []testMember{
		{name: "opt/balasys/etc/newer-on-disk.yml", data: "from zip\n"},
		{name: "opt/balasys/etc/older-on-disk.yml", data: "from zip\n"},
		{name: "opt/balasys/etc/missing.yml", data: "from zip\n"},
	})
	tests := []struct {
		name       string
		updateOnly bool
		want       map[string]string
	}{
		{name: "update only", updateOnly: true, want: map[string]string{
			"newer-on-disk.yml": "on disk\n", "older-on-disk.yml": "from zip\n", "missing.yml": "from zip\n",
		}},
		{name: "default overwrites", want: map[string]string{
			"newer-on-disk.yml": "from zip\n", "older-on-disk.yml": "from zip\n", "missing.yml": "from zip\n",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := t.TempDir()
			etc := filepath.Join(dest, "opt/balasys/etc")
			require.NoError(t, os.MkdirAll(etc, 0o755))
			for name, mtime := range map[string]time.Time{
				"newer-on-disk.yml": testTime.Add(time.Hour), "older-on-disk.yml": testTime.Add(-time.Hour),
			} {
				path := filepath.Join(etc, name)
				require.NoError(t, os.WriteFile(path, []byte("on disk\n"), 0o644))
				require.NoError(t, os.Chtimes(path, mtime, mtime))
			}

			report, err := Restore(context.Background(), zipPath,
				RestoreOptions{Root: dest, UpdateOnly: tt.updateOnly})

			require.NoError(t, err)
			for name, want := range tt.want {
				data, err := os.ReadFile(filepath.Join(etc, name))
				require.NoError(t, err)
				assert.Equal(t, want, string(data), name)
			}
			if tt.updateOnly {
				assert.Equal(t, 1, report.Skipped)
			}
		})
	}
}

func TestRestoreOwners(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("restoring owners needs root")
	}
	zipPath := filepath.Join(t.TempDir(), "bootstrap.zip")
	writeOwnedZip(t, zipPath, 1234, 5678)
	dest := t.TempDir()

	report, err := Restore(context.Background(), zipPath, RestoreOptions{Root: dest})

	require.NoError(t, err)
	assert.True(t, report.OwnersRestored)
	info, err := os.Stat(filepath.Join(dest, "opt/balasys/etc/owned.yml"))
	require.NoError(t, err)
	st := info.Sys().(*syscall.Stat_t)
	assert.Equal(t, uint32(1234), st.Uid)
	assert.Equal(t, uint32(5678), st.Gid)
}

func TestRestoreMapsOwners(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("restoring owners needs root")
	}
	zipPath := filepath.Join(t.TempDir(), "bootstrap.zip")
	writeOwnedZip(t, zipPath, 1234, 5678)
	dest := t.TempDir()

	_, err := Restore(context.Background(), zipPath, RestoreOptions{
		Root: dest,
		MapOwner: func(uid, gid uint32) (uint32, uint32) {
			if uid == 1234 {
				uid = 4321
			}
			return uid, gid
		},
	})

	require.NoError(t, err)
	info, err := os.Lstat(filepath.Join(dest, "opt/balasys/etc/owned.yml"))
	require.NoError(t, err)
	st := info.Sys().(*syscall.Stat_t)
	assert.Equal(t, uint32(4321), st.Uid)
	assert.Equal(t, uint32(5678), st.Gid)
}

func TestRestoreAsOtherUser(t *testing.T) {
	zipPath := filepath.Join(t.TempDir(), "bootstrap.zip")
	writeOwnedZip(t, zipPath, 0, 0)
	dest := t.TempDir()
	require.NoError(t, os.Chown(dest, nobody, nobody))
	openToNobody(t, dest)
	openToNobody(t, filepath.Dir(zipPath))
	require.NoError(t, os.Chmod(zipPath, 0o644))

	msg := runAsNobody(t, "restore", zipPath, dest)

	require.Empty(t, msg)
	for _, name := range []string{"opt/balasys", "opt/balasys/etc", "opt/balasys/etc/owned.yml"} {
		info, err := os.Lstat(filepath.Join(dest, name))
		require.NoError(t, err)
		st := info.Sys().(*syscall.Stat_t)
		assert.Equal(t, uint32(nobody), st.Uid, name)
		assert.Equal(t, uint32(nobody), st.Gid, name)
	}
}

// writeOwnedZip writes a zip whose members record uid and gid.
func writeOwnedZip(t *testing.T, path string, uid, gid uint32) {
	t.Helper()
	set := createSetFromFiles(t, map[string]string{"opt/balasys/etc/owned.yml": "x\n"}, uid, gid)
	data, err := os.ReadFile(set)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data, 0o600))
}

// createSetFromFiles backs up a tree of files owned by uid and gid and
// returns the zip's path. Owning files needs root, so without root the
// files keep the caller's owner.
func createSetFromFiles(t *testing.T, files map[string]string, uid, gid uint32) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		path := filepath.Join(root, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
		if os.Geteuid() == 0 {
			require.NoError(t, os.Lchown(path, int(uid), int(gid)))
		}
	}
	set, err := Create(context.Background(), Options{Root: root, Dir: t.TempDir()})
	require.NoError(t, err)
	return set.ArchivePath()
}

func TestRestoreReadOnlyDestination(t *testing.T) {
	dest := t.TempDir()
	mountTmpfs(t, dest, 1<<20, false)
	require.NoError(t, os.MkdirAll(filepath.Join(dest, "opt/balasys/etc"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dest, "opt/balasys/etc/existing.yml"), []byte("keep\n"), 0o644))
	remountReadOnly(t, dest)
	before := snapshot(t, dest)
	zipPath := createSetFromFiles(t, map[string]string{"opt/balasys/etc/mgmt/config.yml": "a: 1\n"}, 0, 0)

	_, err := Restore(context.Background(), zipPath, RestoreOptions{Root: dest})

	require.ErrorIs(t, err, syscall.EROFS)
	assert.Contains(t, err.Error(), "/opt/balasys/etc/mgmt")
	assert.Equal(t, before, snapshot(t, dest))
}

func TestRestoreDiskFull(t *testing.T) {
	dest := t.TempDir()
	mountTmpfs(t, dest, 256<<10, false)
	require.NoError(t, os.MkdirAll(filepath.Join(dest, "opt/balasys/etc"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dest, "opt/balasys/etc/existing.yml"), []byte("keep\n"), 0o644))
	before := snapshot(t, dest)
	files := map[string]string{}
	for i := range 8 {
		files[filepath.Join("opt/balasys/etc/big", string(rune('a'+i))+".yml")] = strings.Repeat("key: value\n", 6000)
	}
	zipPath := createSetFromFiles(t, files, 0, 0)

	_, err := Restore(context.Background(), zipPath, RestoreOptions{Root: dest})

	require.ErrorIs(t, err, syscall.ENOSPC)
	assert.Contains(t, err.Error(), "nothing was kept")
	assert.Equal(t, before, snapshot(t, dest))
}

func TestRestoreReportsProgress(t *testing.T) {
	set := createSet(t, sampleRoot(t), TopologySingle)
	var mu sync.Mutex
	var last Progress
	calls := 0

	report, err := Restore(context.Background(), set.ArchivePath(), RestoreOptions{
		Root: t.TempDir(),
		Progress: func(p Progress) {
			mu.Lock()
			defer mu.Unlock()
			calls++
			last = p
		},
	})

	require.NoError(t, err)
	assert.Equal(t, report.Files+report.Links, calls)
	assert.Equal(t, "restore", last.Op)
	assert.Equal(t, last.TotalFiles, last.Files)
	assert.Equal(t, report.Bytes, last.Bytes)
	assert.Equal(t, last.TotalBytes, last.Bytes)
}

func TestRestoreOutOfDescriptorsUndoes(t *testing.T) {
	members := []testMember{{name: "opt/balasys/etc/", mode: os.ModeDir | 0o755}}
	for i := range 200 {
		dir := "opt/balasys/etc/d" + strconv.Itoa(i) + "/"
		members = append(members, testMember{name: dir, mode: os.ModeDir | 0o755},
			testMember{name: dir + "f.yml", data: "a: 1\n"})
	}
	zipPath := filepath.Join(t.TempDir(), "many-dirs.zip")
	writeTestZip(t, zipPath, members)
	dest := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dest, "keep"), []byte("keep\n"), 0o644))
	before := snapshot(t, dest)

	// A soft limit of 100 descriptors more than are open now lets the
	// restore open about half of its directories.
	open, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	var saved syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &saved))
	lowered := saved
	lowered.Cur = uint64(len(open) + 100)
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lowered))
	_, err = Restore(context.Background(), zipPath, RestoreOptions{Root: dest})
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &saved))

	require.ErrorIs(t, err, syscall.EMFILE)
	assert.Contains(t, err.Error(), "nothing was kept")
	assert.NotContains(t, err.Error(), "removing what was written")
	assert.Equal(t, before, snapshot(t, dest))
}
