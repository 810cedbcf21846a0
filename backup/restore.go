package backup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zip"
	"github.com/mholt/archives"
)

// RestoreOptions configures Restore.
type RestoreOptions struct {
	// Root is the destination that member names are resolved under, as
	// with "unzip -d". Empty means "/".
	Root string

	// UpdateOnly writes a file or link only where it is missing or older
	// than the member, as "unzip -u" does. By default every member is
	// written, to reproduce the state at backup time exactly.
	UpdateOnly bool

	// AllowedPrefixes lists the member name prefixes accepted, each
	// ending with "/". Empty means DefaultAllowedPrefixes.
	AllowedPrefixes []string

	// AllowOutsideLinks restores symbolic links whose target leaves the
	// allowed prefixes even when no manifest records them.
	AllowOutsideLinks bool

	// Manifest describes the archive's backup set. Nil means
	// manifest.json beside the archive when that file exists. With a
	// manifest, the archive must hold exactly its members, of the
	// recorded types and link targets, every file's SHA-256 is checked
	// against it, and outside links it records are restored.
	Manifest *Manifest

	// MapOwner, when not nil, maps the uid and gid stored for a member to
	// the owner restore gives it as root. It lets files of a user that
	// was removed and created again with new ids, such as pas, go to the
	// new ids. It must be safe for concurrent use.
	MapOwner func(uid, gid uint32) (uint32, uint32)

	// MaxTotalSize caps the total uncompressed size; zero means
	// DefaultMaxTotalSize. MaxRatio caps a member's compression ratio;
	// zero means DefaultMaxRatio.
	MaxTotalSize int64
	MaxRatio     int64

	// Progress, when not nil, is called after each member is staged,
	// from one goroutine at a time.
	Progress func(Progress)

	// Logger receives debug records. Nil discards them.
	Logger *slog.Logger
}

// RestoreReport summarizes a restore.
type RestoreReport struct {
	Files int   `json:"files"`
	Dirs  int   `json:"dirs"`
	Links int   `json:"links"`
	Bytes int64 `json:"bytes"`
	// Skipped counts members left alone in update-only mode because the
	// file on disk was as new or newer.
	Skipped int `json:"skipped"`
	// OutsideLinks lists restored symbolic links that point outside the
	// allowed prefixes.
	OutsideLinks []Link `json:"outside_links,omitempty"`
	// ManifestUsed is set when a manifest checked the archive.
	ManifestUsed bool `json:"manifest_used"`
	// OwnersRestored is set when files got the uid and gid stored in the
	// archive, which needs root. Otherwise they belong to the caller.
	OwnersRestored bool `json:"owners_restored"`
}

// Link is a symbolic link member.
type Link struct {
	Name   string `json:"name"`
	Target string `json:"target"`
}

// Restore extracts a bootstrap zip into opts.Root as "unzip -o -d ROOT"
// does, or "unzip -u -o -d ROOT" with UpdateOnly, and refuses hostile or
// broken archives.
//
// Every member is validated before anything is written: names, types,
// duplicates, declared sizes, compression ratios and symbolic links. Files
// are then written next to their targets under temporary names and
// checked against their CRC-32, declared size and (with a manifest)
// SHA-256. Only when all succeeded are they renamed into place, so a
// rejected or corrupt archive leaves the destination as it was. Every
// write goes through an os.Root opened at the destination, no existing
// symbolic link is ever written through (a link in a file's place is
// replaced), and setuid, setgid and sticky bits are not restored, as
// unzip does without -K. Run as root, owners are restored from the zip;
// run as another user, such as pas, files belong to that user.
func Restore(ctx context.Context, zipPath string, opts RestoreOptions) (*RestoreReport, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(zipPath)
	if err != nil {
		return nil, fmt.Errorf("opening archive: %w", err)
	}
	defer f.Close()
	zr, size, err := openArchive(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", zipPath, err)
	}

	manifest, err := restoreManifest(zipPath, size, opts.Manifest)
	if err != nil {
		return nil, err
	}
	members, err := validate(zr.File, opts.limits(manifest))
	if err != nil {
		return nil, fmt.Errorf("rejected %s, nothing was written: %w", zipPath, err)
	}
	opts.Logger.Debug("restore: archive validated", "zip", zipPath, "members", len(members),
		"manifest", manifest != nil, "root", opts.Root)

	// A missing destination is created, as unzip -d does, and removed
	// again when the restore fails.
	createdRoot := false
	if _, err := os.Stat(opts.Root); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(opts.Root, 0o755); err != nil {
			return nil, fmt.Errorf("creating destination %s: %w", opts.Root, err)
		}
		createdRoot = true
	}
	report, err := restoreInto(ctx, zipPath, opts, members, manifest)
	if err != nil && createdRoot {
		_ = os.RemoveAll(opts.Root)
	}
	return report, err
}

// restoreInto plans, stages and commits validated members.
func restoreInto(ctx context.Context, zipPath string, opts RestoreOptions, members []planned,
	manifest *Manifest) (*RestoreReport, error) {
	root, err := os.OpenRoot(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("opening destination %s: %w", opts.Root, err)
	}
	defer root.Close()

	r := &restorer{
		root:     root,
		opts:     opts,
		members:  members,
		manifest: manifest,
		asRoot:   os.Geteuid() == 0,
		uid:      uint32(os.Geteuid()),
		gid:      uint32(os.Getegid()),
		report:   &RestoreReport{ManifestUsed: manifest != nil, OwnersRestored: os.Geteuid() == 0},
	}
	r.token, err = randomToken()
	if err != nil {
		return nil, err
	}
	defer r.closeDirs()
	if err := r.plan(); err != nil {
		return nil, fmt.Errorf("restoring %s into %s, nothing was written: %w", zipPath, opts.Root, err)
	}
	if err := r.stage(ctx); err != nil {
		if undoErr := r.undo(); undoErr != nil {
			err = errors.Join(err, fmt.Errorf("removing what was written: %w", undoErr))
		}
		return nil, fmt.Errorf("restoring %s into %s, nothing was kept: %w", zipPath, opts.Root, err)
	}
	if err := r.commit(); err != nil {
		return nil, fmt.Errorf("restoring %s into %s: %w", zipPath, opts.Root, err)
	}
	opts.Logger.Debug("restore: done", "zip", zipPath, "files", r.report.Files,
		"skipped", r.report.Skipped, "bytes", r.report.Bytes)
	return r.report, nil
}

func (o RestoreOptions) withDefaults() (RestoreOptions, error) {
	if o.Root == "" {
		o.Root = "/"
	}
	if len(o.AllowedPrefixes) == 0 {
		o.AllowedPrefixes = DefaultAllowedPrefixes
	}
	for _, p := range o.AllowedPrefixes {
		if !strings.HasSuffix(p, "/") || checkName(p) != nil {
			return o, fmt.Errorf("invalid allowed prefix %q: expected a relative directory name "+
				"ending with a slash, such as %q", p, DefaultAllowedPrefixes[0])
		}
	}

	if o.MaxTotalSize <= 0 {
		o.MaxTotalSize = DefaultMaxTotalSize
	}
	if o.MaxRatio <= 0 {
		o.MaxRatio = DefaultMaxRatio
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

func (o RestoreOptions) limits(m *Manifest) limits {
	lim := limits{
		prefixes:          o.AllowedPrefixes,
		maxTotal:          o.MaxTotalSize,
		maxRatio:          o.MaxRatio,
		allowOutsideLinks: o.AllowOutsideLinks,
	}
	if m != nil {
		lim.manifest = make(map[string]*Member, len(m.Members))
		for i := range m.Members {
			lim.manifest[m.Members[i].Name] = &m.Members[i]
		}
	}
	return lim
}

// openArchive opens f as a zip. A file that is not a zip gets an error
// naming the format it looks like, when one is recognized.
func openArchive(ctx context.Context, f *os.File) (*zip.Reader, int64, error) {
	info, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	if !info.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("%w: not a regular file", ErrNotZip)
	}
	zr, err := zip.NewReader(f, info.Size())
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return nil, 0, fmt.Errorf("%w: %s", ErrNotZip, describeNotZip(ctx, f, info.Size(), err))
	}
	return zr, info.Size(), nil
}

func describeNotZip(ctx context.Context, f *os.File, size int64, zipErr error) string {
	if size == 0 {
		return "the file is empty"
	}
	// An empty file name makes Identify judge by content alone.
	format, _, err := archives.Identify(ctx, "", io.NewSectionReader(f, 0, size))
	switch {
	case err == nil && format.Extension() == ".zip":
		return fmt.Sprintf("the file starts like a zip but its directory is unreadable (%v): "+
			"it is probably truncated or damaged; use another copy of the backup", zipErr)
	case err == nil:
		return fmt.Sprintf("the file looks like %s, not zip", strings.TrimPrefix(format.Extension(), "."))
	}
	return fmt.Sprintf("%v; the file is not a zip archive", zipErr)
}

// restoreManifest returns the manifest to check the archive against: the
// one from the options, or manifest.json beside the archive.
func restoreManifest(zipPath string, size int64, fromOptions *Manifest) (*Manifest, error) {
	if fromOptions != nil {
		return fromOptions, nil
	}
	if filepath.Base(zipPath) != ArchiveName {
		return nil, nil
	}
	dir := filepath.Dir(zipPath)
	if _, err := os.Stat(filepath.Join(dir, ManifestName)); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, fmt.Errorf("reading the manifest beside %s: %w", zipPath, err)
	}
	if m.Archive.Size != size {
		return nil, fmt.Errorf("the manifest beside %s records an archive of %d bytes, the file has %d: "+
			"the set is damaged; run backup verify on it", zipPath, m.Archive.Size, size)
	}
	return m, nil
}

func randomToken() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("creating a temporary name: %w", err)
	}
	return hex.EncodeToString(b), nil
}
