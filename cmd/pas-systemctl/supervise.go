package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Restart limits, systemd's defaults: at most startLimitBurst starts
// within startLimitInterval, after which the unit stays failed.
const (
	startLimitBurst    = 5
	startLimitInterval = 10 * time.Second
)

// supervise is the supervisor: it starts the unit's main process, records
// its pid, reports on fd 3, waits for the process and records how it
// ended. A unit with Restart= gets its process started again after
// RestartSec, unless the process ended within settleTime of the first
// start (start reports that as a failure) or the start limit is reached.
func supervise(env *environment, args []string) int {
	report := os.NewFile(3, "report")
	fail := func(err error) int {
		if report != nil {
			fmt.Fprintf(report, "%v\n", err)
		}
		_ = writeState(env, unitNameOrEmpty(args), unitState{State: stateFailed, Since: time.Now(), Result: "resources"})
		updateStatusFile(env)
		return exitFailure
	}
	if len(args) != 1 {
		return fail(errors.New("supervise takes one unit"))
	}
	u, err := loadUnit(env, args[0])
	if err != nil {
		return fail(err)
	}

	cmd, err := startMain(env, u)
	if err != nil {
		return fail(err)
	}
	updateStatusFile(env)
	fmt.Fprintf(report, "started %d\n", cmd.Process.Pid)
	report.Close()

	firstStart := time.Now()
	starts := []time.Time{firstStart}
	for {
		ended, stopped := waitMain(env, u, cmd)
		restart := !stopped && restartWanted(u.restart, ended) &&
			time.Since(firstStart) > settleTime && !startLimitHit(starts)
		if !restart {
			_ = writeState(env, u.name, ended)
			updateStatusFile(env)
			return exitOK
		}

		ended.State = stateActivating
		_ = writeState(env, u.name, ended)
		updateStatusFile(env)
		time.Sleep(u.restartSec)
		cmd, err = restartMain(env, u)
		if err != nil {
			fmt.Fprintf(os.Stderr, "pas-systemctl: restarting %s: %v\n", u.name, err)
			_ = writeState(env, u.name, unitState{State: stateFailed, Since: time.Now(), Result: "resources"})
			updateStatusFile(env)
			return exitOK
		}
		if cmd == nil {
			// stop arrived during the restart delay.
			_ = writeState(env, u.name, unitState{State: stateInactive, Since: time.Now()})
			updateStatusFile(env)
			return exitOK
		}
		starts = append(starts, time.Now())
		updateStatusFile(env)
		fmt.Fprintf(os.Stderr, "pas-systemctl: %s restarted as process %d\n", u.name, cmd.Process.Pid)
	}
}

// startMain starts the unit's ExecStart in its own process group and
// records it as the unit's main process.
func startMain(env *environment, u *unit) (*exec.Cmd, error) {
	procEnv, cred, dir, err := processSetup(env, u)
	if err != nil {
		return nil, err
	}
	argv := expandCommand(u.execStart, envMap(procEnv))
	cmd, err := command(argv, procEnv, cred, dir)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	started := unitState{State: stateActive, MainPID: cmd.Process.Pid, SupervisorPID: os.Getpid(), Since: time.Now()}
	if err := writeState(env, u.name, started); err != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		return nil, err
	}
	return cmd, nil
}

// restartMain starts the main process again unless stop asked for the
// unit to end, in which case it returns a nil command.
func restartMain(env *environment, u *unit) (*exec.Cmd, error) {
	unlock, err := lockPID(env, u.name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if readState(env, u.name).State == stateDeactivating {
		return nil, nil
	}
	return startMain(env, u)
}

// waitMain waits for the main process and returns the unit's state after
// it, and whether stop ended it. The state is inactive when stop ended the
// process or it exited 0, as with systemd's Type=simple, and failed
// otherwise.
func waitMain(env *environment, u *unit, cmd *exec.Cmd) (unitState, bool) {
	waitErr := cmd.Wait()
	stopped := readState(env, u.name).State == stateDeactivating
	ended := unitState{State: stateInactive, Since: time.Now()}
	ended.Result, ended.ExitStatus, ended.Signal = exitResult(cmd.ProcessState)
	if !stopped && waitErr != nil {
		ended.State = stateFailed
	}
	fmt.Fprintf(os.Stderr, "pas-systemctl: %s main process %d ended: %s\n", u.name, cmd.Process.Pid, describeEnd(ended))
	return ended, stopped
}

// restartWanted applies the Restart= setting to an end that stop did not
// cause.
func restartWanted(policy string, ended unitState) bool {
	switch policy {
	case "always":
		return true
	case "on-failure":
		return ended.State == stateFailed
	case "on-abnormal":
		return ended.Result == "signal"
	}
	return false
}

// startLimitHit reports whether starts already holds startLimitBurst
// starts within the last startLimitInterval.
func startLimitHit(starts []time.Time) bool {
	recent := 0
	for _, t := range starts {
		if time.Since(t) < startLimitInterval {
			recent++
		}
	}
	return recent >= startLimitBurst
}
