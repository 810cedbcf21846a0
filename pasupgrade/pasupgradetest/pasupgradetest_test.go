package pasupgradetest_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/pasops/pasupgrade/pasupgrade"
	"github.com/pasops/pasupgrade/pasupgrade/pasupgradetest"
	"github.com/pasops/pasupgrade/runner"
)

// newFake returns a multi node fake whose failures go to the returned
// buffer instead of failing the test.
func newFake() (*pasupgradetest.System, pasupgrade.Deps, *pasupgradetest.Reporter, *bytes.Buffer) {
	var out bytes.Buffer
	report := &pasupgradetest.Reporter{W: &out}
	sys := pasupgradetest.NewSystem(report, pasupgrade.Upgrade480To490, "core-1")
	clock := pasupgradetest.NewClock(time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC), time.Second)
	return sys, sys.Deps(clock, pasupgrade.ConfigconvEditor{}), report, &out
}

var access = pasupgrade.RemoteAccess{User: pasupgrade.PASUser, Key: []byte("key"), KnownHosts: []byte("core-1 ssh-ed25519 AAAA\n")}

func TestRemoteRejectsUnknownCommand(t *testing.T) {
	_, deps, report, out := newFake()
	_, err := deps.Remote.Run(context.Background(), access, "core-1",
		runner.Command{Argv: []string{"rm", "-rf", "/opt/balasys"}, User: pasupgrade.UserRoot})
	assert.Error(t, err)
	assert.True(t, report.Close(), "an unknown remote command fails the test")
	assert.Contains(t, out.String(), "unexpected remote command")
}

func TestRemoteRootCommandNeedsSudo(t *testing.T) {
	_, deps, report, out := newFake()
	// pas may run systemctl and dpkg only through sudo, as root.
	_, err := deps.Remote.Run(context.Background(), access, "core-1",
		runner.Command{Argv: []string{"dpkg", "--purge", pasupgrade.PackageCore}})
	assert.Error(t, err)
	assert.True(t, report.Close())
	assert.Contains(t, out.String(), "as pas")
}

func TestDeployRejectsUnknownFlag(t *testing.T) {
	_, deps, report, out := newFake()
	err := deps.Remote.Deploy(context.Background(), "--deploy-core", "--purge-everything")
	assert.Error(t, err)
	assert.True(t, report.Close())
	assert.Contains(t, out.String(), "--purge-everything")
}

func TestCommandAsMissingPASUserFails(t *testing.T) {
	sys, deps, report, out := newFake()
	ctx := context.Background()
	_, err := deps.Runner.Run(ctx, runner.Command{Argv: []string{"userdel", "--force", "--remove", "pas"}})
	assert.NoError(t, err)

	_, err = deps.Runner.Run(ctx, runner.Command{Argv: []string{"pas-mgmt-update"}, User: pasupgrade.UserPAS})
	assert.ErrorContains(t, err, "pas user does not exist")
	assert.NotContains(t, sys.Log(), "run[pas] pas-mgmt-update", "a command that did not run changed nothing")
	assert.False(t, report.Close(), out.String())
}

func TestKnownRemoteCommandsPass(t *testing.T) {
	_, deps, report, out := newFake()
	ctx := context.Background()
	for _, argv := range [][]string{
		{"true"},
		{"systemctl", "stop", pasupgrade.UnitCore, pasupgrade.UnitStorage},
		{"dpkg", "--purge", pasupgrade.PackageCore, pasupgrade.PackageStorage},
	} {
		user := pasupgrade.UserRoot
		if argv[0] == "true" {
			user = ""
		}
		_, err := deps.Remote.Run(ctx, access, "core-1", runner.Command{Argv: argv, User: user})
		assert.NoError(t, err, "%v", argv)
	}
	assert.NoError(t, deps.Remote.Deploy(ctx, "--deploy-core", "--restart-storage", "--restart-core", "--deploy-ha", "--restart-ha"))
	assert.False(t, report.Close(), out.String())
}
