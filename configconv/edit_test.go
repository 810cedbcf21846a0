package configconv

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return data
}

// copyFixture copies a testdata file into a temporary directory with mode.
func copyFixture(t *testing.T, name string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, readFixture(t, name), mode))
	require.NoError(t, os.Chmod(path, mode))
	return path
}

func TestSetEnvValueFixtures(t *testing.T) {
	tests := []struct {
		name, input, golden string
	}{
		{"key with export and quotes", "docker-compose.conf", "docker-compose.golden.conf"},
		{"missing key appended once", "docker-compose-nokey.conf", "docker-compose-nokey.golden.conf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SetEnvValue(readFixture(t, tt.input), ImageTagKey, "4.9.0")
			require.NoError(t, err)
			assert.Equal(t, string(readFixture(t, tt.golden)), string(got))

			again, err := SetEnvValue(got, ImageTagKey, "4.9.0")
			require.NoError(t, err)
			assert.Equal(t, string(got), string(again), "a second run must change nothing")
		})
	}
}

func TestSetEnvValueLines(t *testing.T) {
	tests := []struct {
		name, input, want string
	}{
		{"plain value", "DOCKER_IMAGE_TAG=4.8.0\n", "DOCKER_IMAGE_TAG=4.9.0\n"},
		{"single quotes", "DOCKER_IMAGE_TAG='4.8.0'\n", "DOCKER_IMAGE_TAG='4.9.0'\n"},
		{"trailing comment", "DOCKER_IMAGE_TAG=4.8.0  # pinned\n", "DOCKER_IMAGE_TAG=4.9.0  # pinned\n"},
		{"hash inside value", "DOCKER_IMAGE_TAG=4.8#x\n", "DOCKER_IMAGE_TAG=4.9.0\n"},
		{"indented export", "  export\tDOCKER_IMAGE_TAG=4.8.0\n", "  export\tDOCKER_IMAGE_TAG=4.9.0\n"},
		{"crlf endings", "A=1\r\nDOCKER_IMAGE_TAG=4.8.0\r\n", "A=1\r\nDOCKER_IMAGE_TAG=4.9.0\r\n"},
		{"crlf appended", "A=1\r\n", "A=1\r\nDOCKER_IMAGE_TAG=4.9.0\r\n"},
		{"every assignment", "DOCKER_IMAGE_TAG=1\nDOCKER_IMAGE_TAG=2\n", "DOCKER_IMAGE_TAG=4.9.0\nDOCKER_IMAGE_TAG=4.9.0\n"},
		{"longer key untouched", "DOCKER_IMAGE_TAG_OLD=1\n", "DOCKER_IMAGE_TAG_OLD=1\nDOCKER_IMAGE_TAG=4.9.0\n"},
		{"commented line untouched", "# DOCKER_IMAGE_TAG=1\n", "# DOCKER_IMAGE_TAG=1\nDOCKER_IMAGE_TAG=4.9.0\n"},
		{"export style appended", "export A=1\n", "export A=1\nexport DOCKER_IMAGE_TAG=4.9.0\n"},
		{"empty file", "", "DOCKER_IMAGE_TAG=4.9.0\n"},
		{"empty value", "DOCKER_IMAGE_TAG=\n", "DOCKER_IMAGE_TAG=4.9.0\n"},
		{"empty quoted value", `DOCKER_IMAGE_TAG=""` + "\n", `DOCKER_IMAGE_TAG="4.9.0"` + "\n"},
		{"line inside multi-line value", "X=\"a\nDOCKER_IMAGE_TAG=1\"\nDOCKER_IMAGE_TAG=4.8.0\n",
			"X=\"a\nDOCKER_IMAGE_TAG=1\"\nDOCKER_IMAGE_TAG=4.9.0\n"},
		{"single-quoted multi-line value", "X='a\nDOCKER_IMAGE_TAG=1'\n", "X='a\nDOCKER_IMAGE_TAG=1'\nDOCKER_IMAGE_TAG=4.9.0\n"},
		{"escaped quote in multi-line value", "X=\"a\\\"\nDOCKER_IMAGE_TAG=1\"\n",
			"X=\"a\\\"\nDOCKER_IMAGE_TAG=1\"\nDOCKER_IMAGE_TAG=4.9.0\n"},
		{"closed quotes then key", "X=\"a\" Y='b'\nDOCKER_IMAGE_TAG=1\n", "X=\"a\" Y='b'\nDOCKER_IMAGE_TAG=4.9.0\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SetEnvValue([]byte(tt.input), ImageTagKey, "4.9.0")
			require.NoError(t, err)
			assert.Equal(t, tt.want, string(got))
		})
	}
}

func TestSetEnvValueRejects(t *testing.T) {
	tests := []struct {
		name, input, key, value, wantErr string
	}{
		{"unclosed quote", "DOCKER_IMAGE_TAG=\"4.8.0\n", ImageTagKey, "4.9.0", "closing \" quote is missing"},
		{"value needs quoting", "", ImageTagKey, "a b", `invalid value "a b"`},
		{"empty value", "", ImageTagKey, "", `invalid value ""`},
		{"bad key", "", "A-B", "1", `invalid value: variable name "A-B"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := SetEnvValue([]byte(tt.input), tt.key, tt.value)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestSetYAMLValuesFixtures(t *testing.T) {
	tests := []struct {
		name, input, golden string
	}{
		{"plain values and comments", "common_vars.yml", "common_vars.golden.yml"},
		{"quoted values and deep indent", "common_vars_quoted.yml", "common_vars_quoted.golden.yml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := copyFixture(t, tt.input, 0o640)
			edit, err := PlanCommonVars(path, CommonVarsFor("4.9.0", "/srv/debs"))
			require.NoError(t, err)
			assert.Equal(t, string(readFixture(t, tt.golden)), string(edit.After))

			require.NoError(t, edit.Apply())
			written, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, string(readFixture(t, tt.golden)), string(written))

			again, err := PlanCommonVars(path, CommonVarsFor("4.9.0", "/srv/debs"))
			require.NoError(t, err)
			assert.False(t, again.Changed(), "a second run must change nothing")
		})
	}
}

func TestSetYAMLValuesStyles(t *testing.T) {
	tests := []struct {
		name, input, key, value, want string
	}{
		{"plain to plain", "a: 1.0.0\n", "a", "2.0.0", "a: 2.0.0\n"},
		{"number-like gets quotes", "a: x\n", "a", "4.9", "a: \"4.9\"\n"},
		{"yaml 1.1 boolean gets quotes", "a: x\n", "a", "yes", "a: \"yes\"\n"},
		{"colon blank gets quotes", "a: x\n", "a", "b: c", "a: \"b: c\"\n"},
		{"single quote doubled", "a: 'x'\n", "a", "it's", "a: 'it''s'\n"},
		{"double quote escaped", "a: \"x\"\n", "a", `say "hi"`, "a: \"say \\\"hi\\\"\"\n"},
		{"after flow mapping", "a: {b: 1}\nc: x\n", "c", "z", "a: {b: 1}\nc: z\n"},
		{"crlf kept", "a: x\r\nb: y\r\n", "b", "z", "a: x\r\nb: z\r\n"},
		{"no final newline", "a: x", "a", "z", "a: z"},
		{"non-ascii before value", "ü: x\na: x\n", "ü", "z", "ü: z\na: x\n"},
		{"same value untouched", "a:   x  # c\n", "a", "x", "a:   x  # c\n"},
		{"tab before comment", "a: x\t# c\n", "a", "z", "a: z\t# c\n"},
		{"inside flow mapping", "c: {d: {t: 4.8.0}, e: 1}\n", "c.d.t", "4.9.0", "c: {d: {t: 4.9.0}, e: 1}\n"},
		{"inside flow with blanks", "c: { t: 4.8.0 , e: 1 }\n", "c.t", "4.9.0", "c: { t: 4.9.0 , e: 1 }\n"},
		{"byte order mark kept", "\ufeffa: x\nb: y\n", "a", "z", "\ufeffa: z\nb: y\n"},
		{"empty value", "a:\nb: y\n", "a", "z", "a: z\nb: y\n"},
		{"empty value before comment", "a: # c\nb: y\n", "a", "z", "a: z # c\nb: y\n"},
		{"empty nested value", "c:\n  d:\n  e: 1\n", "c.d", "z", "c:\n  d: z\n  e: 1\n"},
		{"empty value at end", "a:", "a", "z", "a: z"},
		{"empty value in flow mapping", "{a: , b: 1}\n", "a", "z", "{a: z, b: 1}\n"},
		{"number key beside", "c:\n  t: x\n80: http\n", "c.t", "z", "c:\n  t: z\n80: http\n"},
		{"number key in path", "c:\n  t: x\n  80: http\n", "c.t", "z", "c:\n  t: z\n  80: http\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SetYAMLValues([]byte(tt.input), map[string]string{tt.key: tt.value})
			require.NoError(t, err)
			assert.Equal(t, tt.want, string(got))
		})
	}
}

func TestSetYAMLValuesRejects(t *testing.T) {
	tests := []struct {
		name, input, key, wantErr string
	}{
		{"missing key", "a: 1\n", "b", "key not found"},
		{"missing parent", "a: 1\n", "common.docker.PAS_IMAGE_TAG", "key not found"},
		{"parent not mapping", "common: [1]\n", "common.docker", "not a mapping"},
		{"value is a list", "a: [1]\n", "a", "not a scalar"},
		{"block scalar", "a: |\n  x\n", "a", "block scalar"},
		{"multi-line plain", "a: x\n  y\n", "a", "spans lines"},
		{"anchor", "a: &v x\n", "a", "anchor"},
		{"not YAML", "a: [\n", "a", "parsing YAML"},
		{"empty", "", "a", "key not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := SetYAMLValues([]byte(tt.input), map[string]string{tt.key: "new"})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestPlanImageTagThreeFiles(t *testing.T) {
	root := t.TempDir()
	var paths []string
	for _, rel := range ComposeConfPaths {
		path := filepath.Join(root, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, readFixture(t, "docker-compose.conf"), 0o640))
		paths = append(paths, path)
	}

	edits, err := PlanImageTag(paths, "4.9.0")
	require.NoError(t, err)
	require.Len(t, edits, 3)
	for _, e := range edits {
		require.NoError(t, e.Apply())
		got, err := os.ReadFile(e.Path)
		require.NoError(t, err)
		assert.Equal(t, string(readFixture(t, "docker-compose.golden.conf")), string(got))
		info, err := os.Stat(e.Path)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o640), info.Mode().Perm(), "mode of %s", e.Path)
	}

	again, err := PlanImageTag(paths, "4.9.0")
	require.NoError(t, err)
	for _, e := range again {
		assert.False(t, e.Changed(), "second run changes %s", e.Path)
	}
}

func TestPlanImageTagRejects(t *testing.T) {
	_, err := PlanImageTag([]string{filepath.Join(t.TempDir(), "missing.conf")}, "4.9.0")
	assert.ErrorIs(t, err, os.ErrNotExist)

	_, err = PlanImageTag(nil, "4.9.0; rm")
	require.ErrorIs(t, err, ErrInvalidValue)
	assert.Contains(t, err.Error(), `image tag "4.9.0; rm"`)
}

func TestFileEditDryRunWritesNothing(t *testing.T) {
	path := copyFixture(t, "docker-compose.conf", 0o600)
	edits, err := PlanImageTag([]string{path}, "4.9.0")
	require.NoError(t, err)

	want := "--- a/" + path[1:] + "\n+++ b/" + path[1:] + "\n" +
		"@@ -1,5 +1,5 @@\n" +
		" # compose settings\n" +
		"-export DOCKER_IMAGE_TAG=\"4.8.0\"\n" +
		"+export DOCKER_IMAGE_TAG=\"4.9.0\"\n" +
		" export_dir=/srv/export\n" +
		" DB_PASS=abc#123\n" +
		" COMPOSE_FILE=a.yml:b.yml\n"
	assert.Equal(t, want, edits[0].Diff())

	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(readFixture(t, "docker-compose.conf")), string(got))
}

func TestFileEditApplyChangedSinceRead(t *testing.T) {
	path := copyFixture(t, "docker-compose.conf", 0o600)
	edits, err := PlanImageTag([]string{path}, "4.9.0")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, []byte("DOCKER_IMAGE_TAG=5\n"), 0o600))

	err = edits[0].Apply()
	assert.ErrorIs(t, err, ErrChangedSinceRead)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "DOCKER_IMAGE_TAG=5\n", string(got))
}

func TestWriteFileAtomicKeepsModeAndOwner(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.conf")
	require.NoError(t, os.WriteFile(path, []byte("old\n"), 0o604))
	require.NoError(t, os.Chmod(path, 0o604))
	if os.Getuid() == 0 {
		require.NoError(t, os.Chown(path, 4242, 4343))
	}
	before, err := os.Stat(path)
	require.NoError(t, err)

	require.NoError(t, WriteFileAtomic(path, []byte("new\n")))

	after, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o604), after.Mode().Perm())
	assert.Equal(t, before.Sys().(*syscall.Stat_t).Uid, after.Sys().(*syscall.Stat_t).Uid)
	assert.Equal(t, before.Sys().(*syscall.Stat_t).Gid, after.Sys().(*syscall.Stat_t).Gid)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "new\n", string(got))

	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file may remain")
}

func TestWriteFileAtomicRejectsSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	require.NoError(t, os.WriteFile(target, []byte("old\n"), 0o600))
	link := filepath.Join(dir, "link")
	require.NoError(t, os.Symlink(target, link))

	err := WriteFileAtomic(link, []byte("new\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not a regular file")
	got, err := os.ReadFile(target)
	require.NoError(t, err)
	assert.Equal(t, "old\n", string(got))
}

// A file that Apply would reject fails the plan, so a dry run reports it
// and a real run writes none of the files.
func TestPlanRejectsSymlinkedFile(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "docker-compose.conf")
	require.NoError(t, os.WriteFile(conf, readFixture(t, "docker-compose.conf"), 0o600))
	target := filepath.Join(dir, "real.conf")
	require.NoError(t, os.WriteFile(target, readFixture(t, "docker-compose.conf"), 0o600))
	link := filepath.Join(dir, "linked.conf")
	require.NoError(t, os.Symlink(target, link))

	_, err := PlanImageTag([]string{conf, link}, "4.9.0")
	require.Error(t, err)
	assert.Contains(t, err.Error(), link)
	assert.Contains(t, err.Error(), "symbolic link")

	vars := filepath.Join(dir, "common_vars.yml")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "vars.yml"), readFixture(t, "common_vars.yml"), 0o600))
	require.NoError(t, os.Symlink("vars.yml", vars))
	_, err = PlanCommonVars(vars, CommonVarsFor("4.9.0", "/srv/debs"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "symbolic link")
}

func TestApplyEditsAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for _, name := range []string{"pas.conf", "mgmt.conf", "storage.conf"} {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte("DOCKER_IMAGE_TAG=4.8.0\n"), 0o640))
		require.NoError(t, os.Chmod(path, 0o640))
		paths = append(paths, path)
	}
	edits, err := PlanImageTag(paths, "4.9.0")
	require.NoError(t, err)

	// The last file changes after planning: no file may be written.
	require.NoError(t, os.WriteFile(paths[2], []byte("DOCKER_IMAGE_TAG=5\n"), 0o640))
	err = ApplyEdits(edits)
	require.ErrorIs(t, err, ErrChangedSinceRead)
	for _, path := range paths[:2] {
		got, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.Equal(t, "DOCKER_IMAGE_TAG=4.8.0\n", string(got), "%s must be unchanged", path)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 3, "no temporary file may remain")

	// Planned again, every file is written with its mode kept.
	edits, err = PlanImageTag(paths, "4.9.0")
	require.NoError(t, err)
	require.NoError(t, ApplyEdits(edits))
	for _, path := range paths {
		got, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.Equal(t, "DOCKER_IMAGE_TAG=4.9.0\n", string(got), path)
		assert.Equal(t, os.FileMode(0o640), modeOf(t, path), path)
	}
	entries, err = os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 3, "no temporary file may remain")
}
