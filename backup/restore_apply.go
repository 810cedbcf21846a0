package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/klauspost/compress/zip"
)

// restorer carries one restore through its three phases: plan (read
// only), stage (writes that undo can remove) and commit (renames over
// existing objects, and directory metadata).
type restorer struct {
	root     *os.Root
	opts     RestoreOptions
	members  []planned
	manifest *Manifest
	asRoot   bool
	token    string
	report   *RestoreReport

	// dirs holds every directory that members go into or are, by path
	// relative to the destination, with an os.Root opened on it once it
	// exists. Opening each directory once keeps every later operation to
	// a single path element.
	// NOTE: every directory's descriptor stays open until the restore
	// ends, so a tree needs as many descriptors as it has directories.
	dirs map[string]*dirState
	// writes lists the indexes of the file and link members to write.
	writes []int
	// replaces marks the members of writes whose target exists. Those are
	// staged under a temporary name and renamed over the target; the
	// others are written under their own name, which undo removes.
	replaces map[int]bool
	// staged holds the name each member of writes was written under.
	staged map[int]string
	// created lists the directories made by this restore, parents first.
	created []string

	// uid and gid own the files this process creates.
	uid, gid uint32

	manifestIndex map[string]*Member
	progressState Progress

	mu sync.Mutex
}

type dirState struct {
	root   *os.Root
	member *planned
}

// stagingName returns the name member i is written under: a temporary
// name unique to this run when it replaces an existing object, else its
// own name.
func (r *restorer) stagingName(i int) string {
	if !r.replaces[i] {
		return path.Base(r.members[i].name)
	}
	return fmt.Sprintf(".pasupgrade-restore-%s-%d", r.token, i)
}

func (r *restorer) closeDirs() {
	for _, d := range r.dirs {
		if d.root != nil {
			d.root.Close()
		}
	}
}

// stage creates missing directories and writes every member to write
// under its temporary name, next to its target.
func (r *restorer) stage(ctx context.Context) error {
	r.progressState = Progress{Op: "restore", TotalFiles: len(r.writes)}
	for _, i := range r.writes {
		if r.members[i].typ == TypeFile {
			r.progressState.TotalBytes += int64(r.members[i].file.UncompressedSize64)
		}
	}
	for _, d := range r.sortedDirs() {
		if err := r.ensureDir(d); err != nil {
			return err
		}
	}

	var files []int
	for _, i := range r.writes {
		if r.members[i].typ == TypeSymlink {
			if err := r.stageLink(i); err != nil {
				return err
			}
			continue
		}
		files = append(files, i)
	}
	return r.stageFiles(ctx, files)
}

// ensureDir creates a missing directory with mode 0700 until commit sets
// its mode, and records it for undo.
func (r *restorer) ensureDir(d string) error {
	state := r.dirs[d]
	if state.root != nil {
		return nil
	}
	if r.basePrefix(d) == d {
		if err := r.mkdirBase(d); err != nil {
			return err
		}
		root, err := r.root.OpenRoot(d)
		if err != nil {
			return fmt.Errorf("opening /%s: %w", d, err)
		}
		state.root = root
		return nil
	}

	parent := r.dirs[path.Dir(d)]
	if err := parent.root.Mkdir(path.Base(d), 0o700); err != nil {
		return fmt.Errorf("creating directory /%s: %w", d, err)
	}
	r.created = append(r.created, d)
	root, err := parent.root.OpenRoot(path.Base(d))
	if err != nil {
		return fmt.Errorf("opening /%s: %w", d, err)
	}
	state.root = root
	return nil
}

// mkdirBase creates a missing prefix directory and its missing parents.
func (r *restorer) mkdirBase(base string) error {
	elems := strings.Split(base, "/")
	for n := 1; n <= len(elems); n++ {
		d := strings.Join(elems[:n], "/")
		_, err := r.root.Lstat(d)
		if err == nil {
			continue
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("checking destination /%s: %w", d, err)
		}
		if err := r.root.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("creating directory /%s: %w", d, err)
		}
		r.created = append(r.created, d)
	}
	return nil
}

func (r *restorer) stageLink(i int) error {
	p := &r.members[i]
	dir := r.dirs[path.Dir(p.name)].root
	tmp := r.stagingName(i)
	if err := dir.Symlink(p.target, tmp); err != nil {
		return fmt.Errorf("creating symbolic link /%s: %w", p.name, err)
	}
	r.staged[i] = tmp
	if uid, gid, ok := r.ownerOf(p); ok {
		if err := dir.Lchown(tmp, uid, gid); err != nil {
			return fmt.Errorf("setting the owner of /%s: %w", p.name, err)
		}
	}
	if p.outside {
		r.report.OutsideLinks = append(r.report.OutsideLinks, Link{Name: p.name, Target: p.target})
	}
	r.report.Links++
	r.progress(p.name, 0)
	return nil
}

// stageFiles writes file members on several goroutines. The first error
// stops the others.
func (r *restorer) stageFiles(ctx context.Context, files []int) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			buf := make([]byte, 256<<10)
			for i := range work {
				if err := r.stageFile(i, buf); err != nil {
					cancel(err)
				}
			}
		})
	}
loop:
	for _, i := range files {
		select {
		case work <- i:
		case <-ctx.Done():
			break loop
		}
	}
	close(work)
	wg.Wait()
	return context.Cause(ctx)
}

func (r *restorer) stageFile(i int, buf []byte) error {
	p := &r.members[i]
	dir := r.dirs[path.Dir(p.name)].root
	tmp := r.stagingName(i)
	out, err := dir.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("creating /%s: %w", p.name, err)
	}
	r.mu.Lock()
	r.staged[i] = tmp
	r.mu.Unlock()

	n, err := r.copyData(p, out, buf)
	if err == nil {
		err = r.setFileMetadata(p, out)
	}
	if closeErr := out.Close(); err == nil && closeErr != nil {
		err = fmt.Errorf("writing /%s: %w", p.name, closeErr)
	}
	if err != nil {
		return err
	}

	r.mu.Lock()
	r.report.Files++
	r.report.Bytes += n
	r.mu.Unlock()
	r.progress(p.name, n)
	return nil
}

// copyData writes a member's data and checks it: exactly the declared
// size, the CRC-32, and the manifest's SHA-256 when there is a manifest.
func (r *restorer) copyData(p *planned, out *os.File, buf []byte) (int64, error) {
	rc, err := p.file.Open()
	if err != nil {
		return 0, fmt.Errorf("member %q: %w: %w", p.file.Name, ErrCorrupt, err)
	}
	defer rc.Close()

	crc := crc32.NewIEEE()
	hashes := io.Writer(crc)
	var digest hash.Hash
	if r.manifest != nil {
		digest = sha256.New()
		hashes = io.MultiWriter(crc, digest)
	}
	declared := int64(p.file.UncompressedSize64)
	n, err := io.CopyBuffer(io.MultiWriter(out, hashes), io.LimitReader(rc, declared+1), buf)
	var pathErr *fs.PathError
	switch {
	case errors.As(err, &pathErr):
		return 0, fmt.Errorf("writing /%s: %w", p.name, err)
	case errors.Is(err, zip.ErrChecksum):
		return 0, fmt.Errorf("member %q: %w: the data does not match its CRC-32 %08x",
			p.file.Name, ErrCorrupt, p.file.CRC32)
	case errors.Is(err, zip.ErrFormat):
		// The zip reader returns ErrFormat as soon as data runs past the
		// declared size.
		return 0, fmt.Errorf("member %q: %w: data of more than its declared size %d",
			p.file.Name, ErrCorrupt, declared)
	case err != nil:
		return 0, fmt.Errorf("member %q: %w: %w", p.file.Name, ErrCorrupt, err)
	case n != declared:
		return 0, fmt.Errorf("member %q: %w: data of %s bytes, declared size %d",
			p.file.Name, ErrCorrupt, sizeText(n, declared), declared)
	case crc.Sum32() != p.file.CRC32:
		return 0, fmt.Errorf("member %q: %w: CRC-32 %08x, expected %08x",
			p.file.Name, ErrCorrupt, crc.Sum32(), p.file.CRC32)
	}
	if digest != nil {
		if err := r.checkManifestDigest(p, n, hex.EncodeToString(digest.Sum(nil))); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func sizeText(n, declared int64) string {
	if n > declared {
		return fmt.Sprintf("more than %d", declared)
	}
	return fmt.Sprint(n)
}

func (r *restorer) checkManifestDigest(p *planned, size int64, sum string) error {
	m := r.manifestMember(p.file.Name)
	if m == nil {
		return fmt.Errorf("member %q: %w: the backup set's manifest does not list it", p.file.Name, ErrCorrupt)
	}
	if m.Size != size || m.SHA256 != sum {
		return fmt.Errorf("member %q: %w: SHA-256 %s differs from the manifest's %s",
			p.file.Name, ErrCorrupt, sum, m.SHA256)
	}
	return nil
}

// manifestMember looks a member up in the manifest. The index is built
// once, on first use.
func (r *restorer) manifestMember(name string) *Member {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.manifestIndex == nil {
		r.manifestIndex = make(map[string]*Member, len(r.manifest.Members))
		for i := range r.manifest.Members {
			r.manifestIndex[r.manifest.Members[i].Name] = &r.manifest.Members[i]
		}
	}
	return r.manifestIndex[name]
}

// setFileMetadata sets owner, mode and modification time through the
// open file, so no path is resolved again.
func (r *restorer) setFileMetadata(p *planned, f *os.File) error {
	if uid, gid, ok := r.ownerOf(p); ok && (uint32(uid) != r.uid || uint32(gid) != r.gid) {
		if err := f.Chown(uid, gid); err != nil {
			return fmt.Errorf("setting the owner of /%s: %w", p.name, err)
		}
	}
	if err := f.Chmod(p.perm); err != nil {
		return fmt.Errorf("setting the mode of /%s: %w", p.name, err)
	}
	conn, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("setting the time of /%s: %w", p.name, err)
	}
	tv := syscall.NsecToTimeval(p.file.Modified.UnixNano())
	var timeErr error
	if err := conn.Control(func(fd uintptr) {
		timeErr = syscall.Futimes(int(fd), []syscall.Timeval{tv, tv})
	}); err != nil {
		timeErr = err
	}
	if timeErr != nil {
		return fmt.Errorf("setting the time of /%s: %w", p.name, timeErr)
	}
	return nil
}

func (r *restorer) progress(member string, n int64) {
	if r.opts.Progress == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.progressState.Member = member
	r.progressState.Files++
	r.progressState.Bytes += n
	r.opts.Progress(r.progressState)
}

// undo removes staged files and the directories this restore created.
func (r *restorer) undo() error {
	var errs []error
	for i, tmp := range r.staged {
		dir := r.dirs[path.Dir(r.members[i].name)].root
		if err := dir.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	// Each directory is removed through its parent's open root, which
	// needs no new descriptor, and its own root is closed once it is gone.
	// The restore may have failed because it ran out of descriptors.
	for _, d := range slices.Backward(r.created) {
		var err error
		if parent := r.dirs[path.Dir(d)]; parent != nil && parent.root != nil {
			err = parent.root.Remove(path.Base(d))
		} else {
			err = r.root.Remove(d)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
		if state := r.dirs[d]; state != nil && state.root != nil {
			state.root.Close()
			state.root = nil
		}
	}
	return errors.Join(errs...)
}

// commit renames staged members into place, then sets the mode, owner
// and time of directory members, deepest first so that later renames do
// not change a parent's time.
func (r *restorer) commit() error {
	for _, i := range r.writes {
		p := &r.members[i]
		if !r.replaces[i] {
			continue
		}
		dir := r.dirs[path.Dir(p.name)].root
		if err := dir.Rename(r.staged[i], path.Base(p.name)); err != nil {
			return fmt.Errorf("moving /%s into place: %w", p.name, err)
		}
	}

	dirs := r.sortedDirs()
	for _, d := range slices.Backward(dirs) {
		state := r.dirs[d]
		if state.member == nil {
			continue
		}
		if err := r.setDirMetadata(state.member); err != nil {
			return err
		}
		r.report.Dirs++
	}
	for _, d := range r.created {
		if r.dirs[d] != nil && r.dirs[d].member != nil {
			continue
		}
		if err := r.root.Chmod(d, 0o755); err != nil {
			return fmt.Errorf("setting the mode of /%s: %w", d, err)
		}
	}
	return nil
}

func (r *restorer) setDirMetadata(p *planned) error {
	parent, name := r.root, p.name
	if r.basePrefix(p.name) != p.name {
		parent, name = r.dirs[path.Dir(p.name)].root, path.Base(p.name)
	}
	if uid, gid, ok := r.ownerOf(p); ok {
		if err := parent.Lchown(name, uid, gid); err != nil {
			return fmt.Errorf("setting the owner of /%s: %w", p.name, err)
		}
	}
	if err := parent.Chmod(name, p.perm); err != nil {
		return fmt.Errorf("setting the mode of /%s: %w", p.name, err)
	}
	mtime := p.file.Modified
	if err := parent.Chtimes(name, time.Time{}, mtime); err != nil {
		return fmt.Errorf("setting the time of /%s: %w", p.name, err)
	}
	return nil
}

// ownerOf returns the owner to give a member: the uid and gid stored in
// the zip, mapped by RestoreOptions.MapOwner. It reports false when not
// running as root or when the zip stores no owner.
func (r *restorer) ownerOf(p *planned) (uid, gid int, ok bool) {
	if !r.asRoot || !p.owner.ok {
		return 0, 0, false
	}
	u, g := p.owner.uid, p.owner.gid
	if r.opts.MapOwner != nil {
		u, g = r.opts.MapOwner(u, g)
	}
	return int(u), int(g), true
}
