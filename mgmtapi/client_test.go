package mgmtapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/pem"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/mgmtapi"
	"github.com/pasops/pasupgrade/mgmtapi/mgmtapitest"
)

const (
	testUser     = "admin"
	testPassword = "Corr3ct-Horse-Battery"
)

// sleeps records the waits of a client instead of taking them.
type sleeps struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) recorded() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration{}, s.waits...)
}

func startFake(t *testing.T, opts mgmtapitest.Options) *mgmtapitest.Server {
	t.Helper()
	if opts.Users == nil {
		opts.Users = map[string]string{testUser: testPassword}
	}
	return mgmtapitest.Start(t, opts)
}

// newClient returns a client of srv that records its waits and is not
// logged in.
func newClient(t *testing.T, url string, opts ...mgmtapi.Option) (*mgmtapi.Client, *sleeps) {
	t.Helper()
	c, err := mgmtapi.New(url, opts...)
	require.NoError(t, err)
	s := &sleeps{}
	mgmtapi.SetSleepForTest(c, s.sleep)
	return c, s
}

func loggedIn(t *testing.T, url string, opts ...mgmtapi.Option) (*mgmtapi.Client, *sleeps) {
	t.Helper()
	c, s := newClient(t, url, opts...)
	require.NoError(t, c.Login(context.Background(), testUser, testPassword))
	return c, s
}

func TestLoginWrongPassword(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{})
	c, _ := newClient(t, srv.URL)

	err := c.Login(context.Background(), testUser, "not-the-password")

	require.Error(t, err)
	assert.ErrorIs(t, err, mgmtapi.ErrUnauthorized)
	assert.Contains(t, err.Error(), "wrong user name or password")
	assert.Contains(t, err.Error(), srv.URL)
	assert.NotContains(t, err.Error(), "not-the-password")
	var apiErr *mgmtapi.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "invalid_credentials", apiErr.Code)
	assert.NotEmpty(t, apiErr.RequestID)
}

func TestCallBeforeLogin(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{})
	c, _ := newClient(t, srv.URL)

	_, err := c.Status(context.Background())

	assert.ErrorIs(t, err, mgmtapi.ErrNotLoggedIn)
	assert.Empty(t, srv.Requests())
}

func TestStatusVersionAndChanges(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{Version: "4.9.0"})
	srv.FailNodeReload("mgmt")
	c, _ := loggedIn(t, srv.URL)
	ctx := context.Background()

	version, err := c.Version(ctx)
	require.NoError(t, err)
	assert.Equal(t, "4.9.0", version)

	status, err := c.Status(ctx)
	require.NoError(t, err)
	require.Len(t, status.Nodes, 1)
	assert.Equal(t, "mgmt", status.Nodes[0].Role)
	assert.Equal(t, mgmtapi.ReloadFailed, status.Nodes[0].Components[0].ReloadSuccess)
	assert.Equal(t, []string{"mgmt"}, status.FailedReloads())

	changes, err := c.PendingChanges(ctx)
	require.NoError(t, err)
	assert.Empty(t, changes)

	for _, r := range srv.Requests()[1:] {
		assert.True(t, r.Authorized, "request %s %s carried no valid token", r.Method, r.Path)
	}
}

func TestFailedReloadsFindsNodes(t *testing.T) {
	status := mgmtapi.Status{Nodes: []mgmtapi.Node{
		{Name: "mgmt", Components: []mgmtapi.Component{{ReloadSuccess: "OK"}}},
		{Name: "core-1", Components: []mgmtapi.Component{{ReloadSuccess: "OK"}, {ReloadSuccess: "FAILED"}}},
		{Name: "core-2", Components: []mgmtapi.Component{{ReloadSuccess: "UNKNOWN"}}},
		{Name: "ha", Components: []mgmtapi.Component{{ReloadSuccess: "FAILED"}, {ReloadSuccess: "FAILED"}}},
	}}
	assert.Equal(t, []string{"core-1", "ha"}, status.FailedReloads())
	assert.Empty(t, mgmtapi.Status{}.FailedReloads())
}

func TestCustomEndpoints(t *testing.T) {
	paths := mgmtapi.Endpoints{Login: "/v2/session", Status: "/v2/state", Export: "/v2/backup"}
	srv := startFake(t, mgmtapitest.Options{Endpoints: paths})
	c, _ := newClient(t, srv.URL, mgmtapi.WithEndpoints(paths))
	require.NoError(t, c.Login(context.Background(), testUser, testPassword))

	_, err := c.Status(context.Background())
	require.NoError(t, err)
	_, err = c.ExportConfig(context.Background(), mgmtapi.ExportKindRunning, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Len(t, srv.RequestsTo(http.MethodGet, "/v2/state"), 1)
	assert.Len(t, srv.RequestsTo(http.MethodGet, "/v2/backup"), 1)
}

func TestNewRejectsBadBaseURL(t *testing.T) {
	tests := []struct {
		name, url, want string
	}{
		{"no scheme", "localhost:8080", "want http:// or https://"},
		{"ftp", "ftp://localhost", "want http:// or https://"},
		{"credentials", "https://admin:hunter2@localhost", "contains credentials"},
		{"query", "https://localhost/?x=1", "remove the query"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := mgmtapi.New(tt.url)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, err.Error(), "hunter2")
		})
	}
}

func TestNewDefaultsToLocalhost(t *testing.T) {
	c, err := mgmtapi.New("")
	require.NoError(t, err)
	assert.Equal(t, "http://localhost", c.BaseURL())
}

func TestTLSWithGeneratedCA(t *testing.T) {
	srv := mgmtapitest.StartTLS(t, mgmtapitest.Options{Users: map[string]string{testUser: testPassword}})

	t.Run("CA file", func(t *testing.T) {
		c, _ := newClient(t, srv.URL, mgmtapi.WithCAFile(srv.CAFile(t)))
		require.NoError(t, c.Login(context.Background(), testUser, testPassword))
		_, err := c.Status(context.Background())
		assert.NoError(t, err)
	})
	t.Run("CA PEM", func(t *testing.T) {
		c, _ := newClient(t, srv.URL, mgmtapi.WithCAPEM(srv.CACertPEM))
		assert.NoError(t, c.Login(context.Background(), testUser, testPassword))
	})
	t.Run("CA on injected transport", func(t *testing.T) {
		hc := &http.Client{Transport: &http.Transport{}}
		c, _ := newClient(t, srv.URL, mgmtapi.WithHTTPClient(hc), mgmtapi.WithCAPEM(srv.CACertPEM))
		assert.NoError(t, c.Login(context.Background(), testUser, testPassword))
		config := hc.Transport.(*http.Transport).TLSClientConfig
		if config != nil {
			assert.Nil(t, config.RootCAs, "the caller's transport was changed")
		}
	})
	t.Run("system roots", func(t *testing.T) {
		c, _ := newClient(t, srv.URL)
		err := c.Login(context.Background(), testUser, testPassword)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "certificate")
		assert.Contains(t, err.Error(), srv.URL)
	})
	t.Run("wrong CA", func(t *testing.T) {
		other, err := mgmtapitest.NewCA()
		require.NoError(t, err)
		c, _ := newClient(t, srv.URL, mgmtapi.WithCAPEM(other.CertPEM))
		err = c.Login(context.Background(), testUser, testPassword)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "certificate signed by unknown authority")
		assert.NotContains(t, err.Error(), testPassword)
	})
}

func TestCAThatCannotBeUsed(t *testing.T) {
	dir := t.TempDir()
	ca, err := mgmtapitest.NewCA()
	require.NoError(t, err)
	block, _ := pem.Decode(ca.CertPEM)
	derFile := filepath.Join(dir, "ca.der")
	require.NoError(t, os.WriteFile(derFile, block.Bytes, 0o644))
	pemFile := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(pemFile, ca.CertPEM, 0o644))
	unreadable := filepath.Join(dir, "unreadable.pem")
	require.NoError(t, os.WriteFile(unreadable, ca.CertPEM, 0o000))

	wrapped := &http.Client{Transport: roundTripperFunc(http.DefaultTransport.RoundTrip)}
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}

	tests := []struct {
		name   string
		opts   []mgmtapi.Option
		want   string
		isCA   bool
		rootOK bool // root can read any file, so the unreadable case passes
	}{
		{name: "DER instead of PEM", opts: []mgmtapi.Option{mgmtapi.WithCAFile(derFile)},
			want: "no PEM certificates in " + derFile, isCA: true},
		{name: "missing file", opts: []mgmtapi.Option{mgmtapi.WithCAFile(filepath.Join(dir, "missing.pem"))},
			want: "missing.pem: no such file"},
		{name: "unreadable file", opts: []mgmtapi.Option{mgmtapi.WithCAFile(unreadable)},
			want: "unreadable.pem: permission denied", rootOK: true},
		{name: "directory", opts: []mgmtapi.Option{mgmtapi.WithCAFile(dir)},
			want: "reading the CA bundle: read " + dir + ": is a directory"},
		{name: "wrapped transport", opts: []mgmtapi.Option{mgmtapi.WithCAFile(pemFile), mgmtapi.WithHTTPClient(wrapped)},
			want: "cannot use the CA bundle " + pemFile},
		{name: "insecure transport", opts: []mgmtapi.Option{mgmtapi.WithHTTPClient(insecure)},
			want: "skips TLS certificate verification"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.rootOK && os.Geteuid() == 0 {
				t.Skip("root reads files without read permission")
			}
			_, err := mgmtapi.New("https://127.0.0.1:1", tt.opts...)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			if tt.isCA {
				assert.ErrorIs(t, err, mgmtapi.ErrInvalidCA)
			}
		})
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestGetRetries(t *testing.T) {
	tests := []struct {
		name      string
		fault     func(srv *mgmtapitest.Server)
		wantErr   string
		wantCalls int
		wantWait  time.Duration // minimum first wait, from Retry-After
		anyWaits  bool
	}{
		{name: "503 twice", fault: func(s *mgmtapitest.Server) { s.FailNext("/api/status", 2, 503) }, wantCalls: 3},
		{name: "502 HTML page", fault: func(s *mgmtapitest.Server) { s.FailNextHTML("/api/status", 1, 502) }, wantCalls: 2},
		{name: "504", fault: func(s *mgmtapitest.Server) { s.FailNext("/api/status", 1, 504) }, wantCalls: 2},
		// net/http itself repeats a GET whose reused connection closed
		// before the reply, so the client may record no wait of its own.
		{name: "connection reset", fault: func(s *mgmtapitest.Server) { s.DropNext("/api/status", 1, 0) },
			wantCalls: 2, anyWaits: true},
		{name: "retry after", fault: func(s *mgmtapitest.Server) { s.FailNextRetryAfter("/api/status", 1, 503, 4) },
			wantCalls: 2, wantWait: 4 * time.Second},
		{name: "bounded", fault: func(s *mgmtapitest.Server) { s.FailNext("/api/status", 10, 503) },
			wantCalls: 4, wantErr: "503 Service Unavailable"},
		{name: "500 not retried", fault: func(s *mgmtapitest.Server) { s.FailNext("/api/status", 1, 500) },
			wantCalls: 1, wantErr: "500 Internal Server Error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startFake(t, mgmtapitest.Options{})
			c, s := loggedIn(t, srv.URL)
			tt.fault(srv)

			_, err := c.Status(context.Background())

			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
			} else {
				require.NoError(t, err)
			}
			assert.Len(t, srv.RequestsTo(http.MethodGet, "/api/status"), tt.wantCalls)
			waits := s.recorded()
			if !tt.anyWaits {
				assert.Len(t, waits, tt.wantCalls-1)
			}
			if tt.wantWait > 0 {
				assert.GreaterOrEqual(t, waits[0], tt.wantWait)
			}
		})
	}
}

func TestRetryBackoffGrowsWithinBounds(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{})
	policy := mgmtapi.RetryPolicy{MaxRetries: 5, BaseDelay: 100 * time.Millisecond, MaxDelay: 300 * time.Millisecond}
	c, s := loggedIn(t, srv.URL, mgmtapi.WithRetry(policy))
	srv.FailNextRetryAfter("/api/version", 6, 503, 3600)

	_, err := c.Version(context.Background())

	require.Error(t, err)
	waits := s.recorded()
	require.Len(t, waits, 5)
	for i, w := range waits {
		assert.LessOrEqual(t, w, policy.MaxDelay, "wait %d exceeds MaxDelay", i)
		assert.Greater(t, w, time.Duration(0), "wait %d", i)
	}
}

func TestLoginIsRetried(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{})
	srv.FailNext("/api/login", 1, 503)
	c, _ := newClient(t, srv.URL)

	require.NoError(t, c.Login(context.Background(), testUser, testPassword))
	assert.Len(t, srv.RequestsTo(http.MethodPost, "/api/login"), 2)
}

func TestPostsAreNotRetried(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{})
	c, s := loggedIn(t, srv.URL)
	srv.FailNext("/api/config/apply", 1, 503)
	srv.FailNext("/api/config/import", 1, 503)

	_, err := c.ApplyConfig(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "503")
	_, err = c.ImportConfig(context.Background(), strings.NewReader("pas_config_version: 4.8.0\n"), "c.yaml")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "503")

	assert.Len(t, srv.RequestsTo(http.MethodPost, "/api/config/apply"), 1)
	assert.Len(t, srv.RequestsTo(http.MethodPost, "/api/config/import"), 1)
	assert.Empty(t, s.recorded())
}

func TestReloginOnExpiredToken(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{})
	c, _ := loggedIn(t, srv.URL)
	srv.ExpireTokens()

	_, err := c.Status(context.Background())

	require.NoError(t, err)
	assert.Len(t, srv.RequestsTo(http.MethodPost, "/api/login"), 2)
	statusCalls := srv.RequestsTo(http.MethodGet, "/api/status")
	require.Len(t, statusCalls, 2)
	assert.Equal(t, http.StatusUnauthorized, statusCalls[0].Status)
	assert.Equal(t, http.StatusOK, statusCalls[1].Status)
}

func TestReloginOnlyOnce(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{})
	c, _ := loggedIn(t, srv.URL)
	srv.FailNext("/api/status", 2, http.StatusUnauthorized)

	_, err := c.Status(context.Background())

	assert.ErrorIs(t, err, mgmtapi.ErrUnauthorized)
	assert.Len(t, srv.RequestsTo(http.MethodPost, "/api/login"), 2)
	assert.Len(t, srv.RequestsTo(http.MethodGet, "/api/status"), 2)
}

func TestAPIErrorSentinels(t *testing.T) {
	tests := []struct {
		status int
		want   error
	}{
		{http.StatusUnauthorized, mgmtapi.ErrUnauthorized},
		{http.StatusNotFound, mgmtapi.ErrNotFound},
		{http.StatusConflict, mgmtapi.ErrConflict},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			srv := startFake(t, mgmtapitest.Options{})
			c, _ := loggedIn(t, srv.URL)
			// Two, because a 401 is followed by a re-login and one more attempt.
			srv.FailNext("/api/config/apply", 2, tt.status)

			_, err := c.ApplyConfig(context.Background())

			assert.ErrorIs(t, err, tt.want)
			var apiErr *mgmtapi.APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, tt.status, apiErr.Status)
			assert.Equal(t, "injected_fault", apiErr.Code)
			assert.Equal(t, srv.URL+"/api/config/apply", apiErr.URL)
			assert.NotEmpty(t, apiErr.RequestID)
		})
	}
}

func TestApplyJobNotFound(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{})
	c, _ := loggedIn(t, srv.URL)

	_, err := c.ApplyState(context.Background(), "apply-404")

	assert.ErrorIs(t, err, mgmtapi.ErrNotFound)
}

func TestNetworkErrorNamesURL(t *testing.T) {
	c, s := newClient(t, "http://127.0.0.1:1")

	err := c.Login(context.Background(), testUser, testPassword)

	require.Error(t, err)
	assert.Contains(t, err.Error(), "http://127.0.0.1:1/api/login")
	assert.Contains(t, err.Error(), "connection refused")
	assert.Len(t, s.recorded(), 3, "a refused connection is retried: the service may be restarting")
}

func TestHTMLWhereJSONExpected(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{})
	c, _ := loggedIn(t, srv.URL)
	srv.FailNextHTML("/api/version", 1, http.StatusOK)

	_, err := c.Version(context.Background())

	require.Error(t, err)
	assert.ErrorIs(t, err, mgmtapi.ErrInvalidReply)
	assert.Contains(t, err.Error(), "text/html")
	assert.Contains(t, err.Error(), "where JSON was expected")
}

func TestTruncatedJSONReply(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{})
	c, _ := loggedIn(t, srv.URL)
	// The first attempt and every retry are cut off.
	srv.DropNext("/api/status", 1+mgmtapi.DefaultRetryPolicy().MaxRetries, 5)

	_, err := c.Status(context.Background())

	require.Error(t, err)
	assert.ErrorIs(t, err, mgmtapi.ErrInvalidReply)
	assert.Contains(t, err.Error(), "unexpected EOF")
}

func TestTruncatedJSONReplyRetried(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{})
	c, sleeps := loggedIn(t, srv.URL)
	srv.DropNext("/api/status", 1, 5)

	status, err := c.Status(context.Background())

	require.NoError(t, err)
	assert.NotEmpty(t, status.Nodes)
	assert.Len(t, sleeps.recorded(), 1, "one retry after the cut reply")
}

func TestErrorPageEchoingPasswordIsRedacted(t *testing.T) {
	// A proxy that echoes the request body in its error page.
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body bytes.Buffer
		body.ReadFrom(r.Body)
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte("<html>bad request: " + body.String() + "</html>"))
	})
	srv := &http.Server{Handler: echo}
	ln := listenLoopback(t)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	c, _ := newClient(t, "http://"+ln.Addr().String())
	err := c.Login(context.Background(), testUser, testPassword)

	require.Error(t, err)
	assert.Contains(t, err.Error(), "bad request")
	assert.NotContains(t, err.Error(), testPassword)
}

func TestClientStringHidesPassword(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{})
	c, _ := loggedIn(t, srv.URL)
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		text := sprintf(format, c)
		assert.NotContains(t, text, testPassword, format)
		assert.Contains(t, text, srv.URL, format)
	}
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// logBuffer is a concurrency-safe buffer for a slog handler.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func debugLogger(b *logBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestNewRejectsBadDurations(t *testing.T) {
	_, err := mgmtapi.New("", mgmtapi.WithTimeout(0))
	assert.ErrorContains(t, err, "invalid timeout 0s")
	_, err = mgmtapi.New("", mgmtapi.WithPollInterval(-time.Second))
	assert.ErrorContains(t, err, "invalid poll interval -1s")
}

func TestEndpointsSet(t *testing.T) {
	var e mgmtapi.Endpoints
	require.NoError(t, e.Set("export", "/v2/export"))
	assert.Equal(t, "/v2/export", e.Export)
	assert.Equal(t, "/api/status", e.WithDefaults().Status)
	assert.Equal(t, "/v2/export", e.WithDefaults().Export)

	assert.ErrorContains(t, e.Set("backup", "/x"), `unknown endpoint "backup"; use one of login, export`)
	assert.ErrorContains(t, e.Set("status", "api/status"), "want an absolute path")
	assert.ErrorContains(t, e.Set("status", "/api/status?x=1"), "without query")
}

func TestJSONWithOtherContentType(t *testing.T) {
	// Some servers label JSON as text/plain; HTML is still rejected.
	replies := map[string]string{
		"/api/login":   `{"token":"t0ken"}`,
		"/api/version": `{"version":"4.8.0"}`,
		"/api/changes": `not json at all`,
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte(replies[r.URL.Path]))
	})
	srv := &http.Server{Handler: handler}
	ln := listenLoopback(t)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c, _ := loggedIn(t, "http://"+ln.Addr().String())

	version, err := c.Version(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "4.8.0", version)

	_, err = c.PendingChanges(context.Background())
	assert.ErrorIs(t, err, mgmtapi.ErrInvalidReply)
	assert.Contains(t, err.Error(), `"not json at all"`)
	assert.Contains(t, err.Error(), "text/plain")
}

func TestNewRejectsInsecureDefaultTransport(t *testing.T) {
	transport := http.DefaultTransport.(*http.Transport)
	saved := transport.TLSClientConfig
	transport.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	t.Cleanup(func() { transport.TLSClientConfig = saved })

	for _, hc := range []*http.Client{nil, {}} {
		opts := []mgmtapi.Option{mgmtapi.WithCAPEM(nil)}
		if hc != nil {
			opts = append(opts, mgmtapi.WithHTTPClient(hc))
		}
		_, err := mgmtapi.New("https://127.0.0.1:1", opts...)

		require.Error(t, err, "injected client %v", hc != nil)
		assert.Contains(t, err.Error(), "skips TLS certificate verification")
	}
}

func TestNewRejectsCABundleForPlainHTTP(t *testing.T) {
	for _, opt := range []mgmtapi.Option{mgmtapi.WithCAFile("/etc/ssl/pas-ca.pem"), mgmtapi.WithCAPEM([]byte("pem"))} {
		_, err := mgmtapi.New("http://127.0.0.1:8443", opt)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "http://127.0.0.1:8443, which is plain HTTP: use an https:// URL")
	}
}
