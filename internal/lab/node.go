package lab

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"

	"github.com/pasops/pasupgrade/runner"
)

// LabelLab is the container label that names the lab a node belongs to;
// pas-lab down and status find a lab's containers by it.
const LabelLab = "pasupgrade.lab"

// LabelRole is the container label with the node's role, such as "mgmt"
// or "core".
const LabelRole = "pasupgrade.lab.role"

// LabelToolImage is the container label with the lab's upgrade tool image,
// so that down keeps an image that another lab uses too.
const LabelToolImage = "pasupgrade.lab.tool-image"

// nodeDockerSocket is the engine socket's path inside a node.
const nodeDockerSocket = "/var/run/docker.sock"

// NodeOptions configures StartNode.
type NodeOptions struct {
	// Name is the container name. It must be unique on the engine; use
	// UniqueName to derive one from a prefix.
	Name string

	// Image is the node image reference. Empty means EnsureNodeImage.
	Image string

	// WorkDir is a directory on this machine that the node mounts at the
	// same path, so a bind mount named by a command inside the node (the
	// upgrade tool's "--volume $(pwd):/upgrade") works on the shared engine.
	// It is created when missing. Empty means no work directory.
	WorkDir string

	// Labels are added to the container's labels.
	Labels map[string]string
}

// Node is a running node container. Its Run method runs commands inside it,
// so a *Node is a runner.Runner. Remove it when done.
type Node struct {
	// ID and Name identify the container on the engine.
	ID, Name string

	// WorkDir is the work directory mounted at the same path, or empty.
	WorkDir string

	// Terminal, when set, is what Interactive commands are connected to,
	// through a pseudo-terminal in the node. Nil rejects them. Set it
	// before running commands, and keep one Terminal for one input:
	// Interactive commands share the Terminal's reader, so input that
	// arrives after one command ended goes to the next.
	Terminal *runner.Terminal

	cli client.APIClient

	inputMu sync.Mutex
	input   *terminalInput
}

var _ runner.Runner = (*Node)(nil)

// UniqueName returns prefix followed by a dash and 8 random hex digits.
func UniqueName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// StartNode creates and starts a node container on the host network. The
// engine's socket is mounted at /var/run/docker.sock, and a "docker" group
// with the socket's gid gives access to it. The work directory is mounted
// at its own path, docker-init runs as PID 1 and reaps detached service
// processes, and this machine's docker client is copied to
// /usr/bin/docker. On error the container is removed, but a work
// directory that StartNode created stays.
func StartNode(ctx context.Context, cli client.APIClient, opts NodeOptions) (*Node, error) {
	if opts.Name == "" {
		return nil, errors.New("starting a node: NodeOptions.Name is empty; use lab.UniqueName(prefix)")
	}
	if opts.Image == "" {
		ref, err := EnsureNodeImage(ctx, cli)
		if err != nil {
			return nil, err
		}
		opts.Image = ref
	}
	socket, err := dockerSocket(cli)
	if err != nil {
		return nil, err
	}

	binds := []string{socket + ":" + nodeDockerSocket}
	if opts.WorkDir != "" {
		abs, err := filepath.Abs(opts.WorkDir)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return nil, fmt.Errorf("creating the node work directory: %w", err)
		}
		opts.WorkDir = abs
		binds = append(binds, abs+":"+abs)
	}
	labels := map[string]string{}
	for k, v := range opts.Labels {
		labels[k] = v
	}

	// docker-init as PID 1 reaps the detached service processes whose
	// parents exit, so a dead service never lingers as a zombie.
	useInit := true
	created, err := cli.ContainerCreate(ctx,
		&container.Config{Image: opts.Image, Labels: labels},
		&container.HostConfig{NetworkMode: "host", Binds: binds, Init: &useInit},
		nil, nil, opts.Name)
	if err != nil {
		return nil, fmt.Errorf("creating node container %s from %s: %w", opts.Name, opts.Image, err)
	}
	n := &Node{ID: created.ID, Name: opts.Name, WorkDir: opts.WorkDir, cli: cli}

	if err := n.setUp(ctx, socket); err != nil {
		removeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		return nil, errors.Join(err, n.Remove(removeCtx))
	}
	return n, nil
}

// setUp starts the container and prepares what its commands expect.
func (n *Node) setUp(ctx context.Context, socket string) error {
	if err := n.cli.ContainerStart(ctx, n.ID, container.StartOptions{}); err != nil {
		return fmt.Errorf("starting node container %s: %w", n.Name, err)
	}
	if _, err := n.Run(ctx, runner.Command{Argv: []string{"mkdir", "-p", "/run/sshd"}}); err != nil {
		return err
	}
	if err := n.shareSocketGroup(ctx, socket); err != nil {
		return err
	}
	dockerCLI, err := exec.LookPath("docker")
	if err != nil {
		return fmt.Errorf("the docker client is not installed on this machine; node commands " +
			"run it, so install it with 'make lab-deps'")
	}
	return n.CopyFile(ctx, dockerCLI, "/usr/bin/docker", 0o755)
}

// shareSocketGroup creates the group "docker" in the node with the gid of
// the engine's socket, so members of it (see GrantDocker) reach the engine.
func (n *Node) shareSocketGroup(ctx context.Context, socket string) error {
	fi, err := os.Stat(socket)
	if err != nil {
		return fmt.Errorf("reading the engine socket %s: %w", socket, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Gid == 0 {
		// A root-owned socket is reachable only by root, in the node too.
		return nil
	}
	_, err = n.Run(ctx, runner.Command{
		Argv: []string{"groupadd", "--non-unique", "--gid", strconv.Itoa(int(st.Gid)), "docker"}})
	return err
}

// GrantDocker adds user to the node's "docker" group so that the user can
// run docker commands against the engine, as the guide's upgrade steps do
// as the pas user.
func (n *Node) GrantDocker(ctx context.Context, user string) error {
	if _, err := n.Run(ctx, runner.Command{Argv: []string{"getent", "group", "docker"}}); err != nil {
		// shareSocketGroup creates no group for a socket of group root.
		return fmt.Errorf("granting %s access to the Docker engine in node %s: the node has no docker "+
			"group, because the engine's socket belongs to group root; start dockerd with --group "+
			"set to a group that exists on this machine, such as docker", user, n.Name)
	}
	_, err := n.Run(ctx, runner.Command{Argv: []string{"usermod", "--append", "--groups", "docker", user}})
	return err
}

// WriteFile writes data to nodePath inside the node with mode, owned by
// root, creating parent directories as needed.
func (n *Node) WriteFile(ctx context.Context, nodePath string, data []byte, mode os.FileMode) error {
	dir := path.Dir(nodePath)
	if _, err := n.Run(ctx, runner.Command{Argv: []string{"mkdir", "-p", dir}}); err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{
		Name:     path.Base(nodePath),
		Mode:     int64(mode.Perm()),
		Size:     int64(len(data)),
		Typeflag: tar.TypeReg,
		ModTime:  time.Now(),
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := tw.Write(data); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	err := n.cli.CopyToContainer(ctx, n.ID, dir, &buf, container.CopyToContainerOptions{})
	if err != nil {
		return fmt.Errorf("copying %s into node %s: %w", nodePath, n.Name, err)
	}
	return nil
}

// CopyFile copies the file at hostPath on this machine to nodePath inside
// the node with mode, owned by root.
func (n *Node) CopyFile(ctx context.Context, hostPath, nodePath string, mode os.FileMode) error {
	data, err := os.ReadFile(hostPath)
	if err != nil {
		return fmt.Errorf("reading %s to copy into node %s: %w", hostPath, n.Name, err)
	}
	return n.WriteFile(ctx, nodePath, data, mode)
}

// maxSymlinks is how many symbolic links ReadFile follows before it gives
// up on a loop: Linux's limit (MAXSYMLINKS, 40).
const maxSymlinks = 40

// ReadFile returns the content of nodePath inside the node, following
// symbolic links.
func (n *Node) ReadFile(ctx context.Context, nodePath string) ([]byte, error) {
	target := nodePath
	for range maxSymlinks {
		data, link, err := n.readEntry(ctx, target)
		if err != nil {
			return nil, fmt.Errorf("reading %s from node %s: %w", nodePath, n.Name, err)
		}
		if link == "" {
			return data, nil
		}
		// The engine's copy API returns a link itself, not its target.
		if !path.IsAbs(link) {
			link = path.Join(path.Dir(target), link)
		}
		target = link
	}
	return nil, fmt.Errorf("reading %s from node %s: more than %d symbolic links", nodePath, n.Name, maxSymlinks)
}

// readEntry returns the content of the regular file at nodePath, or the
// target of the symbolic link there.
func (n *Node) readEntry(ctx context.Context, nodePath string) ([]byte, string, error) {
	rc, _, err := n.cli.CopyFromContainer(ctx, n.ID, nodePath)
	if err != nil {
		return nil, "", err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	hdr, err := tr.Next()
	if err != nil {
		return nil, "", err
	}
	switch hdr.Typeflag {
	case tar.TypeSymlink:
		return nil, hdr.Linkname, nil
	case tar.TypeReg:
	default:
		return nil, "", errors.New("not a regular file")
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(tr); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), "", nil
}

// Remove kills and removes the container with its anonymous volumes. It is
// safe to call twice; a container that is already gone is not an error.
func (n *Node) Remove(ctx context.Context) error {
	err := n.cli.ContainerRemove(ctx, n.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("removing node container %s: %w", n.Name, err)
	}
	return nil
}
