package deb

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pault.ag/go/debian/version"

	"github.com/pasops/pasupgrade/runner"
	"github.com/pasops/pasupgrade/runner/runnertest"
)

const testPassword = "s3cret pass"

// testSet returns a 4.9.0 set whose files need not exist: Install passes
// the paths to dpkg, and the fake runner replaces dpkg.
func testSet() Set {
	v, _ := version.Parse("4.9.0")
	set := Set{Version: v}
	for _, name := range SetNames() {
		component := strings.TrimPrefix(strings.TrimPrefix(name, CorePackage), "-")
		if component == "" {
			component = "core"
		}
		questions := []string{name + "/" + OverwriteConfigQuestion}
		if name == MgmtPackage {
			questions = append(questions, AdminPasswordQuestion)
		}
		set.Packages = append(set.Packages, Package{
			Path: "/srv/pkgs/" + name + "_4.9.0_all.deb", Name: name, Version: v, Architecture: "all",
			Conffiles: []string{"/opt/balasys/etc/" + component + "/config.yml"},
			Templates: true, Questions: questions,
		})
	}
	return set
}

var (
	queryArgv = []string{"dpkg-query", "--show", "--showformat=" + queryFormat,
		CorePackage, MgmtPackage, StoragePackage}
	distArgv = []string{"stat", "--format=%i:%Y:%n", "--",
		"/opt/balasys/etc/core/config.yml.dpkg-dist",
		"/opt/balasys/etc/mgmt/config.yml.dpkg-dist",
		"/opt/balasys/etc/storage/config.yml.dpkg-dist"}
	installArgv = []string{"dpkg", "--force-confdef", "--force-confold", "--install",
		"/srv/pkgs/proxedo-api-security_4.9.0_all.deb",
		"/srv/pkgs/proxedo-api-security-mgmt_4.9.0_all.deb",
		"/srv/pkgs/proxedo-api-security-storage_4.9.0_all.deb"}
	configureArgv = []string{"dpkg", "--force-confdef", "--force-confold", "--configure", "-a"}
)

func queryOutput(abbrev, ver string) string {
	var b strings.Builder
	for _, name := range SetNames() {
		b.WriteString(name + "\t" + abbrev + "\t" + ver + "\n")
	}
	return b.String()
}

func selectionsOutput(overwrite, password string) string {
	out := "# Overwrite?\n"
	for _, name := range SetNames() {
		out += name + "\t" + name + "/overwrite-config\tboolean\t" + overwrite + "\n"
	}
	out += MgmtPackage + "\t" + AdminPasswordQuestion + "\tpassword\t" + password + "\n"
	out += "tzdata\ttzdata/Areas\tselect\tEtc\n"
	return out
}

const missingDist = "stat: cannot statx '/opt/balasys/etc/core/config.yml.dpkg-dist': No such file or directory\n"

func recordEvents(m *Manager) *[]Event {
	var events []Event
	m.OnEvent = func(e Event) { events = append(events, e) }
	return &events
}

// Case: a locally edited conffile and an updated one in the package. dpkg
// gets the conffile options, DEBIAN_FRONTEND=noninteractive added to its
// environment and /dev/null as stdin; the .dpkg-dist copy is reported.
func TestInstallKeepsModifiedConffile(t *testing.T) {
	fake := runnertest.New(t)
	fake.Expect("debconf-set-selections")
	fake.Expect("debconf-get-selections").Stdout(selectionsOutput("true", ""))
	fake.Expect(queryArgv...).Stdout(queryOutput("ii ", "4.8.0"))
	fake.Expect(distArgv...).Exit(1).Stderr(missingDist)
	fake.Expect(installArgv...)
	fake.Expect(distArgv...).Exit(1).Stderr(missingDist).
		Stdout("1234:1700000000:/opt/balasys/etc/storage/config.yml.dpkg-dist\n")
	fake.Expect(queryArgv...).Stdout(queryOutput("ii ", "4.9.0"))
	m := &Manager{Runner: fake}
	events := recordEvents(m)

	result, err := m.Install(context.Background(), testSet(), InstallOptions{OverwriteConfig: true})

	require.NoError(t, err)
	calls := fake.Calls()
	dpkg := calls[4]
	assert.Equal(t, []string{"DEBIAN_FRONTEND=noninteractive"}, dpkg.Env, "added to the runner's environment, nothing replaced")
	assert.Nil(t, dpkg.Stdin, "nil stdin is /dev/null for every runner")
	assert.False(t, dpkg.Interactive)
	assert.Equal(t, []KeptConffile{{Package: StoragePackage, Path: "/opt/balasys/etc/storage/config.yml",
		Dist: "/opt/balasys/etc/storage/config.yml.dpkg-dist"}}, result.Kept)
	require.Len(t, result.Packages, 3)
	for _, st := range result.Packages {
		assert.Equal(t, StateInstalled, st.State)
		assert.Equal(t, "4.9.0", st.Version)
	}
	assert.False(t, result.ConfiguredPending)
	assert.Contains(t, kinds(*events), EventConffileKept)
}

// Case: answers go in with debconf-set-selections on stdin and are
// confirmed with debconf-get-selections. The password never appears in
// argv and is removed from the debconf database after the install.
func TestInstallPreseedsAnswers(t *testing.T) {
	tests := []struct {
		name          string
		opts          InstallOptions
		wantStdin     string
		storedValue   string // the password as the runner shows it
		wantCleared   bool
		wantOverwrite string
	}{
		{
			name:          "single node with password",
			opts:          InstallOptions{OverwriteConfig: true, AdminPassword: testPassword},
			wantOverwrite: "true",
			storedValue:   testPassword,
			wantCleared:   true,
		},
		{
			name:          "single node with password redacted by the runner",
			opts:          InstallOptions{OverwriteConfig: true, AdminPassword: testPassword},
			wantOverwrite: "true",
			storedValue:   "***",
			wantCleared:   true,
		},
		{
			name:          "multi node without password",
			opts:          InstallOptions{OverwriteConfig: false},
			wantOverwrite: "false",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := runnertest.New(t)
			fake.Expect("debconf-set-selections")
			fake.Expect("debconf-get-selections").Stdout(selectionsOutput(tt.wantOverwrite, tt.storedValue))
			expectUpgrade(fake)
			if tt.wantCleared {
				fake.Expect("debconf-set-selections")
				fake.Expect("debconf-get-selections").Stdout(selectionsOutput(tt.wantOverwrite, ""))
			}
			m := &Manager{Runner: fake}
			events := recordEvents(m)

			_, err := m.Install(context.Background(), testSet(), tt.opts)

			require.NoError(t, err)
			want := ""
			for _, name := range SetNames() {
				want += name + " " + name + "/overwrite-config boolean " + tt.wantOverwrite + "\n"
			}
			if tt.opts.AdminPassword != "" {
				want += MgmtPackage + " " + AdminPasswordQuestion + " password " + testPassword + "\n"
			}
			assert.Equal(t, want, fake.Stdin(0))
			if tt.wantCleared {
				last := len(fake.Calls()) - 2
				assert.Equal(t, MgmtPackage+" "+AdminPasswordQuestion+" password \n", fake.Stdin(last))
				assert.Contains(t, kinds(*events), EventPasswordForget)
			}
			assertNoSecretInArgv(t, fake.Calls(), testPassword)
			for _, c := range fake.Calls() {
				if strings.HasPrefix(c.Argv[0], "debconf-") && tt.opts.AdminPassword != "" {
					assert.Contains(t, c.Secrets, testPassword, "%s must redact the password", c.Argv[0])
				}
			}
			for _, e := range *events {
				assert.NotContains(t, e.Message, testPassword)
			}
		})
	}
}

func TestInstallClearsPasswordAfterFailure(t *testing.T) {
	fake := runnertest.New(t)
	fake.Expect("debconf-set-selections")
	fake.Expect("debconf-get-selections").Stdout(selectionsOutput("true", testPassword))
	fake.Expect(queryArgv...).Stdout(queryOutput("ii ", "4.8.0"))
	fake.Expect(distArgv...).Exit(1).Stderr(missingDist)
	fake.Expect(installArgv...).Exit(1).Stderr("dpkg: error processing package proxedo-api-security-mgmt (--install):\n" +
		" installed proxedo-api-security-mgmt package post-installation script subprocess returned error exit status 1\n")
	fake.Expect(queryArgv...).Stdout(CorePackage + "\tii \t4.9.0\n" + MgmtPackage + "\tiF \t4.9.0\n" + StoragePackage + "\tii \t4.9.0\n")
	fake.Expect("debconf-set-selections")
	fake.Expect("debconf-get-selections").Stdout(selectionsOutput("true", ""))
	m := &Manager{Runner: fake}

	_, err := m.Install(context.Background(), testSet(), InstallOptions{OverwriteConfig: true, AdminPassword: testPassword})

	var exitErr *runner.ExitError
	require.ErrorAs(t, err, &exitErr)
	assert.Contains(t, err.Error(), "post-installation script")
	assert.Contains(t, err.Error(), "proxedo-api-security-mgmt half-configured at 4.9.0, repair with: dpkg --force-confdef --force-confold --configure -a")
	assert.NotContains(t, err.Error(), testPassword)
	assertNoSecretInArgv(t, fake.Calls(), testPassword)
}

func TestInstallFailsWhenPasswordStays(t *testing.T) {
	fake := runnertest.New(t)
	fake.Expect("debconf-set-selections")
	fake.Expect("debconf-get-selections").Stdout(selectionsOutput("false", "***"))
	expectUpgrade(fake)
	fake.Expect("debconf-set-selections")
	// A maintainer script copied the password to a question of its own.
	fake.Expect("debconf-get-selections").Stdout(selectionsOutput("false", "") +
		MgmtPackage + "\t" + MgmtPackage + "/old-password\tpassword\t***\n")
	m := &Manager{Runner: fake}

	_, err := m.Install(context.Background(), testSet(), InstallOptions{AdminPassword: testPassword})

	require.Error(t, err)
	assert.Contains(t, err.Error(), "holds the admin password under proxedo-api-security-mgmt/old-password")
	assert.NotContains(t, err.Error(), testPassword)
}

func TestInstallRejectsUnstoredAnswers(t *testing.T) {
	fake := runnertest.New(t)
	fake.Expect("debconf-set-selections")
	fake.Expect("debconf-get-selections").Stdout("tzdata\ttzdata/Areas\tselect\tEtc\n")
	m := &Manager{Runner: fake}

	_, err := m.Install(context.Background(), testSet(), InstallOptions{OverwriteConfig: true})

	require.Error(t, err)
	assert.Contains(t, err.Error(), "proxedo-api-security/overwrite-config is missing")
}

func TestInstallConfirmsWithDebconfCommunicate(t *testing.T) {
	fake := runnertest.New(t)
	fake.Expect("debconf-set-selections")
	fake.Expect("debconf-get-selections").Fail(fmt.Errorf("starting debconf-get-selections: %w",
		&exec.Error{Name: "debconf-get-selections", Err: exec.ErrNotFound}))
	fake.Expect("debconf-communicate").Stdout("0 true\n0 true\n0 true\n0 " + testPassword + "\n")
	expectUpgrade(fake)
	fake.Expect("debconf-set-selections")
	fake.Expect("debconf-get-selections").Exit(126).Stdout("OCI runtime exec failed: exec failed: unable to start container process: " +
		`exec: "debconf-get-selections": executable file not found in $PATH: unknown` + "\n")
	fake.Expect("debconf-communicate").Stdout("0 \n")
	m := &Manager{Runner: fake}

	_, err := m.Install(context.Background(), testSet(), InstallOptions{OverwriteConfig: true, AdminPassword: testPassword})

	require.NoError(t, err)
	assert.Equal(t, "GET proxedo-api-security/overwrite-config\nGET proxedo-api-security-mgmt/overwrite-config\n"+
		"GET proxedo-api-security-storage/overwrite-config\nGET "+AdminPasswordQuestion+"\n", fake.Stdin(2))
	assert.Equal(t, "GET "+AdminPasswordQuestion+"\n", fake.Stdin(10))
	assertNoSecretInArgv(t, fake.Calls(), testPassword)
}

// Case: a package left half-configured by an earlier run is configured
// with the same conffile options before the install.
func TestInstallConfiguresPendingFirst(t *testing.T) {
	fake := runnertest.New(t)
	fake.Expect("debconf-set-selections")
	fake.Expect("debconf-get-selections").Stdout(selectionsOutput("false", ""))
	fake.Expect(queryArgv...).Stdout(CorePackage + "\tii \t4.8.0\n" + MgmtPackage + "\tiU \t4.9.0\n")
	fake.Expect(configureArgv...)
	// Configured, the 4.9.0 management package is complete and is not
	// installed a second time.
	fake.Expect(queryArgv...).Stdout(CorePackage + "\tii \t4.8.0\n" + MgmtPackage + "\tii \t4.9.0\n")
	fake.Expect("stat", "--format=%i:%Y:%n", "--", "/opt/balasys/etc/mgmt/config.yml.dpkg-dist").
		Exit(1).Stderr(missingDist)
	distTodo := []string{"stat", "--format=%i:%Y:%n", "--",
		"/opt/balasys/etc/core/config.yml.dpkg-dist", "/opt/balasys/etc/storage/config.yml.dpkg-dist"}
	fake.Expect(distTodo...).Exit(1).Stderr(missingDist)
	fake.Expect("dpkg", "--force-confdef", "--force-confold", "--install",
		"/srv/pkgs/proxedo-api-security_4.9.0_all.deb",
		"/srv/pkgs/proxedo-api-security-storage_4.9.0_all.deb")
	fake.Expect(distTodo...).Exit(1).Stderr(missingDist)
	fake.Expect(queryArgv...).Stdout(queryOutput("ii ", "4.9.0"))
	m := &Manager{Runner: fake}
	events := recordEvents(m)

	result, err := m.Install(context.Background(), testSet(), InstallOptions{})

	require.NoError(t, err)
	assert.True(t, result.ConfiguredPending)
	assert.Equal(t, []string{MgmtPackage}, result.AlreadyInstalled)
	configure := fake.Calls()[3]
	assert.Equal(t, []string{"DEBIAN_FRONTEND=noninteractive"}, configure.Env)
	assert.Nil(t, configure.Stdin)
	assert.True(t, configure.SurviveCaller, "dpkg must not die with this process")
	assert.True(t, fake.Calls()[7].SurviveCaller, "dpkg --install must not die with this process")
	assert.Contains(t, kinds(*events), EventConfigure)
	assert.Contains(t, kinds(*events), EventSkip)
}

// Case: the operator presses Ctrl-C while dpkg runs. dpkg goes on to its
// end, so Install still reports the kept conffiles and the versions
// instead of failing on the cancelled context after a complete install.
func TestInstallReportsAfterCancelDuringDpkg(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fake := runnertest.New(t)
	fake.Expect("debconf-set-selections")
	fake.Expect("debconf-get-selections").Stdout(selectionsOutput("true", ""))
	fake.Expect(queryArgv...).Stdout(queryOutput("ii ", "4.8.0"))
	fake.Expect(distArgv...).Exit(1).Stderr(missingDist)
	fake.Expect(installArgv...).Do(func(runner.Command) (runner.Result, error) {
		cancel()
		return runner.Result{}, nil
	})
	fake.Expect(distArgv...).Exit(1).Stderr(missingDist).
		Stdout("1234:1700000000:/opt/balasys/etc/storage/config.yml.dpkg-dist\n")
	fake.Expect(queryArgv...).Stdout(queryOutput("ii ", "4.9.0"))
	m := &Manager{Runner: fake}

	result, err := m.Install(ctx, testSet(), InstallOptions{OverwriteConfig: true})

	require.NoError(t, err)
	assert.Equal(t, []KeptConffile{{Package: StoragePackage, Path: "/opt/balasys/etc/storage/config.yml",
		Dist: "/opt/balasys/etc/storage/config.yml.dpkg-dist"}}, result.Kept)
	assert.Len(t, result.Packages, 3)
}

// Case: Ctrl-C while dpkg runs takes effect only when dpkg is done, which
// can take minutes, so an event explains why nothing stops yet.
func TestInstallAnnouncesWaitAfterCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fake := runnertest.New(t)
	fake.Expect("debconf-set-selections")
	fake.Expect("debconf-get-selections").Stdout(selectionsOutput("true", ""))
	fake.Expect(queryArgv...).Stdout(queryOutput("ii ", "4.8.0"))
	fake.Expect(distArgv...).Exit(1).Stderr(missingDist)
	m := &Manager{Runner: fake}
	announced := make(chan Event, 1)
	m.OnEvent = func(e Event) {
		if e.Kind == EventInterrupted {
			announced <- e
		}
	}
	fake.Expect(installArgv...).Do(func(runner.Command) (runner.Result, error) {
		cancel()
		select {
		case e := <-announced:
			assert.Contains(t, e.Message, "waiting for dpkg to finish")
		case <-time.After(5 * time.Second):
			t.Error("no event told the operator that dpkg goes on after the interruption")
		}
		return runner.Result{}, nil
	})
	fake.Expect(distArgv...).Exit(1).Stderr(missingDist)
	fake.Expect(queryArgv...).Stdout(queryOutput("ii ", "4.9.0"))

	_, err := m.Install(ctx, testSet(), InstallOptions{OverwriteConfig: true})

	require.NoError(t, err)
}

// The event of an interruption comes from another goroutine while dpkg
// runs, and must not overlap the events that Install sends meanwhile.
func TestInstallEventsDoNotOverlap(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fake := runnertest.New(t)
	fake.Expect("debconf-set-selections")
	fake.Expect("debconf-get-selections").Stdout(selectionsOutput("true", ""))
	fake.Expect(queryArgv...).Stdout(queryOutput("ii ", "4.8.0"))
	fake.Expect(distArgv...).Exit(1).Stderr(missingDist)
	m := &Manager{Runner: fake}
	events := recordEvents(m) // appends without a lock of its own
	fake.Expect(installArgv...).Do(func(runner.Command) (runner.Result, error) {
		cancel()
		// An event sent while dpkg runs, as a wait for its lock is.
		m.emit(Event{Kind: EventLockWait, Message: "waiting"})
		time.Sleep(100 * time.Millisecond) // lets the interruption be reported before dpkg ends
		return runner.Result{}, nil
	})
	fake.Expect(distArgv...).Exit(1).Stderr(missingDist)
	fake.Expect(queryArgv...).Stdout(queryOutput("ii ", "4.9.0"))

	_, err := m.Install(ctx, testSet(), InstallOptions{OverwriteConfig: true})

	require.NoError(t, err)
	assert.Contains(t, kinds(*events), EventInterrupted)
}

// Case: the process that ran dpkg died, and dpkg finished the install
// without it. Nothing is installed again, and the .dpkg-dist file that
// the lost run could not report is reported now, so the operator still
// learns that it needs merging.
func TestInstallRepeatedAfterCompletionInstallsNothing(t *testing.T) {
	fake := runnertest.New(t)
	fake.Expect("debconf-set-selections")
	fake.Expect("debconf-get-selections").Stdout(selectionsOutput("false", ""))
	fake.Expect(queryArgv...).Stdout(queryOutput("ii ", "4.9.0"))
	fake.Expect(distArgv...).Exit(1).Stderr(missingDist).
		Stdout("1234:1700000000:/opt/balasys/etc/mgmt/config.yml.dpkg-dist\n")
	fake.Expect(queryArgv...).Stdout(queryOutput("ii ", "4.9.0"))
	m := &Manager{Runner: fake}
	events := recordEvents(m)

	result, err := m.Install(context.Background(), testSet(), InstallOptions{})

	require.NoError(t, err)
	assert.Equal(t, SetNames(), result.AlreadyInstalled)
	assert.Len(t, result.Packages, 3)
	assert.Empty(t, result.Kept, "this installation wrote no .dpkg-dist file")
	assert.Equal(t, []KeptConffile{{Package: MgmtPackage, Path: "/opt/balasys/etc/mgmt/config.yml",
		Dist: "/opt/balasys/etc/mgmt/config.yml.dpkg-dist"}}, result.KeptEarlier)
	var kept []string
	for _, e := range *events {
		if e.Kind == EventConffileKept {
			kept = append(kept, e.Message)
		}
	}
	require.Len(t, kept, 1)
	assert.Contains(t, kept[0], "/opt/balasys/etc/mgmt/config.yml.dpkg-dist")
	assert.Contains(t, kept[0], "compare and merge it by hand")
}

func TestInstallInteractive(t *testing.T) {
	fake := runnertest.New(t)
	fake.Expect(queryArgv...).Stdout(queryOutput("ii ", "4.8.0"))
	fake.Expect(distArgv...).Exit(1).Stderr(missingDist)
	fake.Expect("dpkg", "--install",
		"/srv/pkgs/proxedo-api-security_4.9.0_all.deb",
		"/srv/pkgs/proxedo-api-security-mgmt_4.9.0_all.deb",
		"/srv/pkgs/proxedo-api-security-storage_4.9.0_all.deb")
	fake.Expect(distArgv...).Exit(1).Stderr(missingDist)
	fake.Expect(queryArgv...).Stdout(queryOutput("ii ", "4.9.0"))
	m := &Manager{Runner: fake}

	_, err := m.Install(context.Background(), testSet(), InstallOptions{Interactive: true})

	require.NoError(t, err)
	dpkg := fake.Calls()[2]
	assert.True(t, dpkg.Interactive)
	assert.Empty(t, dpkg.Env, "the operator's own debconf frontend is used")
}

func TestInstallInteractiveWithoutTerminal(t *testing.T) {
	fake := runnertest.New(t)
	fake.Expect(queryArgv...).Stdout(queryOutput("ii ", "4.8.0"))
	fake.Expect(distArgv...).Exit(1).Stderr(missingDist)
	fake.ExpectPrefix("dpkg", "--install").Fail(runner.ErrInteractiveUnavailable)
	fake.Expect(queryArgv...).Stdout(queryOutput("ii ", "4.8.0"))
	m := &Manager{Runner: fake}

	_, err := m.Install(context.Background(), testSet(), InstallOptions{Interactive: true})

	assert.ErrorIs(t, err, runner.ErrInteractiveUnavailable)
}

func TestInstallRejectsBadRequests(t *testing.T) {
	tests := []struct {
		name    string
		manager Manager
		set     Set
		opts    InstallOptions
		want    string
	}{
		{"empty set", Manager{}, Set{}, InstallOptions{}, "the set is empty"},
		{"password in interactive mode", Manager{}, testSet(),
			InstallOptions{Interactive: true, AdminPassword: testPassword}, "cannot be preseeded in interactive mode"},
		{"other admin dir", Manager{AdminDir: "/mnt/root/var/lib/dpkg"}, testSet(), InstallOptions{}, "AdminDir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.manager
			m.Runner = runnertest.New(t)

			_, err := m.Install(context.Background(), tt.set, tt.opts)

			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, err.Error(), testPassword)
		})
	}
}

// A package without templates asks nothing, so nothing is preseeded: the
// 4.8.0 core and storage packages are such packages.
func TestInstallWithoutQuestions(t *testing.T) {
	set := testSet()
	for i := range set.Packages {
		set.Packages[i].Templates, set.Packages[i].Questions = false, nil
	}
	fake := runnertest.New(t)
	expectUpgrade(fake)
	m := &Manager{Runner: fake}

	_, err := m.Install(context.Background(), set, InstallOptions{OverwriteConfig: true})

	require.NoError(t, err)
}

func TestInstallPasswordWithoutQuestion(t *testing.T) {
	set := testSet()
	set.Packages[1].Questions = []string{MgmtPackage + "/" + OverwriteConfigQuestion}
	m := &Manager{Runner: runnertest.New(t)}

	_, err := m.Install(context.Background(), set, InstallOptions{AdminPassword: testPassword})

	require.Error(t, err)
	assert.Contains(t, err.Error(), "no package of the set asks proxedo-api-security-mgmt/admin-password")
}

func TestInstallPasswordWithLineBreak(t *testing.T) {
	m := &Manager{Runner: runnertest.New(t)} // nothing may run

	_, err := m.Install(context.Background(), testSet(), InstallOptions{AdminPassword: "a\nb"})

	require.Error(t, err)
	assert.Contains(t, err.Error(), "contains a line break")
	assert.NotContains(t, err.Error(), "a\nb")
}

// debconf-set-selections joins a line ending in a backslash with the
// next one, so the password line must be the last line of its input.
func TestInstallPasswordEndingInBackslash(t *testing.T) {
	const password = `pass\`
	fake := runnertest.New(t)
	fake.Expect("debconf-set-selections")
	fake.Expect("debconf-get-selections").Stdout(selectionsOutput("false", "***"))
	expectUpgrade(fake)
	fake.Expect("debconf-set-selections")
	fake.Expect("debconf-get-selections").Stdout(selectionsOutput("false", ""))
	m := &Manager{Runner: fake}

	_, err := m.Install(context.Background(), testSet(), InstallOptions{AdminPassword: password})

	require.NoError(t, err)
	assert.True(t, strings.HasSuffix(fake.Stdin(0), " password "+password+"\n"), fake.Stdin(0))
}

func TestCheckSelectionsBackslashNotLast(t *testing.T) {
	sels := []Selection{
		{Owner: "a", Question: "a/q", Type: "string", Value: `x\`},
		{Owner: "a", Question: "a/r", Type: "boolean", Value: "true"},
	}

	assert.ErrorContains(t, checkSelections(sels), "a/q ends in a backslash")
	assert.NoError(t, checkSelections(sels[1:]))
}

func TestInstallNotAtExpectedVersion(t *testing.T) {
	fake := runnertest.New(t)
	fake.Expect("debconf-set-selections")
	fake.Expect("debconf-get-selections").Stdout(selectionsOutput("true", ""))
	fake.Expect(queryArgv...).Stdout(queryOutput("ii ", "4.8.0"))
	fake.Expect(distArgv...).Exit(1).Stderr(missingDist)
	fake.Expect(installArgv...)
	fake.Expect(distArgv...).Exit(1).Stderr(missingDist)
	fake.Expect(queryArgv...).Stdout(CorePackage + "\tii \t4.9.0\n" + MgmtPackage + "\tii \t4.9.0\n" + StoragePackage + "\thi \t4.8.0\n")
	m := &Manager{Runner: fake}

	_, err := m.Install(context.Background(), testSet(), InstallOptions{OverwriteConfig: true})

	require.ErrorIs(t, err, ErrNotInstalled)
	assert.Contains(t, err.Error(), "proxedo-api-security-storage installed at 4.8.0")
}

// expectUpgrade adds the commands of an upgrade from 4.8.0 to 4.9.0 that
// leaves no .dpkg-dist file, from the first package query on.
func expectUpgrade(fake *runnertest.Fake) {
	fake.Expect(queryArgv...).Stdout(queryOutput("ii ", "4.8.0"))
	fake.Expect(distArgv...).Exit(1).Stderr(missingDist)
	fake.Expect(installArgv...)
	fake.Expect(distArgv...).Exit(1).Stderr(missingDist)
	fake.Expect(queryArgv...).Stdout(queryOutput("ii ", "4.9.0"))
}

func assertNoSecretInArgv(t *testing.T, calls []runner.Command, secret string) {
	t.Helper()
	for _, c := range calls {
		for _, arg := range c.Argv {
			assert.NotContains(t, arg, secret, "argv of %s", c.Argv[0])
		}
		for _, kv := range c.Env {
			assert.NotContains(t, kv, secret, "env of %s", c.Argv[0])
		}
	}
}

func kinds(events []Event) []EventKind {
	var out []EventKind
	for _, e := range events {
		out = append(out, e.Kind)
	}
	return out
}
