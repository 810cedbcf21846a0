package backup

import (
	"bytes"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zip"
)

// FuzzValidate feeds arbitrary bytes to the zip reader and the validator.
// Neither may panic, and every archive the validator accepts must hold
// only safe names under the allowed prefix, no member below a link, and
// links whose targets leave the prefix only when marked outside.
// Plain "go test" runs the seed corpus; CI also fuzzes briefly with
// "go test -run '^$' -fuzz=FuzzValidate -fuzztime=15s -fuzzminimizetime=5s ./backup/".
func FuzzValidate(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		lim := limits{prefixes: DefaultAllowedPrefixes, maxTotal: 1 << 30, maxRatio: DefaultMaxRatio}
		members, err := validate(zr.File, lim)
		if err != nil {
			return
		}
		links := map[string]bool{}
		for _, m := range members {
			if m.typ == TypeSymlink {
				links[m.name] = true
			}
		}
		for _, m := range members {
			if !strings.HasPrefix(m.name+"/", "opt/balasys/") || path.Clean(m.name) != m.name ||
				strings.ContainsAny(m.name, "\\\x00") {
				t.Fatalf("accepted unsafe name %q", m.name)
			}
			for dir := path.Dir(m.name); dir != "."; dir = path.Dir(dir) {
				if links[dir] {
					t.Fatalf("accepted %q below link %q", m.name, dir)
				}
			}
			if m.typ == TypeSymlink && !m.outside {
				target := m.target
				if !path.IsAbs(target) {
					target = path.Join("/", path.Dir(m.name), target)
				}
				if !strings.HasPrefix(path.Clean(target)+"/", "/opt/balasys/") {
					t.Fatalf("link %q -> %q leaves the prefix but is not marked outside", m.name, m.target)
				}
			}
		}
	})
}

// fuzzSeeds returns small archives: valid ones, hostile ones from the
// restore tests, and the files in testdata/fuzz-seeds.
func fuzzSeeds(f *testing.F) [][]byte {
	dir := f.TempDir()
	var seeds [][]byte
	add := func(members []testMember) {
		p := filepath.Join(dir, "seed.zip")
		writeTestZip(f, p, members)
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, data)
	}
	add([]testMember{{name: "opt/balasys/etc/", mode: os.ModeDir | 0o755}, {name: goodConfig, data: "a: 1\n"}})
	add([]testMember{{name: "opt/balasys/etc/a", mode: os.ModeSymlink | 0o777, data: "b"},
		{name: "opt/balasys/etc/b", mode: os.ModeSymlink | 0o777, data: "../x"}})
	add([]testMember{{name: "opt/balasys/etc/l", mode: os.ModeSymlink | 0o777, data: "/etc"},
		{name: "opt/balasys/etc/l/x", data: "x"}})
	add([]testMember{{name: "../x", data: "x"}})
	return seeds
}
