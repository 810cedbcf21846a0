package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

const deployUsage = "pas-mgmt-deploy-core [--deploy-core] [--restart-storage] [--restart-core] " +
	"[--deploy-ha] [--restart-ha]"

// Files pas-mgmt-deploy-core reads, as the vendor's Ansible-based tool does.
const (
	inventoryFile  = "/opt/balasys/usr/share/automation/inventory.yml"
	commonVarsFile = "/opt/balasys/etc/automation/common_vars.yml"
	sshDir         = "/opt/balasys/.ssh"
	remoteDebDir   = "/tmp"
)

// validTag matches the image tags pas-mgmt-deploy-core accepts.
var validTag = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._-]*$`)

// deployOptions are pas-mgmt-deploy-core's flags.
type deployOptions struct {
	deployCore, restartStorage, restartCore, deployHA, restartHA bool
}

// host is one remote node from the automation inventory, with the host
// variables that set the node's listening ports. A port that is not given
// keeps the package's default.
type host struct {
	Name        string
	Addr        string `yaml:"ansible_host"`
	Port        int    `yaml:"ansible_port"`
	User        string `yaml:"ansible_user"`
	CorePort    int    `yaml:"core_listen_port"`
	StoragePort int    `yaml:"storage_listen_port"`
	HAPort      int    `yaml:"ha_listen_port"`
}

// portCommands returns the remote commands that give h's components the
// ports its host variables name, each after "&& ".
func (h host) portCommands(components ...string) string {
	ports := map[string]int{"core": h.CorePort, "storage": h.StoragePort, "ha": h.HAPort}
	var b strings.Builder
	for _, c := range components {
		if ports[c] != 0 {
			fmt.Fprintf(&b, " && /opt/balasys/usr/bin/pas-%s set-listen-port %d", c, ports[c])
		}
	}
	return b.String()
}

// commonVars is the part of common_vars.yml the deployment uses.
type commonVars struct {
	StorageDebPath string `yaml:"storage_deb_path"`
	CoreDebPath    string `yaml:"core_deb_path"`
	Common         struct {
		Docker struct {
			ImageTag string `yaml:"PAS_IMAGE_TAG"`
		} `yaml:"docker"`
	} `yaml:"common"`
}

// runDeployCore deploys the packages named in common_vars.yml to the core
// (and HA) nodes of the inventory and restarts their services over SSH, as
// the pas user with the key in /opt/balasys/.ssh. The --deploy-* flags
// install and migrate without starting or restarting anything, because the
// lab configures a new node's ports between the deployment and the start;
// the --restart-* flags start stopped services as well. Remote nodes need the
// core package's sudoers rule, which lets pas run dpkg and systemctl.
func runDeployCore(env *environment, args []string) error {
	var opts deployOptions
	flags := flag.NewFlagSet("pas-mgmt-deploy-core", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	flags.BoolVar(&opts.deployCore, "deploy-core", false, "install core_deb_path and storage_deb_path on the core nodes")
	flags.BoolVar(&opts.restartStorage, "restart-storage", false, "restart storage on the core nodes")
	flags.BoolVar(&opts.restartCore, "restart-core", false, "restart core on the core nodes")
	flags.BoolVar(&opts.deployHA, "deploy-ha", false, "install core_deb_path on the HA nodes")
	flags.BoolVar(&opts.restartHA, "restart-ha", false, "restart HA on the HA nodes")
	if err := flags.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, flags.Args())
	}
	if opts == (deployOptions{}) {
		return fmt.Errorf("%w: give at least one of the flags", errUsage)
	}
	// The SSH key and known_hosts belong to pas; root would log in with
	// its own identity and leave root-owned files in pas's home.
	if env.uid == 0 {
		return errors.New("run pas-mgmt-deploy-core as the pas user (sudo -iu pas), not as root")
	}

	d, err := newDeployer(env)
	if err != nil {
		return err
	}
	return d.run(opts)
}

// deployer holds what one pas-mgmt-deploy-core run needs.
type deployer struct {
	env    *environment
	vars   commonVars
	groups map[string][]host
	key    string
}

func newDeployer(env *environment) (*deployer, error) {
	d := &deployer{env: env}
	if err := readYAMLInto(env.path(commonVarsFile), &d.vars); err != nil {
		return nil, err
	}
	groups, err := readInventory(env.path(inventoryFile))
	if err != nil {
		return nil, err
	}
	d.groups = groups
	for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
		if _, err := os.Stat(env.path(filepath.Join(sshDir, name))); err == nil {
			d.key = env.path(filepath.Join(sshDir, name))
			break
		}
	}
	if d.key == "" {
		return nil, fmt.Errorf("no SSH key (id_ed25519, id_ecdsa or id_rsa) in %s; "+
			"the mgmt package creates one at installation", sshDir)
	}
	return d, nil
}

func (d *deployer) run(opts deployOptions) error {
	tag := d.vars.Common.Docker.ImageTag
	if tag == "" {
		return fmt.Errorf("%s: common.docker.PAS_IMAGE_TAG is missing", commonVarsFile)
	}
	// The tag goes into remote shell commands.
	if !validTag.MatchString(tag) {
		return fmt.Errorf("%s: common.docker.PAS_IMAGE_TAG %q is not a version such as 4.9.0",
			commonVarsFile, tag)
	}
	var coreDebs, haDebs []string
	if opts.deployCore {
		coreDebs = []string{d.vars.StorageDebPath, d.vars.CoreDebPath}
	}
	if opts.deployHA {
		haDebs = []string{d.vars.CoreDebPath}
	}
	if err := d.checkDebs(append(coreDebs, haDebs...), tag); err != nil {
		return err
	}

	steps := []struct {
		enabled bool
		group   string
		run     func(host) error
	}{
		{opts.deployCore, "core", func(h host) error {
			return d.install(h, coreDebs, "pas-storage-update --image-tag "+tag+
				" && pas-update --image-tag "+tag+h.portCommands("storage", "core"))
		}},
		{opts.deployHA, "ha", func(h host) error {
			return d.install(h, haDebs, "pas-update --image-tag "+tag+h.portCommands("ha"))
		}},
		{opts.restartStorage, "core", d.restart("proxedo-api-security-storage")},
		{opts.restartCore, "core", d.restart("proxedo-api-security")},
		{opts.restartHA, "ha", d.restart("proxedo-api-security-ha")},
	}
	// Every group is checked before the first node is changed.
	for _, step := range steps {
		if step.enabled && len(d.groups[step.group]) == 0 {
			return fmt.Errorf("%s has no hosts in group %q; add the %s nodes under all.children.%s.hosts",
				inventoryFile, step.group, step.group, step.group)
		}
	}
	for _, step := range steps {
		if !step.enabled {
			continue
		}
		for _, h := range d.groups[step.group] {
			if err := step.run(h); err != nil {
				return fmt.Errorf("node %s (%s): %w", h.Name, h.Addr, err)
			}
		}
	}
	return nil
}

// checkDebs checks that every file is a .deb of this product whose version
// matches PAS_IMAGE_TAG, as the real deployment would fail on a mismatch.
func (d *deployer) checkDebs(files []string, tag string) error {
	for _, file := range files {
		if file == "" {
			return fmt.Errorf("%s: storage_deb_path or core_deb_path is empty", commonVarsFile)
		}
		out, err := exec.Command("dpkg-deb", "--field", d.env.path(file), "Package", "Version").Output()
		if err != nil {
			return fmt.Errorf("reading %s named in %s: %w; put the package there or fix the path",
				file, commonVarsFile, commandError(err))
		}
		fields := parseFields(string(out))
		if !strings.HasPrefix(fields["Package"], corePackage) {
			return fmt.Errorf("%s is package %q, not a Proxedo API Security package", file, fields["Package"])
		}
		if fields["Version"] != tag {
			return fmt.Errorf("%s is version %s but common.docker.PAS_IMAGE_TAG is %s in %s; "+
				"make them match", file, fields["Version"], tag, commonVarsFile)
		}
	}
	return nil
}

// install copies debs to h, installs them keeping changed conffiles and
// defaulting every debconf question, then runs after on h.
func (d *deployer) install(h host, debs []string, after string) error {
	remote := make([]string, len(debs))
	for i, deb := range debs {
		remote[i] = remoteDebDir + "/" + filepath.Base(deb)
		fmt.Fprintf(d.env.stdout, "%s: copying %s\n", h.Name, filepath.Base(deb))
		scp := append([]string{"-q", "-P", strconv.Itoa(h.Port)}, d.sshOptions()...)
		scp = append(scp, d.env.path(deb), h.target()+":"+remote[i])
		if err := d.command(nil, "scp", scp...); err != nil {
			return err
		}
	}
	fmt.Fprintf(d.env.stdout, "%s: installing %s\n", h.Name, strings.Join(remote, " "))
	quoted := make([]string, len(remote))
	for i, path := range remote {
		quoted[i] = shellQuote(path)
	}
	install := "sudo -n DEBIAN_FRONTEND=noninteractive dpkg -i --force-confdef --force-confold " +
		strings.Join(quoted, " ") + " </dev/null"
	if err := d.ssh(h, install); err != nil {
		return err
	}
	return d.ssh(h, after)
}

func (d *deployer) restart(unit string) func(host) error {
	return func(h host) error {
		fmt.Fprintf(d.env.stdout, "%s: restarting %s\n", h.Name, unit)
		return d.ssh(h, "sudo -n systemctl restart "+unit)
	}
}

func (d *deployer) ssh(h host, remoteCommand string) error {
	args := append([]string{"-p", strconv.Itoa(h.Port)}, d.sshOptions()...)
	args = append(args, h.target(), remoteCommand)
	return d.command(nil, "ssh", args...)
}

func (d *deployer) sshOptions() []string {
	return []string{
		"-i", d.key,
		"-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=accept-new",
		"-o", "UserKnownHostsFile=" + d.env.path(filepath.Join(sshDir, "known_hosts")),
		"-o", "ConnectTimeout=10",
	}
}

// command runs a program with its output going to the command's streams.
func (d *deployer) command(stdin io.Reader, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, d.env.stdout, d.env.stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", name, args[len(args)-1], commandError(err))
	}
	return nil
}

func (h host) target() string {
	return h.User + "@" + h.Addr
}

// shellQuote quotes s for a POSIX shell, leaving plain paths unquoted.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/-+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// readInventory returns the hosts of each group under all.children.
func readInventory(file string) (map[string][]host, error) {
	var inv struct {
		All struct {
			Children map[string]struct {
				Hosts map[string]*host `yaml:"hosts"`
			} `yaml:"children"`
		} `yaml:"all"`
	}
	if err := readYAMLInto(file, &inv); err != nil {
		return nil, err
	}
	groups := map[string][]host{}
	for group, g := range inv.All.Children {
		for _, name := range slices.Sorted(maps.Keys(g.Hosts)) {
			h := host{Name: name, Port: 22, User: "pas"}
			if g.Hosts[name] != nil {
				h = *g.Hosts[name]
				h.Name = name
				if h.Port == 0 {
					h.Port = 22
				}
				if h.User == "" {
					h.User = "pas"
				}
			}
			if h.Addr == "" {
				h.Addr = name
			}
			groups[group] = append(groups[group], h)
		}
	}
	for _, hosts := range groups {
		sort.Slice(hosts, func(i, j int) bool { return hosts[i].Name < hosts[j].Name })
	}
	return groups, nil
}

func readYAMLInto(file string, v any) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("reading %s: %w", file, err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		return fmt.Errorf("parsing %s: %w", file, err)
	}
	return nil
}

// parseFields parses "Key: value" lines as dpkg-deb --field prints them.
func parseFields(text string) map[string]string {
	fields := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if key, value, ok := strings.Cut(line, ":"); ok {
			fields[strings.TrimSpace(key)] = strings.TrimSpace(value)
		}
	}
	return fields
}

// commandError adds a failed command's stderr to its error.
func commandError(err error) error {
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) && len(exitErr.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(exitErr.Stderr)))
	}
	return err
}
