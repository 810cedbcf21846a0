// Command pas-systemctl replaces systemctl inside the lab's node
// containers, which run no systemd. The lab installs it as
// /usr/bin/systemctl.
//
//	systemctl [--quiet] [--no-pager] [--no-block] [--now] COMMAND [UNIT...]
//
// Commands: start, stop, restart, try-restart, is-active, is-failed,
// is-enabled, status, enable, disable, daemon-reload, reset-failed.
//
// It reads each unit's .service file from /etc/systemd/system,
// /lib/systemd/system or /usr/lib/systemd/system at every call, so
// daemon-reload has nothing to do. Of a unit file it honours ExecStart,
// ExecStartPre, User, Group, WorkingDirectory, Environment and
// EnvironmentFile, with systemd's quoting and $VAR expansion.
//
// start runs the unit's ExecStart as a real detached process under a small
// supervisor (this binary started as "pas-systemctl supervise UNIT"). The
// supervisor records the process's pid in /run/pas-systemctl/UNIT.json,
// appends its output to /var/log/pas-systemctl/UNIT.log and marks the unit
// failed when the process exits without being stopped. start reports a
// failure when the process exits within its first 700 ms, which is when a
// component that rejects its configuration exits. stop sends SIGTERM to the
// process group and SIGKILL after 10 s.
//
// When /etc/pas-lab/node.json names a status file, every state change
// rewrites this node's entry in it: the JSON the management simulator's
// --status-file option reads. It lists one component per PAS unit in use,
// that is enabled or started at least once (core, mgmt, storage, ha), with
// its package version from dpkg-query and its state (running, stopped or
// failed).
//
// Changing commands need root, as systemctl without polkit does. Exit
// codes follow systemctl: 0 success, 1 failure, 3 not active (is-active,
// status), 4 no such unit (status), 5 no such unit (start and the others).
// PAS_SYSTEMCTL_ROOT puts every path under another directory, for tests.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Paths on the node; environment.path puts them under PAS_SYSTEMCTL_ROOT.
var unitDirs = []string{"/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"}

const (
	stateDir       = "/run/pas-systemctl"
	logDir         = "/var/log/pas-systemctl"
	wantsDir       = "/etc/systemd/system/multi-user.target.wants"
	nodeConfigFile = "/etc/pas-lab/node.json"
)

// Exit codes of systemctl.
const (
	exitOK        = 0
	exitFailure   = 1
	exitNotActive = 3
	exitNoUnit    = 4
	exitNoUnitOp  = 5
)

// environment carries the process's streams and path root, so tests can
// run commands in-process.
type environment struct {
	root   string
	self   string // this executable, started again as the supervisor
	stdout io.Writer
	stderr io.Writer
	euid   int
}

func (e *environment) path(p string) string {
	if e.root == "" {
		return p
	}
	return filepath.Join(e.root, p)
}

// options are the global flags.
type options struct {
	quiet, now bool
}

func main() {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "systemctl: locating this executable: %v\n", err)
		os.Exit(exitFailure)
	}
	env := &environment{
		root:   os.Getenv("PAS_SYSTEMCTL_ROOT"),
		self:   self,
		stdout: os.Stdout,
		stderr: os.Stderr,
		euid:   os.Geteuid(),
	}
	os.Exit(run(env, os.Args[1:]))
}

// run parses args and runs the command, returning the exit code.
func run(env *environment, args []string) int {
	var opts options
	var words []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-q" || a == "--quiet":
			opts.quiet = true
		case a == "--now":
			opts.now = true
		case a == "-n" || a == "--lines":
			// status's log line count; the stand-in always shows 10.
			i++
		case a == "--no-pager" || a == "--no-block" || a == "--system" || a == "--no-ask-password" ||
			a == "--full" || a == "-l" || a == "--plain" || strings.HasPrefix(a, "--lines="):
		default:
			if strings.HasPrefix(a, "-") {
				fmt.Fprintf(env.stderr, "systemctl: unsupported option %s\n", a)
				return exitFailure
			}
			words = append(words, a)
		}
	}
	if len(words) == 0 {
		fmt.Fprintln(env.stderr, "systemctl: missing command; the stand-in supports start, stop, "+
			"restart, try-restart, is-active, is-failed, is-enabled, status, enable, disable, "+
			"daemon-reload and reset-failed")
		return exitFailure
	}
	verb, units := words[0], words[1:]
	if msg := checkUnitArgs(verb, units); msg != "" {
		fmt.Fprintln(env.stderr, msg)
		return exitFailure
	}

	switch verb {
	case "supervise":
		return supervise(env, units)
	case "daemon-reload":
		if env.euid != 0 {
			fmt.Fprintln(env.stderr, "Failed to reload daemon: Interactive authentication required.")
			return exitFailure
		}
		return exitOK
	case "is-active":
		return isActive(env, opts, units)
	case "is-failed":
		return isFailed(env, opts, units)
	case "is-enabled":
		return isEnabled(env, opts, units)
	case "status":
		return status(env, units)
	case "start", "stop", "restart", "try-restart", "enable", "disable", "reset-failed":
		if len(units) == 0 {
			fmt.Fprintf(env.stderr, "Too few arguments.\n")
			return exitFailure
		}
		if env.euid != 0 {
			fmt.Fprintf(env.stderr, "Failed to %s %s: Interactive authentication required.\n",
				verb, unitName(units[0]))
			return exitFailure
		}
		return change(env, opts, verb, units)
	}
	fmt.Fprintf(env.stderr, "Unknown command verb %s.\n", verb)
	return exitFailure
}

// checkUnitArgs returns systemctl's message for missing or invalid unit
// arguments of verb, or "". A name with a slash would read a unit file
// and write state outside the unit and state directories.
func checkUnitArgs(verb string, units []string) string {
	if verb == "supervise" {
		return ""
	}
	switch verb {
	case "is-active", "is-failed", "is-enabled":
		if len(units) == 0 {
			return "Too few arguments."
		}
	}
	for _, name := range units {
		if name == "" || strings.Contains(name, "/") {
			return "Unit name " + name + " is not valid."
		}
	}
	return ""
}

// change runs a state-changing verb on each unit and returns the worst
// exit code.
func change(env *environment, opts options, verb string, units []string) int {
	code := exitOK
	for _, name := range units {
		err := changeOne(env, opts, verb, name)
		if err == nil {
			continue
		}
		fmt.Fprintln(env.stderr, err)
		if errors.Is(err, errNoUnit) {
			code = max(code, exitNoUnitOp)
		} else {
			code = max(code, exitFailure)
		}
	}
	return code
}

func changeOne(env *environment, opts options, verb, name string) error {
	u, err := loadUnit(env, name)
	if err != nil {
		return fmt.Errorf("Failed to %s %s: %w", verb, unitName(name), err)
	}
	switch verb {
	case "start":
		return startUnit(env, u)
	case "stop":
		return stopUnit(env, u)
	case "restart":
		if err := stopUnit(env, u); err != nil {
			return err
		}
		return startUnit(env, u)
	case "try-restart":
		if readState(env, u.name).active() {
			if err := stopUnit(env, u); err != nil {
				return err
			}
			return startUnit(env, u)
		}
		return nil
	case "enable":
		if err := enableUnit(env, u, true); err != nil || !opts.now {
			return err
		}
		return startUnit(env, u)
	case "disable":
		if err := enableUnit(env, u, false); err != nil || !opts.now {
			return err
		}
		return stopUnit(env, u)
	case "reset-failed":
		return resetFailed(env, u)
	}
	return fmt.Errorf("unknown verb %s", verb)
}
