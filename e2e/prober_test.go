package e2e

import (
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestProberSeesOutage serves on a loopback port, takes the listener away
// for a while and checks that the prober's longest gap covers the outage.
// The bounds are loose on purpose: the test checks what is measured, not
// how fast this machine is.
func TestProberSeesOutage(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := listener.Addr().String()
	handler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})
	server := &http.Server{Handler: handler}
	go server.Serve(listener)

	p := &Prober{URL: "http://" + addr + "/"}
	p.Start()
	waitForRequests(t, p, 5)

	server.Close()
	outage := 300 * time.Millisecond
	time.Sleep(outage)
	listener, err = net.Listen("tcp", addr)
	require.NoError(t, err, "taking the port back")
	server = &http.Server{Handler: handler}
	go server.Serve(listener)
	defer server.Close()
	waitForRequests(t, p, 5)

	result := p.Stop()
	assert.GreaterOrEqual(t, result.MaxGap, outage, "the gap must cover the outage")
	assert.Positive(t, result.Failures, "requests during the outage must fail")
	assert.Greater(t, result.Requests, result.Failures, "requests before and after must succeed")
}

func TestProberCountsEndpointThatNeverAnswers(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := listener.Addr().String()
	listener.Close()

	p := &Prober{URL: "http://" + addr + "/"}
	p.Start()
	waitForRequests(t, p, 3)
	result := p.Stop()

	assert.Equal(t, result.Requests, result.Failures, "every request must fail")
	assert.Positive(t, result.MaxGap, "the whole run is one gap")
}

func TestProberRejectsNon200(t *testing.T) {
	server := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	})}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go server.Serve(listener)
	defer server.Close()

	p := &Prober{URL: "http://" + listener.Addr().String() + "/"}
	p.Start()
	waitForRequests(t, p, 3)
	result := p.Stop()

	assert.Equal(t, result.Requests, result.Failures, "a 502 is not an answer from core")
}

// waitForRequests waits until p has sent n more requests.
func waitForRequests(t *testing.T, p *Prober, n int) {
	t.Helper()
	p.mu.Lock()
	want := p.result.Requests + n
	p.mu.Unlock()
	require.Eventually(t, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.result.Requests >= want
	}, 10*time.Second, 5*time.Millisecond)
}
