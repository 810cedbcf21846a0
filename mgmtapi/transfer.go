package mgmtapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Export describes an exported configuration file.
type Export struct {
	// Name is the file name the server gave, reduced to a safe base name.
	Name string
	// Size is the number of bytes written.
	Size int64
	// SHA256 is the hex SHA-256 of the bytes written.
	SHA256 string
}

// ExportKindRunning is the kind of ExportConfig for the running
// configuration.
const ExportKindRunning = "running"

// ExportConfig streams the configuration of kind (ExportKindRunning for a
// backup) to w without holding it in memory, and returns the server's
// file name, the byte count and the SHA-256. It checks the byte count
// against Content-Length when the server sends one. A request that fails
// before the first byte reaches w is retried. A failure after that is
// returned, and w then holds a partial file that the caller must discard,
// as ExportConfigFile does.
func (c *Client) ExportConfig(ctx context.Context, kind string, w io.Writer) (Export, error) {
	req := c.get(c.paths.Export)
	req.query = url.Values{"kind": {kind}}
	// Identity encoding keeps Content-Length the length of the file, which
	// transparent gzip decoding would hide.
	req.header = map[string]string{"Accept-Encoding": "identity", "Accept": "application/octet-stream"}

	transferCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := c.do(transferCtx, req)
	if err != nil {
		return Export{}, fmt.Errorf("exporting the %s configuration: %w", kind, err)
	}
	defer resp.Body.Close()
	stall := newStallWatch(c.tmo, cancel)
	defer stall.disarm()

	if ct := resp.Header.Get("Content-Type"); isJSON(ct) || isHTML(ct) {
		return Export{}, fmt.Errorf("exporting the %s configuration: %w: %s returned %s where a file was "+
			"expected: %s", kind, ErrInvalidReply, c.urlOf(req.path), ct, c.snippet(resp.Body))
	}

	exp := Export{Name: fileNameOf(resp.Header.Get("Content-Disposition"), "pas-config-"+kind+".yaml")}
	sum := sha256.New()
	dst := io.MultiWriter(w, sum)
	if c.progress != nil {
		dst = &progressWriter{w: dst, total: resp.ContentLength, report: c.progress}
	}
	body := &readErrorRecorder{r: &stallReader{r: resp.Body, watch: stall}}
	n, err := io.Copy(dst, body)
	exp.Size = n
	// interrupted is true when the server or the network broke off the
	// body, or sent nothing for too long, and false when the writer failed
	// or ctx ended.
	interrupted := err != nil && body.err != nil && ctx.Err() == nil
	if interrupted && stall.fired.Load() {
		err = fmt.Errorf("%w: no data for %s: %w", errBodyInterrupted, c.tmo, err)
	} else if interrupted {
		err = fmt.Errorf("%w: %w", errBodyInterrupted, err)
	}
	declared := resp.ContentLength
	switch {
	case interrupted && declared >= 0:
		return exp, fmt.Errorf("exporting the %s configuration: %w: the file from %s ended after %d of %d "+
			"bytes: %w", kind, ErrInvalidReply, c.urlOf(req.path), n, declared, err)
	case interrupted:
		return exp, fmt.Errorf("exporting the %s configuration: transfer from %s failed after %d bytes: %w",
			kind, c.urlOf(req.path), n, err)
	case err != nil:
		return exp, fmt.Errorf("exporting the %s configuration: stopped after %d bytes of the file from %s: %w",
			kind, n, c.urlOf(req.path), err)
	// NOTE: net/http stops reading at Content-Length, so extra bytes from a
	// server never arrive here. This case catches transports that deliver them.
	case declared >= 0 && n != declared:
		return exp, fmt.Errorf("exporting the %s configuration: %w: the file from %s has %d bytes but "+
			"Content-Length declared %d", kind, ErrInvalidReply, c.urlOf(req.path), n, declared)
	}
	exp.SHA256 = hex.EncodeToString(sum.Sum(nil))
	c.log.Info("configuration exported", "kind", kind, "name", exp.Name, "bytes", n, "sha256", exp.SHA256)
	return exp, nil
}

// errBodyInterrupted marks an export whose body broke off while it was
// read, which a new download may fix.
var errBodyInterrupted = errors.New("transfer interrupted")

// readErrorRecorder keeps the error of the reader, so a failed copy can
// tell a broken body from a failed write.
type readErrorRecorder struct {
	r   io.Reader
	err error
}

func (r *readErrorRecorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		r.err = err
	}
	return n, err
}

// ExportConfigFile exports the configuration of kind to path, or into the
// directory path under the server's file name. It writes a temporary file
// in the same directory and renames it into place once the whole file
// arrived with the declared length. So a failure leaves no partial file,
// and an existing file is replaced only by a complete one. An export that
// breaks off mid-body is downloaded again from the start, at most
// RetryPolicy.MaxRetries times, because the temporary file can be emptied.
func (c *Client) ExportConfigFile(ctx context.Context, kind, path string) (Export, string, error) {
	dir, target := path, ""
	if info, err := os.Stat(path); err != nil || !info.IsDir() {
		dir, target = filepath.Dir(path), path
	}
	tmp, err := os.CreateTemp(dir, ".pas-config-*.partial")
	if err != nil {
		return Export{}, "", fmt.Errorf("exporting the %s configuration: %w", kind, err)
	}
	defer os.Remove(tmp.Name())

	exp, err := c.exportRetrying(ctx, kind, tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if closeErr := tmp.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return exp, "", err
	}

	if target == "" {
		target = filepath.Join(dir, exp.Name)
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return exp, "", fmt.Errorf("exporting the %s configuration: %w", kind, err)
	}
	return exp, target, nil
}

// exportRetrying exports into tmp, starting again with an empty file when
// the body breaks off.
func (c *Client) exportRetrying(ctx context.Context, kind string, tmp *os.File) (Export, error) {
	for attempt := 0; ; attempt++ {
		exp, err := c.ExportConfig(ctx, kind, tmp)
		if err == nil || !errors.Is(err, errBodyInterrupted) || attempt >= c.retry.MaxRetries {
			return exp, err
		}
		wait := c.retry.backoff(attempt)
		c.log.Warn("export broke off; downloading again", "kind", kind, "bytes", exp.Size,
			"retry", attempt+1, "max_retries", c.retry.MaxRetries, "wait", wait, "error", err)
		if err := c.sleep(ctx, wait); err != nil {
			return exp, fmt.Errorf("exporting the %s configuration: %w", kind, err)
		}
		if err := tmp.Truncate(0); err != nil {
			return exp, fmt.Errorf("exporting the %s configuration: %w", kind, err)
		}
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			return exp, fmt.Errorf("exporting the %s configuration: %w", kind, err)
		}
	}
}

// fileNameOf returns the file name of a Content-Disposition header as a
// base name without path separators, or fallback.
func fileNameOf(disposition, fallback string) string {
	_, params, err := mime.ParseMediaType(disposition)
	if err != nil {
		return fallback
	}
	name := filepath.Base(strings.ReplaceAll(params["filename"], "\\", "/"))
	if name == "." || name == "/" || name == ".." || name == "" || strings.HasPrefix(name, ".") {
		return fallback
	}
	return name
}

// ImportConfig uploads the configuration read from r, as the multipart
// field "file" named name, and returns the number of pending changes. The
// upload is streamed: the file is never held in memory. It is sent once and
// never retried, even on a 503, because the reader cannot be rewound and
// the server may have stored it. To retry, call again with a new reader.
// ImportConfig does not read r after it returns.
func (c *Client) ImportConfig(ctx context.Context, r io.Reader, name string) (int, error) {
	return c.importConfig(ctx, r, name, -1)
}

// ImportConfigFile uploads the configuration file at path, as
// ImportConfig does, with a Content-Length header.
func (c *Client) ImportConfigFile(ctx context.Context, path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("importing a configuration: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("importing a configuration: %w", err)
	}
	if !info.Mode().IsRegular() {
		return 0, fmt.Errorf("importing a configuration: %s is not a regular file", path)
	}
	return c.importConfig(ctx, f, filepath.Base(path), info.Size())
}

// importConfig uploads r, of size bytes or -1 when unknown. The multipart
// framing around the file is built up front, so the body is a plain
// concatenation with a known length whenever size is known.
func (c *Client) importConfig(ctx context.Context, r io.Reader, name string, size int64) (int, error) {
	if name == "" {
		name = "pas-config.yaml"
	}
	var head, tail bytes.Buffer
	mw := multipart.NewWriter(&head)
	if _, err := mw.CreateFormFile("file", filepath.Base(name)); err != nil {
		return 0, fmt.Errorf("importing %s: %w", name, err)
	}
	// A writer without parts writes only the closing boundary.
	closing := multipart.NewWriter(&tail)
	if err := closing.SetBoundary(mw.Boundary()); err != nil {
		return 0, fmt.Errorf("importing %s: %w", name, err)
	}
	if err := closing.Close(); err != nil {
		return 0, fmt.Errorf("importing %s: %w", name, err)
	}

	transferCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stall := newStallWatch(c.tmo, cancel)
	file := &guardedReader{r: r, total: size, progress: c.progress, stall: stall}
	body := io.MultiReader(&head, file, &tail)
	length := int64(-1)
	if size >= 0 {
		length = int64(head.Len()) + size + int64(tail.Len())
	}
	req := request{
		method: http.MethodPost, path: c.paths.Import, auth: true, stream: body, streamLength: length,
		header: map[string]string{"Content-Type": mw.FormDataContentType()},
	}
	resp, err := c.do(transferCtx, req)
	// The transport may still read the body after Do returns: stop that.
	sent := file.stop()
	if err != nil && stall.fired.Load() && ctx.Err() == nil {
		err = fmt.Errorf("the server took no data for %s: %w", c.tmo, err)
	}
	if err != nil {
		return 0, fmt.Errorf("importing %s (%d bytes of the file sent): %w", name, sent, c.timeoutError(ctx, err))
	}
	defer resp.Body.Close()

	var reply ImportReply
	if err := c.decodeJSON(req, resp, &reply); err != nil {
		return 0, fmt.Errorf("importing %s: %w", name, err)
	}
	c.log.Info("configuration imported", "name", name, "bytes", sent, "pending_changes", reply.PendingChanges)
	return reply.PendingChanges, nil
}

// errUploadEnded is the error the transport reads from an upload body after
// the upload returned.
var errUploadEnded = errors.New("mgmtapi: upload already ended")

// guardedReader counts the bytes read from r and stops reading it once
// stop is called, so the caller's reader is not used after return.
type guardedReader struct {
	mu       sync.Mutex
	r        io.Reader
	n        int64
	stopped  bool
	total    int64
	progress func(done, total int64)
	// stall runs while the transport sends what Read returned, and stops
	// while Read waits for the caller's reader.
	stall *stallWatch
}

func (g *guardedReader) Read(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return 0, errUploadEnded
	}
	g.stall.disarm()
	n, err := g.r.Read(p)
	g.stall.arm()
	g.n += int64(n)
	if g.progress != nil && n > 0 {
		g.progress(g.n, g.total)
	}
	return n, err
}

// progressWriter reports the bytes written through it.
type progressWriter struct {
	w      io.Writer
	done   int64
	total  int64
	report func(done, total int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.done += int64(n)
	p.report(p.done, p.total)
	return n, err
}

// stop ends reading, waiting for a Read in progress, and returns the
// count of bytes read.
func (g *guardedReader) stop() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stopped = true
	g.stall.disarm()
	return g.n
}

// stallWatch cancels a transfer whose bytes stopped moving: it calls cancel
// when it stays armed for longer than limit. WithTimeout sets the limit.
type stallWatch struct {
	limit time.Duration
	timer *time.Timer
	// fired is set before cancel is called.
	fired atomic.Bool
}

func newStallWatch(limit time.Duration, cancel context.CancelFunc) *stallWatch {
	w := &stallWatch{limit: limit}
	w.timer = time.AfterFunc(limit, func() {
		w.fired.Store(true)
		cancel()
	})
	w.timer.Stop()
	return w
}

func (w *stallWatch) arm()    { w.timer.Reset(w.limit) }
func (w *stallWatch) disarm() { w.timer.Stop() }

// stallReader arms a stallWatch while it waits for data from r.
type stallReader struct {
	r     io.Reader
	watch *stallWatch
}

func (s *stallReader) Read(p []byte) (int, error) {
	s.watch.arm()
	defer s.watch.disarm()
	return s.r.Read(p)
}
