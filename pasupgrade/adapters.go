package pasupgrade

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/client"

	"github.com/pasops/pasupgrade/backup"
	"github.com/pasops/pasupgrade/configconv"
	"github.com/pasops/pasupgrade/deb"
	"github.com/pasops/pasupgrade/mgmtapi"
)

// DebPackages is the PackageManager of the deb package.
type DebPackages struct {
	Manager *deb.Manager
	// Finder checks the package sets. Sharing one across the calls of a
	// run, as the CLI does, spares the install step a second read of the
	// files the preflight check read. Nil reads them every time.
	Finder *deb.SetFinder
}

// Installed returns the dpkg status of each installed package of names.
func (d DebPackages) Installed(ctx context.Context, names []string) (map[string]PackageStatus, error) {
	statuses, err := d.Manager.Installed(ctx, names...)
	if err != nil {
		return nil, err
	}
	out := make(map[string]PackageStatus, len(statuses))
	for _, st := range statuses {
		if !st.Present() {
			continue
		}
		status := st.Detail
		if st.Installed() {
			status = "installed"
		}
		out[st.Name] = PackageStatus{Version: st.Version, Status: status}
	}
	return out, nil
}

// CheckSet finds the set of names at version in dir with d.Finder.
func (d DebPackages) CheckSet(_ context.Context, dir string, names []string, version string) (map[string]string, error) {
	finder := d.Finder
	if finder == nil {
		finder = new(deb.SetFinder)
	}
	set, err := finder.FindSet([]string{dir}, version)
	if err != nil {
		return nil, err
	}
	files := make(map[string]string, len(names))
	for i, name := range set.Names() {
		files[name] = set.Paths()[i]
	}
	for _, name := range names {
		if files[name] == "" {
			return nil, fmt.Errorf("no %s %s package in %s", name, version, dir)
		}
	}
	return files, nil
}

// Install installs req.Files in one dpkg transaction. The overwrite-config
// and admin password values of req.Answers become deb.InstallOptions. Any
// other question is rejected, because the deb package preseeds only those.
func (d DebPackages) Install(ctx context.Context, req InstallRequest) error {
	set, err := installSet(req)
	if err != nil {
		return err
	}
	var opts deb.InstallOptions
	for _, a := range req.Answers {
		switch {
		case strings.HasSuffix(a.Question, "/"+deb.OverwriteConfigQuestion):
			opts.OverwriteConfig = a.Value == "true"
		case a.Secret:
			opts.AdminPassword = a.Value
		default:
			return fmt.Errorf("debconf question %s cannot be preseeded by the deb package", a.Question)
		}
	}
	_, err = d.Manager.Install(ctx, set, opts)
	return err
}

// installSet checks the full set of req.Version in the directories of
// req.Files, as deb.FindSet requires, and keeps the packages of req.Files:
// the management node of a multi node setup may carry only some of them.
func installSet(req InstallRequest) (deb.Set, error) {
	var dirs []string
	for _, f := range req.Files {
		if dir := filepath.Dir(f); !slices.Contains(dirs, dir) {
			dirs = append(dirs, dir)
		}
	}
	set, err := deb.FindSet(dirs, req.Version)
	if err != nil {
		return set, err
	}
	wanted := make([]string, len(req.Files))
	for i, f := range req.Files {
		wanted[i] = filepath.Clean(f)
	}
	var kept []deb.Package
	for _, p := range set.Packages {
		if slices.Contains(wanted, filepath.Clean(p.Path)) {
			kept = append(kept, p)
		}
	}
	if len(kept) != len(req.Files) {
		return set, fmt.Errorf("the %s set in %s does not contain every file of %v", req.Version, strings.Join(dirs, ", "), req.Files)
	}
	set.Packages = kept
	return set, nil
}

// Purge removes the packages with their configuration files.
func (d DebPackages) Purge(ctx context.Context, names []string) error {
	_, err := d.Manager.Remove(ctx, names, true)
	return err
}

// MgmtAPI is the ManagementAPI of the mgmtapi package. It logs in with User
// and Password before the first call and again after ErrUnauthorized.
type MgmtAPI struct {
	Client   *mgmtapi.Client
	User     string
	Password string
}

// Login logs in as the admin user.
func (m MgmtAPI) Login(ctx context.Context) error {
	user := m.User
	if user == "" {
		user = "admin"
	}
	err := m.Client.Login(ctx, user, m.Password)
	if errors.Is(err, mgmtapi.ErrUnauthorized) {
		return fmt.Errorf("%w as %q: %w", ErrLoginRejected, user, err)
	}
	return err
}

// Status returns every node's components.
func (m MgmtAPI) Status(ctx context.Context) (Status, error) {
	var st mgmtapi.Status
	err := m.withLogin(ctx, func() (err error) {
		st, err = m.Client.Status(ctx)
		return err
	})
	if err != nil {
		return Status{}, err
	}
	out := Status{Nodes: make([]NodeStatus, len(st.Nodes))}
	for i, n := range st.Nodes {
		node := NodeStatus{Name: n.Name, Role: n.Role}
		for _, c := range n.Components {
			node.Components = append(node.Components, ComponentStatus{
				Name: c.Name, Version: c.Version, State: c.State, ReloadSuccess: c.ReloadSuccess,
			})
		}
		out.Nodes[i] = node
	}
	return out, nil
}

// ExportRunning streams the running configuration to w.
func (m MgmtAPI) ExportRunning(ctx context.Context, w io.Writer) (string, error) {
	var export mgmtapi.Export
	err := m.withLogin(ctx, func() (err error) {
		export, err = m.Client.ExportConfig(ctx, mgmtapi.ExportKindRunning, w)
		return err
	})
	return export.Name, err
}

// Import uploads the configuration file at path.
func (m MgmtAPI) Import(ctx context.Context, path string) error {
	return m.withLogin(ctx, func() error {
		_, err := m.Client.ImportConfigFile(ctx, path)
		return err
	})
}

// Apply starts a config apply and waits at most timeout for it. Only the
// start is repeated after a new login: once an apply runs, a rejected read
// of its state must not start a second one.
func (m MgmtAPI) Apply(ctx context.Context, timeout time.Duration) error {
	var id string
	err := m.withLogin(ctx, func() (err error) {
		id, err = m.Client.ApplyConfig(ctx)
		return err
	})
	if err != nil {
		return err
	}
	_, err = m.Client.WaitApplied(ctx, id, timeout)
	return err
}

// withLogin runs call, and logs in and runs it again when the client had
// no session or the server rejected its token. Only the mgmtapi sentinels
// count: a Docker registry's "not logged in", which a node's reload message
// may quote, is no management session, and a config apply must not run
// twice for it.
func (m MgmtAPI) withLogin(ctx context.Context, call func() error) error {
	err := call()
	if !errors.Is(err, mgmtapi.ErrUnauthorized) && !errors.Is(err, mgmtapi.ErrNotLoggedIn) {
		return err
	}
	if err := m.Login(ctx); err != nil {
		return fmt.Errorf("logging in to the management API: %w", err)
	}
	return call()
}

// ConfigconvTool is the UpgradeTool of the configconv package: pre-upgrade
// and convert-config run from the tool's image as the pas user's uid and
// gid, post-upgrade runs the management package's command as pas.
type ConfigconvTool struct {
	// Docker is the engine; Image the tool's image (empty for
	// configconv.DefaultImage).
	Docker *client.Client
	Image  string
	// Transcript receives each container run, redacted; nil for none.
	Transcript io.Writer
	Host       *configconv.HostRunner
	// Terminal connects convert-config to the operator; nil without one.
	Terminal *configconv.Terminal
	// Answers holds answer lines for convert-config's prompts; nil for
	// none.
	Answers io.Reader
	// Stdout and Stderr receive the tool's output.
	Stdout, Stderr io.Writer
	Logger         *slog.Logger
}

// ImagePresent reports whether the engine has the tool's image.
func (c ConfigconvTool) ImagePresent(ctx context.Context) (bool, error) {
	return c.runner("").HasImage(ctx)
}

// PullImage pulls the tool's image with the stored credentials.
func (c ConfigconvTool) PullImage(ctx context.Context) error {
	return c.runner("").EnsureImage(ctx)
}

func (c ConfigconvTool) runner(id string) *configconv.DockerRunner {
	return &configconv.DockerRunner{Client: c.Docker, Image: c.Image, User: id,
		Transcript: c.Transcript, Logger: c.Logger}
}

func (c ConfigconvTool) tool(req ToolRequest, run configconv.ToolRunner) *configconv.Tool {
	t := &configconv.Tool{
		Runner: run, WorkDir: req.WorkDir, BaseURL: req.BaseURL, CACert: req.CACert,
		AdminUser: req.AdminUser, Password: req.Password, Answers: c.Answers,
		Stdout: c.Stdout, Stderr: c.Stderr, Logger: c.Logger,
	}
	if req.Interactive {
		t.Terminal = c.Terminal
	}
	return t
}

// dockerAs returns the Docker runner set to run as user's uid and gid.
func (c ConfigconvTool) dockerAs(user string) (*configconv.DockerRunner, error) {
	id, err := configconv.LookupUserID(user)
	if err != nil {
		return nil, fmt.Errorf("looking up the %s user for the tool's container: %w", user, err)
	}
	return c.runner(id), nil
}

// PreUpgrade runs pre-upgrade from the image.
func (c ConfigconvTool) PreUpgrade(ctx context.Context, req ToolRequest) error {
	d, err := c.dockerAs(req.User)
	if err != nil {
		return err
	}
	_, err = c.tool(req, d).PreUpgrade(ctx)
	return err
}

// ConvertConfig runs convert-config from the image.
func (c ConfigconvTool) ConvertConfig(ctx context.Context, req ToolRequest) error {
	d, err := c.dockerAs(req.User)
	if err != nil {
		return err
	}
	_, err = c.tool(req, d).ConvertConfig(ctx)
	return err
}

// PostUpgrade runs pas-mgmt-upgrade-config post-upgrade as req.User.
func (c ConfigconvTool) PostUpgrade(ctx context.Context, req ToolRequest, timeout time.Duration) error {
	h := *c.Host
	h.User = req.User
	_, err := c.tool(req, &h).PostUpgrade(ctx, timeout)
	return err
}

// OSFiles is the FileSystem of this machine, with every path resolved under
// Root ("" or "/" for none).
type OSFiles struct {
	Root string
}

func (o OSFiles) path(name string) string { return filepath.Join(o.Root, name) }

// ReadFile reads the file.
func (o OSFiles) ReadFile(_ context.Context, name string) ([]byte, error) {
	return os.ReadFile(o.path(name))
}

// Stat returns the file's information.
func (o OSFiles) Stat(_ context.Context, name string) (fs.FileInfo, error) {
	return os.Stat(o.path(name))
}

// WriteFile replaces the existing file atomically, keeping its mode and
// owner, then gives it to owner when one is named.
func (o OSFiles) WriteFile(_ context.Context, name string, data []byte, owner string) error {
	path := o.path(name)
	if err := configconv.WriteFileAtomic(path, data); err != nil {
		return err
	}
	if owner == "" {
		return nil
	}
	uid, gid, err := lookupIDs(owner)
	if err != nil {
		return err
	}
	return os.Lchown(path, uid, gid)
}

func lookupIDs(name string) (int, int, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, fmt.Errorf("looking up user %q: %w", name, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return 0, 0, fmt.Errorf("user %q has a non-numeric uid %q", name, u.Uid)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return 0, 0, fmt.Errorf("user %q has a non-numeric gid %q", name, u.Gid)
	}
	return uid, gid, nil
}

// BackupSets is the BackupStore of the backup package.
type BackupSets struct {
	// Root is the directory PAS paths are resolved under ("" for "/").
	Root        string
	ToolVersion string
	Logger      *slog.Logger
}

// exporterFunc adapts a function to backup.Exporter.
type exporterFunc func(ctx context.Context, w io.Writer) (string, error)

func (f exporterFunc) ExportConfig(ctx context.Context, w io.Writer) (string, error) {
	return f(ctx, w)
}

// Create writes a new backup set into req.Dir.
func (b BackupSets) Create(ctx context.Context, req BackupRequest) (string, error) {
	topology := backup.TopologySingle
	if req.Multi {
		topology = backup.TopologyMulti
	}
	opts := backup.Options{Root: b.Root, Dir: req.Dir, Topology: topology,
		ToolVersion: b.ToolVersion, Logger: b.Logger}
	if req.ExportRunning != nil {
		opts.RunningConfig = exporterFunc(req.ExportRunning)
	}
	set, err := backup.Create(ctx, opts)
	if err != nil {
		return "", err
	}
	return set.Dir, nil
}

// Verify checks the set against its manifest.
func (b BackupSets) Verify(ctx context.Context, dir string) error {
	return backup.Verify(ctx, setDir(dir))
}

// ReadBootstrapFile returns the content of one file of the set's zip, such
// as "/opt/balasys/.ssh/known_hosts".
func (b BackupSets) ReadBootstrapFile(_ context.Context, dir, name string) ([]byte, error) {
	archive := filepath.Join(setDir(dir), backup.ArchiveName)
	zr, err := zip.OpenReader(archive)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", archive, err)
	}
	defer zr.Close()
	member := strings.TrimPrefix(name, "/")
	f, err := zr.Open(member)
	if err != nil {
		return nil, fmt.Errorf("reading %s from %s: %w", member, archive, err)
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxBootstrapFileRead))
}

// maxBootstrapFileRead bounds what ReadBootstrapFile reads: the key,
// known_hosts and inventory it is used for are small.
const maxBootstrapFileRead = 16 << 20

// RunningConfig returns the path of the set's running configuration export.
// When the manifest cannot be read it returns a path that does not exist,
// so the upload fails naming it.
func (b BackupSets) RunningConfig(dir string) string {
	d := setDir(dir)
	m, err := backup.ReadManifest(d)
	if err != nil || m.RunningConfig == nil {
		return filepath.Join(d, "no-running-config-in-manifest")
	}
	return filepath.Join(d, m.RunningConfig.Name)
}

// RestoreBootstrap extracts the set's zip under Root with backup.Restore,
// which checks every member against the manifest before writing and, as
// root, gives each file the owner recorded in the zip. The pas user was
// removed and created again since the backup, so it may have a new uid and
// gid: files that belonged to the old pas user go to owner, as extracting
// them as that user (the guide's "unzip" as pas) would. Every member is
// written, not only the newer ones, so the files are as they were at
// backup time.
func (b BackupSets) RestoreBootstrap(ctx context.Context, dir, owner string) error {
	d := setDir(dir)
	m, err := backup.ReadManifest(d)
	if err != nil {
		return err
	}
	root := b.Root
	if root == "" {
		root = "/"
	}
	uid, gid, err := lookupIDs(owner)
	if err != nil {
		return err
	}
	_, err = backup.Restore(ctx, filepath.Join(d, backup.ArchiveName), backup.RestoreOptions{
		Root: root, Manifest: m, Logger: b.Logger, MapOwner: ownerMap(m.Members, uint32(uid), uint32(gid)),
	})
	return err
}

// pasTreeMember is the member whose recorded owner is taken for the pas
// user's at backup time: the pas home's etc directory.
const pasTreeMember = "opt/balasys/etc/"

// ownerMap returns the owner mapping that gives the ids recorded for
// pasTreeMember to uid and gid, and keeps every other id, such as root's.
func ownerMap(members []backup.Member, uid, gid uint32) func(uint32, uint32) (uint32, uint32) {
	i := slices.IndexFunc(members, func(m backup.Member) bool { return m.Name == pasTreeMember })
	if i < 0 || members[i].UID == 0 {
		return nil
	}
	oldUID, oldGID := members[i].UID, members[i].GID
	return func(u, g uint32) (uint32, uint32) {
		if u == oldUID {
			u = uid
		}
		if g == oldGID {
			g = gid
		}
		return u, g
	}
}

// Copy copies the set's files to dest, which must not exist, and verifies
// the copy. The set directory's base name is part of its manifest, so the
// copy goes into a directory of that name below dest.
func (b BackupSets) Copy(ctx context.Context, dir, dest string) error {
	if _, err := os.Lstat(dest); err == nil {
		return fmt.Errorf("copying the backup set: %s already exists", dest)
	}
	target := filepath.Join(dest, filepath.Base(dir))
	if err := os.MkdirAll(target, 0o700); err != nil {
		return fmt.Errorf("copying the backup set: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("copying the backup set: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			return fmt.Errorf("copying the backup set: %s is not a regular file", filepath.Join(dir, e.Name()))
		}
		if err := copyFile(filepath.Join(dir, e.Name()), filepath.Join(target, e.Name())); err != nil {
			return err
		}
	}
	return backup.Verify(ctx, target)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("copying to %s: %w", dst, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	return out.Close()
}

// setDir returns the directory holding the manifest: dir itself, or the
// set directory Copy placed inside it.
func setDir(dir string) string {
	if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err == nil {
		return dir
	}
	entries, err := os.ReadDir(dir)
	if err == nil && len(entries) == 1 && entries[0].IsDir() {
		return filepath.Join(dir, entries[0].Name())
	}
	return dir
}
