package mgmtapi_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pasops/pasupgrade/mgmtapi"
	"github.com/pasops/pasupgrade/mgmtapi/mgmtapitest"
)

// Example runs the final check of a multi-node upgrade: when a node
// reports reload success FAILED, run a config apply even with no pending
// changes.
func Example() {
	srv, err := mgmtapitest.NewServer(mgmtapitest.Options{
		Users: map[string]string{"admin": "example-password"},
	}, false)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	srv.FailNodeReload("mgmt")

	ctx := context.Background()
	client, err := mgmtapi.New(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := client.Login(ctx, "admin", "example-password"); err != nil {
		fmt.Println(err)
		return
	}
	status, err := client.Status(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("FAILED:", status.FailedReloads())

	job, err := client.Apply(ctx, 20*time.Second)
	if errors.Is(err, mgmtapi.ErrApplyFailed) || errors.Is(err, mgmtapi.ErrApplyTimeout) {
		fmt.Println(err)
		return
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(job.State, job.Nodes[0].Name, job.Nodes[0].ReloadSuccess)
	// Output:
	// FAILED: [mgmt]
	// succeeded mgmt OK
}

// ExampleClient_ImportConfig shows that a rejected upload is an
// *APIError with the server's code.
func ExampleClient_ImportConfig() {
	srv, err := mgmtapitest.NewServer(mgmtapitest.Options{
		Version: "4.9.0",
		Users:   map[string]string{"admin": "example-password"},
	}, false)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	ctx := context.Background()
	client, _ := mgmtapi.New(srv.URL)
	if err := client.Login(ctx, "admin", "example-password"); err != nil {
		fmt.Println(err)
		return
	}
	_, err = client.ImportConfig(ctx, strings.NewReader("pas_config_version: 4.8.0\n"), "old.yaml")
	var apiErr *mgmtapi.APIError
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.Status, apiErr.Code)
	}
	// Output:
	// 400 incompatible_config
}
