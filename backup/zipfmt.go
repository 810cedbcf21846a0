package backup

import (
	"encoding/binary"
	"io/fs"
	"time"

	"github.com/klauspost/compress/zip"
)

// Extra field ids that Info-ZIP's zip and unzip use for Unix metadata.
const (
	extraExtendedTime = 0x5455 // "UT": modification time in Unix seconds
	extraUnixOwner    = 0x7875 // "ux": owner uid and gid of any size
	extraUnixOld      = 0x5855 // "UX": times and 16-bit uid and gid (old Info-ZIP)
	extraPKWAREUnix   = 0x000d // PKWARE Unix: times, uid, gid and link or device data
)

// Unix file type bits as stored in the high 16 bits of ExternalAttrs.
const (
	unixTypeMask    = 0o170000
	unixTypeRegular = 0o100000
	unixTypeDir     = 0o040000
	unixTypeSymlink = 0o120000
)

// Version "made by" of Info-ZIP 3.0 on Unix: the high byte names Unix so
// that readers take permissions from ExternalAttrs.
const (
	creatorUnix   = 3
	creatorMacOSX = 19
	creatorUnix30 = creatorUnix<<8 | 30
	readerStored  = 10
	readerDeflate = 20
)

// newHeader returns a zip header for a member as Info-ZIP's zip writes it:
// Unix mode in ExternalAttrs, the modification time both as MS-DOS time and
// in the extended timestamp field, and uid and gid in the "ux" field.
func newHeader(name string, mode fs.FileMode, mtime time.Time, uid, gid uint32) *zip.FileHeader {
	h := &zip.FileHeader{Name: name}
	h.SetMode(mode)
	h.CreatorVersion = creatorUnix30
	h.ReaderVersion = readerStored
	h.Modified = mtime
	h.ModifiedDate, h.ModifiedTime = msDosTime(mtime)
	h.Extra = appendUnixExtra(nil, mtime, uid, gid)
	return h
}

// appendUnixExtra appends the "UT" and "ux" extra fields.
func appendUnixExtra(b []byte, mtime time.Time, uid, gid uint32) []byte {
	b = binary.LittleEndian.AppendUint16(b, extraExtendedTime)
	b = binary.LittleEndian.AppendUint16(b, 5)
	b = append(b, 1) // flags: modification time present
	b = binary.LittleEndian.AppendUint32(b, uint32(mtime.Unix()))
	return appendUnixOwner(b, uid, gid)
}

// appendUnixOwner appends the "ux" extra field with 32-bit ids.
func appendUnixOwner(b []byte, uid, gid uint32) []byte {
	b = binary.LittleEndian.AppendUint16(b, extraUnixOwner)
	b = binary.LittleEndian.AppendUint16(b, 11)
	b = append(b, 1, 4) // version 1, uid size 4
	b = binary.LittleEndian.AppendUint32(b, uid)
	b = append(b, 4) // gid size 4
	b = binary.LittleEndian.AppendUint32(b, gid)
	return b
}

// msDosTime converts t to the MS-DOS date and time in t's location, as
// Info-ZIP does with local time. Times before 1980 are clamped to 1980.
func msDosTime(t time.Time) (date, clock uint16) {
	if t.Year() < 1980 {
		t = time.Date(1980, 1, 1, 0, 0, 0, 0, t.Location())
	}
	date = uint16(t.Day() + int(t.Month())<<5 + (t.Year()-1980)<<9)
	clock = uint16(t.Second()/2 + t.Minute()<<5 + t.Hour()<<11)
	return date, clock
}

// owner is a uid and gid read from a member's extra fields.
type owner struct {
	uid, gid uint32
	ok       bool
}

// extraFields are the parts of a member's extra data that restore uses.
type extraFields struct {
	owner owner
	// pkwareLinkData is set when the PKWARE Unix field carries link or
	// device data, which is how that format marks hard links and devices.
	pkwareLinkData bool
}

// parseExtra reads the Unix extra fields. A malformed field ends the scan
// and the rest is ignored, as unzip does.
func parseExtra(extra []byte) extraFields {
	var f extraFields
	for len(extra) >= 4 {
		id := binary.LittleEndian.Uint16(extra)
		size := int(binary.LittleEndian.Uint16(extra[2:]))
		extra = extra[4:]
		if size > len(extra) {
			break
		}
		data := extra[:size]
		extra = extra[size:]

		switch id {
		case extraUnixOwner:
			if o, ok := parseUnixOwner(data); ok && !f.owner.ok {
				f.owner = o
			}
		case extraUnixOld:
			if size >= 12 && !f.owner.ok {
				f.owner = owner{
					uid: uint32(binary.LittleEndian.Uint16(data[8:])),
					gid: uint32(binary.LittleEndian.Uint16(data[10:])),
					ok:  true,
				}
			}
		case extraPKWAREUnix:
			if size > 12 {
				f.pkwareLinkData = true
			}
		}
	}
	return f
}

// parseUnixOwner decodes a "ux" field: version 1, then a size byte and a
// little-endian value for the uid and again for the gid.
func parseUnixOwner(data []byte) (owner, bool) {
	if len(data) < 1 || data[0] != 1 {
		return owner{}, false
	}
	data = data[1:]
	var ids [2]uint32
	for i := range ids {
		if len(data) < 1 {
			return owner{}, false
		}
		n := int(data[0])
		data = data[1:]
		if n > len(data) || n > 4 {
			return owner{}, false
		}
		var v uint32
		for j := n - 1; j >= 0; j-- {
			v = v<<8 | uint32(data[j])
		}
		ids[i] = v
		data = data[n:]
	}
	return owner{uid: ids[0], gid: ids[1], ok: true}, true
}

// modeType returns the fs.FileMode type bits of a member type.
func modeType(t MemberType) fs.FileMode {
	switch t {
	case TypeDir:
		return fs.ModeDir
	case TypeSymlink:
		return fs.ModeSymlink
	}
	return 0
}

// memberType classifies a member from its Unix mode bits and name. Members
// made on systems other than Unix carry no type bits: a trailing slash then
// marks a directory and anything else is a regular file.
func memberType(h *zip.FileHeader) (MemberType, fs.FileMode, bool) {
	isDirName := len(h.Name) > 0 && h.Name[len(h.Name)-1] == '/'
	unixMode := h.ExternalAttrs >> 16
	creator := h.CreatorVersion >> 8
	if (creator != creatorUnix && creator != creatorMacOSX) || unixMode&unixTypeMask == 0 {
		if isDirName {
			return TypeDir, 0o755, true
		}
		return TypeFile, 0o644, true
	}

	perm := fs.FileMode(unixMode & 0o777)
	switch unixMode & unixTypeMask {
	case unixTypeRegular:
		return TypeFile, perm, !isDirName
	case unixTypeDir:
		return TypeDir, perm, isDirName
	case unixTypeSymlink:
		return TypeSymlink, perm, !isDirName
	}
	return "", 0, false
}
