package mgmtapi_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/mgmtapi"
	"github.com/pasops/pasupgrade/mgmtapi/mgmtapitest"
)

// bodySink records the bodies and Authorization headers it receives, and
// replies to a login with a token.
type bodySink struct {
	mu       sync.Mutex
	received []string
}

func (s *bodySink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.received = append(s.received, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization")+" "+string(body))
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path == "/api/login" {
		w.Write([]byte(`{"token":"sink-token"}`))
		return
	}
	w.Write([]byte(`{"nodes":[],"version":"4.8.0"}`))
}

func (s *bodySink) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string{}, s.received...)
}

// serveLoopback serves h on a new loopback port and returns its URL.
func serveLoopback(t *testing.T, h http.Handler) string {
	t.Helper()
	ln := listenLoopback(t)
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// redirectTo answers every request with status and a Location under target.
func redirectTo(target string, status int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		http.Redirect(w, r, target+r.URL.Path, status)
	})
}

func TestLoginRedirectToOtherServer(t *testing.T) {
	sink := &bodySink{}
	other := serveLoopback(t, sink)
	// "localhost" is another host name than 127.0.0.1, as far as the
	// client's redirect rules go, but stays on loopback.
	otherHost := strings.Replace(other, "127.0.0.1", "localhost", 1)

	for _, target := range []string{other, otherHost} {
		for _, status := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
			t.Run(sprintf("%d to %s", status, target), func(t *testing.T) {
				base := serveLoopback(t, redirectTo(target, status))
				c, _ := newClient(t, base, mgmtapi.WithRetry(mgmtapi.RetryPolicy{}))

				err := c.Login(context.Background(), testUser, testPassword)

				require.Error(t, err)
				assert.Contains(t, err.Error(), "redirect")
				assert.NotContains(t, err.Error(), testPassword)
				for _, r := range sink.requests() {
					assert.NotContains(t, r, testPassword, "the password reached the other server")
				}
			})
		}
	}
}

func TestTokenNotSentAfterRedirect(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{})
	sink := &bodySink{}
	other := serveLoopback(t, sink)
	redirecting := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/status" {
			http.Redirect(w, r, other+r.URL.Path, http.StatusFound)
			return
		}
		srv.Handler.ServeHTTP(w, r)
	})
	base := serveLoopback(t, redirecting)
	c, _ := loggedIn(t, base)

	_, err := c.Status(context.Background())

	require.Error(t, err)
	assert.Contains(t, err.Error(), "redirect")
	assert.Empty(t, sink.requests(), "the request followed the redirect to another server")
}

func TestRedirectWithinServerIsFollowed(t *testing.T) {
	srv := startFake(t, mgmtapitest.Options{})
	redirecting := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/old/version" {
			http.Redirect(w, r, "/api/version", http.StatusMovedPermanently)
			return
		}
		srv.Handler.ServeHTTP(w, r)
	})
	base := serveLoopback(t, redirecting)
	c, _ := loggedIn(t, base, mgmtapi.WithEndpoints(mgmtapi.Endpoints{Version: "/old/version"}))

	version, err := c.Version(context.Background())

	require.NoError(t, err)
	assert.Equal(t, "4.8.0", version)
}

func TestMalformedLoginReplyHidesToken(t *testing.T) {
	const token = "Tok3n-In-A-Broken-Reply"
	for _, body := range []string{
		`{"token":"` + token + `"} trailing`,
		`{"token":"` + token + `"`,
		`{"token":"` + token + `","expires":}`,
	} {
		t.Run(body, func(t *testing.T) {
			base := serveLoopback(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(body))
			}))
			c, _ := newClient(t, base)

			err := c.Login(context.Background(), testUser, testPassword)

			require.Error(t, err)
			assert.ErrorIs(t, err, mgmtapi.ErrInvalidReply)
			assert.NotContains(t, err.Error(), token)
		})
	}
}
