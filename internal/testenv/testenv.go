// Package testenv tells tests whether the lab's Docker engine is available.
//
// Tests that need the engine call DockerHost. Without an engine they skip
// with the reason, except when PASUPGRADE_REQUIRE_LAB=1 is set (as CI does):
// then a missing engine fails the test, so lab tests cannot pass by skipping.
package testenv

import (
	"context"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// RequireLabEnv is the environment variable that turns skips into failures.
const RequireLabEnv = "PASUPGRADE_REQUIRE_LAB"

// LabRequired reports whether PASUPGRADE_REQUIRE_LAB=1 is set.
func LabRequired() bool { return os.Getenv(RequireLabEnv) == "1" }

// SkipOrFail skips the test with reason, or fails it when the lab is
// required.
func SkipOrFail(t testing.TB, reason string) {
	t.Helper()
	if LabRequired() {
		t.Fatalf("%s, and %s=1 forbids skipping", reason, RequireLabEnv)
	}
	t.Skip(reason)
}

// DockerHost returns the DOCKER_HOST of a Docker engine that answers a
// ping, or skips or fails the test as SkipOrFail does. Only Unix sockets
// are accepted, so tests never reach an engine on another host.
func DockerHost(t testing.TB) string {
	t.Helper()
	host := os.Getenv("DOCKER_HOST")
	if host == "" {
		SkipOrFail(t, "DOCKER_HOST is not set; start the lab engine with 'make lab-engine-start'")
		return ""
	}
	socket, ok := strings.CutPrefix(host, "unix://")
	if !ok {
		SkipOrFail(t, "DOCKER_HOST="+host+" is not a unix:// socket; the lab uses only a local engine")
		return ""
	}
	if err := ping(socket); err != nil {
		SkipOrFail(t, "the Docker engine at "+host+" does not answer: "+err.Error())
		return ""
	}
	return host
}

func ping(socket string) error {
	client := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", socket)
			},
		},
	}
	resp, err := client.Get("http://docker/_ping")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &http.ProtocolError{ErrorString: "ping returned " + resp.Status}
	}
	return nil
}
