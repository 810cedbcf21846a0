package deb

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/deb/debtest"
)

// A download that stops near the end leaves the data archive readable:
// an uncompressed tar cut after its last entry, or a gzip or zstd stream
// without its trailer. The file is still shorter than its ar
// header announces, and dpkg rejects it half-way through a transaction. Each cut
// is longer than the one padding byte after an odd-sized member, which
// dpkg-deb does not need.
func TestInspectFindsTruncatedEnd(t *testing.T) {
	tests := []struct {
		compression string
		cut         int
	}{
		{"none", 512},
		{"none", 4096},
		{"gzip", 3},
		{"gzip", 6},
		{"zstd", 3},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s minus %d bytes", tt.compression, tt.cut), func(t *testing.T) {
			dir := t.TempDir()
			spec := debtest.PAS(MgmtPackage, "4.9.0")
			spec.Compression = tt.compression
			spec.Files["/opt/balasys/usr/share/big"] = string(make([]byte, 64<<10))
			good := debtest.Build(t, dir, spec)
			data, err := os.ReadFile(good)
			require.NoError(t, err)
			_, err = Inspect(good)
			require.NoError(t, err, "the complete file")
			cut := filepath.Join(dir, "cut.deb")
			require.NoError(t, os.WriteFile(cut, data[:len(data)-tt.cut], 0o644))

			_, err = Inspect(cut)

			require.ErrorIs(t, err, ErrNotDeb)
			assert.Contains(t, err.Error(), "truncated")
		})
	}
}
