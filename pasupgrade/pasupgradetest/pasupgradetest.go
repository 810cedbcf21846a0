// Package pasupgradetest provides fakes of the orchestrator's dependencies
// for unit tests: System, one simulated management node (and its remote
// nodes) that implements every interface of pasupgrade.Deps, and Clock.
//
// System keeps the state a plan reads (installed packages, running units,
// files, the management API's status, backup sets) and changes it the way
// the real parts would. Every call that changes something is appended to
// one log, in order, so a test can compare the whole sequence of commands,
// users, edits and API calls with the guide. A command it does not know
// fails the test, and so does a log that differs from the expected one.
package pasupgradetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pasops/pasupgrade/pasupgrade"
	"github.com/pasops/pasupgrade/runner"
)

// TB is the part of testing.TB the fakes use.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
	Cleanup(func())
}

// Clock is a fake pasupgrade.Clock that moves forward by Step at every call
// of Now, so durations in a run are exact and independent of wall time.
type Clock struct {
	mu   sync.Mutex
	now  time.Time
	step time.Duration
}

// NewClock returns a Clock that starts at start and advances by step.
func NewClock(start time.Time, step time.Duration) *Clock {
	return &Clock{now: start, step: step}
}

// Now returns the current fake time and then advances it.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now
	c.now = c.now.Add(c.step)
	return now
}

// fault is an error System returns from a call whose log entry is entry,
// or starts with it when prefix is set, times times.
type fault struct {
	entry  string
	prefix bool
	err    error
	times  int
}

// System is a fake PAS installation. Create it with NewSystem; set its
// exported fields before the run. It is safe for concurrent use.
type System struct {
	t  TB
	mu sync.Mutex

	// Path is the upgrade path the fake serves.
	Path pasupgrade.UpgradePath
	// Packages maps a local package to its status; missing means not
	// installed.
	Packages map[string]pasupgrade.PackageStatus
	// Units maps a local unit to whether it runs.
	Units map[string]bool
	// Files maps an absolute path to its content.
	Files map[string][]byte
	// Owners maps a path written by a step to its owner.
	Owners map[string]string
	// Remote maps each remote host to its PAS version; empty when
	// there are no remote nodes.
	Remote map[string]string
	// PASUser is set while the pas user exists.
	PASUser bool
	// HasImage is set when the tool's image is in the engine.
	HasImage bool
	// ReloadFailed lists nodes whose reload success is FAILED until the
	// next config apply.
	ReloadFailed []string
	// Password is the admin password the API and tool accept.
	Password string
	// DebSets maps a version to whether its .deb set is present.
	DebSets map[string]bool
	// Uid is the output of id -u.
	Uid string
	// FreeBytes is the free space df reports for the backup directory.
	FreeBytes int64

	sets   map[string]map[string][]byte
	log    []string
	reads  []string
	faults []*fault
	hooks  map[string]func()
	nextID int
}

// NewSystem returns a healthy installation of path.From. With hosts it is a
// multi node installation whose remote core nodes are hosts; without, a
// single node. The pas SSH key, known_hosts, inventory, common_vars.yml,
// the docker-compose.conf files and users.htpass exist.
func NewSystem(t TB, path pasupgrade.UpgradePath, hosts ...string) *System {
	s := &System{
		t: t, Path: path,
		Packages: map[string]pasupgrade.PackageStatus{},
		Units: map[string]bool{
			pasupgrade.UnitCore: true, pasupgrade.UnitMgmt: true, pasupgrade.UnitStorage: true,
		},
		Files:     map[string][]byte{},
		Owners:    map[string]string{},
		Remote:    map[string]string{},
		PASUser:   true,
		HasImage:  true,
		Password:  "s3cret-Pa55",
		DebSets:   map[string]bool{path.From: true, path.To: true},
		Uid:       "0",
		FreeBytes: 10 << 30,
		sets:      map[string]map[string][]byte{},
		hooks:     map[string]func(){},
	}
	for _, p := range path.Packages {
		s.Packages[p] = pasupgrade.PackageStatus{Version: path.From, Status: "installed"}
	}
	for _, h := range hosts {
		s.Remote[h] = path.From
	}
	s.seedFiles(hosts)
	return s
}

func (s *System) seedFiles(hosts []string) {
	for _, f := range s.Path.ComposeFiles {
		s.Files[f.Path] = []byte("# compose settings\nexport " + s.Path.ImageTagKey + "=\"" + s.Path.From + "\"\n")
	}
	s.Files[pasupgrade.CommonVarsPath] = []byte(fmt.Sprintf(
		"storage_deb_path: /tmp/%s\ncore_deb_path: /tmp/%s\ncommon:\n  docker:\n    PAS_IMAGE_TAG: %s\n",
		pasupgrade.DebFile(pasupgrade.PackageStorage, s.Path.From),
		pasupgrade.DebFile(pasupgrade.PackageCore, s.Path.From), s.Path.From))
	s.Files[pasupgrade.UsersHtpass] = []byte("admin:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
	s.Files[pasupgrade.PASEtc+"/mgmt/config.yml"] = []byte("mgmt: {}\n")
	s.Files[pasupgrade.PASSSHDir+"/id_ed25519"] = []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n")
	s.Files[pasupgrade.PASSSHDir+"/known_hosts"] = []byte(strings.Join(hosts, " ssh-ed25519 AAAA\n") + "\n")
	inventory := "all:\n  children:\n    core:\n      hosts:\n"
	for _, h := range hosts {
		inventory += "        " + h + ":\n"
	}
	if len(hosts) == 0 {
		inventory += "        {}\n"
	}
	s.Files[pasupgrade.InventoryPath] = []byte(inventory)
}

// FailOn makes the next call whose log entry is entry return err. Queries
// (reads) have entries too, such as "api.status" or "packages.installed".
func (s *System) FailOn(entry string, err error) *System {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &fault{entry: entry, err: err, times: 1})
	return s
}

// FailPrefix makes the next n calls whose log entry starts with prefix
// return err.
func (s *System) FailPrefix(prefix string, err error, n int) *System {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &fault{entry: prefix, prefix: true, err: err, times: n})
	return s
}

// OnCall runs fn after the call whose log entry is exactly entry.
func (s *System) OnCall(entry string, fn func()) *System {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks[entry] = fn
	return s
}

// Log returns every change, in order: commands, installs, edits, service
// actions, deployments, API writes and backup operations.
func (s *System) Log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// ResetLog clears the log, for a test that checks a second run.
func (s *System) ResetLog() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = nil
}

// Expect makes the test fail at its end unless the log equals want.
func (s *System) Expect(want ...string) {
	s.t.Cleanup(func() {
		s.t.Helper()
		AssertLog(s.t, want, s.Log())
	})
}

// AssertLog fails t with a line-by-line comparison when got differs from
// want.
func AssertLog(t TB, want, got []string) bool {
	t.Helper()
	if slices.Equal(want, got) {
		return true
	}
	var b strings.Builder
	for i := 0; i < max(len(want), len(got)); i++ {
		w, g := "(none)", "(none)"
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		mark := "  "
		if w != g {
			mark = "!!"
		}
		fmt.Fprintf(&b, "%s %2d want %-60s got %s\n", mark, i+1, w, g)
	}
	t.Errorf("the sequence of changes differs from the expected one:\n%s", b.String())
	return false
}

// Deps returns the dependencies backed by s, with clock as the Clock and
// editor as the ConfigEditor (the real one in tests, so that edits are
// checked byte for byte).
func (s *System) Deps(clock pasupgrade.Clock, editor pasupgrade.ConfigEditor) pasupgrade.Deps {
	return pasupgrade.Deps{
		Runner: (*fakeRunner)(s), Packages: (*fakePackages)(s), Tool: (*fakeTool)(s),
		API: (*fakeAPI)(s), Services: (*fakeServices)(s), Remote: (*fakeRemote)(s),
		Files: (*fakeFiles)(s), Editor: editor, Backup: (*fakeBackup)(s), Clock: clock,
	}
}

// change logs entry, runs its hook and returns the fault armed for it.
// s.mu is held.
func (s *System) change(entry string) error {
	s.log = append(s.log, entry)
	if hook := s.hooks[entry]; hook != nil {
		defer func() {
			s.mu.Unlock()
			hook()
			s.mu.Lock()
		}()
	}
	return s.faultFor(entry)
}

// faultFor returns the armed fault for entry, using it up. s.mu is held.
func (s *System) faultFor(entry string) error {
	for _, f := range s.faults {
		matches := entry == f.entry || (f.prefix && strings.HasPrefix(entry, f.entry))
		if f.times > 0 && matches {
			f.times--
			return f.err
		}
	}
	return nil
}

// query records a read and returns the fault armed for it. s.mu is held.
func (s *System) query(entry string) error {
	s.reads = append(s.reads, entry)
	return s.faultFor(entry)
}

func (s *System) unexpected(what string) error {
	s.t.Helper()
	s.t.Errorf("pasupgradetest: unexpected %s", what)
	return fmt.Errorf("pasupgradetest: unexpected %s", what)
}

func userOf(u string) string {
	if u == "" {
		return "root"
	}
	return u
}

// fakeRunner runs the commands plans run on the management node.
type fakeRunner System

func (r *fakeRunner) Run(_ context.Context, cmd runner.Command) (runner.Result, error) {
	s := (*System)(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(cmd.Argv) == 0 {
		return runner.Result{}, s.unexpected("empty command")
	}
	for _, secret := range []string{s.Password} {
		if strings.Contains(strings.Join(append(cmd.Argv, cmd.Env...), " "), secret) {
			s.t.Errorf("pasupgradetest: the admin password is in the argv or env of %s", cmd.String())
		}
	}
	entry := "run[" + userOf(cmd.User) + "] " + strings.Join(cmd.Argv, " ")
	if cmd.User == pasupgrade.UserPAS && !s.PASUser {
		// As on a node, where sudo fails for a user it does not know.
		s.reads = append(s.reads, entry)
		return runner.Result{ExitCode: 1}, &runner.ExitError{Command: entry, ExitCode: 1,
			Tail: "sudo: unknown user pas: the pas user does not exist"}
	}
	switch cmd.Argv[0] {
	case "id":
		return s.reply(entry, s.Uid+"\n", 0)
	case "getent":
		if s.PASUser {
			return s.reply(entry, "pas:x:999:999::/opt/balasys:/bin/bash\n", 0)
		}
		return s.reply(entry, "", 2)
	case "test":
		return s.reply(entry, "", 0)
	case "df":
		return s.reply(entry, "Avail\n"+strconv.FormatInt(s.FreeBytes, 10)+"\n", 0)
	case "du":
		return s.reply(entry, "4096\t/opt/balasys/etc\n4096\ttotal\n", 0)
	case "pas-update", "pas-mgmt-update", "pas-storage-update",
		"pas-mgmt-checkconfig", "pas-storage-checkconfig", "find":
		return s.command(cmd, entry)
	case "userdel":
		res, err := s.command(cmd, entry)
		if err == nil {
			s.PASUser = false
			s.dropHome()
		}
		return res, err
	}
	return runner.Result{}, s.unexpected("command " + cmd.String())
}

// reply returns the result of a query. s.mu is held.
func (s *System) reply(entry, stdout string, code int) (runner.Result, error) {
	if err := s.query(entry); err != nil {
		return runner.Result{ExitCode: 1}, err
	}
	res := runner.Result{Stdout: []byte(stdout), ExitCode: code}
	if code != 0 {
		return res, &runner.ExitError{Command: entry, ExitCode: code}
	}
	return res, nil
}

// command logs a command that changes something. s.mu is held.
func (s *System) command(cmd runner.Command, entry string) (runner.Result, error) {
	if err := s.change(entry); err != nil {
		var exit *runner.ExitError
		if errors.As(err, &exit) {
			return runner.Result{ExitCode: exit.ExitCode, Stderr: []byte(exit.Tail)}, err
		}
		return runner.Result{ExitCode: 1}, err
	}
	if cmd.Stdout != nil {
		fmt.Fprintf(cmd.Stdout, "%s: ok\n", cmd.Argv[0])
	}
	return runner.Result{Stdout: []byte(cmd.Argv[0] + ": ok\n")}, nil
}

// dropHome removes the files under the pas home, as userdel --remove does.
// s.mu is held.
func (s *System) dropHome() {
	for name := range s.Files {
		if strings.HasPrefix(name, pasupgrade.PASHome+"/") {
			delete(s.Files, name)
		}
	}
}
