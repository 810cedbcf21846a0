package configconv

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// StorageConfigDir is the storage component's configuration directory,
// relative to the file system root. From 4.9.0 its certificates are meant
// to be readable by their owner only.
const StorageConfigDir = "/opt/balasys/etc/storage"

// CertMode is the mode PlanCertModes gives certificate files.
const CertMode fs.FileMode = 0o600

// ModeChange is a planned change of one file's permission bits.
type ModeChange struct {
	// Path is the file's path: the directory given to PlanCertModes
	// joined with the file's path inside it.
	Path string
	// From is the current mode and To the mode to set.
	From, To fs.FileMode
}

// String describes the change as "chmod 600 PATH (was 644)".
func (c ModeChange) String() string {
	return fmt.Sprintf("chmod %o %s (was %o)", c.To.Perm(), c.Path, c.From.Perm())
}

// PlanCertModes lists the regular files named "*.pem" in the tree under
// dir whose mode is not CertMode. It selects what
// find "dir/" -type f -name '*.pem' selects. The directory dir may itself
// be a symbolic link, but symbolic links inside the tree, to files or
// directories, are neither followed nor changed, so nothing outside the
// tree is touched.
func PlanCertModes(dir string) ([]ModeChange, error) {
	// The trailing separator makes the walk's first Lstat follow dir when
	// it is a symbolic link, as the trailing slash does for find.
	root := dir
	if !strings.HasSuffix(root, string(filepath.Separator)) {
		root += string(filepath.Separator)
	}
	var changes []ModeChange
	err := filepath.WalkDir(root, func(path string, entry fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !entry.Type().IsRegular() || !strings.HasSuffix(entry.Name(), ".pem") {
			return nil
		}
		info, err := entry.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm() != CertMode {
			changes = append(changes, ModeChange{Path: path, From: info.Mode().Perm(), To: CertMode})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing certificates under %s: %w", dir, err)
	}
	return changes, nil
}

// ApplyModeChanges sets the modes planned by PlanCertModes for files under
// dir. Each file is opened through an os.Root at dir, so a path that was
// replaced by a symbolic link leading out of the tree after planning fails
// instead of changing a file outside it. Every change is tried; the errors
// are joined.
func ApplyModeChanges(dir string, changes []ModeChange) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dir, err)
	}
	defer root.Close()

	var errs []error
	for _, c := range changes {
		rel, err := filepath.Rel(dir, c.Path)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			errs = append(errs, fmt.Errorf("setting the mode of %s: the file is outside %s", c.Path, dir))
			continue
		}
		if err := chmodRegular(root, rel, c.To); err != nil {
			errs = append(errs, fmt.Errorf("setting the mode of %s: %w", c.Path, err))
		}
	}
	return errors.Join(errs...)
}

// chmodRegular changes the mode of the regular file rel inside root. It
// checks the type with Lstat first, because chmod follows a symbolic link
// (os.Root still keeps the target inside root).
func chmodRegular(root *os.Root, rel string, mode fs.FileMode) error {
	info, err := root.Lstat(rel)
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("no longer a regular file (mode %s)", info.Mode().Type())
	}
	return root.Chmod(rel, mode)
}
