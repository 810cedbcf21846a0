package deb_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pasops/pasupgrade/deb"
	"github.com/pasops/pasupgrade/deb/debtest"
	"github.com/pasops/pasupgrade/internal/lab"
	"github.com/pasops/pasupgrade/internal/testenv"
	"github.com/pasops/pasupgrade/runner"
)

// These tests run real dpkg and debconf inside lab node containers, never
// on the machine that runs the tests.

const (
	labOldPassword = "lab-old-pass 4.8"
	labNewPassword = "lab-new-pass 4.9"

	storageConfig = "/opt/balasys/etc/storage/config.yml"
	usersHtpass   = "/opt/balasys/etc/mgmt/users.htpass"
	localEdit     = "# edited on this node\n"
)

// backupDirs are the directories where the 4.9.0 installer keeps the old
// configuration when the overwrite-config answer is yes.
var backupDirs = []string{
	"/opt/balasys/etc/infrastructure/storage/backups",
	"/opt/balasys/etc/storage/backups",
	"/opt/balasys/etc/infrastructure/mgmt/backups",
	"/opt/balasys/etc/mgmt/backups",
	"/opt/balasys/etc/infrastructure/core/backups",
}

// labFixture is what a lab test of this file needs: the engine, a work
// directory the nodes mount, and the simulated packages built into it.
type labFixture struct {
	cli  client.APIClient
	work string
	debs map[string]string
}

func newLabFixture(t *testing.T) *labFixture {
	t.Helper()
	testenv.DockerHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	cli, err := lab.Connect(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { cli.Close() })
	_, err = lab.EnsureNodeImage(ctx, cli)
	require.NoError(t, err)
	return &labFixture{cli: cli, work: t.TempDir()}
}

// buildPackages builds the simulated PAS packages into the work directory.
func (f *labFixture) buildPackages(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	debs, err := lab.BuildPackages(ctx, filepath.Join(f.work, "debs"), lab.BuildOptions{})
	require.NoError(t, err)
	f.debs = debs
}

// startNode starts a node that mounts the fixture's work directory and
// removes it when the test ends.
func (f *labFixture) startNode(t *testing.T) *lab.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	node, err := lab.StartNode(ctx, f.cli, lab.NodeOptions{
		Name:    lab.UniqueName("pasupgrade-debtest"),
		WorkDir: f.work,
	})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, node.Remove(context.Background())) })
	return node
}

func (f *labFixture) set(t *testing.T, version string) deb.Set {
	t.Helper()
	var paths []string
	for _, name := range deb.SetNames() {
		paths = append(paths, f.debs[lab.DebFileName(name, version)])
	}
	set, err := deb.FindSet(paths, version)
	require.NoError(t, err)
	return set
}

// installDebconfUtils installs debconf-utils, which has the real
// debconf-get-selections, in node with the node's own apt-get. The node
// image lacks it, as many servers do, and without it the Manager confirms
// answers with debconf-communicate instead.
func (f *labFixture) installDebconfUtils(t *testing.T, node *lab.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, argv := range [][]string{
		{"apt-get", "update", "-qq"},
		{"apt-get", "install", "-qq", "--yes", "--no-install-recommends", "debconf-utils"},
	} {
		_, err := node.Run(ctx, runner.Command{Argv: argv, Env: []string{"DEBIAN_FRONTEND=noninteractive"}})
		if err != nil {
			testenv.SkipOrFail(t, "installing debconf-utils in the node failed: "+err.Error())
		}
	}
}

func nodeRun(t *testing.T, node *lab.Node, argv ...string) string {
	t.Helper()
	res, err := node.Run(context.Background(), runner.Command{Argv: argv})
	require.NoError(t, err, "%s", strings.Join(argv, " "))
	return string(res.Stdout)
}

func nodeFile(t *testing.T, node *lab.Node, path string) string {
	t.Helper()
	data, err := node.ReadFile(context.Background(), path)
	require.NoError(t, err)
	return string(data)
}

func nodeExists(t *testing.T, node *lab.Node, path string) bool {
	t.Helper()
	_, err := node.Run(context.Background(), runner.Command{Argv: []string{"test", "-e", path}})
	return err == nil
}

func TestLabUpgradeKeepsLocalConffile(t *testing.T) {
	f := newLabFixture(t)
	f.buildPackages(t)
	tests := []struct {
		name            string
		overwrite       bool
		password        string
		getSelections   bool
		wantConfirm     string // the command that read the answers back
		wantHashPrefix  string
		wantBackups     bool
		wantLocalConfig bool
	}{
		{
			name:           "single node with password",
			overwrite:      true,
			password:       labNewPassword,
			getSelections:  true,
			wantConfirm:    "$ debconf-get-selections\n",
			wantHashPrefix: "admin:$2y$",
			wantBackups:    true,
		},
		{
			name:            "multi node without password",
			overwrite:       false,
			wantConfirm:     "$ debconf-communicate\n",
			wantHashPrefix:  "admin:{SHA}",
			wantLocalConfig: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			node := f.startNode(t)
			if tt.getSelections {
				f.installDebconfUtils(t, node)
			}
			var transcript bytes.Buffer
			m := &deb.Manager{Runner: &runner.Transcript{Runner: node, W: &transcript}}
			var events []deb.Event
			m.OnEvent = func(e deb.Event) { events = append(events, e) }

			_, err := m.Install(ctx, f.set(t, "4.8.0"), deb.InstallOptions{AdminPassword: labOldPassword})
			require.NoError(t, err, transcript.String())
			oldHtpass := nodeFile(t, node, usersHtpass)
			require.True(t, strings.HasPrefix(oldHtpass, "admin:{SHA}"), oldHtpass)
			nodeRun(t, node, "sh", "-c", "printf '%s' '"+localEdit+"' >>"+storageConfig)
			edited := nodeFile(t, node, storageConfig)

			result, err := m.Install(ctx, f.set(t, "4.9.0"),
				deb.InstallOptions{OverwriteConfig: tt.overwrite, AdminPassword: tt.password})
			require.NoError(t, err, transcript.String())

			// Versions, from the result and from dpkg-query itself.
			require.Len(t, result.Packages, 3)
			for _, st := range result.Packages {
				assert.Equal(t, deb.StateInstalled, st.State, st.Name)
				assert.Equal(t, "4.9.0", st.Version, st.Name)
			}
			assert.Equal(t, "4.9.0 4.9.0 4.9.0", strings.TrimSpace(nodeRun(t, node,
				"dpkg-query", "--show", "--showformat=${Version} ", deb.CorePackage, deb.MgmtPackage, deb.StoragePackage)))

			// The edited conffile was kept and the package's copy reported.
			assert.Contains(t, result.Kept, deb.KeptConffile{Package: deb.StoragePackage,
				Path: storageConfig, Dist: storageConfig + ".dpkg-dist"})
			dist := nodeFile(t, node, storageConfig+".dpkg-dist")
			assert.NotContains(t, dist, localEdit)
			assert.Contains(t, eventKinds(events), deb.EventConffileKept)
			if tt.wantLocalConfig {
				assert.Equal(t, edited, nodeFile(t, node, storageConfig))
			}

			// The overwrite answer: backups of the old files, or none.
			for _, dir := range backupDirs {
				assert.Equal(t, tt.wantBackups, nodeExists(t, node, dir), dir)
			}
			if tt.wantBackups {
				assert.Equal(t, edited, nodeFile(t, node, "/opt/balasys/etc/storage/backups/config.yml.4.8.0"))
			}

			// The password answer: a bcrypt hash, or the old hash kept.
			htpass := nodeFile(t, node, usersHtpass)
			assert.True(t, strings.HasPrefix(htpass, tt.wantHashPrefix), htpass)
			if tt.password == "" {
				assert.Equal(t, oldHtpass, htpass)
			}

			assertNoPasswordLeft(t, node, transcript.String())
			assert.Contains(t, transcript.String(), tt.wantConfirm)
			if tt.getSelections {
				assert.NotContains(t, transcript.String(), "$ debconf-communicate\n")
			}

			// Purge leaves nothing of the packages behind.
			removed, err := m.Remove(ctx, deb.SetNames(), true)
			require.NoError(t, err, transcript.String())
			assert.Equal(t, deb.SetNames(), removed.Removed)
			statuses, err := m.Installed(ctx, deb.SetNames()...)
			require.NoError(t, err)
			for _, st := range statuses {
				assert.Equal(t, deb.StateNotInstalled, st.State, st.Name)
			}
			assertPurged(t, node, f.set(t, "4.9.0"))
		})
	}
}

// assertNoPasswordLeft checks that neither password is in the debconf
// database files, in the answer itself or in the transcript.
func assertNoPasswordLeft(t *testing.T, node *lab.Node, transcript string) {
	t.Helper()
	for _, pw := range []string{labOldPassword, labNewPassword} {
		// grep exits 1 when nothing matches, 0 on a match, 2 on errors.
		res, err := node.Run(context.Background(), runner.Command{
			Argv: []string{"grep", "-rlF", "--", pw, "/var/cache/debconf"}})
		var exitErr *runner.ExitError
		require.ErrorAs(t, err, &exitErr)
		assert.Equal(t, 1, exitErr.ExitCode, "the debconf database holds a password in %s", res.Stdout)
		assert.NotContains(t, transcript, pw)
	}
	answer := nodeRun(t, node, "sh", "-c", "echo GET "+deb.AdminPasswordQuestion+" | debconf-communicate")
	assert.Equal(t, "0", strings.TrimSpace(answer))
}

// assertPurged checks that no file, maintainer script or debconf question
// of the packages is left.
func assertPurged(t *testing.T, node *lab.Node, set deb.Set) {
	t.Helper()
	for _, p := range set.Packages {
		for _, c := range p.Conffiles {
			assert.False(t, nodeExists(t, node, c), c)
		}
		assert.False(t, nodeExists(t, node, "/var/lib/dpkg/info/"+p.Name+".list"), p.Name)
		assert.False(t, nodeExists(t, node, "/opt/balasys/usr/share/"+p.Name), p.Name)
	}
	left := nodeRun(t, node, "sh", "-c", "grep -l proxedo-api-security /var/cache/debconf/*.dat || true")
	assert.Empty(t, left, "debconf still has questions of the packages")
	etc := nodeRun(t, node, "sh", "-c", "find /opt/balasys/etc -type f 2>/dev/null || true")
	assert.Empty(t, etc, "files left under /opt/balasys/etc")
}

func eventKinds(events []deb.Event) []deb.EventKind {
	var kinds []deb.EventKind
	for _, e := range events {
		kinds = append(kinds, e.Kind)
	}
	return kinds
}

// Case: another process holds the dpkg lock inside the node, where it
// cannot be probed from outside. The Manager retries while dpkg, apt-get
// or debconf-set-selections reports the lock, names the holder's pid from
// the message, and gives up when the wait ends.
func TestLabWaitsForDpkgLock(t *testing.T) {
	f := newLabFixture(t)
	node := f.startNode(t)
	ctx := context.Background()
	// The postinst runs under debconf, so the debconf database is locked
	// too while it sleeps.
	slow := debtest.Build(t, f.work, debtest.Spec{Name: "pasupgrade-debtest-slow", Version: "1.0",
		Scripts: map[string]string{"postinst": "#!/bin/sh\n. /usr/share/debconf/confmodule\nsleep 25\n"}})
	asking := singleSet(t, debtest.Build(t, f.work, debtest.Spec{Name: "pasupgrade-debtest-asks", Version: "1.0",
		Templates: "Template: pasupgrade-debtest-asks/overwrite-config\nType: boolean\nDescription: overwrite?\n"}))
	nodeRun(t, node, "sh", "-c", "dpkg --install "+slow+" >/tmp/slow.log 2>&1 &")
	waitForProcess(t, node, "sleep")
	holder := waitForProcess(t, node, "dpkg")
	short := &deb.Manager{Runner: node, LockWait: 500 * time.Millisecond, LockPoll: 100 * time.Millisecond}

	tests := []struct {
		name       string
		run        func() error
		wantLock   string
		wantHolder deb.LockHolder
	}{
		{
			name:       "dpkg",
			run:        func() error { return short.ConfigurePending(ctx) },
			wantLock:   "the dpkg frontend lock",
			wantHolder: deb.LockHolder{PID: holder},
		},
		{
			// The package is half-configured while its postinst sleeps, so
			// Remove purges it with dpkg rather than apt-get, and dpkg's
			// message names only the holder's pid. Parsing apt-get's
			// message, which also names the command, is a unit test.
			name: "remove broken package",
			run: func() error {
				_, err := short.Remove(ctx, []string{"pasupgrade-debtest-slow"}, true)
				return err
			},
			wantLock:   "the dpkg frontend lock",
			wantHolder: deb.LockHolder{PID: holder},
		},
		{
			name: "debconf-set-selections",
			run: func() error {
				_, err := short.Install(ctx, asking, deb.InstallOptions{})
				return err
			},
			wantLock: "the debconf database lock",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()

			var lockErr *deb.LockError
			require.ErrorAs(t, err, &lockErr)
			assert.Equal(t, tt.wantLock, lockErr.Lock)
			assert.Equal(t, tt.wantHolder, lockErr.Holder)
		})
	}

	patient := &deb.Manager{Runner: node, LockWait: 2 * time.Minute, LockPoll: 250 * time.Millisecond}
	var events []deb.Event
	patient.OnEvent = func(e deb.Event) { events = append(events, e) }
	require.NoError(t, patient.ConfigurePending(ctx))
	require.NotEmpty(t, events)
	assert.Equal(t, deb.EventLockWait, events[0].Kind)
	assert.Equal(t, holder, events[0].PID)
	assert.Contains(t, nodeRun(t, node, "dpkg-query", "--show", "--showformat=${db:Status-Abbrev}",
		"pasupgrade-debtest-slow"), "ii")
}

// waitForProcess returns the pid of the process named name in node once
// it runs.
func waitForProcess(t *testing.T, node *lab.Node, name string) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		res, err := node.Run(context.Background(), runner.Command{Argv: []string{"pgrep", "-x", "-o", name}})
		if err == nil {
			pid, err := strconv.Atoi(strings.TrimSpace(string(res.Stdout)))
			require.NoError(t, err)
			return pid
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not start in the node", name)
	return 0
}

// Case: a prompt that slips past debconf. dpkg and its maintainer scripts
// get DEBIAN_FRONTEND=noninteractive on top of the node's environment and
// /dev/null as stdin, so a script that reads an answer fails at once
// instead of waiting, and the error names the repair.
func TestLabPromptFailsFast(t *testing.T) {
	f := newLabFixture(t)
	node := f.startNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	m := &deb.Manager{Runner: node}
	envSet := singleSet(t, debtest.Build(t, f.work, debtest.Spec{Name: "pasupgrade-debtest-env", Version: "1.0",
		Scripts: map[string]string{"postinst": "#!/bin/sh\nset -e\nenv >/tmp/postinst-env\n"}}))
	promptSet := singleSet(t, debtest.Build(t, f.work, debtest.Spec{Name: "pasupgrade-debtest-prompt", Version: "1.0",
		Scripts: map[string]string{"postinst": "#!/bin/sh\nset -e\nprintf 'Proceed? [y/N] '\nread answer\n"}}))

	_, err := m.Install(ctx, envSet, deb.InstallOptions{})
	require.NoError(t, err)
	env := nodeFile(t, node, "/tmp/postinst-env")
	assert.Contains(t, env, "\nDEBIAN_FRONTEND=noninteractive\n")
	assert.Contains(t, env, "\nPATH=", "the node's own environment is kept")

	_, err = m.Install(ctx, promptSet, deb.InstallOptions{})

	require.Error(t, err)
	require.NoError(t, ctx.Err(), "the install waited on the prompt")
	var exitErr *runner.ExitError
	assert.ErrorAs(t, err, &exitErr)
	assert.Contains(t, err.Error(), "pasupgrade-debtest-prompt half-configured at 1.0, repair with: "+
		"dpkg --force-confdef --force-confold --configure -a")
}

// singleSet returns the set of the one package at path.
func singleSet(t *testing.T, path string) deb.Set {
	t.Helper()
	pkg, err := deb.Inspect(path)
	require.NoError(t, err)
	return deb.Set{Version: pkg.Version, Packages: []deb.Package{pkg}}
}

// A package left half-configured by a failed run is reported as broken
// with its repair, and the next Install configures it first.
func TestLabInstallFinishesHalfConfigured(t *testing.T) {
	f := newLabFixture(t)
	node := f.startNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	m := &deb.Manager{Runner: node}
	// The postinst fails once, as after an interrupted upgrade.
	set := singleSet(t, debtest.Build(t, f.work, debtest.Spec{Name: "pasupgrade-debtest-flaky", Version: "1.0",
		Scripts: map[string]string{"postinst": "#!/bin/sh\nset -e\n" +
			"if [ ! -e /tmp/flaky-ok ]; then touch /tmp/flaky-ok; exit 1; fi\n"}}))

	_, err := m.Install(ctx, set, deb.InstallOptions{})
	require.Error(t, err)
	statuses, err := m.Installed(ctx, "pasupgrade-debtest-flaky")
	require.NoError(t, err)
	assert.Equal(t, deb.StateBroken, statuses[0].State)
	assert.Equal(t, "half-configured", statuses[0].Detail)
	assert.Equal(t, "dpkg --force-confdef --force-confold --configure -a", statuses[0].Repair)

	result, err := m.Install(ctx, set, deb.InstallOptions{})

	require.NoError(t, err)
	assert.True(t, result.ConfiguredPending)
	assert.Equal(t, deb.StateInstalled, result.Packages[0].State)
}
