package deb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pasops/pasupgrade/runner"
	"pault.ag/go/debian/version"
)

// State is a package's state in the dpkg database, reduced to the cases
// an upgrade distinguishes.
type State string

// The states Installed reports.
const (
	// StateNotInstalled means nothing of the package is on the system.
	StateNotInstalled State = "not-installed"

	// StateConfigFiles means the package was removed but not purged: only
	// its configuration files are left. It is not installed.
	StateConfigFiles State = "config-files"

	// StateInstalled means the package is unpacked and configured.
	StateInstalled State = "installed"

	// StateBroken means an installation, upgrade or removal stopped
	// half-way. Status.Repair holds the command that finishes it.
	StateBroken State = "broken"
)

// Status is one package's entry in the dpkg database.
type Status struct {
	Name  string
	State State

	// Version is the installed version, empty when none is recorded.
	Version string

	// Abbrev is dpkg-query's ${db:Status-Abbrev} without trailing blanks,
	// such as "ii" or "iF".
	Abbrev string

	// Detail is dpkg's name for the status, such as "half-configured".
	Detail string

	// Repair is the command that repairs a broken package, empty
	// otherwise.
	Repair string
}

// Installed reports whether the package is installed and configured.
func (s Status) Installed() bool { return s.State == StateInstalled }

// Present reports whether anything of the package is on the system, even
// only its configuration files.
func (s Status) Present() bool { return s.State != StateNotInstalled }

// IsVersion reports whether the installed version equals want by Debian's
// rules, so "4.9.0" equals "0:4.9.0".
func (s Status) IsVersion(want version.Version) bool {
	got, err := version.Parse(s.Version)
	return err == nil && version.Compare(got, want) == 0
}

// queryFormat makes dpkg-query print one tab-separated line per package.
// dpkg-query expands the \t and \n escapes itself.
const queryFormat = `${Package}\t${db:Status-Abbrev}\t${Version}\n`

// Installed returns the status of each named package, in the order given,
// from dpkg-query. A package dpkg has never seen is StateNotInstalled.
func (m *Manager) Installed(ctx context.Context, names ...string) ([]Status, error) {
	if len(names) == 0 {
		return nil, nil
	}

	argv := []string{"dpkg-query"}
	if m.AdminDir != "" {
		argv = append(argv, "--admindir="+m.AdminDir)
	}
	argv = append(argv, "--show", "--showformat="+queryFormat)
	argv = append(argv, names...)

	res, err := m.Runner.Run(ctx, runner.Command{Argv: argv})
	var exitErr *runner.ExitError
	// dpkg-query exits 1 when some name is unknown and still lists the
	// others, so only other failures are errors.
	if err != nil && !(errors.As(err, &exitErr) && exitErr.ExitCode == 1) {
		return nil, fmt.Errorf("querying the package database: %w", err)
	}

	found, err := parseQuery(string(res.Stdout))
	if err != nil {
		return nil, err
	}
	statuses := make([]Status, len(names))
	for i, name := range names {
		st, ok := found[name]
		if !ok {
			st = Status{Name: name, State: StateNotInstalled, Abbrev: "un", Detail: "not-installed"}
		}
		statuses[i] = st
	}
	return statuses, nil
}

func parseQuery(out string) (map[string]Status, error) {
	found := map[string]Status{}
	for line := range strings.Lines(out) {
		line = strings.TrimRight(line, "\n")
		if strings.TrimSpace(line) == "" {
			continue
		}
		fields := strings.Split(line, "\t")
		if len(fields) != 3 {
			return nil, fmt.Errorf("parsing dpkg-query output: unexpected line %q", line)
		}
		st, err := parseStatus(fields[0], fields[1], fields[2])
		if err != nil {
			return nil, err
		}
		found[st.Name] = st
	}
	return found, nil
}

// statusNames maps the second letter of ${db:Status-Abbrev} to dpkg's
// name for the status.
var statusNames = map[byte]string{
	'n': "not-installed",
	'c': "config-files",
	'H': "half-installed",
	'U': "unpacked",
	'F': "half-configured",
	'W': "triggers-awaited",
	't': "triggers-pending",
	'i': "installed",
}

// pendingConfigure are the status letters of a package that
// "dpkg --configure -a" finishes: unpacked, half-configured and waiting
// for triggers.
const pendingConfigure = "UFWt"

// parseStatus interprets ${db:Status-Abbrev}: the wanted action, the
// status, and an error flag that is "R" when dpkg requires a reinstall.
func parseStatus(name, abbrev, ver string) (Status, error) {
	abbrev = strings.TrimRight(abbrev, " ")
	if len(abbrev) < 2 {
		return Status{}, fmt.Errorf("parsing dpkg-query output: package %s has an invalid status %q", name, abbrev)
	}
	detail, ok := statusNames[abbrev[1]]
	if !ok {
		return Status{}, fmt.Errorf("parsing dpkg-query output: package %s has an unknown status %q", name, abbrev)
	}

	st := Status{Name: name, Version: ver, Abbrev: abbrev, Detail: detail}
	reinstall := len(abbrev) > 2 && abbrev[2] == 'R'
	switch {
	case reinstall || abbrev[1] == 'H':
		st.State = StateBroken
		st.Detail = detail + ", reinstall required"
		st.Repair = fmt.Sprintf("dpkg --install %s_<version>_%s.deb (or dpkg --purge --force-remove-reinstreq %s)",
			name, SetArchitecture, name)
	case slices.Contains([]byte(pendingConfigure), abbrev[1]):
		st.State = StateBroken
		st.Repair = "dpkg " + strings.Join(conffileOptions, " ") + " --configure -a"
	case abbrev[1] == 'i':
		st.State = StateInstalled
	case abbrev[1] == 'c':
		st.State = StateConfigFiles
	default:
		st.State = StateNotInstalled
	}
	return st, nil
}

// needsConfigure reports whether "dpkg --configure -a" finishes the
// package's pending work.
func (s Status) needsConfigure() bool {
	a := s.Abbrev
	return len(a) == 2 && slices.Contains([]byte(pendingConfigure), a[1])
}
