package backup

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/klauspost/compress/zip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/backup/backuptest"
)

// sampleRoot writes the sample tree into a new directory.
func sampleRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	require.NoError(t, backuptest.WriteTree(root, backuptest.TreeOptions{Policies: 3}))
	return root
}

func createSet(t *testing.T, root string, topology Topology) *Set {
	t.Helper()
	set, err := Create(context.Background(), Options{
		Root: root, Dir: filepath.Join(t.TempDir(), "backups"), Topology: topology,
		ToolVersion: "1.2.3", Hostname: "mgmt-1",
		Packages: map[string]string{"proxedo-api-security-mgmt": "4.8.0"},
	})
	require.NoError(t, err)
	return set
}

func memberNames(m *Manifest) map[string]Member {
	out := map[string]Member{}
	for _, mem := range m.Members {
		out[mem.Name] = mem
	}
	return out
}

func TestCreateWritesSet(t *testing.T) {
	root := sampleRoot(t)
	set := createSet(t, root, TopologyMulti)

	assert.Regexp(t, regexp.MustCompile(`^pas-backup-\d{8}T\d{6}Z$`), filepath.Base(set.Dir))
	for path, mode := range map[string]os.FileMode{
		set.Dir: 0o700 | os.ModeDir, set.ArchivePath(): 0o600, filepath.Join(set.Dir, ManifestName): 0o600,
	} {
		info, err := os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, mode, info.Mode(), path)
	}

	m, err := ReadManifest(set.Dir)
	require.NoError(t, err)
	assert.Equal(t, set.Manifest.Members, m.Members)
	assert.Equal(t, TopologyMulti, m.Topology)
	assert.Equal(t, "1.2.3", m.ToolVersion)
	assert.Equal(t, "mgmt-1", m.Hostname)
	assert.Equal(t, "4.8.0", m.Packages["proxedo-api-security-mgmt"])
	assert.Nil(t, m.RunningConfig)

	members := memberNames(m)
	for _, name := range []string{
		"opt/balasys/etc/", "opt/balasys/etc/mgmt/users.htpass", "opt/balasys/.ssh/",
		"opt/balasys/.ssh/id_ed25519", "opt/balasys/usr/share/automation/deploy-core.yml",
		"opt/balasys/usr/share/automation/host_vars/", "opt/balasys/usr/share/automation/host_vars/core-1.yml",
		"opt/balasys/usr/share/automation/inventory.yml",
		"opt/balasys/usr/share/automation/roles/deploy-core/vars/main.yml",
	} {
		assert.Contains(t, members, name)
	}
	assert.NotContains(t, members, "opt/balasys/usr/share/automation/roles/deploy-core/tasks/main.yml")
	assert.Equal(t, Mode(0o600), members["opt/balasys/etc/mgmt/users.htpass"].Mode)
	assert.Equal(t, TypeDir, members["opt/balasys/etc/"].Type)
	assert.Equal(t, "opt/balasys/.ssh/", m.Members[0].Name, "guide order puts .ssh first")
	assert.Equal(t, uint32(os.Getuid()), members["opt/balasys/etc/"].UID)
}

func TestCreateStoresLinksAsLinks(t *testing.T) {
	root := sampleRoot(t)
	set := createSet(t, root, TopologySingle)

	zr, err := zip.OpenReader(set.ArchivePath())
	require.NoError(t, err)
	defer zr.Close()
	bodies := map[string]string{}
	for _, f := range zr.File {
		if f.Mode()&os.ModeSymlink == 0 {
			continue
		}
		rc, err := f.Open()
		require.NoError(t, err)
		body, err := io.ReadAll(rc)
		require.NoError(t, err)
		bodies[f.Name] = string(body)
	}
	assert.Equal(t, map[string]string{
		"opt/balasys/etc/mgmt/active.yml":          "config.yml",
		"opt/balasys/etc/mgmt/old.yml":             "gone.yml",
		"opt/balasys/etc/core/certs/ca-bundle.pem": "/etc/ssl/certs/ca-certificates.crt",
	}, bodies)
	members := memberNames(set.Manifest)
	assert.Equal(t, "gone.yml", members["opt/balasys/etc/mgmt/old.yml"].Target)
}

func TestCreateSingleLeavesOutSSH(t *testing.T) {
	set := createSet(t, sampleRoot(t), TopologySingle)
	for _, m := range set.Manifest.Members {
		assert.False(t, strings.HasPrefix(m.Name, "opt/balasys/.ssh"), m.Name)
	}
}

func TestCreateMissingPaths(t *testing.T) {
	t.Run("etc missing", func(t *testing.T) {
		root := t.TempDir()
		dir := filepath.Join(t.TempDir(), "backups")
		_, err := Create(context.Background(), Options{Root: root, Dir: dir})
		require.ErrorIs(t, err, ErrSourceMissing)
		assert.Contains(t, err.Error(), "/opt/balasys/etc")
		assert.NoDirExists(t, dir)
	})
	t.Run("optional path missing", func(t *testing.T) {
		root := sampleRoot(t)
		require.NoError(t, os.RemoveAll(filepath.Join(root, "opt/balasys/usr/share/automation/host_vars")))
		set := createSet(t, root, TopologySingle)
		assert.Equal(t, []string{
			"optional path /opt/balasys/usr/share/automation/host_vars does not exist; not backed up",
		}, set.Manifest.Warnings)
	})
}

func TestCreateWarnsOfLinkedSourcePath(t *testing.T) {
	root := sampleRoot(t)
	hostVars := filepath.Join(root, "opt/balasys/usr/share/automation/host_vars")
	require.NoError(t, os.Rename(hostVars, hostVars+".real"))
	require.NoError(t, os.Symlink("host_vars.real", hostVars))

	set := createSet(t, root, TopologySingle)

	assert.Equal(t, []string{
		"/opt/balasys/usr/share/automation/host_vars is a symbolic link to host_vars.real: " +
			"the link is backed up, not the files it points to",
	}, set.Manifest.Warnings)
	members := memberNames(set.Manifest)
	assert.Equal(t, TypeSymlink, members["opt/balasys/usr/share/automation/host_vars"].Type)
}

func TestCreateRejectsBackupDirInsideDeletedTree(t *testing.T) {
	root := sampleRoot(t)
	outside := t.TempDir()
	require.NoError(t, os.Symlink(filepath.Join(root, "opt/balasys"), filepath.Join(outside, "link")))
	tests := map[string]string{
		"inside pas home":         filepath.Join(root, "opt/balasys/backups"),
		"pas home itself":         filepath.Join(root, "opt/balasys"),
		"inside home/pas":         filepath.Join(root, "home/pas/backups"),
		"through a symbolic link": filepath.Join(outside, "link/backups"),
	}
	for name, dir := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Create(context.Background(), Options{Root: root, Dir: dir})
			require.ErrorIs(t, err, ErrUnsafeBackupDir)
			assert.Contains(t, err.Error(), dir)
			assert.Contains(t, err.Error(), "is deleted when PAS is restored")
			assert.NoDirExists(t, filepath.Join(root, "opt/balasys/backups"))
		})
	}
}

// fakeExporter is an Exporter that writes fixed content.
type fakeExporter struct {
	name    string
	content string
	err     error
	calls   int
}

func (f *fakeExporter) ExportConfig(_ context.Context, w io.Writer) (string, error) {
	f.calls++
	if _, err := io.WriteString(w, f.content); err != nil {
		return "", err
	}
	return f.name, f.err
}

func TestCreateStoresRunningConfig(t *testing.T) {
	root := sampleRoot(t)
	exp := &fakeExporter{name: "pas-config-4.8.0.yaml", content: "pas_config_version: 4.8.0\n"}
	set, err := Create(context.Background(), Options{Root: root, Dir: t.TempDir(), RunningConfig: exp})
	require.NoError(t, err)

	assert.Equal(t, 1, exp.calls)
	require.NotNil(t, set.Manifest.RunningConfig)
	assert.Equal(t, "pas-config-4.8.0.yaml", set.Manifest.RunningConfig.Name)
	assert.Equal(t, int64(len(exp.content)), set.Manifest.RunningConfig.Size)
	data, err := os.ReadFile(filepath.Join(set.Dir, "pas-config-4.8.0.yaml"))
	require.NoError(t, err)
	assert.Equal(t, exp.content, string(data))
	require.NoError(t, Verify(context.Background(), set.Dir))
}

func TestCreateExportFailureLeavesNoSet(t *testing.T) {
	tests := map[string]*fakeExporter{
		"exporter error": {name: "x.yaml", err: errors.New("login failed")},
		"path as name":   {name: "../x.yaml"},
		"manifest name":  {name: ManifestName},
	}
	for name, exp := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := Create(context.Background(), Options{Root: sampleRoot(t), Dir: dir, RunningConfig: exp})
			require.Error(t, err)
			assert.Contains(t, err.Error(), "exporting the running configuration")
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			assert.Empty(t, entries)
		})
	}
}

func TestCreateDiskFull(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, backuptest.WriteTree(root, backuptest.TreeOptions{Policies: 200}))
	dir := t.TempDir()
	mountTmpfs(t, dir, 64<<10, false)

	_, err := Create(context.Background(), Options{Root: root, Dir: dir})

	require.ErrorIs(t, err, syscallENOSPC)
	assert.Contains(t, err.Error(), filepath.Join(dir, ".pas-backup-"))
	assert.Contains(t, err.Error(), ArchiveName)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "an incomplete set was left behind")
}

func TestCreateUnreadableFile(t *testing.T) {
	root := sampleRoot(t)
	secret := filepath.Join(root, "opt/balasys/etc/mgmt/config.yml")
	require.NoError(t, filepath.WalkDir(root, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, nobody, nobody)
	}))
	require.NoError(t, os.Chmod(secret, 0o000))
	dir := filepath.Join(t.TempDir(), "backups")
	require.NoError(t, os.Mkdir(dir, 0o755))
	require.NoError(t, os.Chown(dir, nobody, nobody))
	openToNobody(t, root)
	openToNobody(t, dir)

	msg := runAsNobody(t, "create", root, dir)

	assert.Contains(t, msg, "reading /opt/balasys/etc/mgmt/config.yml")
	assert.Contains(t, msg, "permission denied")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries)
}

func TestCreateStreamsLargeFile(t *testing.T) {
	root := sampleRoot(t)
	large := make([]byte, maxInMemory+12345)
	for i := range large {
		large[i] = byte(i % 251)
	}
	path := filepath.Join(root, "opt/balasys/etc/storage/geo.db")
	require.NoError(t, os.WriteFile(path, large, 0o640))
	set := createSet(t, root, TopologySingle)

	require.NoError(t, Verify(context.Background(), set.Dir))
	dest := t.TempDir()
	// The data compresses about 250:1, over the bomb ratio limit, so only
	// the manifest's record of the member lets it through.
	_, err := Restore(context.Background(), set.ArchivePath(), RestoreOptions{Root: dest})
	require.NoError(t, err)
	got, err := os.ReadFile(filepath.Join(dest, "opt/balasys/etc/storage/geo.db"))
	require.NoError(t, err)
	assert.Equal(t, large, got)
	info, err := os.Stat(filepath.Join(dest, "opt/balasys/etc/storage/geo.db"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o640), info.Mode().Perm())

	bare := filepath.Join(t.TempDir(), "bare.zip")
	data, err := os.ReadFile(set.ArchivePath())
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bare, data, 0o600))
	_, err = Restore(context.Background(), bare, RestoreOptions{Root: t.TempDir()})
	require.ErrorIs(t, err, ErrLimitExceeded, "without a manifest the ratio limit applies")
}

func TestCreateReportsProgress(t *testing.T) {
	var reports []Progress
	set, err := Create(context.Background(), Options{
		Root: sampleRoot(t), Dir: t.TempDir(),
		Progress: func(p Progress) { reports = append(reports, p) },
	})
	require.NoError(t, err)

	require.Len(t, reports, len(set.Manifest.Members))
	last := reports[len(reports)-1]
	assert.Equal(t, "create", last.Op)
	assert.Equal(t, last.TotalFiles, last.Files)
	assert.Equal(t, last.TotalBytes, last.Bytes)
	for i := 1; i < len(reports); i++ {
		assert.GreaterOrEqual(t, reports[i].Bytes, reports[i-1].Bytes)
	}
}

func TestCreateCancelledLeavesNoSet(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	calls := 0
	_, err := Create(ctx, Options{
		Root: sampleRoot(t), Dir: dir,
		Progress: func(Progress) {
			calls++
			if calls == 5 {
				cancel()
			}
		},
	})

	require.ErrorIs(t, err, context.Canceled)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries)
}

func TestCreateRejectsNameRestoreRejects(t *testing.T) {
	root := sampleRoot(t)
	odd := filepath.Join(root, `opt/balasys/etc/mgmt/odd\name.yml`)
	require.NoError(t, os.WriteFile(odd, []byte("a: 1\n"), 0o644))
	dir := filepath.Join(t.TempDir(), "backups")

	_, err := Create(context.Background(), Options{Root: root, Dir: dir})

	require.ErrorIs(t, err, ErrUnsafeArchive)
	assert.Contains(t, err.Error(), `/opt/balasys/etc/mgmt/odd\name.yml`)
	assert.Contains(t, err.Error(), "rename")
	entries, err := os.ReadDir(dir)
	if !errors.Is(err, fs.ErrNotExist) {
		require.NoError(t, err)
		assert.Empty(t, entries, "a set was written")
	}
}

func TestCreateRejectsNameNotUTF8(t *testing.T) {
	for name, setup := range map[string]func(root string) string{
		"file name": func(root string) string {
			path := filepath.Join(root, "opt/balasys/etc/mgmt/caf\xe9.yml")
			require.NoError(t, os.WriteFile(path, []byte("a: 1\n"), 0o644))
			return "caf\\xe9.yml"
		},
		"link target": func(root string) string {
			require.NoError(t, os.Symlink("caf\xe9.yml", filepath.Join(root, "opt/balasys/etc/mgmt/cafe.yml")))
			return "cafe.yml"
		},
	} {
		t.Run(name, func(t *testing.T) {
			root := sampleRoot(t)
			wantText := setup(root)
			dir := filepath.Join(t.TempDir(), "backups")

			_, err := Create(context.Background(), Options{Root: root, Dir: dir})

			require.ErrorIs(t, err, ErrUnsafeArchive)
			assert.Contains(t, err.Error(), wantText)
			assert.Contains(t, err.Error(), "UTF-8")
		})
	}
}
