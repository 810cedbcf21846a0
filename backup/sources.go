package backup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// Paths of the bootstrap configuration that the guide's backup step lists,
// relative to the root.
const (
	pasHome       = "opt/balasys"
	etcPath       = pasHome + "/etc"
	sshPath       = pasHome + "/.ssh"
	automationDir = pasHome + "/usr/share/automation"
)

// sourcePath is one path to back up. A missing required path fails the
// backup. A missing optional one is a warning in the manifest.
type sourcePath struct {
	name     string
	required bool
}

// bootstrapPaths returns the paths to back up for a topology, in the order
// of the guide's example zip command.
func bootstrapPaths(t Topology) []sourcePath {
	var paths []sourcePath
	if t == TopologyMulti {
		paths = append(paths, sourcePath{name: sshPath})
	}
	return append(paths,
		sourcePath{name: etcPath, required: true},
		sourcePath{name: automationDir + "/deploy-core.yml"},
		sourcePath{name: automationDir + "/host_vars"},
		sourcePath{name: automationDir + "/inventory.yml"},
		sourcePath{name: automationDir + "/roles/deploy-core/vars/main.yml"},
	)
}

// entry is one file system object to store in the zip.
type entry struct {
	name   string // zip member name; directories end with "/"
	path   string // path relative to the root
	typ    MemberType
	perm   fs.FileMode
	mtime  time.Time
	uid    uint32
	gid    uint32
	size   int64  // regular files only
	target string // symlinks only
}

// collect lists the objects under paths in the order the zip stores them:
// each directory before its contents, names sorted. Symbolic links are
// listed as links and never followed. Objects that zip cannot store as
// Unix members (sockets, FIFOs, devices) are skipped with a warning.
func collect(root *os.Root, paths []sourcePath) ([]entry, []string, error) {
	var entries []entry
	var warnings []string
	for _, p := range paths {
		info, err := root.Lstat(p.name)
		switch {
		case errors.Is(err, fs.ErrNotExist) && p.required:
			return nil, nil, fmt.Errorf("backing up /%s: %w: the path does not exist under %s",
				p.name, ErrSourceMissing, root.Name())
		case errors.Is(err, fs.ErrNotExist):
			warnings = append(warnings, fmt.Sprintf("optional path /%s does not exist; not backed up", p.name))
			continue
		case err != nil:
			return nil, nil, fmt.Errorf("backing up /%s: %w", p.name, err)
		}
		// Info-ZIP's zip --symlinks also stores such a path as a link,
		// but a backup that misses a whole directory warns about it.
		if info.Mode().Type() == fs.ModeSymlink {
			target, err := root.Readlink(p.name)
			if err != nil {
				return nil, nil, fmt.Errorf("reading symbolic link /%s: %w", p.name, err)
			}
			warnings = append(warnings, fmt.Sprintf("/%s is a symbolic link to %s: "+
				"the link is backed up, not the files it points to", p.name, target))
		}
		entries, warnings, err = walk(root, p.name, info, entries, warnings)
		if err != nil {
			return nil, nil, err
		}
	}
	return entries, warnings, nil
}

func walk(root *os.Root, name string, info fs.FileInfo, entries []entry, warnings []string) ([]entry, []string, error) {
	e, ok, err := newEntry(root, name, info)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		warnings = append(warnings, fmt.Sprintf("/%s is a %s, which a zip cannot store; not backed up",
			name, typeName(info.Mode())))
		return entries, warnings, nil
	}
	if err := checkStorable(&e); err != nil {
		return nil, nil, fmt.Errorf("backing up /%s: %w: rename the file and run the backup again", name, err)
	}
	entries = append(entries, e)
	if e.typ != TypeDir {
		return entries, warnings, nil
	}

	children, err := readDir(root, name)
	if err != nil {
		return nil, nil, err
	}
	for _, child := range children {
		childName := path.Join(name, child.Name())
		childInfo, err := child.Info()
		if err != nil {
			return nil, nil, fmt.Errorf("reading /%s: %w", childName, err)
		}
		entries, warnings, err = walk(root, childName, childInfo, entries, warnings)
		if err != nil {
			return nil, nil, err
		}
	}
	return entries, warnings, nil
}

// checkStorable rejects an object that would make the set unrestorable.
// Restore rejects a whole archive for one name it rejects, and the JSON
// manifest replaces bytes that are not UTF-8, so a name or link target
// with such bytes would not match its manifest entry.
func checkStorable(e *entry) error {
	if err := checkName(e.name); err != nil {
		return fmt.Errorf("%w, which restore rejects", err)
	}
	if !utf8.ValidString(e.name) {
		return unsafeMember(e.name, "name is not valid UTF-8, which the manifest cannot record")
	}
	if !utf8.ValidString(e.target) {
		return unsafeMember(e.name, fmt.Sprintf("symbolic link target %q is not valid UTF-8, "+
			"which the manifest cannot record", e.target))
	}
	return nil
}

func readDir(root *os.Root, name string) ([]fs.DirEntry, error) {
	dir, err := root.Open(name)
	if err != nil {
		return nil, fmt.Errorf("reading directory /%s: %w", name, err)
	}
	defer dir.Close()
	children, err := dir.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("reading directory /%s: %w", name, err)
	}
	slices.SortFunc(children, func(a, b fs.DirEntry) int {
		return strings.Compare(a.Name(), b.Name())
	})
	return children, nil
}

// newEntry describes one object. It reports false for types a zip cannot
// store.
func newEntry(root *os.Root, name string, info fs.FileInfo) (entry, bool, error) {
	e := entry{
		name:  name,
		path:  name,
		perm:  info.Mode().Perm() | info.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky),
		mtime: info.ModTime(),
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		e.uid, e.gid = st.Uid, st.Gid
	}

	switch info.Mode().Type() {
	case 0:
		e.typ = TypeFile
		e.size = info.Size()
	case fs.ModeDir:
		e.typ = TypeDir
		e.name += "/"
	case fs.ModeSymlink:
		target, err := root.Readlink(name)
		if err != nil {
			return entry{}, false, fmt.Errorf("reading symbolic link /%s: %w", name, err)
		}
		e.typ = TypeSymlink
		e.target = target
		e.size = int64(len(target))
	default:
		return entry{}, false, nil
	}
	return e, true, nil
}

func typeName(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	}
	return "special file"
}
