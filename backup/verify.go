package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zip"
)

// Verify checks a backup set: the manifest names the directory, the zip
// and the running-configuration export have the recorded size and
// SHA-256, and every zip member has a valid CRC-32 and matches its
// manifest entry (type, mode, owner, size, SHA-256, link target). Restore's
// validator must also accept the zip with its default limits. The error
// names the first file or member that differs and wraps ErrNotSet or
// ErrMismatch.
func Verify(ctx context.Context, setDir string) error {
	m, err := ReadManifest(setDir)
	if err != nil {
		return err
	}
	if base := filepath.Base(filepath.Clean(setDir)); base != m.Name {
		return fmt.Errorf("verifying %s: %w: the manifest names the set %q; an interrupted run leaves "+
			"a temporary directory, which is not a set", setDir, ErrNotSet, m.Name)
	}
	// Members first, so that damage inside the zip is reported with the
	// member's name rather than as a changed archive digest.
	if err := verifyMembers(ctx, filepath.Join(setDir, ArchiveName), m.Members); err != nil {
		return fmt.Errorf("verifying %s: %w", setDir, err)
	}
	if err := verifyFile(setDir, m.Archive); err != nil {
		return err
	}
	if m.RunningConfig != nil {
		if err := verifyFile(setDir, *m.RunningConfig); err != nil {
			return err
		}
	}
	return nil
}

// verifyFile compares a set file's size and SHA-256 with its record.
func verifyFile(setDir string, rec FileRecord) error {
	path := filepath.Join(setDir, rec.Name)
	if rec.Name != filepath.Base(rec.Name) || strings.HasPrefix(rec.Name, ".") {
		return fmt.Errorf("verifying %s: %w: invalid file name %q in the manifest", setDir, ErrMismatch, rec.Name)
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("verifying %s: %w: %s is missing", setDir, ErrMismatch, rec.Name)
	}
	if err != nil {
		return fmt.Errorf("verifying %s: %w", setDir, err)
	}
	defer f.Close()
	digest := sha256.New()
	n, err := io.Copy(digest, f)
	if err != nil {
		return fmt.Errorf("verifying %s: reading %s: %w", setDir, rec.Name, err)
	}
	if sum := hex.EncodeToString(digest.Sum(nil)); n != rec.Size || sum != rec.SHA256 {
		return fmt.Errorf("verifying %s: %w: %s has %d bytes with SHA-256 %s, the manifest records "+
			"%d bytes with SHA-256 %s", setDir, ErrMismatch, rec.Name, n, sum, rec.Size, rec.SHA256)
	}
	return nil
}

// verifyMembers reads every member, which checks its CRC-32, and compares
// it with the manifest, in order.
func verifyMembers(ctx context.Context, zipPath string, want []Member) error {
	f, err := os.Open(zipPath)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s is missing", ErrMismatch, ArchiveName)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	zr, _, err := openArchive(ctx, f)
	if err != nil {
		return fmt.Errorf("reading %s: %w", ArchiveName, err)
	}
	if len(zr.File) != len(want) {
		return fmt.Errorf("%w: %s has %d members, the manifest lists %d",
			ErrMismatch, ArchiveName, len(zr.File), len(want))
	}
	// A set that restore would reject is of no use however intact its
	// data, so the restore's validator runs with its default limits.
	if _, err := validate(zr.File, verifyLimits(want)); err != nil {
		return fmt.Errorf("%w: restore would reject the set: %w", ErrMismatch, err)
	}
	buf := make([]byte, 256<<10)
	for i, zf := range zr.File {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := verifyMember(zf, &want[i], buf); err != nil {
			return err
		}
	}
	return nil
}

// verifyLimits returns the limits Restore applies by default to a set
// with this manifest.
func verifyLimits(members []Member) limits {
	m := &Manifest{Members: members}
	return RestoreOptions{
		AllowedPrefixes: DefaultAllowedPrefixes,
		MaxTotalSize:    DefaultMaxTotalSize,
		MaxRatio:        DefaultMaxRatio,
	}.limits(m)
}

func verifyMember(zf *zip.File, want *Member, buf []byte) error {
	if zf.Name != want.Name {
		return fmt.Errorf("%w: member %q is listed as %q in the manifest", ErrMismatch, zf.Name, want.Name)
	}
	typ, perm, ok := memberType(&zf.FileHeader)
	extra := parseExtra(zf.Extra)
	switch {
	case !ok || typ != want.Type:
		return fmt.Errorf("%w: member %q is a %s, the manifest records a %s", ErrMismatch, zf.Name, typ, want.Type)
	case Mode(perm) != want.Mode&0o777:
		return fmt.Errorf("%w: member %q has mode %04o, the manifest records %04o", ErrMismatch, zf.Name, perm, want.Mode)
	case !extra.owner.ok || extra.owner.uid != want.UID || extra.owner.gid != want.GID:
		return fmt.Errorf("%w: member %q has owner %d:%d, the manifest records %d:%d",
			ErrMismatch, zf.Name, extra.owner.uid, extra.owner.gid, want.UID, want.GID)
	}
	if typ == TypeDir {
		return nil
	}

	rc, err := zf.Open()
	if err != nil {
		return fmt.Errorf("member %q: %w: %w", zf.Name, ErrMismatch, err)
	}
	defer rc.Close()
	crc := crc32.NewIEEE()
	digest := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(crc, digest), rc, buf)
	if err != nil {
		return fmt.Errorf("member %q: %w: %w: %w", zf.Name, ErrMismatch, ErrCorrupt, err)
	}
	if crc.Sum32() != zf.CRC32 {
		return fmt.Errorf("member %q: %w: %w: CRC-32 %08x, expected %08x",
			zf.Name, ErrMismatch, ErrCorrupt, crc.Sum32(), zf.CRC32)
	}
	if sum := hex.EncodeToString(digest.Sum(nil)); n != want.Size || sum != want.SHA256 {
		return fmt.Errorf("%w: member %q has %d bytes with SHA-256 %s, the manifest records %d bytes "+
			"with SHA-256 %s", ErrMismatch, zf.Name, n, sum, want.Size, want.SHA256)
	}
	return nil
}
