package pasupgrade_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/pasupgrade"
	"github.com/pasops/pasupgrade/runner/runnertest"
)

func TestSystemctlIsActive(t *testing.T) {
	tests := []struct {
		name    string
		stdout  string
		code    int
		want    bool
		wantErr bool
	}{
		{"active", "active\n", 0, true, false},
		{"inactive", "inactive\n", 3, false, false},
		{"failed", "failed\n", 3, false, false},
		{"no systemd", "", 1, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := runnertest.New(t)
			fake.Expect("systemctl", "is-active", pasupgrade.UnitMgmt).Stdout(tc.stdout).Exit(tc.code)
			active, err := pasupgrade.Systemctl{Runner: fake}.IsActive(context.Background(), pasupgrade.UnitMgmt)
			assert.Equal(t, tc.want, active)
			if tc.wantErr {
				assert.ErrorContains(t, err, "asking systemd whether proxedo-api-security-mgmt runs")
				return
			}
			assert.NoError(t, err)
		})
	}
}

func TestSystemctlVerbs(t *testing.T) {
	fake := runnertest.New(t)
	fake.Expect("systemctl", "stop", pasupgrade.UnitCore).AsUser("")
	fake.Expect("systemctl", "start", pasupgrade.UnitCore).AsUser("")
	fake.Expect("systemctl", "restart", pasupgrade.UnitHA).Exit(1)
	s := pasupgrade.Systemctl{Runner: fake}
	ctx := context.Background()
	require.NoError(t, s.Stop(ctx, pasupgrade.UnitCore))
	require.NoError(t, s.Start(ctx, pasupgrade.UnitCore))
	assert.ErrorContains(t, s.Restart(ctx, pasupgrade.UnitHA), "restart proxedo-api-security-ha: ")
}

func TestDeployCommandRunsAsPAS(t *testing.T) {
	fake := runnertest.New(t)
	fake.Expect("pas-mgmt-deploy-core", "--deploy-core", "--restart-storage").AsUser("pas")
	d := pasupgrade.DeployCommand{Runner: fake, Dir: "/srv/upgrade"}
	require.NoError(t, d.Deploy(context.Background(), "--deploy-core", "--restart-storage"))
	assert.Equal(t, "/srv/upgrade", fake.Calls()[0].Dir)
}
