package configconv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
)

// Pull errors callers branch on. Their messages use the words an operator
// searches for.
var (
	// ErrNotLoggedIn is a pull that the registry denied while no
	// credentials for it were stored.
	ErrNotLoggedIn = errors.New("not logged in")
	// ErrNoImageAccess is a pull that the registry denied with the stored
	// credentials, or of an image it does not have.
	ErrNoImageAccess = errors.New("no access to the image")
	// ErrNoRegistry is a missing image whose reference names no registry
	// host. Pulling it would go to Docker Hub, where the vendor's tool is
	// not published, so the runner does not try.
	ErrNoRegistry = errors.New("image reference names no registry")
)

// HasImage reports whether the engine has the runner's image, without
// pulling it.
func (d *DockerRunner) HasImage(ctx context.Context) (bool, error) {
	if err := d.checkEngine(ctx); err != nil {
		return false, err
	}
	_, err := d.Client.ImageInspect(ctx, d.image())
	switch {
	case err == nil:
		return true, nil
	case cerrdefs.IsNotFound(err):
		return false, nil
	default:
		return false, fmt.Errorf("looking for image %s: %w", d.image(), err)
	}
}

// EnsureImage pulls the runner's image unless the engine already has it,
// with the credentials "docker login" stored for its registry.
func (d *DockerRunner) EnsureImage(ctx context.Context) error {
	if err := d.checkEngine(ctx); err != nil {
		return err
	}
	ref := d.image()
	present, err := d.HasImage(ctx)
	if err != nil || present {
		return err
	}

	host, err := imageRegistry(ref)
	if err != nil {
		return err
	}
	if !namesRegistry(ref) {
		return fmt.Errorf("image %s is not on the Docker engine and %w; load the vendor's image "+
			"with 'docker load', or set the tool image to REGISTRY/NAME:TAG so it can be pulled",
			ref, ErrNoRegistry)
	}
	credentials := d.Credentials
	if credentials == nil {
		credentials = DockerConfig{}
	}
	auth, found, err := credentials.Credentials(ctx, host)
	if err != nil {
		return fmt.Errorf("pulling %s: %w", ref, err)
	}
	options := image.PullOptions{}
	if found {
		options.RegistryAuth, err = EncodeRegistryAuth(auth)
		if err != nil {
			return fmt.Errorf("pulling %s: encoding the credentials: %w", ref, err)
		}
	}

	d.logger().Info("pulling the upgrade tool's image", "image", ref, "registry", host, "credentials", found)
	err = d.pull(ctx, ref, options)
	if err == nil {
		d.logger().Info("pulled the upgrade tool's image", "image", ref)
		return nil
	}
	if !isAccessDenied(err) {
		return fmt.Errorf("pulling %s: %w", ref, err)
	}
	if !found {
		return fmt.Errorf("pulling %s: %w to %s (%v); run 'docker login %s' as the user who runs the upgrade",
			ref, ErrNotLoggedIn, host, err, host)
	}
	return fmt.Errorf("pulling %s: %w as %s on %s (%v); check the image name and that this account may pull it",
		ref, ErrNoImageAccess, auth.Username, host, err)
}

// namesRegistry reports whether ref starts with a registry host, using the
// rule of the Docker CLI: the first path component is a host when it
// contains a dot or a colon, or is "localhost".
func namesRegistry(ref string) bool {
	first, _, found := strings.Cut(ref, "/")
	if !found {
		return false
	}
	return strings.ContainsAny(first, ".:") || first == "localhost"
}

// progressMessage is one line of the engine's pull or push progress
// stream.
type progressMessage struct {
	Status      string `json:"status"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
}

// pull runs the pull and reads its progress stream to the end, because the
// engine reports most failures inside the stream with status 200.
func (d *DockerRunner) pull(ctx context.Context, ref string, options image.PullOptions) error {
	stream, err := d.Client.ImagePull(ctx, ref, options)
	if err != nil {
		return err
	}
	defer stream.Close()
	return readProgress(stream, func(status string) {
		d.logger().Debug("pull progress", "image", ref, "status", status)
		if d.PullStatus != nil {
			d.PullStatus(ref, status)
		}
	})
}

// readProgress reads a pull or push progress stream to its end and returns
// the first error reported in it.
func readProgress(stream io.Reader, onStatus func(status string)) error {
	decoder := json.NewDecoder(stream)
	for {
		var msg progressMessage
		err := decoder.Decode(&msg)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the progress stream: %w", err)
		}
		if msg.ErrorDetail != nil && msg.ErrorDetail.Message != "" {
			return errors.New(msg.ErrorDetail.Message)
		}
		if msg.Error != "" {
			return errors.New(msg.Error)
		}
		if msg.Status != "" {
			onStatus(msg.Status)
		}
	}
}

// isAccessDenied reports whether a pull error means the registry rejected
// the credentials or hid the image. Registries reply to an unauthorized
// pull of a private image with 401, 403 or 404, depending on their policy.
func isAccessDenied(err error) bool {
	if cerrdefs.IsUnauthorized(err) || cerrdefs.IsPermissionDenied(err) || cerrdefs.IsNotFound(err) {
		return true
	}
	msg := strings.ToLower(err.Error())
	for _, phrase := range []string{
		"unauthorized", "authentication required", "no basic auth credentials",
		"denied", "manifest unknown", "not found", "repository does not exist",
	} {
		if strings.Contains(msg, phrase) {
			return true
		}
	}
	return false
}
