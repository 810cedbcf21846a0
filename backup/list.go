package backup

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// SetInfo describes a backup set found by List.
type SetInfo struct {
	Name        string            `json:"name"`
	Dir         string            `json:"dir"`
	Created     time.Time         `json:"created"`
	Topology    Topology          `json:"topology"`
	ToolVersion string            `json:"tool_version"`
	Hostname    string            `json:"hostname"`
	Packages    map[string]string `json:"packages,omitempty"`
	// HasRunningConfig is set when the set holds a running-configuration
	// export.
	HasRunningConfig bool `json:"has_running_config"`
	// Err is set when the directory's manifest cannot be read. The other
	// fields except Name and Dir are then empty.
	Err error `json:"-"`
}

// List returns the backup sets in dir, oldest first, read from their
// manifests without checking their files (Verify does). Temporary
// directories of interrupted runs are not listed. A set whose manifest
// is unreadable is listed with Err set.
func List(dir string) ([]SetInfo, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing backup sets: %w", err)
	}
	var sets []SetInfo
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), setPrefix) {
			continue
		}
		setDir := filepath.Join(dir, e.Name())
		info := SetInfo{Name: e.Name(), Dir: setDir}
		m, err := ReadManifest(setDir)
		switch {
		case err != nil:
			info.Err = err
		case m.Name != e.Name():
			info.Err = fmt.Errorf("%w: the manifest names the set %q", ErrNotSet, m.Name)
		default:
			info.Created = m.Created
			info.Topology = m.Topology
			info.ToolVersion = m.ToolVersion
			info.Hostname = m.Hostname
			info.Packages = m.Packages
			info.HasRunningConfig = m.RunningConfig != nil
		}
		sets = append(sets, info)
	}
	slices.SortStableFunc(sets, func(a, b SetInfo) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return sets, nil
}
