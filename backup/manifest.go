package backup

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// File names inside a backup set directory.
const (
	ArchiveName  = "bootstrap.zip"
	ManifestName = "manifest.json"
)

// manifestFormat is the version of the manifest layout. Readers reject a
// manifest of a newer format instead of misreading it.
const manifestFormat = 1

// MemberType is the kind of a zip member.
type MemberType string

// Member types. Restore and the validator accept no others.
const (
	TypeFile    MemberType = "file"
	TypeDir     MemberType = "dir"
	TypeSymlink MemberType = "symlink"
)

// Mode is a permission mode, written to JSON as an octal string ("0640").
type Mode uint32

// MarshalText formats m as four octal digits.
func (m Mode) MarshalText() ([]byte, error) {
	return []byte(fmt.Sprintf("%04o", uint32(m))), nil
}

// UnmarshalText parses an octal mode such as "0640".
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := strconv.ParseUint(string(b), 8, 32)
	if err != nil || v > 0o7777 {
		return fmt.Errorf("invalid mode %q: expected octal digits such as 0640", b)
	}
	*m = Mode(v)
	return nil
}

// Manifest describes a backup set: where and by what it was made, and every
// file of the set with its size and SHA-256.
type Manifest struct {
	// Format is the manifest layout version.
	Format int `json:"format"`
	// Name is the set directory's base name. Verify rejects a directory
	// whose name differs, so an interrupted run's temporary directory is
	// never taken for a set.
	Name        string    `json:"name"`
	Created     time.Time `json:"created"`
	ToolVersion string    `json:"tool_version"`
	Hostname    string    `json:"hostname"`
	Topology    Topology  `json:"topology"`
	// Packages maps installed PAS package names to their versions. It is
	// empty when the versions were not known at backup time.
	Packages map[string]string `json:"packages,omitempty"`
	// Warnings lists what the backup could not include, such as a missing
	// optional path.
	Warnings []string `json:"warnings,omitempty"`

	Archive FileRecord `json:"archive"`
	// RunningConfig is the management component's running configuration,
	// exported into the set. Nil when no export was made.
	RunningConfig *FileRecord `json:"running_config,omitempty"`

	Members []Member `json:"members"`
}

// FileRecord identifies a file of the set by name, size and SHA-256.
type FileRecord struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Member is one member of bootstrap.zip as it was on the node.
type Member struct {
	// Name is the zip member name, such as "opt/balasys/etc/mgmt/"
	// (directories end with a slash).
	Name    string     `json:"name"`
	Type    MemberType `json:"type"`
	Mode    Mode       `json:"mode"`
	UID     uint32     `json:"uid"`
	GID     uint32     `json:"gid"`
	ModTime time.Time  `json:"mtime"`
	// Size and SHA256 cover the member's data: the file contents, or the
	// link target text for a symlink. Directories have neither.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
	// Target is a symlink's target text, stored unchanged.
	Target string `json:"target,omitempty"`
}

// ReadManifest reads and checks the manifest of the set in setDir. It does
// not check the set's files: Verify does.
func ReadManifest(setDir string) (*Manifest, error) {
	path := filepath.Join(setDir, ManifestName)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w: %w", ErrNotSet, err)
	}
	return parseManifest(path, data)
}

func parseManifest(path string, data []byte) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("reading manifest %s: %w: %w", path, ErrNotSet, err)
	}
	if m.Format != manifestFormat {
		return nil, fmt.Errorf("reading manifest %s: %w: format %d, this tool reads format %d",
			path, ErrNotSet, m.Format, manifestFormat)
	}
	if m.Archive.Name != ArchiveName {
		return nil, fmt.Errorf("reading manifest %s: %w: archive %q, expected %q",
			path, ErrNotSet, m.Archive.Name, ArchiveName)
	}
	return &m, nil
}

// member returns the manifest entry for a zip member name, or nil.
func (m *Manifest) member(name string) *Member {
	for i := range m.Members {
		if m.Members[i].Name == name {
			return &m.Members[i]
		}
	}
	return nil
}
