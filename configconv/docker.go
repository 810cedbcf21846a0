package configconv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/versions"
	"github.com/docker/docker/client"

	"github.com/pasops/pasupgrade/runner"
)

// DefaultImage is the upgrade tool's image reference that DockerRunner
// uses when Image is empty. The vendor's guide leaves the name blank, so
// this is the tag the lab gives its tool image.
const DefaultImage = "pas-upgrade-tool:4.9.0"

// ContainerWorkDir is the mount point of the working directory inside the
// tool's container.
const ContainerWorkDir = "/upgrade"

// MinAPIVersion is the oldest Docker Engine API the DockerRunner works
// with, because API 1.30 added the wait conditions it waits with. Debian
// 12's docker.io (Engine 20.10) serves API 1.41.
const MinAPIVersion = "1.30"

// ErrEngineTooOld is returned when the Docker engine's API is older than
// MinAPIVersion.
var ErrEngineTooOld = errors.New("configconv: the Docker engine is too old")

// DockerRunner runs the upgrade tool from its image with the Docker engine,
// as the guide's "docker run --user UID:GID --rm -it --network=host
// --volume $(pwd):/upgrade IMAGE ..." does. It is safe for concurrent use.
type DockerRunner struct {
	// Client talks to the engine. Build it with NewDockerClient, which
	// negotiates the API version.
	Client *client.Client
	// Image is the tool's image. Empty means DefaultImage.
	Image string
	// User is the "UID:GID" the tool runs as. Empty means this process's
	// own; LookupUserID gives the pas user's.
	User string
	// Credentials finds registry credentials for a pull. Nil means a
	// DockerConfig reading $DOCKER_CONFIG or ~/.docker.
	Credentials CredentialSource
	// NamePrefix starts the name of every container the runner creates.
	// Empty means "pas-upgrade-tool-".
	NamePrefix string
	// StopTimeout is how long a cancelled run's container has to stop
	// before it is killed. Zero means 10 seconds.
	StopTimeout time.Duration
	// Transcript, when set, receives each run's command, output and exit
	// code, with secrets redacted.
	Transcript io.Writer
	// Logger receives progress and cleanup logs. Nil discards them.
	Logger *slog.Logger
	// PullStatus, when set, is called with each status line of an image
	// pull, such as "Pulling from pas/tool", so a caller can show that a
	// slow pull is under way.
	PullStatus func(image, status string)

	// created, when set, is called with the ID of each created container.
	created func(id string)

	checkMu sync.Mutex
	checked bool
}

// NewDockerClient returns a client for the engine that DOCKER_HOST and the
// other DOCKER_* variables name (the local socket without them), which
// negotiates the API version with the engine.
func NewDockerClient() (*client.Client, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("configuring the Docker client: %w", err)
	}
	return cli, nil
}

// CurrentUserID returns this process's "UID:GID".
func CurrentUserID() string {
	return fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid())
}

// LookupUserID returns the "UID:GID" of the named account, such as "pas".
func LookupUserID(name string) (string, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return "", fmt.Errorf("looking up user %q: %w", name, err)
	}
	return u.Uid + ":" + u.Gid, nil
}

func (d *DockerRunner) image() string { return orDefault(d.Image, DefaultImage) }

func (d *DockerRunner) logger() *slog.Logger {
	if d.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Logger
}

// Prepare checks the engine's API version and pulls the image when it is
// missing.
func (d *DockerRunner) Prepare(ctx context.Context) error {
	if err := d.checkEngine(ctx); err != nil {
		return err
	}
	return d.EnsureImage(ctx)
}

// checkEngine negotiates the API version before any other call and
// rejects an engine older than MinAPIVersion. A success is remembered; a
// failure is not, so an engine that was briefly unreachable is tried again.
func (d *DockerRunner) checkEngine(ctx context.Context) error {
	d.checkMu.Lock()
	defer d.checkMu.Unlock()
	if d.checked {
		return nil
	}
	if d.Client == nil {
		return errors.New("configconv: DockerRunner needs a Client; build one with NewDockerClient")
	}
	ping, err := d.Client.Ping(ctx)
	if err != nil {
		return fmt.Errorf("connecting to the Docker engine at %s: %w; check DOCKER_HOST and that the engine runs",
			d.Client.DaemonHost(), err)
	}
	d.Client.NegotiateAPIVersionPing(ping)
	engine := ping.APIVersion
	if engine == "" {
		engine = "unknown (before 1.25)"
	}
	if ping.APIVersion == "" || versions.LessThan(ping.APIVersion, MinAPIVersion) {
		return fmt.Errorf("%w: the engine at %s serves API %s, but this client needs at least API %s "+
			"(Docker Engine 17.06); upgrade the engine, for example to Debian 12's docker.io",
			ErrEngineTooOld, d.Client.DaemonHost(), engine, MinAPIVersion)
	}
	if clientAPI := d.Client.ClientVersion(); versions.LessThan(clientAPI, MinAPIVersion) {
		// Negotiation never raises a version that DOCKER_API_VERSION or
		// client.WithVersion fixed.
		return fmt.Errorf("the Docker client is set to API %s, but the runner needs at least API %s "+
			"to wait for the container's removal; unset DOCKER_API_VERSION=%s or set it to %s or later",
			clientAPI, MinAPIVersion, clientAPI, MinAPIVersion)
	}
	d.logger().Debug("negotiated the Docker API version", "engine_api", ping.APIVersion,
		"client_api", d.Client.ClientVersion())
	d.checked = true
	return nil
}

// Run implements ToolRunner. It creates the container with automatic
// removal, attaches to it and starts waiting before it starts it, so the
// exit code is never lost to the removal. When ctx ends first, the
// container is stopped and removed with a fresh context, and Run returns
// after it is gone.
func (d *DockerRunner) Run(ctx context.Context, inv Invocation) (int, error) {
	if err := d.Prepare(ctx); err != nil {
		return -1, err
	}
	workDir, err := filepath.Abs(inv.WorkDir)
	if err != nil {
		return -1, fmt.Errorf("resolving the working directory %q: %w", inv.WorkDir, err)
	}

	if err := d.waitForEarlierRun(ctx, workDir); err != nil {
		return -1, err
	}
	id, err := d.create(ctx, workDir, inv)
	if err != nil {
		return -1, err
	}
	log := d.logger().With("container", shortID(id))
	if d.created != nil {
		d.created(id)
	}

	attached, err := d.Client.ContainerAttach(ctx, id, container.AttachOptions{
		Stream: true, Stdin: true, Stdout: true, Stderr: true,
	})
	if err != nil {
		if ctx.Err() != nil {
			return -1, d.interrupt(ctx, id, log, nil)
		}
		d.cleanup(id, log)
		return -1, fmt.Errorf("attaching to the upgrade tool's container: %w", err)
	}
	defer attached.Close()

	waitResult, waitErr := d.Client.ContainerWait(ctx, id, container.WaitConditionRemoved)

	transcript := d.startTranscript(inv)
	session, err := startSession(attached, inv, transcript)
	if err != nil {
		d.cleanup(id, log)
		return -1, err
	}
	defer session.stop()

	if err := d.Client.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		if ctx.Err() != nil {
			// The engine may have started the container before the
			// cancel reached it.
			return -1, d.interrupt(ctx, id, log, transcript)
		}
		d.cleanup(id, log)
		return -1, fmt.Errorf("starting the upgrade tool's container: %w", err)
	}
	log.Debug("started the upgrade tool", "args", runner.Redact(strings.Join(inv.Args, " "), inv.Secrets))
	if inv.Terminal != nil {
		session.forwardResize(ctx, func(height, width uint) error {
			return d.Client.ContainerResize(ctx, id, container.ResizeOptions{Height: height, Width: width})
		}, log)
	}

	select {
	case res := <-waitResult:
		session.waitOutput(ctx)
		if res.Error != nil && res.Error.Message != "" {
			return -1, fmt.Errorf("waiting for the upgrade tool's container: %s", res.Error.Message)
		}
		code := int(res.StatusCode)
		transcript.finish(code)
		return code, nil
	case err := <-waitErr:
		if ctx.Err() == nil {
			d.cleanup(id, log)
			return -1, fmt.Errorf("waiting for the upgrade tool's container: %w", err)
		}
	case <-ctx.Done():
	}
	return -1, d.interrupt(ctx, id, log, transcript)
}

// WorkDirLabel labels each tool container with the host directory mounted
// at ContainerWorkDir.
const WorkDirLabel = "io.pasops.pasupgrade.workdir"

// waitForEarlierRun waits until no tool container of an earlier run in
// workDir runs. A CLI killed while the tool ran leaves its container
// running, and a post-upgrade run started beside it fails with 409
// "apply_in_progress" while the earlier one's apply goes on.
func (d *DockerRunner) waitForEarlierRun(ctx context.Context, workDir string) error {
	list, err := d.Client.ContainerList(ctx, container.ListOptions{
		Filters: filters.NewArgs(filters.Arg("label", WorkDirLabel+"="+workDir)),
	})
	if err != nil {
		return fmt.Errorf("looking for tool containers of an earlier run in %s: %w", workDir, err)
	}
	for _, c := range list {
		d.logger().Warn("the upgrade tool's container of an earlier run is still running in this work directory; waiting for it to end",
			"container", strings.TrimPrefix(firstOr(c.Names, c.ID), "/"), "command", c.Command)
		results, errs := d.Client.ContainerWait(ctx, c.ID, container.WaitConditionNotRunning)
		select {
		case <-results:
		case err := <-errs:
			if !cerrdefs.IsNotFound(err) {
				return fmt.Errorf("waiting for the earlier run's tool container %s: %w", shortID(c.ID), err)
			}
		}
	}
	return nil
}

func firstOr(values []string, fallback string) string {
	if len(values) > 0 {
		return values[0]
	}
	return fallback
}

// interrupt stops and removes the container of a run whose ctx ended, and
// returns the error that reports the interruption.
func (d *DockerRunner) interrupt(ctx context.Context, id string, log *slog.Logger, transcript *runTranscript) error {
	// Stopping can take the whole StopTimeout, and this line explains the
	// wait to an operator who pressed Ctrl-C.
	log.Warn("the run was interrupted; stopping and removing the upgrade tool's container",
		"stop_timeout", d.stopTimeout())
	d.cleanup(id, log)
	transcript.finish(-1)
	return fmt.Errorf("the upgrade tool was interrupted: %w", ctx.Err())
}

// create creates the tool's container with the user's uid:gid, host
// network, the working directory at ContainerWorkDir, automatic removal,
// stdin open for the password and prompt replies, and no environment
// variables of ours.
func (d *DockerRunner) create(ctx context.Context, workDir string, inv Invocation) (string, error) {
	uid := d.User
	if uid == "" {
		uid = CurrentUserID()
	}
	config := &container.Config{
		Image:        d.image(),
		Cmd:          inv.Args,
		User:         uid,
		WorkingDir:   ContainerWorkDir,
		AttachStdin:  true,
		AttachStdout: true,
		AttachStderr: true,
		OpenStdin:    true,
		StdinOnce:    true,
		Tty:          inv.Terminal != nil,
		Labels:       map[string]string{WorkDirLabel: workDir},
	}
	hostConfig := &container.HostConfig{
		AutoRemove:  true,
		NetworkMode: "host",
		Mounts: []mount.Mount{{
			Type:   mount.TypeBind,
			Source: workDir,
			Target: ContainerWorkDir,
		}},
	}
	name := orDefault(d.NamePrefix, "pas-upgrade-tool-") + randomSuffix()
	created, err := d.Client.ContainerCreate(ctx, config, hostConfig, nil, nil, name)
	if err != nil {
		if ctx.Err() != nil {
			// The engine may have created the container before the
			// cancel reached it, and a container that never started is
			// not removed automatically.
			d.cleanup(name, d.logger().With("container", name))
		}
		return "", fmt.Errorf("creating the upgrade tool's container from %s: %w", d.image(), err)
	}
	for _, warning := range created.Warnings {
		d.logger().Warn("the Docker engine warned while creating the container", "warning", warning)
	}
	return created.ID, nil
}

// cleanup stops and removes a container with a context of its own, so it
// works after the caller's context ended, and waits until it is gone.
func (d *DockerRunner) cleanup(id string, log *slog.Logger) {
	grace := d.stopTimeout()
	ctx, cancel := context.WithTimeout(context.Background(), grace+30*time.Second)
	defer cancel()

	seconds := int(grace.Seconds())
	if err := d.Client.ContainerStop(ctx, id, container.StopOptions{Timeout: &seconds}); err != nil && !cerrdefs.IsNotFound(err) {
		log.Warn("stopping the upgrade tool's container failed", "error", err)
	}
	err := d.Client.ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
	if err != nil && !cerrdefs.IsNotFound(err) && !isRemovalInProgress(err) {
		log.Warn("removing the upgrade tool's container failed", "error", err)
	}

	for {
		_, err := d.Client.ContainerInspect(ctx, id)
		if cerrdefs.IsNotFound(err) {
			log.Debug("removed the upgrade tool's container")
			return
		}
		select {
		case <-ctx.Done():
			log.Warn("the upgrade tool's container is still there; remove it with 'docker rm -f'",
				"container_id", id)
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (d *DockerRunner) stopTimeout() time.Duration {
	if d.StopTimeout <= 0 {
		return 10 * time.Second
	}
	return d.StopTimeout
}

func isRemovalInProgress(err error) bool {
	return err != nil && strings.Contains(err.Error(), "is already in progress")
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
