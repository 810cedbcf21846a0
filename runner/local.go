package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
	"time"
)

// Local runs commands on this machine with os/exec.
//
// A command with a User runs with that account's uid, gid and supplementary
// groups, and with a login-like environment (HOME, USER, LOGNAME, SHELL and a
// standard PATH) in place of the caller's, as "sudo -iu USER" would give it.
// The zero value is ready to use.
type Local struct {
	// Env is the base environment. Nil means os.Environ().
	Env []string

	// Terminal is used for Interactive commands. Nil means the process's
	// own standard streams.
	Terminal *Terminal

	// KillGrace is how long a cancelled command has between SIGTERM and
	// SIGKILL. Zero means 10 seconds.
	KillGrace time.Duration
}

// Terminal is the set of streams an interactive command is connected to.
type Terminal struct {
	In       io.Reader
	Out, Err io.Writer
}

// Run implements Runner.
func (l *Local) Run(ctx context.Context, c Command) (Result, error) {
	if len(c.Argv) == 0 {
		return Result{}, errors.New("runner: empty command")
	}
	if c.SurviveCaller && (c.Interactive || c.Stdin != nil) {
		return Result{}, fmt.Errorf("runner: %s: a command that survives its caller takes no input and no terminal", c.String())
	}

	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	if c.SurviveCaller {
		// No context: cancelling it must not signal the command.
		argv := SurvivorArgv(c.Argv)
		cmd = exec.Command(argv[0], argv[1:]...)
	}
	cmd.Dir = c.Dir
	if !c.SurviveCaller {
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	}
	cmd.WaitDelay = l.KillGrace
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = 10 * time.Second
	}

	base := l.Env
	if base == nil {
		base = os.Environ()
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// A non-interactive command gets a session of its own, so it has
		// no controlling terminal: a maintainer script that opens /dev/tty
		// fails at once instead of waiting for the operator.
		Setsid: !c.Interactive,
	}
	if c.User != "" {
		cred, env, err := loginCredential(c.User)
		if err != nil {
			return Result{}, err
		}
		cmd.SysProcAttr.Credential = cred
		base = env
	}
	cmd.Env = MergeEnv(base, c.Env)

	stdout := newCapture(c.Secrets)
	stderr := newCapture(c.Secrets)
	if c.Interactive {
		term := l.Terminal
		if term == nil {
			term = &Terminal{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = term.In, term.Out, term.Err
	} else {
		cmd.Stdin = c.Stdin
		if cmd.Stdin == nil {
			cmd.Stdin = eofReader{}
		}
		liveOut := redactingOrNil(c.Stdout, c.Secrets)
		liveErr := redactingOrNil(c.Stderr, c.Secrets)
		cmd.Stdout = teeTo(stdout, liveOut)
		cmd.Stderr = teeTo(stderr, liveErr)
		defer flushAll(liveOut, liveErr)
	}

	start := time.Now()
	err := cmd.Run()
	res := Result{
		Stdout:   stdout.Bytes(),
		Stderr:   stderr.Bytes(),
		Duration: time.Since(start),
		ExitCode: exitCode(cmd.ProcessState),
	}

	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return res, nil
	case ctx.Err() != nil && !c.SurviveCaller:
		return res, fmt.Errorf("running %s: %w", c.String(), ctx.Err())
	case errors.As(err, &exitErr):
		return res, NewExitError(c, res)
	default:
		return res, fmt.Errorf("starting %s: %w", c.String(), err)
	}
}

// eofReader is an empty stdin. os/exec opens /dev/null for a nil Stdin,
// but an explicit reader keeps that true for every runner built on Local.
type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

func exitCode(state *os.ProcessState) int {
	if state == nil {
		return -1
	}
	return state.ExitCode()
}

// loginCredential returns the credential and the login environment of the
// named account.
func loginCredential(name string) (*syscall.Credential, []string, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, nil, fmt.Errorf("looking up user %q: %w", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, nil, fmt.Errorf("user %q has a non-numeric uid %q", name, u.Uid)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, nil, fmt.Errorf("user %q has a non-numeric gid %q", name, u.Gid)
	}

	groupIDs, err := u.GroupIds()
	if err != nil {
		return nil, nil, fmt.Errorf("listing the groups of user %q: %w", name, err)
	}
	groups := make([]uint32, 0, len(groupIDs))
	for _, g := range groupIDs {
		id, err := strconv.ParseUint(g, 10, 32)
		if err == nil {
			groups = append(groups, uint32(id))
		}
	}

	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}
	env := []string{
		"HOME=" + u.HomeDir,
		"USER=" + u.Username,
		"LOGNAME=" + u.Username,
		"SHELL=/bin/sh",
		"PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
	}
	if lang, ok := os.LookupEnv("LANG"); ok {
		env = append(env, "LANG="+lang)
	}
	return cred, env, nil
}

// MergeEnv returns base with every KEY=VALUE of extra applied: an entry of
// extra replaces the variable of the same name in base, or is appended.
func MergeEnv(base, extra []string) []string {
	merged := make([]string, 0, len(base)+len(extra))
	index := make(map[string]int, len(base)+len(extra))
	for _, kv := range append(append([]string{}, base...), extra...) {
		key := kv
		for i := 0; i < len(kv); i++ {
			if kv[i] == '=' {
				key = kv[:i]
				break
			}
		}
		if i, ok := index[key]; ok {
			merged[i] = kv
			continue
		}
		index[key] = len(merged)
		merged = append(merged, kv)
	}
	return merged
}
