package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pasops/pasupgrade/runner"
)

// Timings of start and stop.
const (
	// settleTime is how long start watches a new process for an early
	// exit before it reports success.
	settleTime = 700 * time.Millisecond

	// stopTimeout is how long stop waits after SIGTERM before SIGKILL,
	// shorter than systemd's 90 s default so that a hung lab fails fast.
	stopTimeout = 10 * time.Second

	// handshakeTimeout bounds the wait for the supervisor to report that
	// the process started. It is generous because lab nodes share a
	// loaded test machine.
	handshakeTimeout = 30 * time.Second
)

// startUnit runs the ExecStartPre commands, then starts the supervisor and
// waits for the main process to start and survive settleTime.
func startUnit(env *environment, u *unit) error {
	unlock, err := lockUnit(env, u.name)
	if err != nil {
		return err
	}
	defer unlock()
	if readState(env, u.name).active() {
		return nil
	}

	procEnv, cred, dir, err := processSetup(env, u)
	if err != nil {
		return fmt.Errorf("Failed to start %s: %w", u.name, err)
	}
	for i, pre := range u.execPre {
		if err := runPre(env, u, expandCommand(pre, envMap(procEnv)), procEnv, cred, dir); err != nil && !u.preOptional[i] {
			_ = writeState(env, u.name, unitState{State: stateFailed, Since: time.Now(), Result: "exit-code"})
			updateStatusFile(env)
			return startFailed(u, err)
		}
	}

	if err := spawnSupervisor(env, u); err != nil {
		return startFailed(u, err)
	}

	deadline := time.Now().Add(settleTime)
	for time.Now().Before(deadline) {
		if s := readState(env, u.name); s.State == stateFailed {
			return startFailed(u, fmt.Errorf("the process exited at once (%s)", describeEnd(s)))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

func startFailed(u *unit, cause error) error {
	return fmt.Errorf("Job for %s failed: %v.\nSee \"systemctl status %s\" and %s for details.",
		u.name, cause, u.name, filepath.Join(logDir, u.name+".log"))
}

// spawnSupervisor starts "pas-systemctl supervise UNIT" in its own session
// and waits for its report on a pipe: "started PID" or an error line.
func spawnSupervisor(env *environment, u *unit) error {
	reader, writer, err := os.Pipe()
	if err != nil {
		return err
	}
	defer reader.Close()

	logFile, err := openLog(env, u.name)
	if err != nil {
		writer.Close()
		return err
	}
	defer logFile.Close()

	cmd := exec.Command(env.self, "supervise", u.name)
	cmd.Env = os.Environ()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.ExtraFiles = []*os.File{writer}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	writer.Close()
	if err != nil {
		return fmt.Errorf("starting the supervisor: %w", err)
	}
	// The supervisor outlives this process; init reaps it.
	_ = cmd.Process.Release()

	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(reader).ReadString('\n')
		lines <- strings.TrimSpace(line)
	}()
	select {
	case line := <-lines:
		if strings.HasPrefix(line, "started ") {
			return nil
		}
		if line == "" {
			line = "the supervisor exited without a report"
		}
		return errors.New(line)
	case <-time.After(handshakeTimeout):
		return fmt.Errorf("the supervisor did not report within %s", handshakeTimeout)
	}
}

func unitNameOrEmpty(args []string) string {
	if len(args) == 1 {
		return unitName(args[0])
	}
	return "unknown.service"
}

func exitResult(ps *os.ProcessState) (string, int, string) {
	if ps == nil {
		return "resources", 0, ""
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "signal", 0, unix.SignalName(ws.Signal())
	}
	return "exit-code", ps.ExitCode(), ""
}

func describeEnd(s unitState) string {
	switch s.Result {
	case "signal":
		if s.Signal == "" {
			return "killed"
		}
		return "killed by " + s.Signal
	case "exit-code":
		return "exit status " + strconv.Itoa(s.ExitStatus)
	case "":
		return "unknown"
	}
	return s.Result
}

// stopUnit sends SIGTERM to the main process group and waits for the
// supervisor to record the end, sending SIGKILL after stopTimeout.
func stopUnit(env *environment, u *unit) error {
	unlock, err := lockUnit(env, u.name)
	if err != nil {
		return err
	}
	defer unlock()

	// The pid lock keeps the supervisor from restarting the process
	// between reading its pid and signalling it.
	unlockPID, err := lockPID(env, u.name)
	if err != nil {
		return err
	}
	s := readState(env, u.name)
	if !s.active() {
		unlockPID()
		return nil
	}
	s.State = stateDeactivating
	if err := writeState(env, u.name, s); err != nil {
		unlockPID()
		return err
	}
	// The supervisor updates the status file too, but stop must not
	// return before the file shows the unit stopped.
	_ = syscall.Kill(-s.MainPID, syscall.SIGTERM)
	unlockPID()
	if waitEnded(env, u.name, s, stopTimeout) {
		recordStopped(env, u.name)
		return nil
	}
	_ = syscall.Kill(-s.MainPID, syscall.SIGKILL)
	if waitEnded(env, u.name, s, 5*time.Second) {
		recordStopped(env, u.name)
		return nil
	}
	// The supervisor is gone too: record the end here.
	if !alive(s.MainPID) {
		_ = writeState(env, u.name, unitState{State: stateInactive, Since: time.Now(), Result: "signal"})
		updateStatusFile(env)
		return nil
	}
	return fmt.Errorf("Failed to stop %s: process %d survived SIGKILL", u.name, s.MainPID)
}

// recordStopped marks the unit inactive after stop ended its process. The
// supervisor does that itself, but one that was killed before leaves the
// unit to read as failed.
func recordStopped(env *environment, unit string) {
	if readState(env, unit).State != stateInactive {
		_ = writeState(env, unit, unitState{State: stateInactive, Since: time.Now(), Result: "signal"})
	}
	updateStatusFile(env)
}

// waitEnded waits until the supervisor recorded the end of the process
// started as s and exited, or until timeout. Waiting for the supervisor's
// exit makes stop return only when nothing of the unit writes any more.
func waitEnded(env *environment, unit string, s unitState, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		now := readState(env, unit)
		if !now.active() && !alive(s.SupervisorPID) {
			return true
		}
		if !alive(s.MainPID) && !alive(s.SupervisorPID) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func resetFailed(env *environment, u *unit) error {
	unlock, err := lockUnit(env, u.name)
	if err != nil {
		return err
	}
	defer unlock()
	if readState(env, u.name).State == stateFailed {
		return writeState(env, u.name, unitState{State: stateInactive, Since: time.Now()})
	}
	return nil
}

// enableUnit creates or removes the multi-user.target.wants link, as
// systemctl enable and disable do for a WantedBy=multi-user.target unit.
func enableUnit(env *environment, u *unit, enable bool) error {
	link := env.path(filepath.Join(wantsDir, u.name))
	if !enable {
		if err := os.Remove(link); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return err
	}
	if _, err := os.Lstat(link); err == nil {
		return nil
	}
	return os.Symlink(u.path, link)
}

func enabled(env *environment, unit string) bool {
	_, err := os.Lstat(env.path(filepath.Join(wantsDir, unit)))
	return err == nil
}

// processSetup returns the environment, credential and working directory
// of the unit's processes: systemd's base environment, the user's login
// variables, then EnvironmentFile= and Environment= in that order.
func processSetup(env *environment, u *unit) ([]string, *syscall.Credential, string, error) {
	procEnv := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"LANG=C.UTF-8",
	}
	if root := os.Getenv("PAS_SYSTEMCTL_ROOT"); root != "" {
		procEnv = append(procEnv, "PAS_SYSTEMCTL_ROOT="+root)
	}
	var cred *syscall.Credential
	home := "/"
	if u.user != "" {
		acct, err := user.Lookup(u.user)
		if err != nil {
			return nil, nil, "", fmt.Errorf("User=%s: %w", u.user, err)
		}
		cred, err = credential(acct, u.group)
		if err != nil {
			return nil, nil, "", err
		}
		home = acct.HomeDir
		procEnv = append(procEnv, "HOME="+acct.HomeDir, "USER="+acct.Username,
			"LOGNAME="+acct.Username, "SHELL=/bin/sh")
	}
	for _, f := range u.envFiles {
		optional := strings.HasPrefix(f, "-")
		lines, err := readEnvironmentFile(env.path(strings.TrimPrefix(f, "-")))
		if err != nil && !optional {
			return nil, nil, "", fmt.Errorf("EnvironmentFile=%s: %w", f, err)
		}
		procEnv = runner.MergeEnv(procEnv, lines)
	}
	procEnv = runner.MergeEnv(procEnv, u.environment)

	dir := u.workDir
	switch dir {
	case "":
		dir = "/"
	case "~":
		dir = home
	}
	return procEnv, cred, dir, nil
}

func credential(acct *user.User, group string) (*syscall.Credential, error) {
	uid, err := strconv.Atoi(acct.Uid)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.Atoi(acct.Gid)
	if err != nil {
		return nil, err
	}
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return nil, fmt.Errorf("Group=%s: %w", group, err)
		}
		if gid, err = strconv.Atoi(g.Gid); err != nil {
			return nil, err
		}
	}
	var groups []uint32
	ids, _ := acct.GroupIds()
	for _, id := range ids {
		if n, err := strconv.Atoi(id); err == nil {
			groups = append(groups, uint32(n))
		}
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}, nil
}

// command builds the exec.Cmd of argv. systemd requires an absolute argv[0],
// but the stand-in also looks a bare name up in the unit's PATH.
func command(argv, procEnv []string, cred *syscall.Credential, dir string) (*exec.Cmd, error) {
	if len(argv) == 0 {
		return nil, errors.New("empty command line")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = procEnv
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	return cmd, nil
}

func runPre(env *environment, u *unit, argv, procEnv []string, cred *syscall.Credential, dir string) error {
	cmd, err := command(argv, procEnv, cred, dir)
	if err != nil {
		return err
	}
	logFile, err := openLog(env, u.name)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ExecStartPre %s: %w", strings.Join(argv, " "), err)
	}
	return nil
}

func openLog(env *environment, unit string) (*os.File, error) {
	if err := os.MkdirAll(env.path(logDir), 0o755); err != nil {
		return nil, err
	}
	return os.OpenFile(env.path(filepath.Join(logDir, unit+".log")), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
}

func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}
