package pasupgrade

import (
	"fmt"
	"slices"
)

// Package names of the three PAS components, as dpkg lists them.
const (
	PackageCore    = "proxedo-api-security"
	PackageMgmt    = "proxedo-api-security-mgmt"
	PackageStorage = "proxedo-api-security-storage"
)

// Systemd unit names of the PAS services. The core package ships the HA unit.
const (
	UnitCore    = "proxedo-api-security"
	UnitMgmt    = "proxedo-api-security-mgmt"
	UnitStorage = "proxedo-api-security-storage"
	UnitHA      = "proxedo-api-security-ha"
)

// PAS paths that the plans read or edit. They are absolute paths on the node;
// Options.Root is prepended when the orchestrator opens them.
const (
	PASHome        = "/opt/balasys"
	PASEtc         = "/opt/balasys/etc"
	PASSSHDir      = "/opt/balasys/.ssh"
	CommonVarsPath = "/opt/balasys/etc/automation/common_vars.yml"
	InventoryPath  = "/opt/balasys/usr/share/automation/inventory.yml"
	StorageEtc     = "/opt/balasys/etc/storage/"
	UsersHtpass    = "/opt/balasys/etc/mgmt/users.htpass"
)

// DefaultBackupDir is the directory of new backup sets when
// Options.BackupDir is empty. It lies outside /opt/balasys because restore
// removes the pas user together with its home.
const DefaultBackupDir = "/var/backups/pasupgrade"

// PASUser is the account that owns the PAS installation.
const PASUser = "pas"

// DebconfQuestion is one installer question of a package, and the answer the
// plan gives it for a topology.
type DebconfQuestion struct {
	// Package owns the question, such as "proxedo-api-security-mgmt".
	Package string
	// Name is the question's name without the package prefix, such as
	// "overwrite-config".
	Name string
	// Type is the debconf type: "boolean", "string" or "password".
	Type string
	// Single and Multi are the answers for each topology. For a password
	// question the answer is taken from Options.AdminPassword instead.
	Single, Multi string
	// Secret marks an answer that must never reach argv, logs or the
	// journal (the admin password).
	Secret bool
	// Optional questions are answered only when their option is on: the
	// admin password re-entry only with Options.RehashPassword.
	Optional bool
}

// ComposeFile is a docker-compose.conf whose DOCKER_IMAGE_TAG a multi node
// upgrade sets.
type ComposeFile struct {
	Component string
	// Package installs the component on a node.
	Package string
	Path    string
}

// UpgradePath describes one upgrade, from one PAS version to the next. Plans
// read every name, version and file from it, so a later path is added by
// writing a new UpgradePath value that states what differs.
type UpgradePath struct {
	// From and To are the installed and the target version.
	From, To string

	// Packages lists the packages in the order the guide names them.
	Packages []string

	// RemotePackages are the packages a remote core node carries.
	RemotePackages []string

	// CorePackages are the packages of the core and HA components. On the
	// management node of a multi node setup they are installed only where
	// core or HA runs there.
	CorePackages []string

	// ToolImage is the upgrade tool's Docker image, including its tag.
	ToolImage string

	// ExportFile and ConvertedFile are the files pre-upgrade and
	// convert-config write into the working directory.
	ExportFile, ConvertedFile string

	// Questions are the installer's debconf questions of the To packages.
	Questions []DebconfQuestion

	// ComposeFiles are the docker-compose.conf files whose image tag a multi
	// node upgrade sets to To.
	ComposeFiles []ComposeFile

	// ImageTagKey is the variable in the docker-compose.conf files.
	ImageTagKey string

	// CommonVarsDebKeys name the common_vars.yml keys that hold a .deb path,
	// each mapped to the package whose To .deb (in Options.DebDir) it gets.
	CommonVarsDebKeys map[string]string

	// CommonVarsTagKey is the dotted path of the image tag in
	// common_vars.yml.
	CommonVarsTagKey []string

	// ApplyTimeout is the --config-apply-timeout the guide gives post-upgrade,
	// in seconds.
	ApplyTimeout int
}

// Upgrade480To490 is the upgrade from PAS 4.8.0 to 4.9.0 as the vendor's
// guide describes it.
var Upgrade480To490 = UpgradePath{
	From:           "4.8.0",
	To:             "4.9.0",
	Packages:       []string{PackageCore, PackageMgmt, PackageStorage},
	RemotePackages: []string{PackageCore, PackageStorage},
	CorePackages:   []string{PackageCore},
	ToolImage:      "pas-upgrade-tool:4.9.0",
	ExportFile:     "pas-config-4.8.0.yaml",
	ConvertedFile:  "pas-config-4.9.0.yaml",
	Questions: []DebconfQuestion{
		{Package: PackageCore, Name: "overwrite-config", Type: "boolean", Single: "true", Multi: "false"},
		{Package: PackageMgmt, Name: "overwrite-config", Type: "boolean", Single: "true", Multi: "false"},
		{Package: PackageMgmt, Name: "admin-password", Type: "password", Secret: true, Optional: true},
		{Package: PackageStorage, Name: "overwrite-config", Type: "boolean", Single: "true", Multi: "false"},
	},
	ComposeFiles: []ComposeFile{
		{Component: "core", Package: PackageCore, Path: "/opt/balasys/etc/infrastructure/pas/docker-compose.conf"},
		{Component: "mgmt", Package: PackageMgmt, Path: "/opt/balasys/etc/infrastructure/mgmt/docker-compose.conf"},
		{Component: "storage", Package: PackageStorage, Path: "/opt/balasys/etc/infrastructure/storage/docker-compose.conf"},
	},
	ImageTagKey: "DOCKER_IMAGE_TAG",
	CommonVarsDebKeys: map[string]string{
		"storage_deb_path": PackageStorage,
		"core_deb_path":    PackageCore,
	},
	CommonVarsTagKey: []string{"common", "docker", "PAS_IMAGE_TAG"},
	ApplyTimeout:     20,
}

// DebFile returns the file name of a package's .deb at version, such as
// "proxedo-api-security_4.9.0_all.deb".
func DebFile(pkg, version string) string {
	return fmt.Sprintf("%s_%s_all.deb", pkg, version)
}

// LocalPackages returns the packages the management node carries for opts,
// in the order of Packages: all of them, except CorePackages on the
// management node of a multi node setup where neither core nor HA runs.
func (p UpgradePath) LocalPackages(opts Options) []string {
	if !opts.multi() || opts.CoreOnMgmt || opts.HA {
		return p.Packages
	}
	return slices.DeleteFunc(slices.Clone(p.Packages), func(pkg string) bool {
		return slices.Contains(p.CorePackages, pkg)
	})
}

// Validate reports the first missing field of p.
func (p UpgradePath) Validate() error {
	switch {
	case p.From == "" || p.To == "":
		return fmt.Errorf("upgrade path: From and To versions are required")
	case len(p.Packages) == 0:
		return fmt.Errorf("upgrade path %s to %s: no packages", p.From, p.To)
	case p.ToolImage == "":
		return fmt.Errorf("upgrade path %s to %s: no upgrade tool image", p.From, p.To)
	case p.ExportFile == "" || p.ConvertedFile == "":
		return fmt.Errorf("upgrade path %s to %s: export and converted file names are required", p.From, p.To)
	}
	return nil
}
