package mgmtapi_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/mgmtapi"
	"github.com/pasops/pasupgrade/mgmtapi/mgmtapitest"
)

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return ln
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

func TestExportConfig(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{})
	config := "pas_config_version: 4.8.0\nservices:\n  - name: shop\n"
	require.NoError(t, srv.SetRunningConfig(strings.NewReader(config)))
	c, _ := loggedIn(t, srv.URL)

	var buf bytes.Buffer
	exp, err := c.ExportConfig(context.Background(), mgmtapi.ExportKindRunning, &buf)

	require.NoError(t, err)
	assert.Equal(t, config, buf.String())
	assert.Equal(t, "pas-config-running-4.8.0.yaml", exp.Name)
	assert.Equal(t, int64(len(config)), exp.Size)
	assert.Equal(t, sha256Hex([]byte(config)), exp.SHA256)
	calls := srv.RequestsTo(http.MethodGet, "/api/config/export")
	require.Len(t, calls, 1)
	assert.Equal(t, "kind=running", calls[0].Query)
}

func TestExportConfigFile(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{})
	c, _ := loggedIn(t, srv.URL)
	want, err := srv.RunningConfig()
	require.NoError(t, err)

	t.Run("into a directory", func(t *testing.T) {
		dir := t.TempDir()
		exp, path, err := c.ExportConfigFile(context.Background(), mgmtapi.ExportKindRunning, dir)
		require.NoError(t, err)
		assert.Equal(t, filepath.Join(dir, "pas-config-running-4.8.0.yaml"), path)
		assert.Equal(t, want.SHA256, exp.SHA256)
		assert.Equal(t, []string{"pas-config-running-4.8.0.yaml"}, dirNames(t, dir))
	})
	t.Run("to a file name", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "backup.yaml")
		exp, got, err := c.ExportConfigFile(context.Background(), mgmtapi.ExportKindRunning, path)
		require.NoError(t, err)
		assert.Equal(t, path, got)
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.Equal(t, exp.SHA256, sha256Hex(data))
	})
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestExportFailureKeepsNoPartialFile(t *testing.T) {
	tests := []struct {
		name  string
		fault func(*mgmtapitest.Server)
		want  string
	}{
		{"always dropped mid-body", func(s *mgmtapitest.Server) { s.DropNext("/api/config/export", -1, 100) },
			"ended after 100 of 4096 bytes"},
		{"HTML page with 200", func(s *mgmtapitest.Server) { s.FailNextHTML("/api/config/export", 1, 200) },
			"text/html"},
		{"error status", func(s *mgmtapitest.Server) { s.FailNext("/api/config/export", 1, 500) },
			"500 Internal Server Error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startFake(t, mgmtapitest.Options{})
			require.NoError(t, srv.SetRunningConfigSize(4096))
			c, _ := loggedIn(t, srv.URL)
			dir := t.TempDir()
			target := filepath.Join(dir, "running.yaml")
			require.NoError(t, os.WriteFile(target, []byte("previous export\n"), 0o600))
			tt.fault(srv)

			_, _, err := c.ExportConfigFile(context.Background(), mgmtapi.ExportKindRunning, target)

			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.Equal(t, []string{"running.yaml"}, dirNames(t, dir), "a temporary file was left")
			data, err := os.ReadFile(target)
			require.NoError(t, err)
			assert.Equal(t, "previous export\n", string(data))
		})
	}
}

func TestExportFileDownloadsAgainAfterDrop(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{})
	require.NoError(t, srv.SetRunningConfigSize(1<<20))
	c, s := loggedIn(t, srv.URL)
	srv.DropNext("/api/config/export", 2, 4096)
	path := filepath.Join(t.TempDir(), "running.yaml")

	exp, _, err := c.ExportConfigFile(context.Background(), mgmtapi.ExportKindRunning, path)

	require.NoError(t, err)
	want, err := srv.RunningConfig()
	require.NoError(t, err)
	assert.Equal(t, want.SHA256, exp.SHA256)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, want.SHA256, sha256Hex(data), "the file keeps bytes of a broken attempt")
	assert.Len(t, srv.RequestsTo(http.MethodGet, "/api/config/export"), 3)
	assert.Len(t, s.recorded(), 2)
}

func TestExportIntoWriterIsNotRepeated(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{})
	require.NoError(t, srv.SetRunningConfigSize(1<<20))
	c, _ := loggedIn(t, srv.URL)
	srv.DropNext("/api/config/export", 1, 4096)

	_, err := c.ExportConfig(context.Background(), mgmtapi.ExportKindRunning, io.Discard)

	require.Error(t, err)
	assert.Contains(t, err.Error(), "ended after 4096 of 1048576 bytes")
	assert.Len(t, srv.RequestsTo(http.MethodGet, "/api/config/export"), 1)
}

func TestExportDropBeforeBodyIsRetried(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{})
	c, _ := loggedIn(t, srv.URL)
	srv.DropNext("/api/config/export", 1, 0)

	var buf bytes.Buffer
	_, err := c.ExportConfig(context.Background(), mgmtapi.ExportKindRunning, &buf)

	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(buf.String(), "pas_config_version: 4.8.0\n"))
	assert.Len(t, srv.RequestsTo(http.MethodGet, "/api/config/export"), 2)
}

func TestExportUnsafeFileName(t *testing.T) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/login" {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"token":"t0ken"}`))
			return
		}
		w.Header().Set("Content-Disposition", `attachment; filename="../../etc/passwd"`)
		w.Write([]byte("pas_config_version: 4.8.0\n"))
	})
	srv := &http.Server{Handler: handler}
	ln := listenLoopback(t)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c, _ := loggedIn(t, "http://"+ln.Addr().String())

	dir := t.TempDir()
	_, path, err := c.ExportConfigFile(context.Background(), mgmtapi.ExportKindRunning, dir)

	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "passwd"), path)
}

// heapPeak samples the heap in use until stop is called and returns the
// highest sample.
func heapPeak() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-finished
		return peak.Load()
	}
}

// maxHeap bounds the heap of the whole test process, client and fake
// server together, while gigabytes pass through.
const maxHeap = 64 << 20

func TestExportLargeConfigStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("exports 3 GiB; skipped with -short")
	}
	const size = 3 << 30
	srv := startFake(t, mgmtapitest.Options{})
	require.NoError(t, srv.SetRunningConfigSize(size))
	c, _ := loggedIn(t, srv.URL, mgmtapi.WithTimeout(5*time.Second))
	path := filepath.Join(t.TempDir(), "running.yaml")

	runtime.GC()
	stop := heapPeak()
	exp, got, err := c.ExportConfigFile(context.Background(), mgmtapi.ExportKindRunning, path)
	peak := stop()

	require.NoError(t, err)
	assert.Equal(t, path, got)
	assert.Equal(t, int64(size), exp.Size)
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, int64(size), info.Size())
	want, err := srv.RunningConfig()
	require.NoError(t, err)
	assert.Equal(t, want.SHA256, exp.SHA256)
	assert.Less(t, peak, uint64(maxHeap), "heap peaked at %d MiB", peak>>20)
}

// generatedConfig is a configuration of size bytes produced on the fly.
type generatedConfig struct {
	header []byte
	size   int64
	off    int64
}

func newGeneratedConfig(version string, size int64) *generatedConfig {
	return &generatedConfig{header: []byte("pas_config_version: " + version + "\n"), size: size}
}

// fillerLines repeats one line so Read copies many bytes at once.
var fillerLines = []byte(strings.Repeat("  - filler: abcdefghijklmnopqrstuvwxyz\n", 1024))

func (g *generatedConfig) Read(p []byte) (int, error) {
	if g.off >= g.size {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.size-g.off)]
	n := 0
	for n < len(p) {
		var src []byte
		if h := int64(len(g.header)); g.off < h {
			src = g.header[g.off:]
		} else {
			src = fillerLines[(g.off-h)%int64(len(fillerLines)):]
		}
		copied := copy(p[n:], src)
		n += copied
		g.off += int64(copied)
	}
	return n, nil
}

func TestImportConfig(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{})
	c, _ := loggedIn(t, srv.URL)
	config := "pas_config_version: 4.8.0\nservices: [imported]\n"

	pending, err := c.ImportConfig(context.Background(), strings.NewReader(config), "restore.yaml")

	require.NoError(t, err)
	assert.Equal(t, 1, pending)
	calls := srv.RequestsTo(http.MethodPost, "/api/config/import")
	require.Len(t, calls, 1)
	assert.Equal(t, sha256Hex([]byte(config)), calls[0].UploadSHA256)
	changes := srv.PendingChanges()
	require.Len(t, changes, 1)
	assert.Contains(t, changes[0].Summary, "restore.yaml")
}

func TestImportConfigFileDeclaresLength(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{})
	c, _ := loggedIn(t, srv.URL)
	config := "pas_config_version: 4.8.0\nservices: [from-file]\n"
	path := filepath.Join(t.TempDir(), "restore.yaml")
	require.NoError(t, os.WriteFile(path, []byte(config), 0o600))

	_, err := c.ImportConfigFile(context.Background(), path)
	require.NoError(t, err)
	_, err = c.ImportConfig(context.Background(), strings.NewReader(config), "stream.yaml")
	require.NoError(t, err)

	calls := srv.RequestsTo(http.MethodPost, "/api/config/import")
	require.Len(t, calls, 2)
	assert.Greater(t, calls[0].ContentLength, int64(len(config)), "multipart framing adds to the file size")
	assert.Equal(t, sha256Hex([]byte(config)), calls[0].UploadSHA256)
	assert.Equal(t, int64(-1), calls[1].ContentLength, "a reader of unknown size is sent chunked")
	assert.Equal(t, sha256Hex([]byte(config)), calls[1].UploadSHA256)
}

func TestImportConfigFileRejectsDirectory(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{})
	c, _ := loggedIn(t, srv.URL)

	_, err := c.ImportConfigFile(context.Background(), t.TempDir())

	assert.ErrorContains(t, err, "is not a regular file")
	assert.Empty(t, srv.RequestsTo(http.MethodPost, "/api/config/import"))
}

func TestImportIncompatibleConfig(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{Version: "4.9.0"})
	c, _ := loggedIn(t, srv.URL)

	_, err := c.ImportConfig(context.Background(), strings.NewReader("pas_config_version: 4.8.0\n"), "old.yaml")

	var apiErr *mgmtapi.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusBadRequest, apiErr.Status)
	assert.Equal(t, "incompatible_config", apiErr.Code)
	assert.Contains(t, err.Error(), "old.yaml")
	assert.Empty(t, srv.PendingChanges())
}

func TestImportUploadRejectedBeforeBody(t *testing.T) {
	// The server replies 503 without reading the body. The client must
	// not send the upload again: the reader cannot be rewound.
	srv := startFake(t, mgmtapitest.Options{})
	c, s := loggedIn(t, srv.URL)
	srv.FailNext("/api/config/import", 1, http.StatusServiceUnavailable)
	config := &countingReader{r: newGeneratedConfig("4.8.0", 8<<20)}

	_, err := c.ImportConfig(context.Background(), config, "big.yaml")
	readsAtReturn := config.reads.Load()

	var apiErr *mgmtapi.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusServiceUnavailable, apiErr.Status)
	assert.Len(t, srv.RequestsTo(http.MethodPost, "/api/config/import"), 1)
	assert.Empty(t, s.recorded())
	assert.Empty(t, srv.PendingChanges())
	srv.Close() // waits for the server side of the upload to end
	assert.Equal(t, readsAtReturn, config.reads.Load(), "the reader was used after ImportConfig returned")

	// A new call with a new reader carries the same bytes in full.
	srv = startFake(t, mgmtapitest.Options{})
	c, _ = loggedIn(t, srv.URL)
	fresh := newGeneratedConfig("4.8.0", 8<<20)
	var want bytes.Buffer
	_, err = io.Copy(&want, newGeneratedConfig("4.8.0", 8<<20))
	require.NoError(t, err)
	_, err = c.ImportConfig(context.Background(), fresh, "big.yaml")
	require.NoError(t, err)
	calls := srv.RequestsTo(http.MethodPost, "/api/config/import")
	require.Len(t, calls, 1)
	assert.Equal(t, int64(8<<20), calls[0].UploadBytes)
	assert.Equal(t, sha256Hex(want.Bytes()), calls[0].UploadSHA256)
}

// countingReader counts the Read calls on r.
type countingReader struct {
	r     io.Reader
	reads atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.r.Read(p)
}

func TestImportLargeConfigStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("imports 512 MiB; skipped with -short")
	}
	const size = 512 << 20
	srv := startFake(t, mgmtapitest.Options{})
	c, _ := loggedIn(t, srv.URL)

	runtime.GC()
	stop := heapPeak()
	_, err := c.ImportConfig(context.Background(), newGeneratedConfig("4.8.0", size), "big.yaml")
	peak := stop()

	require.NoError(t, err)
	calls := srv.RequestsTo(http.MethodPost, "/api/config/import")
	require.Len(t, calls, 1)
	assert.Equal(t, int64(size), calls[0].UploadBytes)
	assert.Less(t, peak, uint64(maxHeap), "heap peaked at %d MiB", peak>>20)
}

func TestTransferProgress(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{})
	require.NoError(t, srv.SetRunningConfigSize(1<<20))
	type report struct{ done, total int64 }
	var reports []report
	c, _ := loggedIn(t, srv.URL, mgmtapi.WithProgress(func(done, total int64) {
		reports = append(reports, report{done, total})
	}))

	_, err := c.ExportConfig(context.Background(), mgmtapi.ExportKindRunning, io.Discard)
	require.NoError(t, err)
	require.NotEmpty(t, reports)
	assert.Equal(t, report{1 << 20, 1 << 20}, reports[len(reports)-1])

	reports = nil
	path := filepath.Join(t.TempDir(), "c.yaml")
	content := "pas_config_version: 4.8.0\nx: 1\n"
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	_, err = c.ImportConfigFile(context.Background(), path)
	require.NoError(t, err)
	require.NotEmpty(t, reports)
	size := int64(len(content))
	assert.Equal(t, report{size, size}, reports[len(reports)-1])
}

func TestExportBodyLongerThanDeclared(t *testing.T) {
	// net/http stops reading at Content-Length, so only a transport that
	// delivers the extra bytes can show them. This one declares 10 bytes
	// and delivers 25.
	transport := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		body := `{"token":"t0ken"}`
		contentType := "application/json"
		length := int64(len(body))
		if strings.HasSuffix(r.URL.Path, "/export") {
			body, contentType, length = "pas_config_version: 4.8.0", "application/octet-stream", 10
		}
		return &http.Response{
			StatusCode: http.StatusOK, Status: "200 OK", Request: r, ContentLength: length,
			Header: http.Header{"Content-Type": {contentType}},
			Body:   io.NopCloser(strings.NewReader(body)),
		}, nil
	})
	c, _ := newClient(t, "http://127.0.0.1:1", mgmtapi.WithHTTPClient(&http.Client{Transport: transport}))
	require.NoError(t, c.Login(context.Background(), testUser, testPassword))
	dir := t.TempDir()

	_, _, err := c.ExportConfigFile(context.Background(), mgmtapi.ExportKindRunning, dir)

	require.Error(t, err)
	assert.ErrorIs(t, err, mgmtapi.ErrInvalidReply)
	assert.Contains(t, err.Error(), "has 25 bytes but Content-Length declared 10")
	assert.Empty(t, dirNames(t, dir))
}

// failingWriter accepts limit bytes and then fails.
type failingWriter struct {
	limit int64
	n     int64
}

var errDiskFull = fmt.Errorf("write running.yaml: no space left on device")

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n+int64(len(p)) > w.limit {
		return 0, errDiskFull
	}
	w.n += int64(len(p))
	return len(p), nil
}

// cancellingWriter cancels the export's context after the first write.
type cancellingWriter struct{ cancel context.CancelFunc }

func (w cancellingWriter) Write(p []byte) (int, error) {
	w.cancel()
	return len(p), nil
}

func TestExportLocalFailureIsNotInvalidReply(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{})
	require.NoError(t, srv.SetRunningConfigSize(4<<20))
	c, _ := loggedIn(t, srv.URL)

	t.Run("writer fails", func(t *testing.T) {
		_, err := c.ExportConfig(context.Background(), mgmtapi.ExportKindRunning, &failingWriter{limit: 1 << 20})

		require.Error(t, err)
		assert.ErrorIs(t, err, errDiskFull)
		assert.NotErrorIs(t, err, mgmtapi.ErrInvalidReply, "the server's reply was whole")
		assert.NotContains(t, err.Error(), "ended after")
	})
	t.Run("context cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()

		_, err := c.ExportConfig(ctx, mgmtapi.ExportKindRunning, cancellingWriter{cancel})

		require.Error(t, err)
		assert.ErrorIs(t, err, context.Canceled)
		assert.NotErrorIs(t, err, mgmtapi.ErrInvalidReply, "the server's reply was whole")
		assert.NotContains(t, err.Error(), "ended after")
	})
}

// stallingServer replies to a login and then, for every other request,
// sends the headers of an export and a few bytes of its body, or for a
// POST reads nothing, and waits until the client goes away.
func stallingServer(t *testing.T) string {
	t.Helper()
	return serveLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/login" {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"token":"stall-token"}`))
			return
		}
		if r.Method == http.MethodGet {
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Length", "1048576")
			w.Write([]byte("pas_config_version: 4.8.0\n"))
			http.NewResponseController(w).Flush()
		}
		<-r.Context().Done()
	}))
}

// withinSeconds runs fn and fails the test if it does not return in time.
func withinSeconds(t *testing.T, seconds int, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Duration(seconds) * time.Second):
		t.Fatalf("still running after %ds", seconds)
		return nil
	}
}

func TestExportStalledBodyTimesOut(t *testing.T) {
	base := stallingServer(t)
	c, s := loggedIn(t, base, mgmtapi.WithTimeout(200*time.Millisecond))
	dir := t.TempDir()

	err := withinSeconds(t, 10, func() error {
		_, _, err := c.ExportConfigFile(context.Background(), mgmtapi.ExportKindRunning, dir)
		return err
	})

	require.Error(t, err)
	assert.ErrorIs(t, err, mgmtapi.ErrInvalidReply)
	assert.Contains(t, err.Error(), "no data for 200ms")
	assert.Len(t, s.recorded(), 3, "a stalled export is downloaded again")
	assert.Empty(t, dirNames(t, dir))
}

func TestImportStalledUploadTimesOut(t *testing.T) {
	base := stallingServer(t)
	c, _ := loggedIn(t, base, mgmtapi.WithTimeout(200*time.Millisecond))
	// More than the socket buffers of loopback take, so the upload blocks.
	upload := io.MultiReader(strings.NewReader("pas_config_version: 4.8.0\n"),
		io.LimitReader(zeroReader{}, 256<<20))

	err := withinSeconds(t, 10, func() error {
		_, err := c.ImportConfig(context.Background(), upload, "big.yaml")
		return err
	})

	require.Error(t, err)
	assert.Contains(t, err.Error(), "no data for 200ms")
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestExportHTMLInUpperCase(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{})
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/config/export" {
			srv.Handler.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "Text/HTML; charset=utf-8")
		w.Write([]byte("<html><body>Please sign in to the proxy</body></html>"))
	})
	c, _ := loggedIn(t, serveLoopback(t, page))
	dir := t.TempDir()

	_, _, err := c.ExportConfigFile(context.Background(), mgmtapi.ExportKindRunning, dir)

	require.Error(t, err)
	assert.ErrorIs(t, err, mgmtapi.ErrInvalidReply)
	assert.Empty(t, dirNames(t, dir))
}
