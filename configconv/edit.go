package configconv

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ErrChangedSinceRead is returned by FileEdit.Apply when the file no longer
// holds the content the edit was planned from.
var ErrChangedSinceRead = errors.New("configconv: file changed since it was read")

// FileEdit is a planned change of one file's content. The Plan functions
// build it from the file on disk without writing anything, so a dry run and
// a real run share the same code: the first prints Diff, the second calls
// Apply.
type FileEdit struct {
	// Path is the file's path.
	Path string
	// Before is the content read from Path, and After the content to write.
	Before, After []byte
}

// Changed reports whether applying the edit would change the file.
func (e FileEdit) Changed() bool { return !bytes.Equal(e.Before, e.After) }

// Diff returns the change as a unified diff, or "" when nothing changes.
func (e FileEdit) Diff() string { return UnifiedDiff(e.Path, e.Before, e.After) }

// Apply writes After to Path atomically, keeping the file's mode and owner.
// It does nothing when the edit changes nothing. It returns
// ErrChangedSinceRead, and writes nothing, when the file's content is no
// longer Before.
func (e FileEdit) Apply() error {
	if !e.Changed() {
		return nil
	}
	if err := e.checkUnchanged(); err != nil {
		return err
	}
	return WriteFileAtomic(e.Path, e.After)
}

// ApplyEdits applies edits as Apply does, but prepares every file before
// it replaces any. It checks that each file still contains what its edit
// was planned from and writes each new content to a synced temporary file,
// and only then renames the temporary files into place. Because of that
// order, a changed file or a failed write leaves every file as it was.
// Only a rename that fails after an earlier one succeeded leaves the files
// partly edited, and the error then names the files already replaced.
func ApplyEdits(edits []FileEdit) error {
	var staged []stagedFile
	defer func() {
		for _, s := range staged {
			if !s.renamed {
				os.Remove(s.tmp)
			}
		}
	}()
	for _, e := range edits {
		if !e.Changed() {
			continue
		}
		if err := e.checkUnchanged(); err != nil {
			return err
		}
		s, err := stageFile(e.Path, e.After)
		if err != nil {
			return err
		}
		staged = append(staged, s)
	}

	var replaced []string
	for i := range staged {
		s := &staged[i]
		if err := os.Rename(s.tmp, s.path); err != nil {
			if len(replaced) > 0 {
				return fmt.Errorf("replacing %s: %w; %s already contain the new content",
					s.path, err, strings.Join(replaced, ", "))
			}
			return fmt.Errorf("replacing %s: %w", s.path, err)
		}
		s.renamed = true
		replaced = append(replaced, s.path)
		if err := syncDir(filepath.Dir(s.path)); err != nil {
			return err
		}
	}
	return nil
}

// checkUnchanged returns ErrChangedSinceRead when the file no longer
// contains Before.
func (e FileEdit) checkUnchanged() error {
	current, err := os.ReadFile(e.Path)
	if err != nil {
		return fmt.Errorf("reading %s: %w", e.Path, err)
	}
	if !bytes.Equal(current, e.Before) {
		return fmt.Errorf("writing %s: %w; plan the edit again", e.Path, ErrChangedSinceRead)
	}
	return nil
}

// WriteFileAtomic replaces the regular file at path with data so that a
// crash leaves either the old or the new content, never a mix. It writes a
// temporary file in the same directory, syncs it, gives it the old file's
// mode and owner, renames it over path and syncs the directory. The file
// must exist. A symbolic link at path is rejected, because renaming over it
// would replace the link instead of the file it names.
func WriteFileAtomic(path string, data []byte) error {
	s, err := stageFile(path, data)
	if err != nil {
		return err
	}
	if err := os.Rename(s.tmp, path); err != nil {
		os.Remove(s.tmp)
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// stagedFile is new content written to tmp, ready to be renamed over path.
type stagedFile struct {
	path, tmp string
	renamed   bool
}

// stageFile writes data to a synced temporary file beside the regular file
// at path, with that file's mode and owner.
func stageFile(path string, data []byte) (staged stagedFile, err error) {
	info, err := os.Lstat(path)
	if err != nil {
		return stagedFile{}, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := checkRegular(path, info); err != nil {
		return stagedFile{}, err
	}

	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return stagedFile{}, fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()

	if _, err := tmp.Write(data); err != nil {
		return stagedFile{}, fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(info.Mode().Perm()); err != nil {
		return stagedFile{}, fmt.Errorf("setting the mode of %s: %w", tmp.Name(), err)
	}
	if err := keepOwner(tmp, info); err != nil {
		return stagedFile{}, err
	}
	if err := tmp.Sync(); err != nil {
		return stagedFile{}, fmt.Errorf("syncing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return stagedFile{}, fmt.Errorf("closing %s: %w", tmp.Name(), err)
	}
	return stagedFile{path: path, tmp: tmp.Name()}, nil
}

// keepOwner gives f the owner of the file described by info. A process that
// may not change owners (not root) creates files it already owns, so a
// failed chown only matters when the owner differs.
func keepOwner(f *os.File, info fs.FileInfo) error {
	stat, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	uid, gid := int(stat.Uid), int(stat.Gid)
	err := f.Chown(uid, gid)
	if err == nil || (uid == os.Getuid() && gid == os.Getgid()) {
		return nil
	}
	return fmt.Errorf("keeping owner %d:%d of %s: %w; run as root or as the file's owner",
		uid, gid, f.Name(), err)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// readEditable reads a file that an edit will replace. It rejects the files
// WriteFileAtomic rejects, so that a dry run reports them and a real run
// fails before it writes any file.
func readEditable(path string) ([]byte, error) {
	info, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if err := checkRegular(path, info); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return data, nil
}

// checkRegular rejects anything but a regular file at path, because the
// rename of an atomic write would replace a symbolic link instead of the
// file it names.
func checkRegular(path string, info fs.FileInfo) error {
	switch {
	case info.Mode().IsRegular():
		return nil
	case info.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("writing %s: not a regular file but a symbolic link, which an atomic write would replace; "+
			"edit the file it names by hand", path)
	default:
		return fmt.Errorf("writing %s: not a regular file (type %s)", path, info.Mode().Type())
	}
}
