package pasupgrade

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/backup"
	"github.com/pasops/pasupgrade/configconv"
	"github.com/pasops/pasupgrade/mgmtapi"
	"github.com/pasops/pasupgrade/mgmtapi/mgmtapitest"
)

func TestOwnerMapGivesOldPASIDsToNewUser(t *testing.T) {
	members := []backup.Member{
		{Name: "opt/balasys/etc/", UID: 4242, GID: 4243},
		{Name: "opt/balasys/etc/mgmt/config.yml", UID: 4242, GID: 0},
	}
	mapOwner := ownerMap(members, 1001, 1002)
	require.NotNil(t, mapOwner)

	tests := []struct {
		name             string
		uid, gid         uint32
		wantUID, wantGID uint32
	}{
		{"old pas", 4242, 4243, 1001, 1002},
		{"old pas with root group", 4242, 0, 1001, 0},
		{"root", 0, 0, 0, 0},
		{"other user", 50, 50, 50, 50},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			uid, gid := mapOwner(tc.uid, tc.gid)
			assert.Equal(t, tc.wantUID, uid)
			assert.Equal(t, tc.wantGID, gid)
		})
	}
}

func TestOwnerMapKeepsRootTree(t *testing.T) {
	assert.Nil(t, ownerMap([]backup.Member{{Name: "opt/balasys/etc/", UID: 0}}, 1001, 1002))
	assert.Nil(t, ownerMap(nil, 1001, 1002))
}

func TestWithLoginKeepsOtherNotLoggedInErrors(t *testing.T) {
	srv := mgmtapitest.Start(t, mgmtapitest.Options{
		StateDir: t.TempDir(), Users: map[string]string{"admin": "s3cret-Pa55"},
	})
	client, err := mgmtapi.New(srv.URL)
	require.NoError(t, err)
	api := MgmtAPI{Client: client, Password: "s3cret-Pa55"}

	// A node's reload message, or the upgrade tool's Docker pull, may say
	// "not logged in" about a registry: that is no management session
	// to renew, and a config apply must not run a second time for it.
	for _, failure := range []error{
		errors.New("config apply 7 failed on nodes core-1 (FAILED: pulling the image: not logged in to registry.example)"),
		fmt.Errorf("pulling the tool's image: %w", configconv.ErrNotLoggedIn),
	} {
		calls := 0
		err := api.withLogin(context.Background(), func() error {
			calls++
			return failure
		})
		assert.Equal(t, 1, calls, "calls for %q", failure)
		assert.Equal(t, failure, err)
	}

	// A call made before any login logs in and runs again.
	calls := 0
	err = api.withLogin(context.Background(), func() error {
		calls++
		if calls == 1 {
			return fmt.Errorf("reading the status: %w", mgmtapi.ErrNotLoggedIn)
		}
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, 2, calls)
}

func TestApplyStartsOnceWhenPollRejected(t *testing.T) {
	srv := mgmtapitest.Start(t, mgmtapitest.Options{
		StateDir: t.TempDir(), Users: map[string]string{"admin": "s3cret-Pa55"},
	})
	client, err := mgmtapi.New(srv.URL)
	require.NoError(t, err)
	api := MgmtAPI{Client: client, Password: "s3cret-Pa55"}
	ctx := context.Background()
	require.NoError(t, api.Login(ctx))

	// The apply starts, then reading its state is rejected even after
	// the client's own re-login. Logging in once more must not start a
	// second apply while the first may still run.
	require.NoError(t, srv.AddFault(mgmtapitest.Fault{
		Kind: mgmtapitest.FaultStatus, Path: "/api/config/apply/*", Status: 401, Count: 2,
	}))
	err = api.Apply(ctx, 5*time.Second)
	assert.ErrorIs(t, err, mgmtapi.ErrUnauthorized)
	assert.Len(t, srv.RequestsTo("POST", "/api/config/apply"), 1, "config applies started")
}
