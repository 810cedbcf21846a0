package deb

import (
	"math/rand/v2"
	"testing"

	"github.com/pasops/pasupgrade/deb/debtest"
)

// BenchmarkInspect reads a package with 8 MiB of incompressible content,
// about the size of a package that ships a few static binaries. Inspect
// reads the data archive to its end, so the time grows with the size.
func BenchmarkInspect(b *testing.B) {
	for _, compression := range []string{"gzip", "xz"} {
		b.Run(compression, func(b *testing.B) {
			content := make([]byte, 8<<20)
			rng := rand.NewChaCha8([32]byte{})
			_, _ = rng.Read(content)
			spec := debtest.PAS(MgmtPackage, "4.9.0")
			spec.Compression = compression
			spec.Files["/opt/balasys/usr/bin/pas-mgmt"] = string(content)
			path := debtest.Build(b, b.TempDir(), spec)
			b.SetBytes(int64(len(content)))

			for b.Loop() {
				if _, err := Inspect(path); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
