package backup

import "errors"

// Sentinel errors that callers branch on. Returned errors wrap one of them
// and name the path or member involved.
var (
	// ErrSourceMissing means a required path, /opt/balasys/etc, is missing.
	ErrSourceMissing = errors.New("required path missing")

	// ErrUnsafeBackupDir means the backup directory lies inside a tree
	// that the restore procedure deletes (/opt/balasys or /home/pas).
	ErrUnsafeBackupDir = errors.New("inside a tree that restore deletes")

	// ErrNotSet means a directory is not a complete backup set.
	ErrNotSet = errors.New("not a backup set")

	// ErrMismatch means a backup set's files differ from its manifest.
	ErrMismatch = errors.New("backup set does not match its manifest")

	// ErrNotZip means the input is not a readable zip archive: not a zip
	// at all, truncated, or empty.
	ErrNotZip = errors.New("not a readable zip archive")

	// ErrUnsafeArchive means a member's name, type or link was rejected
	// before anything was written.
	ErrUnsafeArchive = errors.New("unsafe archive member")

	// ErrLimitExceeded means the archive exceeds the total size limit or
	// a member's compression ratio is typical of zip bombs.
	ErrLimitExceeded = errors.New("archive exceeds a safety limit")

	// ErrCorrupt means member data does not match its CRC-32 or its
	// declared size.
	ErrCorrupt = errors.New("corrupt archive member")
)
