package lab

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
)

// NodeImageRepository is the repository of the node image. Its tag is the
// image's content key, so a changed recipe gives a new tag.
const NodeImageRepository = "pasupgrade-lab-node"

// NodePackages are the Debian packages installed on top of debootstrap's
// minbase variant. Every node needs debconf, passwd, sudo, procps, ssh and
// CA certificates. The simulated packages' maintainer scripts call
// adduser, debconf's dialog frontend needs whiptail, the guide's bootstrap
// backup uses zip and unzip, and openssl and curl serve checks from
// inside a node.
var NodePackages = []string{
	"adduser",
	"ca-certificates",
	"curl",
	"debconf",
	"openssh-client",
	"openssh-server",
	"openssl",
	"passwd",
	"procps",
	"sudo",
	"unzip",
	"whiptail",
	"zip",
}

// nodeSuite and nodeVariant are debootstrap's suite and variant.
const (
	nodeSuite   = "bookworm"
	nodeVariant = "minbase"
)

// nodeRecipeVersion changes whenever the steps after debootstrap change,
// so that the content key changes with them.
const nodeRecipeVersion = "1"

// policyRCD stops maintainer scripts from starting services through
// invoke-rc.d: in a node, services start only through the systemctl
// stand-in.
const policyRCD = "#!/bin/sh\n# Services in a lab node start only through systemctl.\nexit 101\n"

// ErrMirrorUnreachable is returned when debootstrap cannot download from
// the Debian mirror.
var ErrMirrorUnreachable = errors.New("lab: Debian mirror unreachable")

// NodeImage builds the node image. The zero value builds from the mirror
// that this machine's APT configuration names, caching under CacheDir.
type NodeImage struct {
	// Mirror is the Debian mirror URL for debootstrap. Empty means the
	// bookworm mirror of /etc/apt/sources.list{,.d}, or deb.debian.org.
	Mirror string

	// CacheDir keeps debootstrap's package cache, the build tree and the
	// build lock. Empty means CacheDir().
	CacheDir string

	// Repository is the image repository; the tag is the content key.
	// Empty means NodeImageRepository.
	Repository string

	// Logger receives progress. Nil discards it.
	Logger *slog.Logger
}

// EnsureNodeImage returns the reference of the node image, building it with
// the zero NodeImage when the engine does not have it yet.
func EnsureNodeImage(ctx context.Context, cli client.APIClient) (string, error) {
	return NodeImage{}.Ensure(ctx, cli)
}

// NodeImageKey returns the content key of the node image: a hash of the
// suite, variant, package list and post-debootstrap recipe. The mirror is
// not part of it, because every mirror serves the same packages.
func NodeImageKey() string {
	h := sha256.New()
	fmt.Fprintf(h, "suite=%s\nvariant=%s\nrecipe=%s\n", nodeSuite, nodeVariant, nodeRecipeVersion)
	fmt.Fprintf(h, "packages=%s\npolicy-rc.d=%s\n", strings.Join(NodePackages, ","), policyRCD)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// NodeImageRef returns the reference the node image is tagged with.
func NodeImageRef() string {
	return NodeImageRepository + ":" + NodeImageKey()
}

// Ensure returns the reference of the node image, building and importing it
// when the engine does not have it. Concurrent calls, also from other
// processes sharing the cache directory, build it once.
func (b NodeImage) Ensure(ctx context.Context, cli client.APIClient) (string, error) {
	ref := NodeImageRef()
	if b.Repository != "" {
		ref = b.Repository + ":" + NodeImageKey()
	}
	if ok, err := imageExists(ctx, cli, ref); err != nil || ok {
		return ref, err
	}

	cacheDir := b.cacheDir()
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("creating the lab cache directory: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(cacheDir, "node-image.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()

	// Another process may have built it while this one waited for the lock.
	if ok, err := imageExists(ctx, cli, ref); err != nil || ok {
		return ref, err
	}
	if err := b.build(ctx, cli, ref); err != nil {
		return "", err
	}
	return ref, nil
}

func (b NodeImage) cacheDir() string {
	if b.CacheDir != "" {
		return b.CacheDir
	}
	return CacheDir()
}

func (b NodeImage) logger() *slog.Logger {
	if b.Logger != nil {
		return b.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// build runs debootstrap into a fresh tree under the cache directory,
// imports the tree as ref and removes the tree.
func (b NodeImage) build(ctx context.Context, cli client.APIClient, ref string) error {
	log := b.logger()
	mirror := b.Mirror
	if mirror == "" {
		mirror = SystemMirror()
	}

	buildDir, err := os.MkdirTemp(b.cacheDir(), "node-build-")
	if err != nil {
		return fmt.Errorf("creating the node image build directory: %w", err)
	}
	rootfs := filepath.Join(buildDir, "rootfs")
	defer func() {
		if err := removeTree(buildDir); err != nil {
			log.Warn("removing the node image build tree failed", "dir", buildDir, "err", err)
		}
	}()

	log.Info("building the node image with debootstrap", "ref", ref, "mirror", mirror)
	debCache := filepath.Join(b.cacheDir(), "debootstrap-cache")
	if err := os.MkdirAll(debCache, 0o755); err != nil {
		return fmt.Errorf("creating debootstrap's cache directory: %w", err)
	}
	if err := runDebootstrap(ctx, rootfs, mirror, debCache, filepath.Join(buildDir, "debootstrap.log")); err != nil {
		return err
	}
	if err := customizeRootfs(rootfs); err != nil {
		return err
	}

	log.Info("importing the node image", "ref", ref)
	return importTree(ctx, cli, rootfs, ref)
}

// customizeRootfs applies the steps after debootstrap. Changing them means
// changing nodeRecipeVersion.
func customizeRootfs(rootfs string) error {
	files := map[string]string{
		"usr/sbin/policy-rc.d": policyRCD,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(rootfs, name), []byte(content), 0o755); err != nil {
			return fmt.Errorf("writing %s into the node image: %w", name, err)
		}
	}

	// The package cache and lists only make the image larger; apt-get
	// update inside a node fetches fresh lists when a test needs them.
	for _, dir := range []string{"var/cache/apt/archives", "var/lib/apt/lists"} {
		entries, err := filepath.Glob(filepath.Join(rootfs, dir, "*"))
		if err != nil {
			return err
		}
		for _, e := range entries {
			if fi, err := os.Lstat(e); err == nil && fi.Mode().IsRegular() {
				if err := os.Remove(e); err != nil {
					return fmt.Errorf("cleaning %s in the node image: %w", dir, err)
				}
			}
		}
	}
	return nil
}

// importTree streams rootfs as a tar archive into the engine as ref.
func importTree(ctx context.Context, cli client.APIClient, rootfs, ref string) error {
	tarCmd := exec.CommandContext(ctx, "tar", "--numeric-owner", "--xattrs",
		"--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*",
		"-C", rootfs, "-cf", "-", ".")
	var tarErr strings.Builder
	tarCmd.Stderr = &tarErr
	stream, err := tarCmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := tarCmd.Start(); err != nil {
		return fmt.Errorf("starting tar for the node image: %w", err)
	}

	changes := []string{
		`CMD ["/bin/sleep", "infinity"]`,
		"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"LABEL pasupgrade.lab.node-key=" + NodeImageKey(),
	}
	repo, tag := splitRef(ref)
	body, importErr := cli.ImageImport(ctx, image.ImportSource{Source: stream, SourceName: "-"},
		repo, image.ImportOptions{Tag: tag, Changes: changes, Message: "pasupgrade lab node"})
	if importErr == nil {
		importErr = readJSONStream(body)
		body.Close()
	}
	// Drain what the engine did not read, so tar can exit.
	_, _ = io.Copy(io.Discard, stream)
	waitErr := tarCmd.Wait()

	if importErr != nil {
		return fmt.Errorf("importing the node image %s: %w", ref, importErr)
	}
	if waitErr != nil {
		return fmt.Errorf("packing the node image tree with tar: %w: %s", waitErr, tarErr.String())
	}
	return nil
}

// readJSONStream reads a Docker progress stream and returns the first error
// message in it.
func readJSONStream(r io.Reader) error {
	dec := json.NewDecoder(bufio.NewReader(r))
	for {
		var msg struct {
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading the engine's progress stream: %w", err)
		}
		if msg.Error != "" {
			return errors.New(msg.Error)
		}
	}
}

func imageExists(ctx context.Context, cli client.APIClient, ref string) (bool, error) {
	_, err := cli.ImageInspect(ctx, ref)
	switch {
	case err == nil:
		return true, nil
	case errdefs.IsNotFound(err):
		return false, nil
	default:
		return false, fmt.Errorf("inspecting image %s: %w", ref, err)
	}
}

// lockFile takes an exclusive flock on path, waiting until it is free or
// ctx ends, and returns the function that releases it.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- syscall.Flock(int(f.Fd()), syscall.LOCK_EX) }()
	select {
	case err := <-done:
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		return func() { f.Close() }, nil
	case <-ctx.Done():
		// Closing the file releases the lock if the goroutine gets it later.
		go func() { <-done; f.Close() }()
		return nil, fmt.Errorf("waiting for lock %s: %w", path, ctx.Err())
	}
}

// splitRef splits an image reference into repository and tag; a reference
// without a tag gets "latest". A colon inside a registry host's port is
// not a tag separator.
func splitRef(ref string) (string, string) {
	slash := strings.LastIndexByte(ref, '/')
	if colon := strings.LastIndexByte(ref, ':'); colon > slash {
		return ref[:colon], ref[colon+1:]
	}
	return ref, "latest"
}
