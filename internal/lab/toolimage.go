package lab

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
)

// DefaultToolImage is the default reference of the upgrade tool's image.
// Callers take the reference as a setting with this default, because the
// vendor's guide leaves the image name blank.
const DefaultToolImage = "pas-upgrade-tool:4.9.0"

// toolBinaryPath is the tool's path inside the image and its entrypoint.
const toolBinaryPath = "/usr/local/bin/pas-upgrade-tool"

// toolContentLabel is the image label that contains the SHA-256 of the tool
// binary, so EnsureToolImage can tell a current image from a stale one.
const toolContentLabel = "pasupgrade.lab.tool-sha256"

// EnsureToolImage makes sure the engine has the upgrade tool's image
// tagged ref (DefaultToolImage when empty): a static build of
// cmd/pas-upgrade-tool, imported with docker import, with the binary as
// entrypoint and /upgrade as working directory. It builds the binary from
// the module that contains the working directory with the go command. An
// image under ref that contains the same binary is kept; any other is
// replaced by the new import. Calling it again is cheap once the Go build
// cache is warm.
func EnsureToolImage(ctx context.Context, cli client.APIClient, ref string) error {
	if ref == "" {
		ref = DefaultToolImage
	}
	moduleDir, err := findModuleDir()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "pasupgrade-lab-tool-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	binary := filepath.Join(dir, "pas-upgrade-tool")
	if err := goBuildStatic(ctx, moduleDir, "./cmd/pas-upgrade-tool", binary); err != nil {
		return fmt.Errorf("building the upgrade tool image %s: %w", ref, err)
	}
	data, err := os.ReadFile(binary)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	key := hex.EncodeToString(sum[:])

	current, err := cli.ImageInspect(ctx, ref)
	switch {
	case err == nil && current.Config != nil && current.Config.Labels[toolContentLabel] == key:
		return nil
	case err != nil && !errdefs.IsNotFound(err):
		return fmt.Errorf("inspecting the upgrade tool image %s: %w", ref, err)
	}
	if err := importTool(ctx, cli, ref, data, key); err != nil {
		return err
	}

	// The import moved ref to the new image; remove the stale one unless a
	// container or another tag still uses it.
	if current.ID != "" {
		_, err := cli.ImageRemove(ctx, current.ID, image.RemoveOptions{})
		if err != nil && !errdefs.IsConflict(err) && !errdefs.IsNotFound(err) {
			return fmt.Errorf("removing the stale upgrade tool image %s: %w", current.ID, err)
		}
	}
	return nil
}

// importTool imports a file system that contains only the tool binary, /upgrade
// and /tmp as ref.
func importTool(ctx context.Context, cli client.APIClient, ref string, binary []byte, key string) error {
	var archive bytes.Buffer
	tw := tar.NewWriter(&archive)
	now := time.Now()
	entries := []tar.Header{
		{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777, ModTime: now},
		{Name: "upgrade/", Typeflag: tar.TypeDir, Mode: 0o777, ModTime: now},
		{Name: "usr/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: now},
		{Name: "usr/local/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: now},
		{Name: "usr/local/bin/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: now},
	}
	for i := range entries {
		if err := tw.WriteHeader(&entries[i]); err != nil {
			return err
		}
	}
	header := &tar.Header{
		Name: toolBinaryPath[1:], Typeflag: tar.TypeReg, Mode: 0o755,
		Size: int64(len(binary)), ModTime: now,
	}
	if err := tw.WriteHeader(header); err != nil {
		return err
	}
	if _, err := tw.Write(binary); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}

	changes := []string{
		`ENTRYPOINT ["` + toolBinaryPath + `"]`,
		"WORKDIR /upgrade",
		"LABEL " + toolContentLabel + "=" + key,
	}
	repo, tag := splitRef(ref)
	body, err := cli.ImageImport(ctx, image.ImportSource{Source: &archive, SourceName: "-"},
		repo, image.ImportOptions{Tag: tag, Changes: changes, Message: "pasupgrade lab upgrade tool"})
	if err == nil {
		err = readJSONStream(body)
		body.Close()
	}
	if err != nil {
		return fmt.Errorf("importing the upgrade tool image %s: %w", ref, err)
	}
	return nil
}
