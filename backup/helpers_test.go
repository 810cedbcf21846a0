package backup

import (
	"bytes"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zip"
	"github.com/stretchr/testify/require"
)

// testMember describes one member of a zip built by writeTestZip. Fields
// that forge headers let tests build broken and hostile archives.
type testMember struct {
	name string
	mode fs.FileMode // type bits and permissions; zero means a 0644 file
	data string      // file contents or link target

	// unixType, when not zero, replaces the Unix type bits.
	unixType uint32
	// raw, when set, is stored as the compressed data with method
	// Deflate, and declared/crc describe it.
	raw      []byte
	declared uint64
	crc      *uint32
	extra    []byte
}

var testTime = time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)

// writeTestZip writes members to path with the layout Create uses.
func writeTestZip(t testing.TB, path string, members []testMember) {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, m := range members {
		mode := m.mode
		if mode == 0 {
			mode = 0o644
		}
		h := newHeader(m.name, mode, testTime, uint32(os.Getuid()), uint32(os.Getgid()))
		if m.unixType != 0 {
			h.ExternalAttrs = (m.unixType | uint32(mode.Perm())) << 16
		}
		h.Extra = append(h.Extra, m.extra...)
		data := []byte(m.data)
		h.Method = zip.Store
		h.CRC32 = crc32.ChecksumIEEE(data)
		h.UncompressedSize64 = uint64(len(data))
		if m.raw != nil {
			h.Method = zip.Deflate
			data = m.raw
			h.UncompressedSize64 = m.declared
		}
		if m.crc != nil {
			h.CRC32 = *m.crc
		}
		h.CompressedSize64 = uint64(len(data))
		w, err := zw.CreateRaw(h)
		require.NoError(t, err)
		if mode&fs.ModeDir == 0 {
			_, err = w.Write(data)
			require.NoError(t, err)
		}
	}
	require.NoError(t, zw.Close())
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o600))
}

// deflateBytes compresses data. With final false the stream ends with a
// sync flush, so copies of it can be concatenated.
func deflateBytes(t testing.TB, data []byte, final bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	fw, err := flate.NewWriter(&buf, flate.BestCompression)
	require.NoError(t, err)
	_, err = fw.Write(data)
	require.NoError(t, err)
	if final {
		require.NoError(t, fw.Close())
	} else {
		require.NoError(t, fw.Flush())
	}
	return buf.Bytes()
}

// zerosStream returns a deflate stream that inflates to n MiB of zeros,
// built from copies of one flushed MiB so that no test compresses
// gigabytes.
func zerosStream(t testing.TB, mib int) []byte {
	chunk := deflateBytes(t, make([]byte, 1<<20), false)
	stream := bytes.Repeat(chunk, mib)
	return append(stream, 0x03, 0x00) // an empty final block
}

// snapshot lists every object under dir with its type, mode and, for
// files and links, contents or target.
func snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type() == fs.ModeSymlink:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			out[rel] = "link -> " + target
		case d.IsDir():
			out[rel] = "dir " + info.Mode().Perm().String()
		default:
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			out[rel] = info.Mode().Perm().String() + " " + string(data)
		}
		return nil
	})
	require.NoError(t, err)
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func ptr[T any](v T) *T { return &v }
