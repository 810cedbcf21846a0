package lab

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
)

// Topologies of a lab.
const (
	// TopologySingle is one node that runs mgmt, storage and core.
	TopologySingle = "single"
	// TopologyMulti is a management node (mgmt and storage, with core only
	// when CoreOnMgmt is set) and a core node (storage and core) that the
	// management node reaches over SSH.
	TopologyMulti = "multi"
)

// Errors that callers of Up branch on.
var (
	// ErrLabExists is returned when the lab directory already contains a
	// lab, or when the engine has containers of a lab with the same name.
	ErrLabExists = errors.New("lab: lab already exists")
	// ErrPortInUse is returned when a requested port is taken.
	ErrPortInUse = errors.New("lab: port in use")
	// ErrNoLab is returned by Load for a directory without a lab.
	ErrNoLab = errors.New("lab: no lab")
	// ErrInvalidRecord is returned by Load and List for a lab.json that
	// is not a valid lab record.
	ErrInvalidRecord = errors.New("lab: invalid lab record")
	// ErrInvalidOptions is returned for an invalid name, topology, port or
	// combination of options.
	ErrInvalidOptions = errors.New("lab: invalid options")
)

// stateFile is the lab's record in its directory.
const stateFile = "lab.json"

// Options configures Up. The zero value with a Topology is a single-node
// lab named "default".
type Options struct {
	// Name identifies the lab. It prefixes the container names and is the
	// value of their LabelLab label. It uses lowercase letters, digits and
	// dashes, and starts and ends with a letter or digit. Empty means
	// "default".
	Name string

	// Dir is the lab directory, mounted at the same path in every node.
	// Empty means CacheDir()/labs/NAME.
	Dir string

	// Topology is TopologySingle or TopologyMulti. Empty means single.
	Topology string

	// HA also runs the HA component: on the management node, and in a
	// multi-node lab on the core node too.
	HA bool

	// CoreOnMgmt runs core on the management node of a multi-node lab as
	// well; a single node always runs it.
	CoreOnMgmt bool

	// EnableControl starts the management simulator with its /_sim/
	// fault-injection endpoints.
	EnableControl bool

	// MgmtPort is the management API's port. Zero picks a free port.
	MgmtPort int

	// ToolImage is the reference the upgrade tool's image is imported as.
	// Empty means pasupgrade-lab-NAME/pas-upgrade-tool:4.9.0. Labs may
	// share one; Down removes it with the last lab that uses it.
	ToolImage string

	// PackageDir holds prebuilt .deb files (see BuildPackages). Empty
	// means Up builds them.
	PackageDir string

	// ModuleDir is the pasupgrade module that the lab's commands are built
	// from. Empty means the module containing the working directory.
	ModuleDir string

	// NodeImage builds the node image when the engine does not have it.
	NodeImage NodeImage

	// PreparedImages starts the management node from a committed image
	// with PAS 4.8.0 installed (see PreparedImageRepository), and commits
	// that image after the first installation when the engine lacks it.
	// Only the admin password, ports and units are then set per lab.
	PreparedImages bool

	// Logger receives progress. Nil discards it.
	Logger *slog.Logger
}

// Lab is a running lab, as recorded in DIR/lab.json.
type Lab struct {
	// Name, Dir, Topology, HA and CoreOnMgmt are the Options the lab was
	// started with, after defaults.
	Name       string `json:"name"`
	Dir        string `json:"dir"`
	Topology   string `json:"topology"`
	HA         bool   `json:"ha"`
	CoreOnMgmt bool   `json:"core_on_mgmt"`

	// NodeImage is the node image reference; Down keeps that image.
	NodeImage string `json:"node_image"`

	// ToolImage is the lab's upgrade tool image; Down removes it.
	ToolImage string `json:"tool_image"`

	// Nodes are the node containers, the management node first.
	Nodes []LabNode `json:"nodes"`

	// Created is when Up started, in UTC.
	Created time.Time `json:"created"`
}

// LabNode is one node container of a lab.
type LabNode struct {
	// Name is the node's name in the lab and in the status: "mgmt" or
	// "core-1".
	Name string `json:"name"`
	// Role is "mgmt" or "core".
	Role string `json:"role"`
	// Container and ContainerID identify the container.
	Container   string `json:"container"`
	ContainerID string `json:"container_id"`
	// Packages are the PAS packages installed on the node.
	Packages []string `json:"packages"`
	// Units are the PAS systemd units running on the node.
	Units []string `json:"units"`
	// Ports maps a component (mgmt, core, storage, ha, ssh) to its port
	// on the loopback interface.
	Ports map[string]int `json:"ports"`
}

// labNamePattern accepts names that are valid inside an image repository
// name too, which rejects a trailing dash.
var labNamePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,29}[a-z0-9])?$`)

// WorkDir is the directory for the upgrade tool's files, owned by pas in
// the management node.
func (l *Lab) WorkDir() string { return filepath.Join(l.Dir, "work") }

// PackageDir is where the lab's .deb files are, visible at the same path
// in every node.
func (l *Lab) PackageDir() string { return filepath.Join(l.Dir, "debs") }

// PasswordFile is the file (mode 0600) with the management admin password.
func (l *Lab) PasswordFile() string { return filepath.Join(l.Dir, "admin-password") }

// StatusFile is the status file that the nodes' systemctl keeps and the
// management simulator serves at /api/status.
func (l *Lab) StatusFile() string { return filepath.Join(l.Dir, "status.json") }

// AdminPassword returns the management admin password.
func (l *Lab) AdminPassword() (string, error) {
	data, err := os.ReadFile(l.PasswordFile())
	if err != nil {
		return "", fmt.Errorf("reading the lab's admin password: %w", err)
	}
	return string(data), nil
}

// MgmtURL returns the management API's base URL on loopback.
func (l *Lab) MgmtURL() string {
	return "http://127.0.0.1:" + strconv.Itoa(l.NodeByName("mgmt").Ports["mgmt"])
}

// NodeByName returns the node called name, or a zero LabNode.
func (l *Lab) NodeByName(name string) LabNode {
	for _, n := range l.Nodes {
		if n.Name == name {
			return n
		}
	}
	return LabNode{}
}

// Node returns a runner for the node called name.
func (l *Lab) Node(cli client.APIClient, name string) (*Node, error) {
	n := l.NodeByName(name)
	if n.ContainerID == "" {
		return nil, fmt.Errorf("lab %s has no node %q", l.Name, name)
	}
	return &Node{ID: n.ContainerID, Name: n.Container, WorkDir: l.Dir, cli: cli}, nil
}

// DefaultDir returns the directory of the lab called name.
func DefaultDir(name string) string {
	return filepath.Join(CacheDir(), "labs", name)
}

// List returns the labs recorded under CacheDir()/labs, by name. Labs
// started with another directory are not found here. A record that cannot
// be read does not hide the others: List returns them with an error that
// joins the failures.
func List() ([]*Lab, error) {
	dirs, err := filepath.Glob(filepath.Join(CacheDir(), "labs", "*", stateFile))
	if err != nil {
		return nil, err
	}
	var labs []*Lab
	var errs []error
	for _, file := range dirs {
		l, err := Load(filepath.Dir(file))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		labs = append(labs, l)
	}
	return labs, errors.Join(errs...)
}

// Load reads the lab recorded in dir.
func Load(dir string) (*Lab, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s: %s is missing", ErrNoLab, dir, stateFile)
	}
	if err != nil {
		return nil, err
	}
	var l Lab
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("%w: reading %s: %v", ErrInvalidRecord, filepath.Join(dir, stateFile), err)
	}
	return &l, nil
}

// save replaces lab.json through a temporary file, so that a crash never
// leaves a partly written record.
func (l *Lab) save() error {
	data, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(l.Dir, "."+stateFile+".*")
	if err != nil {
		return fmt.Errorf("saving the lab record: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("saving the lab record: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("saving the lab record: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("saving the lab record: %w", err)
	}
	return os.Rename(tmp.Name(), filepath.Join(l.Dir, stateFile))
}

// create writes the lab's first record and fails with ErrLabExists when
// the directory already has one, so that of two Up calls racing for one
// directory only one goes on.
func (l *Lab) create() error {
	file := filepath.Join(l.Dir, stateFile)
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%w: %s has a lab; run 'pas-lab down --name %s' first or choose another --name",
			ErrLabExists, l.Dir, l.Name)
	}
	if err != nil {
		return fmt.Errorf("creating the lab record: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return l.save()
}

// checkNoContainers returns ErrLabExists, naming the containers and their
// lab directories, when the engine has a container labelled with the lab
// name or named like one of its nodes.
func checkNoContainers(ctx context.Context, cli client.APIClient, name string) error {
	nodeNames := "^/" + regexp.QuoteMeta(containerName(name, "")) + "(mgmt|" + coreNodeName + ")$"
	selectors := []filters.KeyValuePair{
		filters.Arg("label", LabelLab+"="+name),
		filters.Arg("name", nodeNames),
	}
	found := map[string]string{}
	for _, selector := range selectors {
		list, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(selector)})
		if err != nil {
			return fmt.Errorf("listing the containers of lab %s: %w", name, err)
		}
		for _, c := range list {
			found[containerSummaryName(c)] = labDirOf(c.Mounts)
		}
	}
	if len(found) == 0 {
		return nil
	}
	var names []string
	for container, dir := range found {
		if dir != "" {
			container += " (lab directory " + dir + ")"
		}
		names = append(names, container)
	}
	sort.Strings(names)
	return fmt.Errorf("%w: the engine already has containers of a lab named %s: %s; remove that lab "+
		"with 'pas-lab down --name %s' and its --dir, or choose another --name",
		ErrLabExists, name, strings.Join(names, ", "), name)
}

// StrayLab returns a record for Down that removes the containers of the
// lab called name, and its default tool image, when the lab's record in
// dir is gone. It returns an error when a container of that name belongs
// to a lab whose record is in another directory, because removing it
// there would leave that lab broken.
func StrayLab(ctx context.Context, cli client.APIClient, name, dir string) (*Lab, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	list, err := cli.ContainerList(ctx, container.ListOptions{
		All: true, Filters: filters.NewArgs(filters.Arg("label", LabelLab+"="+name)),
	})
	if err != nil {
		return nil, fmt.Errorf("listing the containers of lab %s: %w", name, err)
	}
	for _, c := range list {
		other := labDirOf(c.Mounts)
		if other == "" || other == dir {
			continue
		}
		if _, err := os.Stat(filepath.Join(other, stateFile)); err == nil {
			return nil, fmt.Errorf("%w in %s, and container %s of lab %s belongs to the lab in %s; "+
				"remove that lab with 'pas-lab down --dir %s'", ErrNoLab, dir, containerSummaryName(c), name, other, other)
		}
	}
	return &Lab{Name: name, Dir: dir, ToolImage: "pasupgrade-lab-" + name + "/" + DefaultToolImage}, nil
}

// ContainerLabDir returns the lab directory of a node container: the
// directory it mounts at its own path, or "" when it mounts none.
func ContainerLabDir(c container.Summary) string { return labDirOf(c.Mounts) }

// labDirOf returns the lab directory that a node container mounts at its
// own path, or "" when it mounts none.
func labDirOf(mounts []container.MountPoint) string {
	for _, m := range mounts {
		if m.Type == mount.TypeBind && m.Source == m.Destination && m.Destination != nodeDockerSocket {
			return m.Source
		}
	}
	return ""
}

func containerSummaryName(c container.Summary) string {
	if len(c.Names) == 0 {
		return c.ID[:12]
	}
	return strings.TrimPrefix(c.Names[0], "/")
}

// withDefaults validates opts and fills in the defaults.
func (o Options) withDefaults() (Options, error) {
	if o.Name == "" {
		o.Name = "default"
	}
	if !labNamePattern.MatchString(o.Name) {
		return o, fmt.Errorf("%w: invalid lab name %q: use up to 31 lowercase letters, digits and dashes, "+
			"starting and ending with a letter or digit", ErrInvalidOptions, o.Name)
	}

	switch o.Topology {
	case "":
		o.Topology = TopologySingle
	case TopologySingle, TopologyMulti:
	default:
		return o, fmt.Errorf("%w: invalid topology %q: use %q or %q", ErrInvalidOptions, o.Topology, TopologySingle, TopologyMulti)
	}
	if o.CoreOnMgmt && o.Topology != TopologyMulti {
		return o, fmt.Errorf("%w: core-on-mgmt applies to the multi topology only; a single node always runs core", ErrInvalidOptions)
	}
	if o.MgmtPort < 0 || o.MgmtPort > 65535 {
		return o, fmt.Errorf("%w: invalid management port %d: use 1-65535, or 0 for a free port", ErrInvalidOptions, o.MgmtPort)
	}
	if lowest := unprivilegedPortStart(); o.MgmtPort != 0 && o.MgmtPort < lowest {
		return o, fmt.Errorf("%w: management port %d is below %d, and the management simulator runs as "+
			"the pas user, which cannot listen on it; use a port from %d up, or 0 for a free port",
			ErrInvalidOptions, o.MgmtPort, lowest, lowest)
	}

	if o.Dir == "" {
		o.Dir = DefaultDir(o.Name)
	}
	abs, err := filepath.Abs(o.Dir)
	if err != nil {
		return o, err
	}
	o.Dir = abs
	if o.ToolImage == "" {
		o.ToolImage = "pasupgrade-lab-" + o.Name + "/" + DefaultToolImage
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.NodeImage.Logger == nil {
		o.NodeImage.Logger = o.Logger
	}
	return o, nil
}

// unprivilegedPortStart returns the lowest port that a non-root process
// may listen on. The nodes share this machine's network namespace, so its
// sysctl applies to them.
func unprivilegedPortStart() int {
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	if err != nil {
		return 1024
	}
	port, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 1024
	}
	return port
}

// containerName returns the container name of a lab's node.
func containerName(lab, node string) string {
	return "pasupgrade-lab-" + lab + "-" + node
}

// freePorts returns n distinct free TCP ports on 127.0.0.1. It holds every
// listener until all are chosen, so the n ports differ; another process
// can still take one before the lab binds it.
func freePorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// checkPortFree returns ErrPortInUse when something listens on port.
func checkPortFree(port int, what string) error {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("%w: %s port %d on 127.0.0.1 is taken (%v); stop what uses it, "+
			"choose another port, or pass 0 for a free one", ErrPortInUse, what, port, err)
	}
	l.Close()
	return nil
}

// randomPassword returns a password of 24 URL-safe characters.
func randomPassword() (string, error) {
	var b [18]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Down removes every container labelled with the lab's name, the lab's
// tool image and the lab directory. The cached node image stays, and so
// does a tool image that another lab's nodes name (see Options.ToolImage),
// with the containers started from it. It is safe to call on a partly
// started lab and to call twice.
func (l *Lab) Down(ctx context.Context, cli client.APIClient) error {
	var errs []error
	removeTool := l.ToolImage != ""
	if removeTool {
		shared, err := toolImageUsers(ctx, cli, l.ToolImage, l.Name)
		if err != nil {
			errs = append(errs, err)
		}
		removeTool = err == nil && len(shared) == 0
	}
	selectors := []filters.KeyValuePair{filters.Arg("label", LabelLab+"="+l.Name)}
	if removeTool {
		// Tool containers started without --rm outlive their command.
		selectors = append(selectors, filters.Arg("ancestor", l.ToolImage))
	}
	var containers []container.Summary
	for _, selector := range selectors {
		found, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(selector)})
		if err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("listing the lab's containers: %w", err))
		}
		containers = append(containers, found...)
	}
	for _, c := range containers {
		err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("removing container %s: %w", c.ID[:12], err))
		}
	}
	if removeTool {
		_, err := cli.ImageRemove(ctx, l.ToolImage, image.RemoveOptions{Force: true, PruneChildren: true})
		if err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("removing image %s: %w", l.ToolImage, err))
		}
	}
	if err := removeLabDir(l.Dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// toolImageUsers returns the names of the labs other than lab whose node
// containers are labelled with the tool image ref.
func toolImageUsers(ctx context.Context, cli client.APIClient, ref, lab string) ([]string, error) {
	list, err := cli.ContainerList(ctx, container.ListOptions{
		All: true, Filters: filters.NewArgs(filters.Arg("label", LabelToolImage+"="+ref)),
	})
	if err != nil {
		return nil, fmt.Errorf("listing the labs that use the tool image %s: %w", ref, err)
	}
	var labs []string
	for _, c := range list {
		if name := c.Labels[LabelLab]; name != lab && !contains(labs, name) {
			labs = append(labs, name)
		}
	}
	return labs, nil
}

// removeLabDir removes dir only when it holds a lab record, so that a
// mistyped --dir never deletes an unrelated directory.
func removeLabDir(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, stateFile)); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("not removing %s: it has no %s, so it is not a lab directory", dir, stateFile)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing the lab directory: %w", err)
	}
	return nil
}
