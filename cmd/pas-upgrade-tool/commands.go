package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pasops/pasupgrade/mgmtapi"
)

// preUpgrade exports the running configuration into exportFile. The
// export goes to a temporary file first, so a failed export leaves no
// partial file under the final name.
func (t *tool) preUpgrade(ctx context.Context) error {
	c, err := t.loggedInClient(ctx)
	if err != nil {
		return err
	}
	export, target, err := c.ExportConfigFile(ctx, mgmtapi.ExportKindRunning, t.workPath(exportFile))
	if err != nil {
		return fmt.Errorf("exporting the running configuration: %w", err)
	}
	fmt.Fprintf(t.stdout, "Exported the running configuration to %s (%d bytes)\n", target, export.Size)
	return nil
}

// convertConfig converts exportFile into convertedFile.
func (t *tool) convertConfig(ctx context.Context) error {
	source := t.workPath(exportFile)
	data, err := os.ReadFile(source)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s not found; run pre-upgrade in this directory first", source)
	}
	if err != nil {
		return fmt.Errorf("reading the exported configuration: %w", err)
	}
	confirm := func(item string) error { return t.confirm(ctx, item) }
	converted, err := convert(string(data), source, confirm)
	if err != nil {
		return err
	}
	target := t.workPath(convertedFile)
	if _, err := writeAtomically(target, func(w io.Writer) (int64, error) {
		n, err := io.WriteString(w, converted)
		return int64(n), err
	}); err != nil {
		return err
	}
	fmt.Fprintf(t.stdout, "Converted the configuration to %s\n", target)
	return nil
}

// confirm asks whether item may be dropped. The answer is read from the
// terminal, or from the next line of stdin when there is no terminal.
func (t *tool) confirm(ctx context.Context, item string) error {
	fmt.Fprintf(t.stdout, "Convert %s by dropping it? Proceed? [y/N] ", item)
	answer, err := t.readInterruptibly(ctx, "at the question about "+item, t.readLine)
	var coded *exitCodeError
	if errors.As(err, &coded) {
		return err
	}
	if errors.Is(err, io.EOF) {
		fmt.Fprintln(t.stdout)
		return withCode(exitNeedAnswer, "%s cannot be converted automatically and stdin ended "+
			"before an answer; run convert-config on a terminal (docker run -it) or give an answers "+
			"file on stdin with one y or n line per question", item)
	}
	if err != nil {
		return fmt.Errorf("reading the answer for %s: %w", item, err)
	}
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return nil
	}
	return withCode(exitNeedAnswer, "conversion aborted at %s (answer %q); nothing was written", item, answer)
}

// postUpgrade uploads convertedFile, applies it and waits at most timeout.
func (t *tool) postUpgrade(ctx context.Context, timeout time.Duration) error {
	source := t.workPath(convertedFile)
	if _, err := os.Stat(source); err != nil {
		return fmt.Errorf("%s not found; run convert-config in this directory first", source)
	}
	c, err := t.loggedInClient(ctx)
	if err != nil {
		return err
	}
	pending, err := c.ImportConfigFile(ctx, source)
	if err != nil {
		return fmt.Errorf("uploading %s: %w", convertedFile, err)
	}
	fmt.Fprintf(t.stdout, "Uploaded %s (%d pending changes)\n", source, pending)

	id, err := c.ApplyConfig(ctx)
	if errors.Is(err, mgmtapi.ErrApplyUnconfirmed) {
		// The server may have started the apply without confirming it in
		// time, which is a timed-out apply for the caller.
		return &exitCodeError{code: exitApply, err: fmt.Errorf("starting the config apply: %w", err)}
	}
	if err != nil {
		return fmt.Errorf("starting the config apply: %w", err)
	}
	fmt.Fprintf(t.stdout, "Config apply %s started; waiting at most %s\n", id, timeout)
	job, err := c.WaitApplied(ctx, id, timeout)
	if errors.Is(err, mgmtapi.ErrApplyFailed) || errors.Is(err, mgmtapi.ErrApplyTimeout) {
		return &exitCodeError{code: exitApply, err: err}
	}
	if err != nil {
		return fmt.Errorf("waiting for config apply %s: %w", id, err)
	}
	for _, node := range job.Nodes {
		fmt.Fprintf(t.stdout, "  %s: reload %s %s\n", node.Name, node.ReloadSuccess, node.Message)
	}
	fmt.Fprintf(t.stdout, "Config apply %s succeeded\n", id)
	return nil
}

// loggedInClient checks the global options, reads the password and logs in.
func (t *tool) loggedInClient(ctx context.Context) (*mgmtapi.Client, error) {
	base, err := url.Parse(t.baseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, withCode(exitUsage, "--frontend-baseurl %q is not an http:// or https:// URL", t.baseURL)
	}
	opts := append([]mgmtapi.Option{}, t.clientOptions...)
	if t.caCert != "" {
		opts = append(opts, mgmtapi.WithCAFile(t.workPath(t.caCert)))
	}
	c, err := mgmtapi.New(t.baseURL, opts...)
	if err != nil {
		return nil, err
	}
	password, err := t.password(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.Login(ctx, t.user, password); err != nil {
		return nil, err
	}
	return c, nil
}

// writeAtomically writes target through a temporary file in the same
// directory that is renamed into place only when write succeeds.
func writeAtomically(target string, write func(io.Writer) (int64, error)) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		return 0, fmt.Errorf("creating a file in the working directory: %w", err)
	}
	defer os.Remove(tmp.Name())
	n, err := write(tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if closeErr := tmp.Close(); err == nil {
		err = closeErr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err != nil {
		return n, err
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return n, fmt.Errorf("writing %s: %w", target, err)
	}
	return n, nil
}
