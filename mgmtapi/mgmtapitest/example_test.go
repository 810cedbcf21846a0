package mgmtapitest_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/pasops/pasupgrade/mgmtapi"
	"github.com/pasops/pasupgrade/mgmtapi/mgmtapitest"
)

// saveRunningConfig is the user's own automation under test: it logs in
// and saves the running configuration into dir.
func saveRunningConfig(ctx context.Context, baseURL, password, dir string) (string, error) {
	client, err := mgmtapi.New(baseURL)
	if err != nil {
		return "", err
	}
	if err := client.Login(ctx, "admin", password); err != nil {
		return "", err
	}
	_, path, err := client.ExportConfigFile(ctx, mgmtapi.ExportKindRunning, dir)
	return path, err
}

// Example tests automation against the fake: the first export attempt
// gets a 503, as during a restart of the management service, and the
// automation still saves the file.
func Example() {
	srv, err := mgmtapitest.NewServer(mgmtapitest.Options{
		Users: map[string]string{"admin": "example-password"},
	}, false)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	srv.FailNext("/api/config/export", 1, http.StatusServiceUnavailable)

	dir, err := os.MkdirTemp("", "example-*")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	path, err := saveRunningConfig(context.Background(), srv.URL, "example-password", dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(filepath.Base(path))
	for _, r := range srv.RequestsTo(http.MethodGet, "/api/config/export") {
		fmt.Println(r.Status)
	}
	// Output:
	// pas-config-running-4.8.0.yaml
	// 503
	// 200
}
