package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestVerifyAcceptsNewSet(t *testing.T) {
	set := createSet(t, sampleRoot(t), TopologyMulti)
	require.NoError(t, Verify(context.Background(), set.Dir))
}

// flipMemberByte changes one byte of a member's stored data.
func flipMemberByte(t *testing.T, zipPath, member string) {
	t.Helper()
	zr, err := zip.OpenReader(zipPath)
	require.NoError(t, err)
	var offset int64 = -1
	for _, f := range zr.File {
		if f.Name == member {
			offset, err = f.DataOffset()
			require.NoError(t, err)
		}
	}
	require.NoError(t, zr.Close())
	require.GreaterOrEqual(t, offset, int64(0), "member %s not found", member)
	f, err := os.OpenFile(zipPath, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	b := make([]byte, 1)
	_, err = f.ReadAt(b, offset)
	require.NoError(t, err)
	b[0] ^= 0xff
	_, err = f.WriteAt(b, offset)
	require.NoError(t, err)
}

func editManifest(t *testing.T, dir string, edit func(*Manifest)) {
	t.Helper()
	m, err := ReadManifest(dir)
	require.NoError(t, err)
	edit(m)
	data, err := json.Marshal(m)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, ManifestName), data, 0o600))
}

func TestVerifyNamesFirstDifference(t *testing.T) {
	const (
		htpass     = "opt/balasys/etc/mgmt/users.htpass"
		activeLink = "opt/balasys/etc/mgmt/active.yml"
	)
	tests := []struct {
		name     string
		damage   func(t *testing.T, set *Set)
		wantErr  error
		wantText string
	}{
		{
			name:     "flipped byte in member",
			damage:   func(t *testing.T, set *Set) { flipMemberByte(t, set.ArchivePath(), htpass) },
			wantErr:  ErrMismatch,
			wantText: `member "` + htpass + `"`,
		},
		{
			name: "manifest digest changed",
			damage: func(t *testing.T, set *Set) {
				editManifest(t, set.Dir, func(m *Manifest) {
					for i := range m.Members {
						if m.Members[i].Name == htpass {
							m.Members[i].SHA256 = "00"
						}
					}
				})
			},
			wantErr:  ErrMismatch,
			wantText: `member "` + htpass + `" has`,
		},
		{
			name: "mode changed in manifest",
			damage: func(t *testing.T, set *Set) {
				editManifest(t, set.Dir, func(m *Manifest) { m.Members[0].Mode = 0o777 })
			},
			wantErr:  ErrMismatch,
			wantText: "has mode",
		},
		{
			name: "link target changed in manifest",
			damage: func(t *testing.T, set *Set) {
				editManifest(t, set.Dir, func(m *Manifest) {
					for i := range m.Members {
						if m.Members[i].Name == activeLink {
							m.Members[i].Target = "/etc/shadow"
						}
					}
				})
			},
			wantErr:  ErrMismatch,
			wantText: `member "` + activeLink + `": corrupt archive member: link to "config.yml"`,
		},
		{
			name: "archive missing",
			damage: func(t *testing.T, set *Set) {
				require.NoError(t, os.Remove(set.ArchivePath()))
			},
			wantErr:  ErrMismatch,
			wantText: ArchiveName + " is missing",
		},
		{
			name: "appended bytes",
			damage: func(t *testing.T, set *Set) {
				f, err := os.OpenFile(set.ArchivePath(), os.O_APPEND|os.O_WRONLY, 0)
				require.NoError(t, err)
				_, err = f.WriteString("trailing")
				require.NoError(t, err)
				require.NoError(t, f.Close())
			},
			wantErr:  ErrMismatch,
			wantText: "bootstrap.zip has",
		},
		{
			name: "manifest missing",
			damage: func(t *testing.T, set *Set) {
				require.NoError(t, os.Remove(filepath.Join(set.Dir, ManifestName)))
			},
			wantErr:  ErrNotSet,
			wantText: ManifestName,
		},
		{
			name: "temporary directory name",
			damage: func(t *testing.T, set *Set) {
				tmp := filepath.Join(filepath.Dir(set.Dir), "."+filepath.Base(set.Dir)+".tmp-1")
				require.NoError(t, os.Rename(set.Dir, tmp))
				set.Dir = tmp
			},
			wantErr:  ErrNotSet,
			wantText: "an interrupted run leaves a temporary directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := createSet(t, sampleRoot(t), TopologySingle)
			tt.damage(t, set)

			err := Verify(context.Background(), set.Dir)

			require.ErrorIs(t, err, tt.wantErr)
			assert.Contains(t, err.Error(), tt.wantText)
		})
	}
}

func TestListShowsSets(t *testing.T) {
	root := sampleRoot(t)
	dir := t.TempDir()
	first, err := Create(context.Background(), Options{Root: root, Dir: dir, ToolVersion: "1.0.0"})
	require.NoError(t, err)
	second, err := Create(context.Background(), Options{Root: root, Dir: dir, Topology: TopologyMulti})
	require.NoError(t, err)
	require.NoError(t, os.Mkdir(filepath.Join(dir, ".pas-backup-20260101T000000Z.tmp-1"), 0o700))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "pas-backup-broken"), 0o700))

	sets, err := List(dir)

	require.NoError(t, err)
	require.Len(t, sets, 3)
	assert.Equal(t, "pas-backup-broken", sets[0].Name, "an unreadable set has no time and sorts first")
	require.ErrorIs(t, sets[0].Err, ErrNotSet)
	assert.Equal(t, filepath.Base(first.Dir), sets[1].Name)
	assert.Equal(t, "1.0.0", sets[1].ToolVersion)
	assert.Equal(t, TopologySingle, sets[1].Topology)
	assert.Equal(t, filepath.Base(second.Dir), sets[2].Name)
	assert.Equal(t, TopologyMulti, sets[2].Topology)
	assert.NotEqual(t, sets[1].Name, sets[2].Name, "two sets in one second get distinct names")
}

func TestVerifyRejectsUnrestorableSet(t *testing.T) {
	const name = `opt/balasys/etc/odd\name.yml`
	const content = "a: 1\n"
	set := createSet(t, sampleRoot(t), TopologySingle)
	writeTestZip(t, set.ArchivePath(), []testMember{{name: name, data: content}})
	archive, err := os.ReadFile(set.ArchivePath())
	require.NoError(t, err)
	editManifest(t, set.Dir, func(m *Manifest) {
		contentSum := sha256.Sum256([]byte(content))
		m.Members = []Member{{Name: name, Type: TypeFile, Mode: 0o644,
			UID: uint32(os.Getuid()), GID: uint32(os.Getgid()),
			Size: int64(len(content)), SHA256: hex.EncodeToString(contentSum[:])}}
		archiveSum := sha256.Sum256(archive)
		m.Archive = FileRecord{Name: ArchiveName, Size: int64(len(archive)),
			SHA256: hex.EncodeToString(archiveSum[:])}
	})

	err = Verify(context.Background(), set.Dir)

	require.ErrorIs(t, err, ErrMismatch)
	assert.Contains(t, err.Error(), "restore would reject")
	assert.Contains(t, err.Error(), "name contains a backslash")
}
