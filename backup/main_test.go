package backup

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// helperEnv names the environment variable that makes the test binary run
// one helper instead of the tests, as another user.
const helperEnv = "BACKUP_TEST_HELPER"

// nobody is the uid and gid helpers run as.
const nobody = 65534

func TestMain(m *testing.M) {
	if name := os.Getenv(helperEnv); name != "" {
		os.Exit(runHelper(name, os.Args[len(os.Args)-2:]))
	}
	os.Exit(m.Run())
}

// runHelper runs Create or Restore with two path arguments and prints
// the error, if any, as JSON.
func runHelper(name string, args []string) int {
	var err error
	switch name {
	case "create":
		_, err = Create(context.Background(), Options{Root: args[0], Dir: args[1]})
	case "restore":
		_, err = Restore(context.Background(), args[0], RestoreOptions{Root: args[1]})
	default:
		err = fmt.Errorf("unknown helper %q", name)
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	_ = json.NewEncoder(os.Stdout).Encode(map[string]string{"error": msg})
	return 0
}

// runAsNobody runs a helper as uid and gid 65534 and returns its error
// text. It skips the test when not running as root.
func runAsNobody(t *testing.T, helper string, args ...string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("running a helper as another user needs root")
	}
	// The go tool builds the test binary in a directory only root can
	// read, so the helper runs from a copy.
	binDir := t.TempDir()
	bin := filepath.Join(binDir, "backup.test")
	data, err := os.ReadFile(os.Args[0])
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bin, data, 0o755))
	openToNobody(t, binDir)

	cmd := exec.Command(bin, append([]string{"-test.run=^$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), helperEnv+"="+helper)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.Output()
	require.NoError(t, err, "helper %s: %s", helper, out)
	var result map[string]string
	require.NoError(t, json.Unmarshal(out, &result), "helper output %q", out)
	return result["error"]
}

// openToNobody makes dir and its parents up to the temporary directory
// searchable by every user, so a helper running as nobody reaches it.
func openToNobody(t *testing.T, dir string) {
	t.Helper()
	for d := dir; d != filepath.Dir(os.TempDir()) && d != "/"; d = filepath.Dir(d) {
		info, err := os.Stat(d)
		require.NoError(t, err)
		require.NoError(t, os.Chmod(d, info.Mode().Perm()|0o711))
	}
}

// mountTmpfs mounts a tmpfs of size bytes at dir for the test, or skips
// when mounting is not permitted.
func mountTmpfs(t *testing.T, dir string, size int, readOnly bool) {
	t.Helper()
	flags := uintptr(0)
	if readOnly {
		flags = syscall.MS_RDONLY
	}
	data := fmt.Sprintf("size=%d,mode=0755", size)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", flags, data); err != nil {
		t.Skipf("mounting a tmpfs needs root and CAP_SYS_ADMIN: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
}

// remountReadOnly makes a tmpfs mounted by mountTmpfs read-only.
func remountReadOnly(t *testing.T, dir string) {
	t.Helper()
	require.NoError(t, syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""))
}

var syscallENOSPC = syscall.ENOSPC
