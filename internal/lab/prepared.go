package lab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"

	"github.com/pasops/pasupgrade/runner"
)

// PreparedImageRepository is the repository of prepared node images (see
// Options.PreparedImages). The tag is the image's content key.
const PreparedImageRepository = "pasupgrade-lab-prepared"

// preparedImages records, for this process, which prepared images an Up
// call is committing and which ones this process committed, so that
// parallel labs commit each image once and RemovePreparedImages removes
// only this process's images.
var preparedImages = struct {
	sync.Mutex
	committing map[string]bool
	committed  []string
}{committing: map[string]bool{}}

// preparedState is one Up call's use of a prepared image.
type preparedState struct {
	// ref is the prepared image the management node started from, or "".
	ref string
	// missingRef is the prepared image that the engine lacked when the
	// management node started, or "".
	missingRef string
	// commitRef is missingRef once this Up call has claimed its commit,
	// or "" when another call of this process commits it.
	commitRef string
}

// PreparedImageKey returns the content key of the management node image
// that a lab with these options prepares: a hash of the node image
// reference, the topology options that choose the installed packages and
// the 4.8.0 .deb files in packageDir.
func PreparedImageKey(nodeImage string, opts Options, packageDir string) (string, error) {
	return preparedKey(nodeImage, "mgmt", opts, packageDir, Packages)
}

// preparedKey returns the content key of the prepared image of a node with
// role that has pkgs installed from packageDir.
func preparedKey(nodeImage, role string, opts Options, packageDir string, pkgs []string) (string, error) {
	h := sha256.New()
	if role == "core" {
		// A remote core node is the same whether or not the management
		// node runs core too; the bootstrap's sudoers rule is part of it.
		fmt.Fprintf(h, "node-image=%s\nrole=core\nha=%t\nbootstrap=%s\n", nodeImage, opts.HA, bootstrapScript)
	} else {
		fmt.Fprintf(h, "node-image=%s\nrole=%s\ntopology=%s\nha=%t\ncore-on-mgmt=%t\n",
			nodeImage, role, opts.Topology, opts.HA, opts.CoreOnMgmt)
	}
	for _, pkg := range pkgs {
		name := DebFileName(pkg, labVersion)
		f, err := os.Open(filepath.Join(packageDir, name))
		if err != nil {
			return "", fmt.Errorf("hashing %s for the prepared image key: %w", name, err)
		}
		fmt.Fprintf(h, "deb=%s\n", name)
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("hashing %s for the prepared image key: %w", name, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// mgmtImage returns the image the management node starts from: the
// prepared image when Options.PreparedImages is set and the engine has it,
// else the node image.
func (u *upper) mgmtImage(ctx context.Context) (string, error) {
	return u.preparedImage(ctx, &u.prepared, "mgmt", Packages)
}

// coreImage returns the image the remote core node starts from: the
// prepared image with 4.8.0 deployed when Options.PreparedImages is set
// and the engine has it, else the node image.
func (u *upper) coreImage(ctx context.Context) (string, error) {
	return u.preparedImage(ctx, &u.preparedCore, "core", []string{StoragePackage, CorePackage})
}

// preparedImage returns the prepared image of role, recording in st
// whether the engine has it.
func (u *upper) preparedImage(ctx context.Context, st *preparedState, role string, pkgs []string) (string, error) {
	l := u.lab
	if !u.opts.PreparedImages {
		return l.NodeImage, nil
	}
	key, err := preparedKey(l.NodeImage, role, u.opts, l.PackageDir(), pkgs)
	if err != nil {
		return "", err
	}
	ref := PreparedImageRepository + ":" + key

	ok, err := imageExists(ctx, u.cli, ref)
	if err != nil {
		return "", err
	}
	if ok {
		st.ref = ref
		return ref, nil
	}
	st.missingRef = ref
	return l.NodeImage, nil
}

// installMgmt installs the 4.8.0 packages on a management node started
// from the node image, and commits the result as the missing prepared
// image unless another Up call of this process is committing it. On a
// node started from a prepared image it only stores this lab's admin
// password, because the packages are installed.
func (u *upper) installMgmt(ctx context.Context, node *Node, packages []string) error {
	log := u.opts.Logger
	if u.prepared.ref != "" {
		log.Info("starting from the prepared image with PAS 4.8.0 installed", "node", node.Name, "image", u.prepared.ref)
		return u.setAdminPassword(ctx, node)
	}

	log.Info("installing PAS 4.8.0", "node", node.Name, "packages", packages)
	claimCommit(&u.prepared)
	err := u.preseedPassword(ctx, node)
	if err == nil {
		err = u.dpkgInstall(ctx, node, packages)
	}
	if err != nil || u.prepared.commitRef == "" {
		releaseCommit(&u.prepared)
		return err
	}
	u.commitOrWarn(ctx, node, &u.prepared, "management")
	return nil
}

// commitOrWarn commits node as st's prepared image. A failed commit costs
// later labs time only, so it is logged and does not fail Up.
func (u *upper) commitOrWarn(ctx context.Context, node *Node, st *preparedState, role string) {
	ref := st.commitRef
	if err := u.commitPrepared(ctx, node, st, role); err != nil {
		u.opts.Logger.Warn("committing the prepared image failed; later labs install PAS again",
			"image", ref, "err", err)
	}
}

// setAdminPassword replaces the admin password hash that the prepared
// image contains with this lab's, as the 4.8.0 postinst stores a
// preseeded password. The password travels on stdin, never in argv.
func (u *upper) setAdminPassword(ctx context.Context, node *Node) error {
	_, err := node.Run(ctx, runner.Command{
		Argv:    []string{"/opt/balasys/usr/bin/pas-mgmt", "set-password", "--scheme", "sha"},
		Stdin:   strings.NewReader(u.password + "\n"),
		Secrets: []string{u.password},
	})
	if err != nil {
		return fmt.Errorf("storing the admin password in the prepared node: %w", err)
	}
	return nil
}

// commitPrepared commits a node with 4.8.0 installed as st's prepared
// image. The settings of this lab that it holds are set again on every
// node started from it.
func (u *upper) commitPrepared(ctx context.Context, node *Node, st *preparedState, role string) error {
	ref := st.commitRef
	defer releaseCommit(st)

	// StartNode creates the docker group with the engine socket's gid, and
	// groupadd fails on a group that exists, so the image must not have it.
	socket, err := dockerSocket(u.cli)
	if err != nil {
		return err
	}
	hasGroup := true
	if _, err := node.Run(ctx, runner.Command{Argv: []string{"getent", "group", "docker"}}); err != nil {
		hasGroup = false
	}
	if hasGroup {
		if _, err := node.Run(ctx, runner.Command{Argv: []string{"groupdel", "docker"}}); err != nil {
			return err
		}
	}
	_, commitErr := u.cli.ContainerCommit(ctx, node.ID, container.CommitOptions{
		Reference: ref,
		Comment:   "pas-lab " + role + " node with PAS " + labVersion + " installed",
		Pause:     true,
	})
	if commitErr == nil {
		preparedImages.Lock()
		preparedImages.committed = append(preparedImages.committed, ref)
		preparedImages.Unlock()
	}
	if hasGroup {
		if err := node.shareSocketGroup(ctx, socket); err != nil {
			return errors.Join(commitErr, fmt.Errorf("recreating the docker group: %w", err))
		}
	}
	if commitErr != nil {
		return fmt.Errorf("committing node %s as %s: %w", node.Name, ref, commitErr)
	}
	u.opts.Logger.Info("committed the prepared "+role+" node image", "image", ref)
	return nil
}

// claimCommit makes this Up call the one that commits st's missing
// prepared image, unless another Up call of this process holds that claim
// or has committed it since this node started.
func claimCommit(st *preparedState) {
	ref := st.missingRef
	if ref == "" {
		return
	}
	preparedImages.Lock()
	defer preparedImages.Unlock()
	if !preparedImages.committing[ref] && !contains(preparedImages.committed, ref) {
		preparedImages.committing[ref] = true
		st.commitRef = ref
	}
}

// releaseCommit gives up this Up call's claim on committing st's prepared
// image, so that a later Up call can commit it.
func releaseCommit(st *preparedState) {
	if st.commitRef == "" {
		return
	}
	preparedImages.Lock()
	delete(preparedImages.committing, st.commitRef)
	preparedImages.Unlock()
	st.commitRef = ""
}

// RemovePreparedImages removes the prepared images that this process
// committed. Call it after every lab started from them is down, because
// the engine keeps an image that a container uses.
func RemovePreparedImages(ctx context.Context, cli client.APIClient) error {
	preparedImages.Lock()
	refs := preparedImages.committed
	preparedImages.committed = nil
	preparedImages.Unlock()

	var errs []error
	for _, ref := range refs {
		_, err := cli.ImageRemove(ctx, ref, image.RemoveOptions{PruneChildren: true})
		if err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("removing prepared image %s: %w", ref, err))
		}
	}
	return errors.Join(errs...)
}
