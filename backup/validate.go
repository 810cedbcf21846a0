package backup

import (
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/klauspost/compress/zip"
)

// Limits applied when RestoreOptions leaves them zero.
const (
	// DefaultMaxTotalSize caps the uncompressed size of an archive.
	DefaultMaxTotalSize = 4 << 30

	// DefaultMaxRatio caps a member's uncompressed-to-compressed size
	// ratio. Deflate reaches about 1000:1 on runs of zeros, which zip
	// bombs use; configuration text compresses about 3:1 to 20:1.
	DefaultMaxRatio = 200

	// ratioMinSize is the size from which the ratio limit applies, so
	// that small files of repeated characters are not rejected.
	ratioMinSize = 1 << 20

	// maxLinkTarget is the longest symlink target accepted (PATH_MAX - 1
	// on Linux).
	maxLinkTarget = 4095
)

// DefaultAllowedPrefixes lists the member name prefixes Restore accepts
// when RestoreOptions.AllowedPrefixes is empty.
var DefaultAllowedPrefixes = []string{"opt/balasys/"}

// limits are the validator's settings.
type limits struct {
	prefixes          []string
	maxTotal          int64
	maxRatio          int64
	allowOutsideLinks bool
	// manifest maps member names to the backup set's manifest entries.
	// Nil without a manifest. With one, every member must match its
	// entry, so outside links it records are restored. A file of the
	// recorded size is exempt from the ratio limit, because its data is
	// checked against the manifest's SHA-256 and the total size limit
	// still applies.
	manifest map[string]*Member
}

// planned is a validated member.
type planned struct {
	file   *zip.File
	name   string // without the trailing slash of directories
	typ    MemberType
	perm   fs.FileMode
	owner  owner
	target string // symlinks only
	// outside is set for a symlink whose target leaves the allowed
	// prefixes.
	outside bool
}

// validate checks every member of an archive before anything is written:
// names, types, duplicates, declared sizes and symlinks. It reads only the
// data of symlink members. The first rejected member ends validation with
// an error that names it.
func validate(files []*zip.File, lim limits) ([]planned, error) {
	if len(files) == 0 {
		return nil, fmt.Errorf("%w: the archive has no members", ErrNotZip)
	}
	members := make([]planned, 0, len(files))
	types := make(map[string]MemberType, len(files))
	var total int64
	for _, f := range files {
		p, err := checkMember(f, lim)
		if err != nil {
			return nil, err
		}
		if _, dup := types[p.name]; dup {
			return nil, unsafeMember(f.Name, "appears more than once in the archive")
		}
		types[p.name] = p.typ

		size := int64(f.UncompressedSize64)
		if f.UncompressedSize64 > uint64(lim.maxTotal) || total+size > lim.maxTotal {
			return nil, fmt.Errorf("member %q: %w: the archive's uncompressed size exceeds the limit of %d bytes",
				f.Name, ErrLimitExceeded, lim.maxTotal)
		}
		total += size
		members = append(members, p)
	}

	for i := range members {
		if err := checkAncestors(&members[i], types); err != nil {
			return nil, err
		}
	}
	if lim.manifest != nil {
		if err := matchManifest(members, lim.manifest); err != nil {
			return nil, err
		}
	}
	for i := range members {
		if members[i].typ != TypeSymlink {
			continue
		}
		if err := checkLink(&members[i], types, lim); err != nil {
			return nil, err
		}
	}
	return members, nil
}

func unsafeMember(name, reason string) error {
	return fmt.Errorf("member %q: %w: %s", name, ErrUnsafeArchive, reason)
}

// checkMember checks one member on its own.
func checkMember(f *zip.File, lim limits) (planned, error) {
	name := f.Name
	if err := checkName(name); err != nil {
		return planned{}, err
	}
	if !hasAllowedPrefix(name, lim.prefixes) {
		return planned{}, unsafeMember(name, fmt.Sprintf("outside the allowed prefixes %s",
			strings.Join(lim.prefixes, ", ")))
	}

	typ, perm, ok := memberType(&f.FileHeader)
	if !ok {
		return planned{}, unsafeMember(name, fmt.Sprintf("%s; only regular files, directories "+
			"and symbolic links are restored", describeType(&f.FileHeader)))
	}
	extra := parseExtra(f.Extra)
	if extra.pkwareLinkData {
		return planned{}, unsafeMember(name, "carries hard link or device data in a PKWARE Unix "+
			"extra field; only regular files, directories and symbolic links are restored")
	}
	if f.Flags&0x1 != 0 {
		return planned{}, unsafeMember(name, "is encrypted; restore reads only unencrypted archives")
	}
	if typ == TypeDir && f.UncompressedSize64 != 0 {
		return planned{}, unsafeMember(name, "is a directory with data")
	}
	recorded := lim.manifest[name]
	if f.UncompressedSize64 >= ratioMinSize &&
		f.UncompressedSize64/max(f.CompressedSize64, 1) > uint64(lim.maxRatio) &&
		(recorded == nil || uint64(recorded.Size) != f.UncompressedSize64) {
		return planned{}, fmt.Errorf("member %q: %w: compression ratio %d:1 exceeds the limit of %d:1, "+
			"as in zip bombs", name, ErrLimitExceeded, f.UncompressedSize64/max(f.CompressedSize64, 1), lim.maxRatio)
	}

	p := planned{
		file:  f,
		name:  strings.TrimSuffix(name, "/"),
		typ:   typ,
		perm:  perm,
		owner: extra.owner,
	}
	if typ == TypeSymlink {
		target, err := readLinkTarget(f)
		if err != nil {
			return planned{}, err
		}
		p.target = target
	}
	return p, nil
}

// checkName rejects names that could leave the destination or that
// different tools read differently.
func checkName(name string) error {
	switch {
	case name == "":
		return unsafeMember(name, "empty name")
	case strings.IndexByte(name, 0) >= 0:
		return unsafeMember(name, "name contains a NUL byte")
	case strings.Contains(name, `\`):
		return unsafeMember(name, "name contains a backslash")
	case strings.HasPrefix(name, "/"):
		return unsafeMember(name, "absolute name")
	}
	trimmed := strings.TrimSuffix(name, "/")
	for _, elem := range strings.Split(trimmed, "/") {
		switch elem {
		case "..":
			return unsafeMember(name, `name contains a ".." element`)
		case ".", "":
			return unsafeMember(name, `name contains an empty or "." element`)
		}
	}
	return nil
}

func hasAllowedPrefix(name string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func describeType(h *zip.FileHeader) string {
	switch (h.ExternalAttrs >> 16) & unixTypeMask {
	case 0o020000:
		return "character device"
	case 0o060000:
		return "block device"
	case 0o010000:
		return "FIFO"
	case 0o140000:
		return "socket"
	case unixTypeRegular, unixTypeSymlink:
		return "non-directory whose name ends with a slash"
	case unixTypeDir:
		return "directory whose name does not end with a slash"
	}
	return fmt.Sprintf("unknown file type %#o", (h.ExternalAttrs>>16)&unixTypeMask)
}

// readLinkTarget reads a symlink member's data, its target.
func readLinkTarget(f *zip.File) (string, error) {
	if f.UncompressedSize64 == 0 || f.UncompressedSize64 > maxLinkTarget {
		return "", unsafeMember(f.Name, fmt.Sprintf("symbolic link target of %d bytes; expected 1 to %d",
			f.UncompressedSize64, maxLinkTarget))
	}
	rc, err := f.Open()
	if err != nil {
		return "", fmt.Errorf("member %q: %w: %w", f.Name, ErrCorrupt, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxLinkTarget+1))
	if err != nil {
		return "", fmt.Errorf("member %q: %w: %w", f.Name, ErrCorrupt, err)
	}
	if uint64(len(data)) != f.UncompressedSize64 {
		return "", fmt.Errorf("member %q: %w: symbolic link target of %d bytes, declared %d",
			f.Name, ErrCorrupt, len(data), f.UncompressedSize64)
	}
	if strings.IndexByte(string(data), 0) >= 0 {
		return "", unsafeMember(f.Name, "symbolic link target contains a NUL byte")
	}
	return string(data), nil
}

// checkAncestors rejects a member below a member that is not a directory,
// so nothing is ever written through a symlink the archive creates.
func checkAncestors(p *planned, types map[string]MemberType) error {
	for dir := path.Dir(p.name); dir != "."; dir = path.Dir(dir) {
		switch types[dir] {
		case TypeSymlink:
			return unsafeMember(p.file.Name, fmt.Sprintf("would be written through symbolic link member %q", dir))
		case TypeFile:
			return unsafeMember(p.file.Name, fmt.Sprintf("lies below regular file member %q", dir))
		}
	}
	return nil
}

// checkLink decides whether a symlink's target stays inside the allowed
// prefixes, and rejects one that leaves them unless the manifest records
// the same link or outside links are allowed. The decision is lexical,
// and a ".." that steps back over another symlink member counts as
// leaving, because the kernel resolves that link before the "..".
func checkLink(p *planned, types map[string]MemberType, lim limits) error {
	p.outside = linkLeavesPrefixes(p, types, lim.prefixes)
	if !p.outside || lim.allowOutsideLinks {
		return nil
	}
	if m := lim.manifest[p.name]; m != nil && m.Type == TypeSymlink && m.Target == p.target {
		return nil
	}
	return unsafeMember(p.file.Name, fmt.Sprintf("symbolic link to %q points outside %s; it is restored "+
		"only from a backup set whose manifest records it, or when outside links are allowed "+
		"(--allow-outside-links)", p.target, strings.Join(lim.prefixes, ", ")))
}

func linkLeavesPrefixes(p *planned, types map[string]MemberType, prefixes []string) bool {
	var elems []string
	if !strings.HasPrefix(p.target, "/") {
		elems = strings.Split(path.Dir(p.name), "/")
	}
	for _, elem := range strings.Split(p.target, "/") {
		switch elem {
		case "", ".":
		case "..":
			if len(elems) == 0 || types[strings.Join(elems, "/")] == TypeSymlink {
				return true
			}
			elems = elems[:len(elems)-1]
		default:
			elems = append(elems, elem)
		}
	}
	resolved := strings.Join(elems, "/")
	return !hasAllowedPrefix(resolved+"/", prefixes)
}

// matchManifest checks that the archive holds exactly the manifest's
// members, each of the recorded type and, for links, target. File data is
// checked against the recorded SHA-256 while it is extracted.
func matchManifest(members []planned, manifest map[string]*Member) error {
	for i := range members {
		p := &members[i]
		m := manifest[p.file.Name]
		switch {
		case m == nil:
			return fmt.Errorf("member %q: %w: the backup set's manifest does not list it", p.file.Name, ErrCorrupt)
		case m.Type != p.typ:
			return fmt.Errorf("member %q: %w: a %s in the archive, a %s in the manifest",
				p.file.Name, ErrCorrupt, p.typ, m.Type)
		case p.typ == TypeSymlink && m.Target != p.target:
			return fmt.Errorf("member %q: %w: link to %q in the archive, to %q in the manifest",
				p.file.Name, ErrCorrupt, p.target, m.Target)
		}
	}
	if len(members) != len(manifest) {
		return fmt.Errorf("%w: the archive has %d members, the backup set's manifest lists %d",
			ErrCorrupt, len(members), len(manifest))
	}
	return nil
}
