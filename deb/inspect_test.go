package deb

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/deb/debtest"
)

func TestInspectReadsControlData(t *testing.T) {
	tests := []struct {
		name          string
		spec          debtest.Spec
		wantConffiles []string
		wantScripts   []string
		wantTemplates bool
		wantQuestions []string
	}{
		{
			name: "mgmt package with conffiles and scripts",
			spec: debtest.Spec{
				Name: MgmtPackage, Version: "4.9.0",
				Files: map[string]string{
					"/opt/balasys/etc/mgmt/config.yml":   "a: 1\n",
					"/opt/balasys/etc/mgmt/users.htpass": "admin:{SHA}x\n",
					"/usr/bin/pas-mgmt-update":           "#!/bin/sh\n",
				},
				Conffiles: []string{"/opt/balasys/etc/mgmt/config.yml", "/opt/balasys/etc/mgmt/users.htpass"},
				Scripts: map[string]string{
					"config":   "#!/bin/sh\n",
					"postinst": "#!/bin/sh\n",
					"postrm":   "#!/bin/sh\n",
				},
				Templates: "Template: pas/one\nType: boolean\nDescription: one?\n\n" +
					"template: pas/two\nType: password\nDescription: two:\n two, longer\n",
			},
			wantConffiles: []string{"/opt/balasys/etc/mgmt/config.yml", "/opt/balasys/etc/mgmt/users.htpass"},
			wantScripts:   []string{"config", "postinst", "postrm"},
			wantTemplates: true,
			wantQuestions: []string{"pas/one", "pas/two"},
		},
		{
			name:        "package without conffiles, gzip compressed",
			spec:        debtest.Spec{Name: CorePackage, Version: "1:4.9.0-2", Arch: "amd64", Compression: "gzip"},
			wantScripts: nil,
		},
		{
			name: "uncompressed members",
			spec: debtest.Spec{Name: StoragePackage, Version: "4.8.0", Compression: "none",
				Files:     map[string]string{"/opt/balasys/etc/storage/config.yml": "x\n"},
				Conffiles: []string{"/opt/balasys/etc/storage/config.yml"},
				Scripts:   map[string]string{"preinst": "#!/bin/sh\n", "prerm": "#!/bin/sh\n"}},
			wantConffiles: []string{"/opt/balasys/etc/storage/config.yml"},
			wantScripts:   []string{"preinst", "prerm"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := debtest.Build(t, t.TempDir(), tt.spec)

			pkg, err := Inspect(path)

			require.NoError(t, err)
			wantArch := tt.spec.Arch
			if wantArch == "" {
				wantArch = "all"
			}
			assert.Equal(t, path, pkg.Path)
			assert.Equal(t, tt.spec.Name, pkg.Name)
			assert.Equal(t, tt.spec.Version, pkg.Version.String())
			assert.Equal(t, wantArch, pkg.Architecture)
			assert.Equal(t, tt.wantConffiles, pkg.Conffiles)
			assert.Equal(t, tt.wantScripts, pkg.Scripts)
			assert.Equal(t, tt.wantTemplates, pkg.Templates)
			assert.Equal(t, tt.wantQuestions, pkg.Questions)
		})
	}
}

func TestInspectRejectsNonPackages(t *testing.T) {
	dir := t.TempDir()
	good := debtest.Build(t, dir, debtest.PAS(CorePackage, "4.9.0"))
	data, err := os.ReadFile(good)
	require.NoError(t, err)

	truncated := filepath.Join(dir, "truncated.deb")
	require.NoError(t, os.WriteFile(truncated, data[:len(data)/2], 0o644))
	empty := filepath.Join(dir, "empty.deb")
	require.NoError(t, os.WriteFile(empty, nil, 0o644))
	arOnly := filepath.Join(dir, "ar-only.deb")
	require.NoError(t, os.WriteFile(arOnly, []byte("!<arch>\n"), 0o644))

	tests := []struct {
		name string
		path string
	}{
		{"html error page", filepath.Join("testdata", "download-error.deb")},
		{"truncated download", truncated},
		{"empty file", empty},
		{"ar archive without members", arOnly},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Inspect(tt.path)

			require.ErrorIs(t, err, ErrNotDeb)
			assert.Contains(t, err.Error(), tt.path)
		})
	}
}

func TestInspectMissingFile(t *testing.T) {
	_, err := Inspect(filepath.Join(t.TempDir(), "absent.deb"))

	require.ErrorIs(t, err, fs.ErrNotExist)
	assert.NotErrorIs(t, err, ErrNotDeb)
}

func TestReadConffilesFlags(t *testing.T) {
	got, err := readConffiles(strings.NewReader("/etc/a\n\nremove-on-upgrade /etc/old\n/etc/b\n/etc/a\n"))

	require.NoError(t, err)
	assert.Equal(t, []string{"/etc/a", "/etc/b"}, got)
}

func TestInspectFindsTruncatedData(t *testing.T) {
	dir := t.TempDir()
	spec := debtest.PAS(MgmtPackage, "4.9.0")
	spec.Compression = "none"
	// Enough content that the cut falls inside the data member.
	spec.Files["/opt/balasys/usr/share/big"] = string(make([]byte, 64<<10))
	good := debtest.Build(t, dir, spec)
	data, err := os.ReadFile(good)
	require.NoError(t, err)
	cut := filepath.Join(dir, "cut.deb")
	require.NoError(t, os.WriteFile(cut, data[:len(data)*3/4], 0o644))

	_, err = Inspect(cut)

	require.ErrorIs(t, err, ErrNotDeb)
	assert.Contains(t, err.Error(), "truncated")
}
