package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/client"

	"github.com/pasops/pasupgrade/runner"
)

// labVersion is the PAS version a lab starts with.
const labVersion = "4.8.0"

// Units of the simulated components.
const (
	unitCore    = "proxedo-api-security"
	unitMgmt    = "proxedo-api-security-mgmt"
	unitStorage = "proxedo-api-security-storage"
	unitHA      = "proxedo-api-security-ha"
)

// componentUnits maps a component to its unit.
var componentUnits = map[string]string{
	"core": unitCore, "mgmt": unitMgmt, "storage": unitStorage, "ha": unitHA,
}

// startOrder is the order components start in: storage before the
// management server and core, which use it.
var startOrder = []string{"storage", "mgmt", "core", "ha"}

// systemctlPath is the stand-in's path in a node. Bookworm merges /bin
// into /usr/bin, so /bin/systemctl names the same file.
const systemctlPath = "/usr/bin/systemctl"

// nodeConfigPath is the stand-in's node configuration.
const nodeConfigPath = "/etc/pas-lab/node.json"

// serviceTimeout bounds the wait for a started component's port.
const serviceTimeout = 60 * time.Second

// Up starts a lab. It builds or reuses the node image, and builds the
// packages (unless Options.PackageDir has them), the systemctl stand-in and
// the upgrade tool image. Then it starts the node containers, installs PAS
// 4.8.0 in them with a random admin password (see PasswordFile) and starts
// its services on free ports. On failure it removes what it created, and
// the error names the step that failed.
func Up(ctx context.Context, cli client.APIClient, opts Options) (*Lab, error) {
	if err := opts.Check(); err != nil {
		return nil, err
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if _, err := cli.Ping(ctx); err != nil {
		return nil, fmt.Errorf("%w responds at %s (%v); start it with 'make lab-engine-start'",
			ErrNoEngine, cli.DaemonHost(), err)
	}
	// The nodes mount the engine's socket, so a remote engine fails them;
	// finding that out before the builds saves minutes.
	if _, err := dockerSocket(cli); err != nil {
		return nil, err
	}
	// A failed Up removes every container with the lab's label, so it must
	// not start while another lab of that name has containers.
	if err := checkNoContainers(ctx, cli, opts.Name); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the lab directory: %w", err)
	}

	l := &Lab{
		Name: opts.Name, Dir: opts.Dir, Topology: opts.Topology, HA: opts.HA,
		CoreOnMgmt: opts.CoreOnMgmt, ToolImage: opts.ToolImage, Created: time.Now().UTC(),
	}
	if err := l.create(); err != nil {
		return nil, err
	}
	u := &upper{cli: cli, opts: opts, lab: l}
	if err := u.run(ctx); err != nil {
		opts.Logger.Warn("lab start failed; removing what it created", "lab", l.Name, "err", err)
		downCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if downErr := l.Down(downCtx, cli); downErr != nil {
			return nil, fmt.Errorf("%w (cleaning up also failed: %v)", err, downErr)
		}
		return nil, err
	}
	return l, nil
}

// Check returns the first problem Up would find before it touches the
// engine: an invalid name, topology or port, a lab that already exists in
// the directory (ErrLabExists) or a requested port in use (ErrPortInUse).
func (o Options) Check() error {
	opts, err := o.withDefaults()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(opts.Dir, stateFile)); err == nil {
		return fmt.Errorf("%w: %s has a lab; run 'pas-lab down --name %s' first or choose another --name",
			ErrLabExists, opts.Dir, opts.Name)
	}
	// Down removes the whole lab directory, so the lab must not adopt a
	// directory that already holds other files.
	if entries, err := os.ReadDir(opts.Dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%w: lab directory %s exists and is not empty; choose a new or empty "+
			"directory, because pas-lab down removes it", ErrInvalidOptions, opts.Dir)
	}
	if opts.MgmtPort != 0 {
		return checkPortFree(opts.MgmtPort, "the management")
	}
	return nil
}

// upper carries one Up call's state.
type upper struct {
	cli      client.APIClient
	opts     Options
	lab      *Lab
	password string
	nodes    map[string]*Node
	// prepared and preparedCore are the prepared images of the
	// management node and of the remote core node.
	prepared     preparedState
	preparedCore preparedState
}

func (u *upper) run(ctx context.Context) error {
	log := u.opts.Logger
	l := u.lab
	ref, err := u.opts.NodeImage.Ensure(ctx, u.cli)
	if err != nil {
		return fmt.Errorf("preparing the node image: %w", err)
	}
	l.NodeImage = ref

	log.Info("building the lab's packages and commands", "dir", l.Dir)
	if err := u.preparePackages(ctx); err != nil {
		return err
	}
	if err := u.buildSystemctl(ctx); err != nil {
		return err
	}
	if err := EnsureToolImage(ctx, u.cli, l.ToolImage); err != nil {
		return fmt.Errorf("preparing the upgrade tool image: %w", err)
	}
	if err := os.MkdirAll(l.WorkDir(), 0o755); err != nil {
		return err
	}
	if u.password, err = randomPassword(); err != nil {
		return err
	}
	if err := os.WriteFile(l.PasswordFile(), []byte(u.password), 0o600); err != nil {
		return fmt.Errorf("writing the admin password file: %w", err)
	}

	if err := u.upMgmt(ctx); err != nil {
		return fmt.Errorf("management node: %w", err)
	}
	if l.Topology == TopologyMulti {
		if err := u.upCore(ctx); err != nil {
			return fmt.Errorf("core node: %w", err)
		}
	}
	return l.save()
}

// preparePackages builds the packages into the lab directory, or copies
// the prebuilt 4.8.0 and 4.9.0 files from Options.PackageDir.
func (u *upper) preparePackages(ctx context.Context) error {
	dir := u.lab.PackageDir()
	if u.opts.PackageDir == "" {
		_, err := BuildPackages(ctx, dir, BuildOptions{ModuleDir: u.opts.ModuleDir, Logger: u.opts.Logger})
		if err != nil {
			return fmt.Errorf("building the packages: %w", err)
		}
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, version := range Versions {
		for _, pkg := range Packages {
			name := DebFileName(pkg, version)
			if err := copyFile(filepath.Join(u.opts.PackageDir, name), filepath.Join(dir, name)); err != nil {
				return fmt.Errorf("copying the prebuilt package %s: %w; build them with lab.BuildPackages "+
					"or leave PackageDir empty", name, err)
			}
		}
	}
	return nil
}

func (u *upper) buildSystemctl(ctx context.Context) error {
	moduleDir := u.opts.ModuleDir
	if moduleDir == "" {
		dir, err := findModuleDir()
		if err != nil {
			return err
		}
		moduleDir = dir
	}
	out := filepath.Join(u.lab.Dir, "bin", "pas-systemctl")
	if err := goBuildStatic(ctx, moduleDir, "./cmd/pas-systemctl", out); err != nil {
		return fmt.Errorf("building the systemctl stand-in: %w", err)
	}
	return nil
}

// startNode starts a node container, records it and installs the
// systemctl stand-in with its node configuration.
func (u *upper) startNode(ctx context.Context, name, role string) (*Node, *LabNode, error) {
	l := u.lab
	image := l.NodeImage
	var err error
	switch role {
	case "mgmt":
		image, err = u.mgmtImage(ctx)
	case "core":
		image, err = u.coreImage(ctx)
	}
	if err != nil {
		return nil, nil, err
	}
	node, err := StartNode(ctx, u.cli, NodeOptions{
		Name:    containerName(l.Name, name),
		Image:   image,
		WorkDir: l.Dir,
		Labels:  map[string]string{LabelLab: l.Name, LabelRole: role, LabelToolImage: l.ToolImage},
	})
	if err != nil {
		return nil, nil, err
	}
	l.Nodes = append(l.Nodes, LabNode{
		Name: name, Role: role, Container: node.Name, ContainerID: node.ID, Ports: map[string]int{},
	})
	if err := l.save(); err != nil {
		return nil, nil, err
	}
	if u.nodes == nil {
		u.nodes = map[string]*Node{}
	}
	u.nodes[name] = node

	if err := node.CopyFile(ctx, filepath.Join(l.Dir, "bin", "pas-systemctl"), systemctlPath, 0o755); err != nil {
		return nil, nil, err
	}
	config := fmt.Sprintf(`{"node": %q, "role": %q, "status_file": %q}`+"\n", name, role, l.StatusFile())
	if err := node.WriteFile(ctx, nodeConfigPath, []byte(config), 0o644); err != nil {
		return nil, nil, err
	}
	return node, &l.Nodes[len(l.Nodes)-1], nil
}

// upMgmt starts the management node with 4.8.0 installed and running.
func (u *upper) upMgmt(ctx context.Context) error {
	l := u.lab
	node, info, err := u.startNode(ctx, "mgmt", "mgmt")
	if err != nil {
		return err
	}

	components := []string{"storage", "mgmt"}
	info.Packages = []string{StoragePackage, MgmtPackage}
	if l.Topology == TopologySingle || l.CoreOnMgmt || l.HA {
		info.Packages = append(info.Packages, CorePackage)
	}
	if l.Topology == TopologySingle || l.CoreOnMgmt {
		components = append(components, "core")
	}
	if l.HA {
		components = append(components, "ha")
	}
	if err := u.assignPorts(info, components, u.opts.MgmtPort); err != nil {
		return err
	}

	if err := u.installMgmt(ctx, node, info.Packages); err != nil {
		return err
	}
	if err := configurePorts(ctx, node, info.Ports, l.StatusFile(), u.opts.EnableControl); err != nil {
		return err
	}
	if err := node.GrantDocker(ctx, "pas"); err != nil {
		return err
	}
	if _, err := node.Run(ctx, runner.Command{Argv: []string{"chown", "pas:pas", l.WorkDir()}}); err != nil {
		return err
	}
	return u.startComponents(ctx, node, info, components)
}

// assignPorts gives each component a free port; fixed is the management
// port the caller chose, or zero.
func (u *upper) assignPorts(info *LabNode, components []string, fixed int) error {
	ports, err := freePorts(len(components) + 1)
	if err != nil {
		return err
	}
	for i, c := range components {
		info.Ports[c] = ports[i]
	}
	if fixed != 0 && info.Ports["mgmt"] != 0 {
		info.Ports["mgmt"] = fixed
	}
	if info.Role == "core" {
		info.Ports["ssh"] = ports[len(components)]
	}
	return u.lab.save()
}

// preseedPassword stores the admin password as the preseeded debconf value
// that the mgmt package's postinst hashes into users.htpass. The password
// travels on stdin, never in argv.
func (u *upper) preseedPassword(ctx context.Context, node *Node) error {
	line := fmt.Sprintf("%s %s/admin-password password %s\n", MgmtPackage, MgmtPackage, u.password)
	_, err := node.Run(ctx, runner.Command{
		Argv:    []string{"debconf-set-selections"},
		Stdin:   strings.NewReader(line),
		Secrets: []string{u.password},
	})
	if err != nil {
		return fmt.Errorf("preseeding the admin password: %w", err)
	}
	return nil
}

// dpkgInstall installs the 4.8.0 packages with dpkg, non-interactively.
func (u *upper) dpkgInstall(ctx context.Context, node *Node, packages []string) error {
	argv := []string{"dpkg", "--install"}
	for _, pkg := range Packages {
		for _, want := range packages {
			if pkg == want {
				argv = append(argv, filepath.Join(u.lab.PackageDir(), DebFileName(pkg, labVersion)))
			}
		}
	}
	_, err := node.Run(ctx, runner.Command{
		Argv:    argv,
		Env:     []string{"DEBIAN_FRONTEND=noninteractive"},
		Secrets: []string{u.password},
	})
	if err != nil {
		return fmt.Errorf("installing PAS %s: %w", labVersion, err)
	}
	return nil
}

// configurePorts rewrites the listen_port of each component's 4.8.0
// config.yml, and points the management server at the lab's status file.
// The packages ship fixed ports, which two labs on one host network would
// share.
func configurePorts(ctx context.Context, node *Node, ports map[string]int, statusFile string, control bool) error {
	for _, c := range startOrder {
		port, ok := ports[c]
		if !ok {
			continue
		}
		file := "/opt/balasys/etc/" + c + "/config.yml"
		script := []string{"sed", "-i", "-e", "s/^listen_port: .*/listen_port: " + strconv.Itoa(port) + "/"}
		if c == "mgmt" {
			script = append(script, "-e", "s|^status_file: .*|status_file: "+statusFile+"|")
			if control {
				script = append(script, "-e", "s/^enable_control: .*/enable_control: true/")
			}
		}
		if _, err := node.Run(ctx, runner.Command{Argv: append(script, file)}); err != nil {
			return fmt.Errorf("setting the %s port: %w", c, err)
		}
		// sed changes nothing when the line is missing, so check the result.
		want := "^listen_port: " + strconv.Itoa(port) + "$"
		if _, err := node.Run(ctx, runner.Command{Argv: []string{"grep", "-q", want, file}}); err != nil {
			return fmt.Errorf("%s has no 4.8.0 listen_port line to set to %d: %w", file, port, err)
		}
	}
	return nil
}

// startComponents enables and starts the units of components in order and
// waits until each listens on its port.
func (u *upper) startComponents(ctx context.Context, node *Node, info *LabNode, components []string) error {
	for _, c := range startOrder {
		if !contains(components, c) {
			continue
		}
		unit := componentUnits[c]
		if err := u.startUnit(ctx, node, unit); err != nil {
			return err
		}
		info.Units = append(info.Units, unit)
		if err := waitListening(ctx, info.Ports[c]); err != nil {
			return fmt.Errorf("%s (port %d): %w", unit, info.Ports[c], err)
		}
	}
	return u.lab.save()
}

func (u *upper) startUnit(ctx context.Context, node *Node, unit string) error {
	for _, verb := range []string{"enable", "start"} {
		if _, err := node.Run(ctx, runner.Command{Argv: []string{"systemctl", verb, unit}}); err != nil {
			res, _ := node.Run(ctx, runner.Command{Argv: []string{"systemctl", "status", unit}})
			return fmt.Errorf("systemctl %s %s: %w\n%s", verb, unit, err, res.Stdout)
		}
	}
	return nil
}

// waitListening waits until something accepts connections on the port.
func waitListening(ctx context.Context, port int) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(serviceTimeout)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after %s: %w", addr, serviceTimeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
