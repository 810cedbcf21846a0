package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Unit states, as systemctl is-active prints them.
const (
	stateActive       = "active"
	stateActivating   = "activating"
	stateInactive     = "inactive"
	stateFailed       = "failed"
	stateDeactivating = "deactivating"
)

// unitState is the content of /run/pas-systemctl/UNIT.json.
type unitState struct {
	State         string    `json:"state"`
	MainPID       int       `json:"main_pid,omitempty"`
	SupervisorPID int       `json:"supervisor_pid,omitempty"`
	Since         time.Time `json:"since"`
	// Result is the kind of the process's end: "exit-code" with
	// ExitStatus, or "signal" with Signal.
	Result     string `json:"result,omitempty"`
	ExitStatus int    `json:"exit_status,omitempty"`
	Signal     string `json:"signal,omitempty"`
}

// active reports whether the unit has a supervisor at work: running,
// waiting to restart or stopping.
func (s unitState) active() bool {
	return s.State == stateActive || s.State == stateActivating || s.State == stateDeactivating
}

func statePath(env *environment, unit string) string {
	return env.path(filepath.Join(stateDir, unit+".json"))
}

// readState returns the unit's recorded state, corrected when the
// recorded process is gone: a unit whose supervisor and process died
// without recording it (a killed supervisor) is failed.
func readState(env *environment, unit string) unitState {
	data, err := os.ReadFile(statePath(env, unit))
	if err != nil {
		return unitState{State: stateInactive}
	}
	var s unitState
	if json.Unmarshal(data, &s) != nil || s.State == "" {
		return unitState{State: stateInactive}
	}
	if s.active() && !alive(s.MainPID) && !alive(s.SupervisorPID) {
		s.State, s.Result = stateFailed, "signal"
	}
	return s
}

// writeState replaces the state file atomically, so readers never see a
// partial file.
func writeState(env *environment, unit string, s unitState) error {
	if err := os.MkdirAll(env.path(stateDir), 0o755); err != nil {
		return err
	}
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return writeAtomic(statePath(env, unit), data, 0o644)
}

// writeAtomic writes data to a temporary file beside path and renames it
// over path.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// alive reports whether pid is a live process (not a zombie).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && err != syscall.EPERM {
		return false
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state letter follows the command name in parentheses, which may
	// itself contain spaces and parentheses.
	rest := string(data[strings.LastIndexByte(string(data), ')')+1:])
	fields := strings.Fields(rest)
	return len(fields) > 0 && fields[0] != "Z"
}

// lockUnit serializes the systemctl commands that change one unit.
func lockUnit(env *environment, unit string) (func(), error) {
	return lockFile(env, unit+".lock")
}

// lockPID serializes changes of a unit's main process between stop and
// the supervisor's restarts. stop holds lockUnit while it waits for the
// supervisor, so the supervisor cannot use that lock.
func lockPID(env *environment, unit string) (func(), error) {
	return lockFile(env, unit+".pid.lock")
}

func lockFile(env *environment, name string) (func(), error) {
	if err := os.MkdirAll(env.path(stateDir), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(env.path(filepath.Join(stateDir, name)), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", name, err)
	}
	return func() { f.Close() }, nil
}
