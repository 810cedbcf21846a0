package lab

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pasops/pasupgrade/runner"
)

// coreNodeName is the core node's name in the lab and in the inventory.
const coreNodeName = "core-1"

// Paths on the management node that the core deployment reads.
const (
	inventoryPath = "/opt/balasys/usr/share/automation/inventory.yml"
	pasPublicKey  = "/opt/balasys/.ssh/id_ed25519.pub"
)

// bootstrapScript prepares a fresh core node as an operator does before
// the first core deployment. It creates the pas user with home /opt/balasys,
// as the packages do, and a sudoers rule that lets pas-mgmt-deploy-core run
// dpkg and systemctl there over SSH. The password field becomes "*"
// because sshd rejects key logins of an account locked with "!".
const bootstrapScript = `set -e
getent group pas >/dev/null || addgroup --system --quiet pas
getent passwd pas >/dev/null || adduser --system --quiet --ingroup pas --home /opt/balasys \
	--no-create-home --shell /bin/bash --gecos "Proxedo API Security" pas
usermod -p '*' pas
install -d -o pas -g pas -m 0755 /opt/balasys
install -d -o pas -g pas -m 0700 /opt/balasys/.ssh
cat >/etc/sudoers.d/pas-lab-bootstrap <<'SUDOERS'
Defaults:pas !requiretty
pas ALL=(root) NOPASSWD: /usr/bin/systemctl, /bin/systemctl
pas ALL=(root) NOPASSWD:SETENV: /usr/bin/dpkg
SUDOERS
chmod 0440 /etc/sudoers.d/pas-lab-bootstrap
`

// upCore starts the core node, lets it accept the management node's pas
// key over SSH, lists it in the inventory and deploys 4.8.0 to it with
// pas-mgmt-deploy-core, as a real installation does. A node started from
// the prepared core image has that deployment already and only gets this
// lab's key, ports and inventory entry.
func (u *upper) upCore(ctx context.Context) error {
	l := u.lab
	mgmt := u.nodes["mgmt"]
	node, info, err := u.startNode(ctx, coreNodeName, "core")
	if err != nil {
		return err
	}
	components := []string{"storage", "core"}
	if l.HA {
		components = append(components, "ha")
	}
	info.Packages = []string{StoragePackage, CorePackage}
	if err := u.assignPorts(info, components, 0); err != nil {
		return err
	}

	prepared := u.preparedCore.ref != ""
	if prepared {
		u.opts.Logger.Info("starting from the prepared image with PAS 4.8.0 deployed", "node", node.Name, "image", u.preparedCore.ref)
	} else if _, err := node.Run(ctx, runner.Command{Argv: []string{"sh", "-c", bootstrapScript}}); err != nil {
		return fmt.Errorf("creating the pas user: %w", err)
	}
	key, err := mgmt.ReadFile(ctx, pasPublicKey)
	if err != nil {
		return fmt.Errorf("reading the pas key that the mgmt package created: %w", err)
	}
	if err := node.WriteFile(ctx, "/opt/balasys/.ssh/authorized_keys", key, 0o600); err != nil {
		return err
	}
	if _, err := node.Run(ctx, runner.Command{Argv: []string{"chown", "pas:pas", "/opt/balasys/.ssh/authorized_keys"}}); err != nil {
		return err
	}
	if err := u.startSSH(ctx, node, info.Ports["ssh"]); err != nil {
		return err
	}

	if err := u.writeInventory(ctx, mgmt, info.Ports); err != nil {
		return err
	}
	if err := u.placeDeployDebs(ctx, mgmt); err != nil {
		return err
	}
	if prepared {
		// The image holds the ports of the lab that committed it.
		if err := setListenPorts(ctx, node, info.Ports, components); err != nil {
			return err
		}
	} else if err := u.deployAndCommit(ctx, node, mgmt, info.Ports["ssh"]); err != nil {
		return err
	}
	restart := []string{"pas-mgmt-deploy-core", "--restart-storage", "--restart-core"}
	if l.HA {
		restart = append(restart, "--restart-ha")
	}
	if err := u.deployCore(ctx, mgmt, restart); err != nil {
		return err
	}
	for _, c := range startOrder {
		if !contains(components, c) {
			continue
		}
		if err := waitListening(ctx, info.Ports[c]); err != nil {
			return fmt.Errorf("%s (port %d): %w", componentUnits[c], info.Ports[c], err)
		}
		info.Units = append(info.Units, componentUnits[c])
	}
	return l.save()
}

// deployAndCommit deploys 4.8.0 to a core node started from the node
// image, as a real installation does, and commits the node as the missing
// prepared image unless another Up call of this process is committing it.
func (u *upper) deployAndCommit(ctx context.Context, node, mgmt *Node, sshPort int) error {
	deploy := []string{"pas-mgmt-deploy-core", "--deploy-core"}
	if u.lab.HA {
		deploy = append(deploy, "--deploy-ha")
	}
	claimCommit(&u.preparedCore)
	// The deployment gives the node the ports the inventory names, so a
	// node that a restore reinstalls gets them again.
	if err := u.deployCore(ctx, mgmt, deploy); err != nil || u.preparedCore.commitRef == "" {
		releaseCommit(&u.preparedCore)
		return err
	}
	// sshd is stopped for the commit, so that a node started from the
	// image finds no record of a running sshd from this node.
	if _, err := node.Run(ctx, runner.Command{Argv: []string{"systemctl", "stop", "ssh"}}); err != nil {
		releaseCommit(&u.preparedCore)
		return fmt.Errorf("stopping sshd for the commit: %w", err)
	}
	u.commitOrWarn(ctx, node, &u.preparedCore, "core")
	if err := u.startUnit(ctx, node, "ssh"); err != nil {
		return err
	}
	return waitListening(ctx, sshPort)
}

// setListenPorts gives each of components on node its port, as the
// deployment does from the inventory's host variables.
func setListenPorts(ctx context.Context, node *Node, ports map[string]int, components []string) error {
	for _, c := range components {
		argv := []string{"/opt/balasys/usr/bin/pas-" + c, "set-listen-port", strconv.Itoa(ports[c])}
		if _, err := node.Run(ctx, runner.Command{Argv: argv, User: "pas"}); err != nil {
			return fmt.Errorf("setting the %s port: %w", c, err)
		}
	}
	return nil
}

// startSSH runs sshd through the systemctl stand-in on port, on loopback
// only, with key logins only.
func (u *upper) startSSH(ctx context.Context, node *Node, port int) error {
	config := "Port " + strconv.Itoa(port) + "\nListenAddress 127.0.0.1\n" +
		"PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
	if err := node.WriteFile(ctx, "/etc/ssh/sshd_config.d/pas-lab.conf", []byte(config), 0o644); err != nil {
		return err
	}
	if err := u.startUnit(ctx, node, "ssh"); err != nil {
		return err
	}
	return waitListening(ctx, port)
}

// writeInventory lists the core node in the management node's automation
// inventory, reached on loopback at its ssh port as pas, with host
// variables that set its components' listening ports.
func (u *upper) writeInventory(ctx context.Context, mgmt *Node, ports map[string]int) error {
	vars := fmt.Sprintf("ansible_host: 127.0.0.1, ansible_port: %d, ansible_user: pas", ports["ssh"])
	for _, c := range []string{"core", "storage", "ha"} {
		if port, ok := ports[c]; ok {
			vars += fmt.Sprintf(", %s_listen_port: %d", c, port)
		}
	}
	host := fmt.Sprintf("        %s: {%s}\n", coreNodeName, vars)
	haHosts := "      hosts: {}\n"
	if u.lab.HA {
		haHosts = "      hosts:\n  " + host
	}
	inventory := "# Written by pas-lab: the lab's core node, reached over SSH on loopback.\n" +
		"all:\n  children:\n    core:\n      hosts:\n" + host + "    ha:\n" + haHosts
	if err := mgmt.WriteFile(ctx, inventoryPath, []byte(inventory), 0o644); err != nil {
		return err
	}
	_, err := mgmt.Run(ctx, runner.Command{Argv: []string{"chown", "pas:pas", inventoryPath}})
	return err
}

// placeDeployDebs copies the 4.8.0 core and storage packages to the paths
// that common_vars.yml names (/tmp), where pas-mgmt-deploy-core reads them.
func (u *upper) placeDeployDebs(ctx context.Context, mgmt *Node) error {
	for _, pkg := range []string{StoragePackage, CorePackage} {
		name := DebFileName(pkg, labVersion)
		argv := []string{"install", "-m", "0644", filepath.Join(u.lab.PackageDir(), name), "/tmp/" + name}
		if _, err := mgmt.Run(ctx, runner.Command{Argv: argv}); err != nil {
			return fmt.Errorf("placing %s for the core deployment: %w", name, err)
		}
	}
	return nil
}

// deployCore runs pas-mgmt-deploy-core as pas on the management node.
func (u *upper) deployCore(ctx context.Context, mgmt *Node, argv []string) error {
	u.opts.Logger.Info("deploying to the core node", "command", strings.Join(argv, " "))
	_, err := mgmt.Run(ctx, runner.Command{Argv: argv, User: "pas", Dir: "/opt/balasys"})
	if err != nil {
		return fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	return nil
}
