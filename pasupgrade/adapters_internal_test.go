package pasupgrade

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/backup"
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
