package lab

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/template"
)

// The three simulated PAS packages.
const (
	CorePackage    = "proxedo-api-security"
	MgmtPackage    = "proxedo-api-security-mgmt"
	StoragePackage = "proxedo-api-security-storage"
)

// Packages lists the simulated packages in installation order.
var Packages = []string{StoragePackage, MgmtPackage, CorePackage}

// Versions lists the versions BuildPackages builds.
var Versions = []string{"4.8.0", "4.9.0"}

// DefaultAdminPassword is the management admin password that a package
// installation without a preseeded proxedo-api-security-mgmt/admin-password
// value leaves in users.htpass. The lab preseeds its own password; this
// default exists so a package installed by hand can be logged in to.
const DefaultAdminPassword = "pas-lab-admin"

// DebFileName returns the file name of a package, as NAME_VERSION_all.deb.
func DebFileName(pkg, version string) string {
	return pkg + "_" + version + "_all.deb"
}

// BuildOptions changes how BuildPackages builds.
type BuildOptions struct {
	// ModuleDir is the root of the pasupgrade module whose commands and
	// package sources go into the packages. Empty means the module that contains the
	// working directory.
	ModuleDir string

	// Logger receives the build's progress. Nil discards it.
	Logger *slog.Logger
}

// pkgsrcDir is the directory of the package sources in the module: per
// package a DEBIAN directory and a root tree, and in common/ the templates
// they share. Every file is a text/template with [[ ]] delimiters, because
// the playbook and shell files use {{ }} and ${ } themselves. A name ending
// in "@VERSION" exists only in that version's package. BuildPackages reads
// them from the module it compiles the commands from, and not from a copy
// embedded at build time, so that the maintainer scripts and the binaries
// they call always come from the same source tree.
const pkgsrcDir = "internal/lab/pkgsrc"

// BuildPackages builds the six simulated PAS packages (three packages in
// versions 4.8.0 and 4.9.0) into outDir with dpkg-deb, which must be on
// PATH, and returns each .deb's path by its file name. It compiles
// cmd/pas-node, cmd/pas-upgrade-tool and cmd/pas-mgmt-sim as static
// binaries with the go command and renders internal/lab/pkgsrc, both from
// the module in opts.ModuleDir. It runs nothing as root and installs
// nothing; existing files of the same names in outDir are replaced.
func BuildPackages(ctx context.Context, outDir string, opts BuildOptions) (map[string]string, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	moduleDir := opts.ModuleDir
	if moduleDir == "" {
		dir, err := findModuleDir()
		if err != nil {
			return nil, err
		}
		moduleDir = dir
	}
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		return nil, fmt.Errorf("building the lab packages needs dpkg-deb: %w; install Debian's dpkg package", err)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the package directory: %w", err)
	}
	work, err := os.MkdirTemp("", "pasupgrade-lab-packages-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	binaries, err := buildBinaries(ctx, moduleDir, filepath.Join(work, "bin"), logger)
	if err != nil {
		return nil, err
	}
	certs, err := newStorageCertificates()
	if err != nil {
		return nil, fmt.Errorf("creating the storage certificates: %w", err)
	}
	sources := os.DirFS(filepath.Join(moduleDir, filepath.FromSlash(pkgsrcDir)))
	templates, err := parseCommonTemplates(sources)
	if err != nil {
		return nil, err
	}

	debs := map[string]string{}
	for _, version := range Versions {
		for _, pkg := range Packages {
			b := &packageBuild{
				pkg: pkg, version: version, stage: filepath.Join(work, pkg+"_"+version),
				sources: sources, binaries: binaries, certs: certs, templates: templates,
			}
			deb := filepath.Join(outDir, DebFileName(pkg, version))
			if err := b.build(ctx, deb); err != nil {
				return nil, fmt.Errorf("building %s: %w", DebFileName(pkg, version), err)
			}
			logger.Info("built package", "file", deb)
			debs[DebFileName(pkg, version)] = deb
		}
	}
	return debs, nil
}

// packageBuild stages and builds one .deb.
type packageBuild struct {
	pkg, version string
	stage        string
	sources      fs.FS // the pkgsrc directory
	binaries     map[string]string
	certs        map[string][]byte
	templates    *template.Template
	conffiles    []string
}

// templateData is the dot value of the pkgsrc templates.
type templateData struct {
	Package, Version string
	Summary, Depends string
	Debconf          bool // the package has a debconf templates file
	AdminHash        string
}

func (b *packageBuild) build(ctx context.Context, deb string) error {
	data := b.templateData()
	if err := b.renderSources(data); err != nil {
		return err
	}
	if err := b.addGenerated(); err != nil {
		return err
	}
	if err := b.writeConffiles(); err != nil {
		return err
	}

	// gzip at level 1 builds the six packages several times faster than
	// dpkg-deb's default level, and their size does not matter in a lab.
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "--build", b.stage, deb)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("dpkg-deb --build: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (b *packageBuild) templateData() templateData {
	sum := sha1.Sum([]byte(DefaultAdminPassword))
	data := templateData{
		Package:   b.pkg,
		Version:   b.version,
		Depends:   "adduser, passwd, sudo, debconf (>= 1.5) | debconf-2.0",
		AdminHash: "{SHA}" + base64.StdEncoding.EncodeToString(sum[:]),
		Debconf:   b.version != "4.8.0" || b.pkg == MgmtPackage,
	}
	switch b.pkg {
	case CorePackage:
		data.Summary = "Proxedo API Security core and high availability"
	case MgmtPackage:
		data.Summary = "Proxedo API Security management"
		data.Depends += ", openssh-client"
	case StoragePackage:
		data.Summary = "Proxedo API Security storage"
	}
	return data
}

// renderSources renders pkgsrc/<package> into the staging tree.
func (b *packageBuild) renderSources(data templateData) error {
	base := b.pkg
	return fs.WalkDir(b.sources, base, func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, only, _ := strings.Cut(strings.TrimPrefix(name, base+"/"), "@")
		if only != "" && only != b.version {
			return nil
		}
		text, err := fs.ReadFile(b.sources, name)
		if err != nil {
			return err
		}
		t, err := b.templates.Clone()
		if err != nil {
			return err
		}
		if _, err := t.New(name).Parse(string(text)); err != nil {
			return fmt.Errorf("parsing %s: %w", name, err)
		}
		var out bytes.Buffer
		if err := t.ExecuteTemplate(&out, name, data); err != nil {
			return fmt.Errorf("rendering %s: %w", name, err)
		}

		target, mode := b.placeFile(rel)
		if target == "" {
			return nil
		}
		return writeStaged(target, out.Bytes(), mode)
	})
}

// placeFile maps a source path (DEBIAN/x or root/...) to its staged path
// and mode, and records conffiles.
func (b *packageBuild) placeFile(rel string) (string, os.FileMode) {
	if control, ok := strings.CutPrefix(rel, "DEBIAN/"); ok {
		mode := os.FileMode(0o644)
		switch control {
		case "postinst", "preinst", "prerm", "postrm", "config":
			mode = 0o755
		}
		return filepath.Join(b.stage, "DEBIAN", control), mode
	}
	installed, ok := strings.CutPrefix(rel, "root")
	if !ok {
		return "", 0
	}
	mode := os.FileMode(0o644)
	switch {
	case strings.HasPrefix(installed, "/etc/sudoers.d/"):
		mode = 0o440
	case strings.HasSuffix(installed, "/users.htpass"):
		mode = 0o640
	}
	if strings.HasPrefix(installed, "/etc/") || strings.HasPrefix(installed, "/opt/balasys/etc/") {
		b.conffiles = append(b.conffiles, installed)
	}
	return filepath.Join(b.stage, filepath.FromSlash(installed)), mode
}

// packageLayout lists, per package, the binaries it installs and the
// command names linked to them.
var packageLayout = map[string]struct {
	binaries map[string]string // installed path -> binary name in buildBinaries
	links    map[string]string // link path -> target
}{
	CorePackage: {
		binaries: map[string]string{"/opt/balasys/usr/bin/pas-core": "pas-node"},
		links: map[string]string{
			"/opt/balasys/usr/bin/pas-ha": "pas-core",
			"/usr/bin/pas-update":         "/opt/balasys/usr/bin/pas-core",
		},
	},
	MgmtPackage: {
		binaries: map[string]string{
			"/opt/balasys/usr/bin/pas-mgmt":     "pas-node",
			"/opt/balasys/usr/bin/pas-mgmt-sim": "pas-mgmt-sim",
		},
		links: map[string]string{
			"/usr/bin/pas-mgmt-update":      "/opt/balasys/usr/bin/pas-mgmt",
			"/usr/bin/pas-mgmt-checkconfig": "/opt/balasys/usr/bin/pas-mgmt",
			"/usr/bin/pas-mgmt-deploy-core": "/opt/balasys/usr/bin/pas-mgmt",
		},
	},
	StoragePackage: {
		binaries: map[string]string{"/opt/balasys/usr/bin/pas-storage": "pas-node"},
		links: map[string]string{
			"/usr/bin/pas-storage-update":      "/opt/balasys/usr/bin/pas-storage",
			"/usr/bin/pas-storage-checkconfig": "/opt/balasys/usr/bin/pas-storage",
		},
	},
}

// upgradeToolCommand is the upgrade tool's path in the 4.9.0 mgmt package.
// The upgrade runs post-upgrade on the node under this name.
const upgradeToolCommand = "/usr/bin/pas-mgmt-upgrade-config"

// addGenerated adds what is not a template: binaries, command links, the
// version file, the default configuration that "overwrite" restores, and
// the storage certificates.
func (b *packageBuild) addGenerated() error {
	layout := packageLayout[b.pkg]
	binaries := maps.Clone(layout.binaries)
	if b.pkg == MgmtPackage && b.version != "4.8.0" {
		binaries[upgradeToolCommand] = "pas-upgrade-tool"
	}
	for installed, name := range binaries {
		data, err := os.ReadFile(b.binaries[name])
		if err != nil {
			return err
		}
		if err := writeStaged(b.staged(installed), data, 0o755); err != nil {
			return err
		}
	}
	for link, target := range layout.links {
		if err := os.MkdirAll(filepath.Dir(b.staged(link)), 0o755); err != nil {
			return err
		}
		if err := os.Symlink(target, b.staged(link)); err != nil {
			return err
		}
	}

	share := "/opt/balasys/usr/share/" + b.pkg
	if err := writeStaged(b.staged(share+"/version"), []byte(b.version+"\n"), 0o644); err != nil {
		return err
	}
	for _, conffile := range b.conffiles {
		rel, ok := strings.CutPrefix(conffile, "/opt/balasys/etc/")
		if !ok {
			continue
		}
		data, err := os.ReadFile(b.staged(conffile))
		if err != nil {
			return err
		}
		if err := writeStaged(b.staged(share+"/defaults/"+rel), data, 0o644); err != nil {
			return err
		}
	}

	if b.pkg == StoragePackage {
		// 4.9.0 makes new certificates readable by their owner only. An
		// upgrade keeps the mode of installed certificates, because dpkg
		// leaves an unchanged conffile alone.
		mode := os.FileMode(0o600)
		if b.version == "4.8.0" {
			mode = 0o640
		}
		for _, name := range slices.Sorted(maps.Keys(b.certs)) {
			installed := "/opt/balasys/etc/storage/certs/" + name
			if err := writeStaged(b.staged(installed), b.certs[name], mode); err != nil {
				return err
			}
			b.conffiles = append(b.conffiles, installed)
		}
	}
	return nil
}

func (b *packageBuild) writeConffiles() error {
	sort.Strings(b.conffiles)
	text := strings.Join(b.conffiles, "\n") + "\n"
	return writeStaged(filepath.Join(b.stage, "DEBIAN", "conffiles"), []byte(text), 0o644)
}

func (b *packageBuild) staged(installed string) string {
	return filepath.Join(b.stage, filepath.FromSlash(installed))
}

// parseCommonTemplates parses common/ of the package sources, the
// templates every package file may call, with the helper functions they
// use.
func parseCommonTemplates(sources fs.FS) (*template.Template, error) {
	t := template.New("common").Delims("[[", "]]").Funcs(template.FuncMap{
		"dict":   templateDict,
		"listen": listenYAML,
	})
	t, err := t.ParseFS(sources, "common/*.tmpl")
	if err != nil {
		return nil, fmt.Errorf("parsing the package templates: %w", err)
	}
	return t, nil
}

// listenYAML returns the listening socket settings of a config.yml in the
// format of version: flat keys in 4.8.0, a listen mapping from 4.9.0.
func listenYAML(version, address string, port int) string {
	if version == "4.8.0" {
		return fmt.Sprintf("listen_address: %s\nlisten_port: %d", address, port)
	}
	return fmt.Sprintf("listen:\n  address: %s\n  port: %d", address, port)
}

// templateDict builds a map from key, value pairs, so that a template can
// pass several values to another.
func templateDict(pairs ...any) (map[string]any, error) {
	if len(pairs)%2 != 0 {
		return nil, errors.New("dict needs key, value pairs")
	}
	m := make(map[string]any, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		key, ok := pairs[i].(string)
		if !ok {
			return nil, fmt.Errorf("dict key %v is not a string", pairs[i])
		}
		m[key] = pairs[i+1]
	}
	return m, nil
}

// writeStaged writes a file of the staging tree, creating its directories.
func writeStaged(file string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(file, data, mode); err != nil {
		return err
	}
	// WriteFile applies the umask; packages need the exact mode.
	return os.Chmod(file, mode)
}

// modulePath is the module whose commands go into the packages.
const modulePath = "github.com/pasops/pasupgrade"

// findModuleDir returns the directory of the pasupgrade module that
// contains the working directory.
func findModuleDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(data, []byte("module "+modulePath+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("the working directory is not inside the %s module; "+
				"run from the repository or set BuildOptions.ModuleDir", modulePath)
		}
		dir = parent
	}
}

// buildBinaries compiles the commands the packages install as static
// binaries into dir and returns their paths by name.
func buildBinaries(ctx context.Context, moduleDir, dir string, logger *slog.Logger) (map[string]string, error) {
	binaries := map[string]string{}
	for _, name := range []string{"pas-node", "pas-upgrade-tool", "pas-mgmt-sim"} {
		out := filepath.Join(dir, name)
		if err := goBuildStatic(ctx, moduleDir, "./cmd/"+name, out); err != nil {
			return nil, err
		}
		logger.Info("built binary", "command", name)
		binaries[name] = out
	}
	return binaries, nil
}

// goBuildStatic builds pkg (relative to moduleDir) into out without cgo,
// so the binary runs in any container.
func goBuildStatic(ctx context.Context, moduleDir, pkg, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w: %s", pkg, err, strings.TrimSpace(string(output)))
	}
	return nil
}
