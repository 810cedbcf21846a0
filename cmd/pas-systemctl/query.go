package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// isActive prints each unit's state and exits 0 only when all are active.
func isActive(env *environment, opts options, units []string) int {
	code := exitOK
	for _, name := range units {
		s := readState(env, unitName(name))
		state := s.State
		if state == stateDeactivating {
			state = "deactivating"
		}
		if !opts.quiet {
			fmt.Fprintln(env.stdout, state)
		}
		if s.State != stateActive {
			code = exitNotActive
		}
	}
	return code
}

// isFailed exits 0 when any unit is failed.
func isFailed(env *environment, opts options, units []string) int {
	code := exitFailure
	for _, name := range units {
		s := readState(env, unitName(name))
		if !opts.quiet {
			fmt.Fprintln(env.stdout, s.State)
		}
		if s.State == stateFailed {
			code = exitOK
		}
	}
	return code
}

func isEnabled(env *environment, opts options, units []string) int {
	code := exitOK
	for _, name := range units {
		u, err := loadUnit(env, name)
		if err != nil {
			fmt.Fprintf(env.stderr, "Failed to get unit file state for %s: No such file or directory\n", unitName(name))
			code = exitFailure
			continue
		}
		state := "disabled"
		if enabled(env, u.name) {
			state = "enabled"
		} else {
			code = exitFailure
		}
		if !opts.quiet {
			fmt.Fprintln(env.stdout, state)
		}
	}
	return code
}

// status prints a systemctl-like status block per unit with the last log
// lines. It exits 4 for a missing unit, 3 when a unit is not active.
func status(env *environment, units []string) int {
	code := exitOK
	for i, name := range units {
		if i > 0 {
			fmt.Fprintln(env.stdout)
		}
		u, err := loadUnit(env, name)
		if errors.Is(err, errNoUnit) {
			fmt.Fprintf(env.stderr, "Unit %s could not be found.\n", unitName(name))
			code = max(code, exitNoUnit)
			continue
		}
		if err != nil {
			fmt.Fprintln(env.stderr, err)
			code = max(code, exitNoUnit)
			continue
		}
		s := readState(env, u.name)
		printStatus(env, u, s)
		if s.State != stateActive {
			code = max(code, exitNotActive)
		}
	}
	return code
}

func printStatus(env *environment, u *unit, s unitState) {
	mark := "○"
	switch s.State {
	case stateActive:
		mark = "●"
	case stateFailed:
		mark = "×"
	}
	enabledState := "disabled"
	if enabled(env, u.name) {
		enabledState = "enabled"
	}
	fmt.Fprintf(env.stdout, "%s %s - %s\n", mark, u.name, u.description)
	fmt.Fprintf(env.stdout, "     Loaded: loaded (%s; %s)\n", u.path, enabledState)

	since := ""
	if !s.Since.IsZero() {
		since = " since " + s.Since.UTC().Format(time.RFC1123)
	}
	switch s.State {
	case stateActive, stateDeactivating:
		fmt.Fprintf(env.stdout, "     Active: %s (running)%s\n", s.State, since)
		fmt.Fprintf(env.stdout, "   Main PID: %d (%s)\n", s.MainPID, commName(s.MainPID))
	case stateActivating:
		fmt.Fprintf(env.stdout, "     Active: activating (auto-restart) (Result: %s)%s\n", s.Result, since)
	case stateFailed:
		fmt.Fprintf(env.stdout, "     Active: failed (Result: %s)%s\n", s.Result, since)
		fmt.Fprintf(env.stdout, "    Process: %s\n", describeEnd(s))
	default:
		fmt.Fprintf(env.stdout, "     Active: inactive (dead)%s\n", since)
	}

	lines := lastLines(env.path(filepath.Join(logDir, u.name+".log")), 10)
	if len(lines) > 0 {
		fmt.Fprintln(env.stdout)
	}
	for _, line := range lines {
		fmt.Fprintln(env.stdout, line)
	}
}

func commName(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(data))
}

func lastLines(path string, n int) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return lines
}
