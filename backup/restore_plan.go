package backup

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// basePrefix returns the allowed prefix directory a member name lies in.
func (r *restorer) basePrefix(name string) string {
	for _, p := range r.opts.AllowedPrefixes {
		if strings.HasPrefix(name+"/", p) {
			return strings.TrimSuffix(p, "/")
		}
	}
	return ""
}

// plan inspects the destination without changing it: which directories
// exist, which members are written or skipped, and conflicts that would
// make the restore fail halfway.
func (r *restorer) plan() error {
	r.dirs = make(map[string]*dirState)
	r.staged = make(map[int]string)
	r.replaces = make(map[int]bool)
	bases := map[string]bool{}
	for i := range r.members {
		p := &r.members[i]
		base := r.basePrefix(p.name)
		bases[base] = true
		dir := p.name
		if p.typ != TypeDir {
			dir = path.Dir(p.name)
		}
		for d := dir; d != base && d != "."; d = path.Dir(d) {
			if r.dirs[d] == nil {
				r.dirs[d] = &dirState{}
			}
		}
		if p.typ == TypeDir {
			if r.dirs[p.name] == nil {
				r.dirs[p.name] = &dirState{}
			}
			r.dirs[p.name].member = p
		}
	}

	for base := range bases {
		if err := r.planBase(base); err != nil {
			return err
		}
	}
	for _, d := range r.sortedDirs() {
		if err := r.planDir(d); err != nil {
			return err
		}
	}
	for i := range r.members {
		if err := r.planMember(i); err != nil {
			return err
		}
	}
	return nil
}

func (r *restorer) sortedDirs() []string {
	dirs := make([]string, 0, len(r.dirs))
	for d := range r.dirs {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	return dirs
}

// planBase opens an allowed prefix directory such as opt/balasys. It may
// be reached through symbolic links that stay inside the destination, as
// an operator may have laid out the disk.
func (r *restorer) planBase(base string) error {
	state := r.dirs[base]
	if state == nil {
		state = &dirState{}
		r.dirs[base] = state
	}
	info, err := r.root.Stat(base)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("checking destination /%s: %w", base, err)
	case !info.IsDir():
		return fmt.Errorf("destination /%s is not a directory; remove it or restore into another root", base)
	}
	state.root, err = r.root.OpenRoot(base)
	if err != nil {
		return fmt.Errorf("opening destination /%s: %w", base, err)
	}
	return nil
}

// planDir opens a directory below a prefix when it exists. A symbolic
// link or file in its place is a conflict: restore writes nothing through
// links and removes no file to make room for a directory.
func (r *restorer) planDir(d string) error {
	state := r.dirs[d]
	if state.root != nil || r.basePrefix(d) == d {
		return nil
	}
	parent := r.dirs[path.Dir(d)]
	if parent == nil || parent.root == nil {
		return nil
	}
	info, err := parent.root.Lstat(path.Base(d))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("checking destination /%s: %w", d, err)
	case info.Mode().Type() == fs.ModeSymlink:
		return fmt.Errorf("destination /%s is a symbolic link where the archive has a directory; "+
			"restore writes nothing through links: remove the link and run again", d)
	case !info.IsDir():
		return fmt.Errorf("destination /%s is a %s where the archive has a directory; remove it and run again",
			d, fileKind(info.Mode()))
	}
	state.root, err = parent.root.OpenRoot(path.Base(d))
	if err != nil {
		return fmt.Errorf("opening destination /%s: %w", d, err)
	}
	return nil
}

// planMember decides whether a file or link member is written.
func (r *restorer) planMember(i int) error {
	p := &r.members[i]
	if p.typ == TypeDir {
		return nil
	}
	parent := r.dirs[path.Dir(p.name)]
	if parent.root != nil {
		info, err := parent.root.Lstat(path.Base(p.name))
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return fmt.Errorf("checking destination /%s: %w", p.name, err)
		case info.IsDir():
			return fmt.Errorf("destination /%s is a directory where the archive has a %s; "+
				"remove it and run again", p.name, p.typ)
		case r.opts.UpdateOnly && p.file.Modified.Unix() <= info.ModTime().Unix():
			r.report.Skipped++
			return nil
		default:
			r.replaces[i] = true
		}
	}
	r.writes = append(r.writes, i)
	return nil
}

func fileKind(m fs.FileMode) string {
	if m.IsRegular() {
		return "regular file"
	}
	return typeName(m)
}
