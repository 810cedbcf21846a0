package pasupgrade

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"time"

	"github.com/pasops/pasupgrade/runner"
)

// Deps are the parts of a PAS node that plans drive. Every field is an
// interface so that tests use the fakes in pasupgradetest, dry runs use
// recording wrappers (see DryRunDeps), and the lab runs the same plans inside
// a container. The CLI builds them from the backup, mgmtapi, deb and
// configconv packages (see the adapters in this package).
type Deps struct {
	// Runner runs commands on the management node: the pas-* tools, find,
	// unzip, userdel and the checks' queries.
	Runner runner.Runner
	// Packages installs, queries and purges Debian packages.
	Packages PackageManager
	// Tool runs the vendor's upgrade tool.
	Tool UpgradeTool
	// API is the management component's REST API, logged in as the admin.
	API ManagementAPI
	// Services starts and stops the local systemd units.
	Services ServiceManager
	// Remote reaches the remote core nodes.
	Remote RemoteNodes
	// Files reads and writes files on the management node.
	Files FileSystem
	// Editor changes configuration file contents in memory.
	Editor ConfigEditor
	// Backup creates, verifies and restores backup sets.
	Backup BackupStore
	// Clock stamps the journal and measures the downtime.
	Clock Clock
}

// PackageStatus is dpkg's record of one installed package.
type PackageStatus struct {
	// Version is the installed version, such as "4.8.0".
	Version string
	// Status is dpkg's status word: "installed", "half-configured",
	// "unpacked" and so on.
	Status string
}

// OK reports whether the package is fully installed.
func (s PackageStatus) OK() bool { return s.Status == "installed" }

// DebconfAnswer is one preseeded installer answer.
type DebconfAnswer struct {
	Package, Question, Type, Value string
	// Secret values go to debconf on stdin and are cleared after the
	// install. They never appear in argv, logs or errors.
	Secret bool
}

// InstallRequest is an installation of .deb files without questions.
// Implementations answer dpkg's conffile prompts with "keep the installed
// version" (also when repairing a half-configured state with
// dpkg --configure -a), preseed Answers with debconf-set-selections, and
// give dpkg no terminal so that a missed question fails instead of hanging.
type InstallRequest struct {
	// Files are the .deb files, one per package.
	Files []string
	// Version is the version every file must have.
	Version string
	// Answers are the debconf answers to preseed.
	Answers []DebconfAnswer
}

// PackageManager installs, queries and purges the PAS Debian packages on the
// management node.
type PackageManager interface {
	// Installed returns the status of each named package that is installed.
	// A package that is not installed is missing from the map.
	Installed(ctx context.Context, names []string) (map[string]PackageStatus, error)
	// CheckSet verifies that dir holds exactly one .deb of each name at
	// version, and returns their paths by package name. Every problem is
	// named in the one error it returns.
	CheckSet(ctx context.Context, dir string, names []string, version string) (map[string]string, error)
	// Install installs req.Files with req.Answers preseeded. It is safe
	// to repeat after an interrupted install.
	Install(ctx context.Context, req InstallRequest) error
	// Purge removes the installed packages among names together with their
	// configuration files. Names that are not installed are skipped.
	Purge(ctx context.Context, names []string) error
}

// ToolRequest is the common part of the upgrade tool's subcommands.
type ToolRequest struct {
	// WorkDir is the working directory, mounted at /upgrade in the
	// tool's container.
	WorkDir string
	// User is the account the tool runs as: its uid and gid for the
	// container, or the account itself on the host.
	User string
	// BaseURL is --frontend-baseurl; empty means the tool's default.
	BaseURL string
	// CACert is --cacert, a PEM bundle inside WorkDir; empty for none.
	CACert string
	// AdminUser is --user; empty means "admin".
	AdminUser string
	// Password is the admin password, passed on stdin only.
	Password string
	// Interactive connects the tool to the operator's terminal, so that
	// convert-config can ask its questions.
	Interactive bool
}

// UpgradeTool runs the vendor's upgrade tool. pre-upgrade and
// convert-config run from the tool's image; post-upgrade runs the copy the
// 4.9.0 management package installs (pas-mgmt-upgrade-config).
type UpgradeTool interface {
	// ImagePresent reports whether the tool's image is in the Docker
	// engine. An error means the engine cannot be reached.
	ImagePresent(ctx context.Context) (bool, error)
	// PullImage pulls the tool's image with the stored registry credentials.
	PullImage(ctx context.Context) error
	// PreUpgrade exports the running configuration into WorkDir.
	PreUpgrade(ctx context.Context, req ToolRequest) error
	// ConvertConfig converts the export into the new version's format.
	ConvertConfig(ctx context.Context, req ToolRequest) error
	// PostUpgrade uploads and applies the converted configuration, waiting
	// at most applyTimeout for the apply to finish.
	PostUpgrade(ctx context.Context, req ToolRequest, applyTimeout time.Duration) error
}

// Reload success values of a component in the management API's status.
const (
	ReloadOK     = "OK"
	ReloadFailed = "FAILED"
)

// ComponentStatus is one component of a node in the management API's status.
type ComponentStatus struct {
	Name          string `json:"name"`
	Version       string `json:"version"`
	State         string `json:"state"`
	ReloadSuccess string `json:"reload_success,omitempty"`
}

// NodeStatus is one node in the management API's status.
type NodeStatus struct {
	Name string `json:"name"`
	// Role is "mgmt" for the management node and "core" for a remote core
	// node. It is empty when the API reports no role.
	Role       string            `json:"role,omitempty"`
	Components []ComponentStatus `json:"components"`
}

// Status is the management API's status page: every node and component.
type Status struct {
	Nodes []NodeStatus `json:"nodes"`
}

// ErrLoginRejected is wrapped by ManagementAPI errors when the API rejects
// the admin user's credentials, so that callers stop retrying.
var ErrLoginRejected = errors.New("pasupgrade: the management API rejected the admin login")

// ManagementAPI is the management component's REST API, logged in as the
// admin user.
type ManagementAPI interface {
	// Login checks that the API is reachable and accepts the admin
	// password.
	Login(ctx context.Context) error
	// Status returns every node's components and their reload success.
	Status(ctx context.Context) (Status, error)
	// ExportRunning streams the running configuration to w and returns
	// the file name the server gave it.
	ExportRunning(ctx context.Context, w io.Writer) (string, error)
	// Import uploads the configuration file at path as pending changes.
	Import(ctx context.Context, path string) error
	// Apply starts a config apply, even with no pending changes, and waits
	// at most timeout for it to finish on every node.
	Apply(ctx context.Context, timeout time.Duration) error
}

// ServiceManager controls the local systemd units.
type ServiceManager interface {
	Start(ctx context.Context, unit string) error
	Stop(ctx context.Context, unit string) error
	Restart(ctx context.Context, unit string) error
	// IsActive reports whether the unit is running.
	IsActive(ctx context.Context, unit string) (bool, error)
}

// RemoteAccess is the SSH login to remote nodes: the pas user's key and
// known_hosts, read from the node or from a backup set.
type RemoteAccess struct {
	User       string
	Key        []byte
	KnownHosts []byte
}

// RemoteNodes reaches the remote core nodes.
type RemoteNodes interface {
	// Deploy runs pas-mgmt-deploy-core with args as the pas user on the
	// management node; it reaches every remote node itself.
	Deploy(ctx context.Context, args ...string) error
	// Run runs cmd on host over SSH with access. cmd.User is the remote
	// account commands run as through sudo; empty means access.User.
	Run(ctx context.Context, access RemoteAccess, host string, cmd runner.Command) (runner.Result, error)
}

// FileSystem reads and writes files on the management node. Paths are the
// node's absolute paths; implementations resolve them under their root.
type FileSystem interface {
	ReadFile(ctx context.Context, path string) ([]byte, error)
	// WriteFile replaces path atomically with data, keeping its mode, and
	// makes owner ("" for unchanged, else a user name) own it.
	WriteFile(ctx context.Context, path string, data []byte, owner string) error
	Stat(ctx context.Context, path string) (fs.FileInfo, error)
}

// ConfigEditor changes configuration file contents, keeping everything it
// was not asked to change byte for byte.
type ConfigEditor interface {
	// SetEnv sets key to value in an env-style file such as
	// docker-compose.conf, keeping "export " and quotes, and appends the key
	// when it is missing.
	SetEnv(data []byte, key, value string) ([]byte, error)
	// SetYAML sets the scalar at the key path to value in a YAML document,
	// keeping comments and layout.
	SetYAML(data []byte, keyPath []string, value string) ([]byte, error)
}

// BackupRequest is the content of a new backup set.
type BackupRequest struct {
	// Dir is the parent directory; the set is a new directory inside it.
	Dir string
	// Multi adds /opt/balasys/.ssh to the bootstrap zip.
	Multi bool
	// ExportRunning streams the running configuration into the set and
	// returns its file name; the set records its digest like the zip's.
	ExportRunning func(ctx context.Context, w io.Writer) (string, error)
}

// BackupStore creates, verifies and restores backup sets: the bootstrap zip
// (guide 2.1), the running configuration export (guide 2.2) and a manifest
// with the SHA-256 of each.
type BackupStore interface {
	// Create writes a new set and returns its directory.
	Create(ctx context.Context, req BackupRequest) (string, error)
	// Verify checks every file of the set against its manifest.
	Verify(ctx context.Context, dir string) error
	// Copy copies the set at dir to dest, which must not exist, and
	// verifies the copy.
	Copy(ctx context.Context, dir, dest string) error
	// ReadBootstrapFile returns one file of the bootstrap zip, such as
	// "/opt/balasys/.ssh/id_ed25519".
	ReadBootstrapFile(ctx context.Context, dir, name string) ([]byte, error)
	// RunningConfig returns the path of the set's running configuration.
	RunningConfig(dir string) string
	// RestoreBootstrap extracts the bootstrap zip over "/" as owner would
	// with unzip -u -o -d /, so the files belong to owner.
	RestoreBootstrap(ctx context.Context, dir, owner string) error
}

// Clock is the source of the current time.
type Clock interface {
	Now() time.Time
}

// SystemClock is the Clock of the machine.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }
