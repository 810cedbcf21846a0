package backuptest

import (
	"time"

	"golang.org/x/sys/unix"
)

// lchtimes sets a symbolic link's own times, not its target's.
func lchtimes(path string, t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	return unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}
