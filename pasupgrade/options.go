package pasupgrade

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Topology is the shape of the installation.
type Topology string

// Topologies the guide describes.
const (
	// TopologySingle runs management, storage and core on one node
	// (guide section 3).
	TopologySingle Topology = "single"
	// TopologyMulti runs management and storage on the management node and
	// core (with its own storage) on remote nodes (guide section 4).
	TopologyMulti Topology = "multi"
)

// ErrInvalidOptions is wrapped by every error Options.Validate returns.
var ErrInvalidOptions = errors.New("pasupgrade: invalid options")

// Options are the choices a plan is built from. The zero value of every
// optional field is the guide's suggestion.
type Options struct {
	// Topology is single or multi node.
	Topology Topology `json:"topology" yaml:"topology"`
	// HA is set when the HA component runs (multi node only).
	HA bool `json:"ha,omitempty" yaml:"ha"`
	// CoreOnMgmt is set when core also runs on the management node
	// (multi node only).
	CoreOnMgmt bool `json:"core_on_mgmt,omitempty" yaml:"core-on-mgmt"`

	// WorkDir is the upgrade tool's working directory. It must be
	// writable by pas; the journal and lock are kept there too.
	WorkDir string `json:"work_dir" yaml:"work-dir"`
	// DebDir holds the .deb files to install: the To set for an upgrade,
	// the From set for a restore.
	DebDir string `json:"deb_dir" yaml:"deb-dir"`
	// BackupDir is the directory that receives an upgrade's backup set
	// (default DefaultBackupDir), or the set a restore restores.
	BackupDir string `json:"backup_dir" yaml:"backup-dir"`

	// BaseURL is the upgrade tool's --frontend-baseurl; empty means
	// http://localhost.
	BaseURL string `json:"base_url,omitempty" yaml:"base-url"`
	// CACert is a PEM CA bundle for the tool's --cacert. For an upgrade it
	// must lie in WorkDir, because the tool's container mounts nothing else.
	CACert string `json:"ca_cert,omitempty" yaml:"ca-cert"`
	// AdminUser is the management component's admin user; empty means
	// "admin".
	AdminUser string `json:"admin_user,omitempty" yaml:"admin-user"`
	// AdminPassword is the admin user's password. It is never written to
	// the journal, logs, argv or error text.
	AdminPassword string `json:"-" yaml:"-"`

	// KeepPasswordHash skips re-entering the admin password during the
	// install, so users.htpass keeps its {SHA} hash instead of bcrypt.
	KeepPasswordHash bool `json:"keep_password_hash,omitempty" yaml:"keep-password-hash"`
	// KeepPEMModes skips restricting storage certificates to mode 0600.
	KeepPEMModes bool `json:"keep_pem_modes,omitempty" yaml:"keep-pem-modes"`
	// ApplyTimeout is post-upgrade's --config-apply-timeout and the wait
	// for config applies; zero means the upgrade path's value.
	ApplyTimeout time.Duration `json:"apply_timeout,omitempty" yaml:"apply-timeout"`
	// Interactive lets convert-config ask the operator on the terminal.
	Interactive bool `json:"interactive,omitempty" yaml:"-"`

	// IgnoreChecks lists preflight checks whose failure is only a warning.
	IgnoreChecks []string `json:"ignore_checks,omitempty" yaml:"ignore-checks"`
}

// Validate reports every invalid option in one error wrapping
// ErrInvalidOptions. restore is true for a restore plan, which needs an
// existing backup set.
func (o Options) Validate(restore bool) error {
	var problems []string
	switch o.Topology {
	case TopologySingle:
		if o.HA || o.CoreOnMgmt {
			problems = append(problems, "HA and core-on-mgmt apply to the multi node topology only: drop them or use --topology multi")
		}
	case TopologyMulti:
	default:
		problems = append(problems, fmt.Sprintf("topology %q is not single or multi", o.Topology))
	}
	if o.WorkDir == "" || !filepath.IsAbs(o.WorkDir) {
		problems = append(problems, fmt.Sprintf("work directory %q must be an absolute path", o.WorkDir))
	}
	if o.DebDir == "" {
		problems = append(problems, "the directory of .deb files is missing: set deb-dir")
	}
	if restore && underPASHome(o.WorkDir) {
		problems = append(problems, fmt.Sprintf("work directory %q is inside %s, which restore deletes: choose a directory outside it", o.WorkDir, PASHome))
	}
	if restore && underPASHome(o.DebDir) {
		problems = append(problems, fmt.Sprintf("directory of .deb files %q is inside %s, which restore deletes before it reinstalls the packages: copy them to a directory outside it", o.DebDir, PASHome))
	}
	if restore && o.BackupDir == "" {
		problems = append(problems, "restore needs the backup set: set backup-dir")
	}
	if o.BackupDir != "" && underPASHome(o.BackupDir) {
		problems = append(problems, fmt.Sprintf("backup directory %q is inside %s, which restore deletes with the pas user: choose a directory outside it such as %s", o.BackupDir, PASHome, DefaultBackupDir))
	}
	// Only the upgrade runs the tool's container. The restore reads the CA
	// bundle in this process, wherever it lies.
	if !restore && o.CACert != "" && !insideDir(o.WorkDir, o.CACert) {
		problems = append(problems, fmt.Sprintf("CA bundle %q is outside the work directory %q, which is all the tool's container sees: copy it there", o.CACert, o.WorkDir))
	}
	if o.ApplyTimeout < 0 {
		problems = append(problems, fmt.Sprintf("apply timeout %s is negative", o.ApplyTimeout))
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalidOptions, strings.Join(problems, "; "))
}

func underPASHome(dir string) bool {
	return insideDir(PASHome, dir) || insideDir("/home/pas", dir)
}

// insideDir reports whether path is dir or lies below it.
func insideDir(dir, path string) bool {
	if dir == "" {
		return false
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	rel, err := filepath.Rel(filepath.Clean(dir), filepath.Clean(path))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// ignored reports whether the preflight check name is in IgnoreChecks.
func (o Options) ignored(name string) bool {
	return slices.Contains(o.IgnoreChecks, name)
}

func (o Options) applyTimeout(p UpgradePath) time.Duration {
	if o.ApplyTimeout > 0 {
		return o.ApplyTimeout
	}
	return time.Duration(p.ApplyTimeout) * time.Second
}

func (o Options) multi() bool { return o.Topology == TopologyMulti }

// localCore reports whether core runs on the management node.
func (o Options) localCore() bool { return !o.multi() || o.CoreOnMgmt }

// caCertArg returns CACert relative to WorkDir, as the tool's --cacert wants.
func (o Options) caCertArg() string {
	if o.CACert == "" {
		return ""
	}
	if !filepath.IsAbs(o.CACert) {
		return o.CACert
	}
	rel, err := filepath.Rel(o.WorkDir, o.CACert)
	if err != nil {
		return o.CACert
	}
	return rel
}
