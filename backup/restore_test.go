package backup

import (
	"context"
	"crypto/rand"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const goodConfig = "opt/balasys/etc/mgmt/config.yml"

// seedDest creates a destination holding one existing file, so tests can
// check that a rejected archive leaves it as it was.
func seedDest(t *testing.T) string {
	t.Helper()
	dest := t.TempDir()
	path := filepath.Join(dest, "opt/balasys/etc/existing.yml")
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte("keep\n"), 0o644))
	return dest
}

func TestRestoreRejectsArchive(t *testing.T) {
	good := testMember{name: goodConfig, data: "pas_config_version: 4.8.0\n"}
	tests := []struct {
		name    string
		members []testMember
		opts    RestoreOptions
		wantErr error
		// wantText lists substrings of the error: the member and the rule.
		wantText []string
	}{
		{
			name:     "parent escape",
			members:  []testMember{good, {name: "../../../root/.ssh/authorized_keys", data: "key"}},
			wantErr:  ErrUnsafeArchive,
			wantText: []string{`"../../../root/.ssh/authorized_keys"`, `".." element`},
		},
		{
			name:     "absolute name",
			members:  []testMember{good, {name: "/etc/cron.d/x", data: "* * * * * root id"}},
			wantErr:  ErrUnsafeArchive,
			wantText: []string{`"/etc/cron.d/x"`, "absolute name"},
		},
		{
			name:     "backslash name",
			members:  []testMember{good, {name: `opt\balasys\..\..\x`, data: "x"}},
			wantErr:  ErrUnsafeArchive,
			wantText: []string{"backslash"},
		},
		{
			name:     "NUL in name",
			members:  []testMember{good, {name: "opt/balasys/etc/x\x00.yml", data: "x"}},
			wantErr:  ErrUnsafeArchive,
			wantText: []string{"NUL byte"},
		},
		{
			name:     "outside allowed prefix",
			members:  []testMember{good, {name: "etc/passwd", data: "root::0:0::/:/bin/sh"}},
			wantErr:  ErrUnsafeArchive,
			wantText: []string{`"etc/passwd"`, "outside the allowed prefixes opt/balasys/"},
		},
		{
			name:     "dot element",
			members:  []testMember{good, {name: "opt/balasys/./etc/x", data: "x"}},
			wantErr:  ErrUnsafeArchive,
			wantText: []string{`"." element`},
		},
		{
			name: "file written through link member",
			members: []testMember{
				{name: "opt/balasys/etc/conf.d", mode: os.ModeSymlink | 0o777, data: "/root/.ssh"},
				{name: "opt/balasys/etc/conf.d/keys", data: "ssh-ed25519 AAAA"},
			},
			opts:     RestoreOptions{AllowOutsideLinks: true},
			wantErr:  ErrUnsafeArchive,
			wantText: []string{`"opt/balasys/etc/conf.d/keys"`, `through symbolic link member "opt/balasys/etc/conf.d"`},
		},
		{
			name: "file with the name of a link",
			members: []testMember{
				{name: "opt/balasys/etc/current", mode: os.ModeSymlink | 0o777, data: "/etc/shadow"},
				{name: "opt/balasys/etc/current", data: "root:x:"},
			},
			opts:     RestoreOptions{AllowOutsideLinks: true},
			wantErr:  ErrUnsafeArchive,
			wantText: []string{`"opt/balasys/etc/current"`, "more than once"},
		},
		{
			name: "directory and file of one name",
			members: []testMember{
				{name: "opt/balasys/etc/x/", mode: os.ModeDir | 0o755},
				{name: "opt/balasys/etc/x", data: "x"},
			},
			wantErr:  ErrUnsafeArchive,
			wantText: []string{"more than once"},
		},
		{
			name:     "absolute outside link",
			members:  []testMember{good, {name: "opt/balasys/etc/x", mode: os.ModeSymlink | 0o777, data: "/etc/passwd"}},
			wantErr:  ErrUnsafeArchive,
			wantText: []string{`"opt/balasys/etc/x"`, `"/etc/passwd" points outside`},
		},
		{
			name:     "relative outside link",
			members:  []testMember{good, {name: "opt/balasys/etc/x", mode: os.ModeSymlink | 0o777, data: "../../../../etc"}},
			wantErr:  ErrUnsafeArchive,
			wantText: []string{`"../../../../etc" points outside`},
		},
		{
			name: "link escaping through another link",
			members: []testMember{
				{name: "opt/balasys/etc/a", mode: os.ModeSymlink | 0o777, data: "b/c/d"},
				{name: "opt/balasys/etc/b", mode: os.ModeSymlink | 0o777, data: "/"},
				{name: "opt/balasys/etc/y", mode: os.ModeSymlink | 0o777, data: "b/../x"},
			},
			opts:     RestoreOptions{},
			wantErr:  ErrUnsafeArchive,
			wantText: []string{`"opt/balasys/etc/b"`},
		},
		{
			name:     "FIFO",
			members:  []testMember{good, {name: "opt/balasys/etc/fifo", unixType: 0o010000}},
			wantErr:  ErrUnsafeArchive,
			wantText: []string{`"opt/balasys/etc/fifo"`, "FIFO"},
		},
		{
			name:     "character device",
			members:  []testMember{good, {name: "opt/balasys/etc/null", unixType: 0o020000}},
			wantErr:  ErrUnsafeArchive,
			wantText: []string{"character device"},
		},
		{
			name:     "block device",
			members:  []testMember{good, {name: "opt/balasys/etc/sda", unixType: 0o060000}},
			wantErr:  ErrUnsafeArchive,
			wantText: []string{"block device"},
		},
		{
			name:     "socket",
			members:  []testMember{good, {name: "opt/balasys/etc/sock", unixType: 0o140000}},
			wantErr:  ErrUnsafeArchive,
			wantText: []string{"socket"},
		},
		{
			name: "hard link in PKWARE extra",
			members: []testMember{good, {name: "opt/balasys/etc/hard", data: "",
				extra: pkwareUnixExtra("/etc/shadow")}},
			wantErr:  ErrUnsafeArchive,
			wantText: []string{"hard link or device data"},
		},
		{
			name:     "CRC mismatch",
			members:  []testMember{good, {name: "opt/balasys/etc/bad.yml", data: "a: 1\n", crc: ptr(uint32(1))}},
			wantErr:  ErrCorrupt,
			wantText: []string{`"opt/balasys/etc/bad.yml"`, "CRC-32"},
		},
		{
			name:     "zeroed CRC",
			members:  []testMember{good, {name: "opt/balasys/etc/bad.yml", data: "a: 1\n", crc: ptr(uint32(0))}},
			wantErr:  ErrCorrupt,
			wantText: []string{"CRC-32"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := seedDest(t)
			before := snapshot(t, dest)
			zipPath := filepath.Join(t.TempDir(), "bootstrap.zip")
			writeTestZip(t, zipPath, tt.members)

			opts := tt.opts
			opts.Root = dest
			report, err := Restore(context.Background(), zipPath, opts)

			require.ErrorIs(t, err, tt.wantErr)
			assert.Nil(t, report)
			for _, text := range tt.wantText {
				assert.Contains(t, err.Error(), text)
			}
			assert.Equal(t, before, snapshot(t, dest), "destination changed")
		})
	}
}

// pkwareUnixExtra returns a PKWARE Unix extra field carrying link data,
// the way that format marks hard links.
func pkwareUnixExtra(link string) []byte {
	data := append(make([]byte, 12), link...)
	b := []byte{0x0d, 0x00, byte(len(data)), byte(len(data) >> 8)}
	return append(b, data...)
}

func TestRestoreRejectsBombs(t *testing.T) {
	oneMiB := zerosStream(t, 1)
	oneMiBCRC := crc32.ChecksumIEEE(make([]byte, 1<<20))
	many := make([]testMember, 10_000)
	for i := range many {
		many[i] = testMember{name: "opt/balasys/etc/zeros/z" + strconv.Itoa(i),
			raw: oneMiB, declared: 1 << 20, crc: &oneMiBCRC}
	}
	tests := []struct {
		name     string
		members  []testMember
		opts     RestoreOptions
		wantErr  error
		wantText []string
	}{
		{
			name: "member inflating past its declared size",
			members: []testMember{{name: "opt/balasys/etc/bomb", raw: zerosStream(t, 2048),
				declared: 1024, crc: ptr(uint32(0))}},
			wantErr:  ErrCorrupt,
			wantText: []string{`"opt/balasys/etc/bomb"`, "declared size 1024"},
		},
		{
			name:     "many members at a bomb's ratio",
			members:  many,
			wantErr:  ErrLimitExceeded,
			wantText: []string{`"opt/balasys/etc/zeros/z0"`, "exceeds the limit of 200:1"},
		},
		{
			name:     "many members over the total size",
			members:  many,
			opts:     RestoreOptions{MaxRatio: 10_000},
			wantErr:  ErrLimitExceeded,
			wantText: []string{`"opt/balasys/etc/zeros/z4096"`, "limit of 4294967296 bytes"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := seedDest(t)
			before := snapshot(t, dest)
			zipPath := filepath.Join(t.TempDir(), "bomb.zip")
			writeTestZip(t, zipPath, tt.members)

			opts := tt.opts
			opts.Root = dest
			_, err := Restore(context.Background(), zipPath, opts)

			require.ErrorIs(t, err, tt.wantErr)
			for _, text := range tt.wantText {
				assert.Contains(t, err.Error(), text)
			}
			assert.Equal(t, before, snapshot(t, dest), "destination changed")
		})
	}
}

func TestRestoreRejectsBrokenInput(t *testing.T) {
	valid := filepath.Join(t.TempDir(), "valid.zip")
	writeTestZip(t, valid, []testMember{{name: goodConfig, data: strings.Repeat("key: value\n", 500)}})
	validBytes, err := os.ReadFile(valid)
	require.NoError(t, err)
	random := make([]byte, 4096)
	_, _ = rand.Read(random)
	gzipBytes := []byte{0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 0xff, 0x03, 0x00, 0, 0, 0, 0, 0, 0, 0, 0}

	tests := []struct {
		name     string
		content  []byte
		wantText string
	}{
		{name: "random bytes", content: random, wantText: "is not a zip archive"},
		{name: "truncated zip", content: validBytes[:len(validBytes)/2], wantText: "probably truncated or damaged"},
		{name: "empty file", content: nil, wantText: "the file is empty"},
		{name: "gzip file", content: gzipBytes, wantText: "looks like gz, not zip"},
		{name: "zip without members", content: emptyZip(t), wantText: "no members"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := seedDest(t)
			before := snapshot(t, dest)
			zipPath := filepath.Join(t.TempDir(), "bootstrap.zip")
			require.NoError(t, os.WriteFile(zipPath, tt.content, 0o600))

			_, err := Restore(context.Background(), zipPath, RestoreOptions{Root: dest})

			require.ErrorIs(t, err, ErrNotZip)
			assert.Contains(t, err.Error(), zipPath)
			assert.Contains(t, err.Error(), tt.wantText)
			assert.Equal(t, before, snapshot(t, dest), "destination changed")
		})
	}
}

func emptyZip(t *testing.T) []byte {
	path := filepath.Join(t.TempDir(), "empty.zip")
	writeTestZip(t, path, nil)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return data
}
