package backup

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DefaultDir is the default backup directory. It lies outside /home/pas
// and /opt/balasys because the restore procedure deletes both.
const DefaultDir = "/var/backups/pasupgrade"

// setPrefix starts the name of every backup set directory.
const setPrefix = "pas-backup-"

// Exporter exports the management component's running configuration.
type Exporter interface {
	// ExportConfig writes the running configuration to w and returns the
	// file name to store it under, such as "pas-config-4.8.0.yaml".
	ExportConfig(ctx context.Context, w io.Writer) (name string, err error)
}

// Options configures Create.
type Options struct {
	// Root is the file system root that PAS paths such as
	// /opt/balasys/etc are resolved under. Empty means "/".
	Root string

	// Dir is the backup directory that receives the set directory. It is
	// a path on this machine, not resolved under Root. Empty means
	// DefaultDir under Root. Create rejects a directory inside
	// /opt/balasys or /home/pas, under Root or under "/".
	Dir string

	// Topology decides whether /opt/balasys/.ssh is backed up (multi).
	// Empty means single.
	Topology Topology

	// ToolVersion and Hostname are recorded in the manifest. An empty
	// Hostname means os.Hostname.
	ToolVersion string
	Hostname    string

	// Packages maps installed PAS package names to versions, when known.
	Packages map[string]string

	// RunningConfig exports the running configuration into the set.
	// Nil means no export.
	RunningConfig Exporter

	// Progress, when not nil, is called after each member is written,
	// from one goroutine at a time.
	Progress func(Progress)

	// Logger receives debug and warning records. Nil discards them.
	Logger *slog.Logger

	// Now returns the current time for the set name. Nil means time.Now.
	Now func() time.Time
}

// Progress reports how far a create or restore has come.
type Progress struct {
	// Op is "create" or "restore".
	Op string `json:"op"`
	// Member is the member just written.
	Member     string `json:"member"`
	Files      int    `json:"files"`
	TotalFiles int    `json:"total_files"`
	Bytes      int64  `json:"bytes"`
	TotalBytes int64  `json:"total_bytes"`
}

// Set is a backup set on disk.
type Set struct {
	// Dir is the set directory, such as
	// /var/backups/pasupgrade/pas-backup-20261204T152842Z.
	Dir      string
	Manifest *Manifest
}

// ArchivePath returns the path of the set's bootstrap zip.
func (s *Set) ArchivePath() string { return filepath.Join(s.Dir, ArchiveName) }

// Create writes a backup set: bootstrap.zip with the paths the upgrade
// guide lists for the topology, the running-configuration export when
// opts.RunningConfig is set, and manifest.json. The set is built in a
// temporary directory that is renamed into place only when complete, so
// a failed or killed run leaves no directory that Verify accepts.
func Create(ctx context.Context, opts Options) (*Set, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("opening root %s: %w", opts.Root, err)
	}
	defer root.Close()

	entries, warnings, err := collect(root, bootstrapPaths(opts.Topology))
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		opts.Logger.Warn("backup: " + w)
	}

	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating backup directory: %w", err)
	}
	created := opts.Now().UTC().Truncate(time.Second)
	name, err := freeSetName(opts.Dir, created)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(opts.Dir, "."+name+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("creating backup set directory: %w", err)
	}
	opts.Logger.Debug("backup: writing set", "dir", tmp, "members", len(entries))

	m := &Manifest{
		Format:      manifestFormat,
		Name:        name,
		Created:     created,
		ToolVersion: opts.ToolVersion,
		Hostname:    opts.Hostname,
		Topology:    opts.Topology,
		Packages:    opts.Packages,
		Warnings:    warnings,
	}
	if err := writeSet(ctx, root, tmp, entries, m, opts); err != nil {
		if rmErr := os.RemoveAll(tmp); rmErr != nil {
			opts.Logger.Warn("backup: removing incomplete set", "dir", tmp, "err", rmErr)
		}
		return nil, err
	}

	final := filepath.Join(opts.Dir, name)
	if err := os.Rename(tmp, final); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("moving backup set into place: %w", err)
	}
	if err := syncDir(opts.Dir); err != nil {
		return nil, fmt.Errorf("syncing backup directory %s: %w", opts.Dir, err)
	}
	return &Set{Dir: final, Manifest: m}, nil
}

func (o Options) withDefaults() (Options, error) {
	if o.Root == "" {
		o.Root = "/"
	}
	root, err := filepath.Abs(o.Root)
	if err != nil {
		return o, fmt.Errorf("invalid root %q: %w", o.Root, err)
	}
	o.Root = root

	if o.Dir == "" {
		o.Dir = filepath.Join(o.Root, DefaultDir)
	}
	if o.Dir, err = filepath.Abs(o.Dir); err != nil {
		return o, fmt.Errorf("invalid backup directory %q: %w", o.Dir, err)
	}
	if err := checkBackupDir(o.Root, o.Dir); err != nil {
		return o, err
	}

	if o.Topology == "" {
		o.Topology = TopologySingle
	}
	if _, err := ParseTopology(string(o.Topology)); err != nil {
		return o, err
	}

	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}

// checkBackupDir rejects a backup directory inside /opt/balasys or
// /home/pas, either under root or on this machine, after resolving the
// symbolic links of the part of dir that exists.
func checkBackupDir(root, dir string) error {
	resolved := resolveExisting(dir)
	for _, base := range []string{"/", root} {
		for _, deleted := range []string{"/opt/balasys", "/home/pas"} {
			tree := resolveExisting(filepath.Join(base, deleted))
			for _, d := range []string{dir, resolved} {
				if d == tree || strings.HasPrefix(d, tree+string(filepath.Separator)) {
					return fmt.Errorf("invalid backup directory %s: %w: %s is deleted when PAS is restored "+
						"(the pas user's home is removed); choose a directory outside it, such as %s",
						dir, ErrUnsafeBackupDir, tree, DefaultDir)
				}
			}
		}
	}
	return nil
}

// resolveExisting evaluates the symbolic links of the longest existing
// prefix of path and appends the rest unchanged.
func resolveExisting(path string) string {
	rest := ""
	for p := path; ; p = filepath.Dir(p) {
		if resolved, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(resolved, rest)
		}
		if p == filepath.Dir(p) {
			return path
		}
		rest = filepath.Join(filepath.Base(p), rest)
	}
}

// freeSetName returns pas-backup-<UTC time>, with a numeric suffix when a
// set of that second exists already.
func freeSetName(dir string, t time.Time) (string, error) {
	base := setPrefix + t.Format("20060102T150405Z")
	name := base
	for i := 2; i < 100; i++ {
		if _, err := os.Lstat(filepath.Join(dir, name)); errors.Is(err, fs.ErrNotExist) {
			return name, nil
		}
		name = fmt.Sprintf("%s-%d", base, i)
	}
	return "", fmt.Errorf("choosing a backup set name in %s: %s and 98 numbered variants exist", dir, base)
}

// writeSet writes the zip, the running-configuration export and the
// manifest into dir, each file fsynced, then fsyncs dir.
func writeSet(ctx context.Context, root *os.Root, dir string, entries []entry, m *Manifest, opts Options) error {
	var totalBytes int64
	for _, e := range entries {
		totalBytes += e.size
	}
	progress := Progress{Op: "create", TotalFiles: len(entries), TotalBytes: totalBytes}
	report := func(member string, n int64) {
		progress.Member = member
		progress.Files++
		progress.Bytes += n
		if opts.Progress != nil {
			opts.Progress(progress)
		}
	}

	archive, err := writeFile(dir, ArchiveName, func(w io.Writer) error {
		aw := newArchiveWriter(root, w, report)
		members, err := aw.write(ctx, entries)
		m.Members = members
		return err
	})
	if err != nil {
		return err
	}
	m.Archive = archive

	if opts.RunningConfig != nil {
		record, err := exportRunningConfig(ctx, dir, opts.RunningConfig)
		if err != nil {
			return err
		}
		m.RunningConfig = &record
	}

	if _, err := writeFile(dir, ManifestName, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(m)
	}); err != nil {
		return err
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// exportRunningConfig stores the exporter's output under the name it
// returns.
func exportRunningConfig(ctx context.Context, dir string, exp Exporter) (FileRecord, error) {
	const tmpName = "running-config.partial"
	var name string
	record, err := writeFile(dir, tmpName, func(w io.Writer) error {
		var err error
		name, err = exp.ExportConfig(ctx, w)
		return err
	})
	if err != nil {
		return FileRecord{}, fmt.Errorf("exporting the running configuration: %w", err)
	}
	if name == "" || name != filepath.Base(name) || name == "." || name == ".." ||
		name == ArchiveName || name == ManifestName || name == tmpName {
		return FileRecord{}, fmt.Errorf("exporting the running configuration: invalid file name %q "+
			"from the exporter: expected a plain file name such as pas-config-4.8.0.yaml", name)
	}
	if err := os.Rename(filepath.Join(dir, tmpName), filepath.Join(dir, name)); err != nil {
		return FileRecord{}, fmt.Errorf("storing the running configuration: %w", err)
	}
	record.Name = name
	return record, nil
}

// writeFile creates dir/name with mode 0600, lets write fill it through a
// buffer, and fsyncs it. It returns the file's size and SHA-256.
func writeFile(dir, name string, write func(io.Writer) error) (FileRecord, error) {
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return FileRecord{}, fmt.Errorf("creating %s: %w", path, err)
	}
	defer f.Close()

	digest := sha256.New()
	counter := &countingHash{h: digest}
	buf := bufio.NewWriterSize(io.MultiWriter(f, counter), 256<<10)
	if err := write(buf); err != nil {
		return FileRecord{}, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := buf.Flush(); err != nil {
		return FileRecord{}, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return FileRecord{}, fmt.Errorf("syncing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return FileRecord{}, fmt.Errorf("closing %s: %w", path, err)
	}
	return FileRecord{Name: name, Size: counter.n, SHA256: hex.EncodeToString(digest.Sum(nil))}, nil
}

type countingHash struct {
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
