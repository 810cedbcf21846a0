package main

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// passwordTestApp returns an app with the given stdin, as setup builds it.
func passwordTestApp(t *testing.T, in *os.File, stdin string, terminal bool) (*app, *bytes.Buffer) {
	t.Helper()
	var errOut bytes.Buffer
	s := streams{In: strings.NewReader(stdin), Out: &bytes.Buffer{}, ErrOut: &errOut, InIsTerminal: terminal}
	if in != nil {
		s.In = in
	}
	a := &app{streams: s, printer: newPrinter(s, false), logger: slog.New(slog.DiscardHandler)}
	return a, &errOut
}

func writePasswordFile(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "password")
	require.NoError(t, os.WriteFile(path, []byte(content), mode))
	require.NoError(t, os.Chmod(path, mode))
	return path
}

func TestPasswordSources(t *testing.T) {
	tests := []struct {
		name     string
		file     string // file content; "" means no --password-file
		fileMode os.FileMode
		dash     bool // --password-file -
		stdin    string
		env      *string
		want     string
		wantErr  string
		wantWarn string
	}{
		{name: "file first line", file: "from-file\nsecond line\n", want: "from-file"},
		{name: "file with CRLF", file: "from-file\r\n", want: "from-file"},
		{name: "file without newline", file: "from-file", want: "from-file"},
		{name: "file beats env", file: "from-file\n", env: stringPointer("from-env"), want: "from-file"},
		{name: "readable file warns", file: "from-file\n", fileMode: 0o644, want: "from-file",
			wantWarn: "can be read by other users (mode 0644)"},
		{name: "empty file", file: "\n", wantErr: "is empty"},
		{name: "stdin", dash: true, stdin: "from-stdin\nmore\n", want: "from-stdin"},
		{name: "empty stdin", dash: true, stdin: "", wantErr: "--password-file stdin is empty"},
		{name: "env", env: stringPointer("from-env"), want: "from-env"},
		{name: "empty env", env: stringPointer(""), wantErr: passwordEnv + " is set but empty"},
		{name: "nothing without terminal", wantErr: "give --password-file FILE, set " + passwordEnv},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != nil {
				t.Setenv(passwordEnv, *tt.env)
			} else {
				unsetEnvForTest(t, passwordEnv)
			}
			a, errOut := passwordTestApp(t, nil, tt.stdin, false)
			file := ""
			if tt.file != "" {
				mode := tt.fileMode
				if mode == 0 {
					mode = 0o600
				}
				file = writePasswordFile(t, tt.file, mode)
			}
			if tt.dash {
				file = "-"
			}

			got, err := resolvePassword(a, file, "admin")

			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.Equal(t, exitUsage, exitCodeOf(err))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			if tt.wantWarn != "" {
				assert.Contains(t, errOut.String(), tt.wantWarn)
			} else {
				assert.Empty(t, errOut.String())
			}
		})
	}
}

func TestPasswordEnvIsRemoved(t *testing.T) {
	t.Setenv(passwordEnv, "from-env")
	a, _ := passwordTestApp(t, nil, "", false)

	got, err := resolvePassword(a, "", "admin")

	require.NoError(t, err)
	assert.Equal(t, "from-env", got)
	_, stillSet := os.LookupEnv(passwordEnv)
	assert.False(t, stillSet, "child processes would inherit the password")
}

func TestPasswordMissingFile(t *testing.T) {
	a, _ := passwordTestApp(t, nil, "", false)
	_, err := resolvePassword(a, filepath.Join(t.TempDir(), "missing"), "admin")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "names no existing file")
	assert.Equal(t, exitUsage, exitCodeOf(err))
}

func TestPasswordMissingFileNotEchoed(t *testing.T) {
	// An operator who types the password where the file name belongs
	// must not see it repeated in the error.
	a, _ := passwordTestApp(t, nil, "", false)
	_, err := resolvePassword(a, "Hunter2-Secret", "admin")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "Hunter2-Secret")
}

func TestPasswordPromptOnTerminal(t *testing.T) {
	unsetEnvForTest(t, passwordEnv)
	tty, err := os.CreateTemp(t.TempDir(), "tty")
	require.NoError(t, err)
	defer tty.Close()
	var gotFD int
	replaceReadPassword(t, func(fd int) ([]byte, error) {
		gotFD = fd
		return []byte("typed-secret"), nil
	})
	a, errOut := passwordTestApp(t, tty, "", true)

	got, err := resolvePassword(a, "", "admin")

	require.NoError(t, err)
	assert.Equal(t, "typed-secret", got)
	assert.Equal(t, int(tty.Fd()), gotFD)
	assert.Contains(t, errOut.String(), "Password of the management user admin: ")
	assert.NotContains(t, errOut.String(), "typed-secret")
}

func TestPasswordPromptErrors(t *testing.T) {
	unsetEnvForTest(t, passwordEnv)
	tty, err := os.CreateTemp(t.TempDir(), "tty")
	require.NoError(t, err)
	defer tty.Close()

	replaceReadPassword(t, func(int) ([]byte, error) { return nil, nil })
	a, _ := passwordTestApp(t, tty, "", true)
	_, err = resolvePassword(a, "", "admin")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "empty password")

	replaceReadPassword(t, func(int) ([]byte, error) { return nil, errors.New("inappropriate ioctl") })
	_, err = resolvePassword(a, "", "admin")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "reading the password from the terminal: inappropriate ioctl")
}

func TestPasswordEnvBeatsPrompt(t *testing.T) {
	t.Setenv(passwordEnv, "from-env")
	replaceReadPassword(t, func(int) ([]byte, error) {
		t.Error("prompted although the environment has the password")
		return nil, nil
	})
	tty, err := os.CreateTemp(t.TempDir(), "tty")
	require.NoError(t, err)
	defer tty.Close()
	a, _ := passwordTestApp(t, tty, "", true)

	got, err := resolvePassword(a, "", "admin")

	require.NoError(t, err)
	assert.Equal(t, "from-env", got)
}

func TestNoPasswordFlag(t *testing.T) {
	code, _, errOut := runCLI(t, "config", "export", "--password", "hunter2")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "unknown flag: --password")
}

func replaceReadPassword(t *testing.T, fn func(int) ([]byte, error)) {
	t.Helper()
	saved := readPasswordNoEcho
	readPasswordNoEcho = fn
	t.Cleanup(func() { readPasswordNoEcho = saved })
}

// unsetEnvForTest removes a variable for the duration of the test.
func unsetEnvForTest(t *testing.T, name string) {
	t.Helper()
	t.Setenv(name, "")
	os.Unsetenv(name)
}

func stringPointer(v string) *string { return &v }

func TestPasswordEnvRemovedWhenFileWins(t *testing.T) {
	t.Setenv(passwordEnv, "from-env")
	a, _ := passwordTestApp(t, nil, "", false)
	file := writePasswordFile(t, "from-file\n", 0o600)

	got, err := resolvePassword(a, file, "admin")

	require.NoError(t, err)
	assert.Equal(t, "from-file", got)
	_, stillSet := os.LookupEnv(passwordEnv)
	assert.False(t, stillSet, "child processes would inherit the password")
}
