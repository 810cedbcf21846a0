package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/pasops/pasupgrade/runner"
)

// killGrace is how long a cancelled command has between SIGTERM and SIGKILL.
const killGrace = 5 * time.Second

// Run implements runner.Runner by running c inside the node through the
// exec API. c.User runs the command as that account, with the uid, gid
// and groups of the node's /etc/passwd and /etc/group. HOME, USER,
// LOGNAME, SHELL and PATH are then set as a login sets them, LANG to the
// node's C.UTF-8, and c.Env is added on top.
//
// An Interactive command runs on a pseudo-terminal in the node that is
// connected to n.Terminal. Without a terminal it is rejected with
// runner.ErrInteractiveUnavailable.
//
// When ctx ends, the command's process group gets SIGTERM and, after a
// grace period, SIGKILL, so children of the command end with it.
func (n *Node) Run(ctx context.Context, c runner.Command) (runner.Result, error) {
	if len(c.Argv) == 0 {
		return runner.Result{}, errors.New("lab: empty command")
	}
	if c.Interactive {
		return n.runInteractive(ctx, c)
	}

	env := c.Env
	if c.User != "" {
		env = runner.MergeEnv(loginEnv(c.User), c.Env)
	}
	argv := c.Argv
	if c.SurviveCaller {
		argv = runner.SurvivorArgv(argv)
	}
	created, err := n.cli.ContainerExecCreate(ctx, n.ID, container.ExecOptions{
		User:         c.User,
		Env:          env,
		WorkingDir:   c.Dir,
		Cmd:          argv,
		AttachStdin:  c.Stdin != nil,
		AttachStdout: true,
		AttachStderr: true,
	})
	if err != nil {
		return runner.Result{}, fmt.Errorf("starting %s in node %s: %w", c.String(), n.Name, err)
	}

	start := time.Now()
	stdout := newTailBuffer()
	stderr := newTailBuffer()
	liveOut := liveWriter(c.Stdout, c.Secrets)
	liveErr := liveWriter(c.Stderr, c.Secrets)
	streamErr := n.stream(ctx, created.ID, c.Stdin, tee(stdout, liveOut), tee(stderr, liveErr))
	flush(liveOut, liveErr)

	res := runner.Result{
		Stdout:   stdout.redacted(c.Secrets),
		Stderr:   stderr.redacted(c.Secrets),
		ExitCode: -1,
	}
	if ctx.Err() != nil {
		res.Duration = time.Since(start)
		return res, fmt.Errorf("running %s in node %s: %w", c.String(), n.Name, ctx.Err())
	}
	if streamErr != nil {
		return res, fmt.Errorf("reading the output of %s in node %s: %w", c.String(), n.Name, streamErr)
	}

	code, err := n.exitCode(ctx, created.ID)
	res.Duration = time.Since(start)
	if err != nil {
		return res, fmt.Errorf("reading the exit code of %s in node %s: %w", c.String(), n.Name, err)
	}
	res.ExitCode = code
	if code != 0 {
		return res, runner.NewExitError(c, res)
	}
	return res, nil
}

// stream attaches to the exec instance, feeds stdin and copies its output
// until the process closes it or ctx ends.
func (n *Node) stream(ctx context.Context, execID string, stdin io.Reader, stdout, stderr io.Writer) error {
	resp, err := n.cli.ContainerExecAttach(ctx, execID, container.ExecAttachOptions{})
	if err != nil {
		return err
	}
	defer resp.Close()

	if stdin != nil {
		go func() {
			_, _ = io.Copy(resp.Conn, stdin)
			_ = resp.CloseWrite()
		}()
	}
	done := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(stdout, stderr, resp.Reader)
		done <- err
	}()

	var copyErr error
	select {
	case copyErr = <-done:
	case <-ctx.Done():
	}
	// The client closes the connection when ctx ends, which can end the copy
	// first, but closing it does not stop the process.
	if ctx.Err() != nil {
		n.kill(execID)
		return ctx.Err()
	}
	return copyErr
}

// kill sends SIGTERM to a cancelled command's process group, then SIGKILL
// after killGrace. runc starts every exec process as the leader of a new
// session, so the group holds the command and every child that did not
// start a session of its own (the services that systemctl detaches do).
// The exec API has no kill call, so the signal goes to the group's id on
// this machine. That id is valid because the lab's engine is local,
// reached through a Unix socket.
// NOTE: an engine in another pid namespace would leave the process running.
func (n *Node) kill(execID string) {
	ctx, cancel := context.WithTimeout(context.Background(), killGrace+5*time.Second)
	defer cancel()
	inspect, err := n.cli.ContainerExecInspect(ctx, execID)
	if err != nil || !inspect.Running || inspect.Pid <= 0 {
		return
	}
	group := -inspect.Pid
	_ = syscall.Kill(group, syscall.SIGTERM)
	deadline := time.Now().Add(killGrace)
	for time.Now().Before(deadline) {
		// Signal 0 fails with ESRCH once no process of the group is left.
		if err := syscall.Kill(group, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(group, syscall.SIGKILL)
}

// exitCode waits until the exec instance is no longer running; the output
// stream can end a moment before the engine records the exit.
func (n *Node) exitCode(ctx context.Context, execID string) (int, error) {
	for {
		inspect, err := n.cli.ContainerExecInspect(ctx, execID)
		if err != nil {
			return -1, err
		}
		if !inspect.Running {
			return inspect.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// loginEnv is the environment a login shell of user would have. Docker sets
// HOME from the node's /etc/passwd itself. LANG is C.UTF-8, the only UTF-8
// locale of a minbase node, because a locale of this machine that the node
// lacks makes every Perl program, such as debconf, print warnings.
func loginEnv(user string) []string {
	return []string{
		"USER=" + user,
		"LOGNAME=" + user,
		"SHELL=/bin/sh",
		"PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
		"LANG=C.UTF-8",
	}
}

// tailBuffer keeps the last runner.MaxCapture bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func newTailBuffer() *tailBuffer { return &tailBuffer{} }

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > 2*runner.MaxCapture {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-runner.MaxCapture:]...)
	}
	return len(p), nil
}

// redacted returns the kept bytes with secrets replaced. Redacting the
// whole buffer at once catches a secret split across two writes.
func (b *tailBuffer) redacted(secrets []string) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := []byte(runner.Redact(string(b.buf), secrets))
	if len(out) > runner.MaxCapture {
		out = out[len(out)-runner.MaxCapture:]
	}
	return out
}

func liveWriter(w io.Writer, secrets []string) *runner.RedactingWriter {
	if w == nil {
		return nil
	}
	return runner.NewRedactingWriter(w, secrets)
}

func tee(buf *tailBuffer, live *runner.RedactingWriter) io.Writer {
	if live == nil {
		return buf
	}
	return io.MultiWriter(buf, live)
}

func flush(writers ...*runner.RedactingWriter) {
	for _, w := range writers {
		if w != nil {
			_ = w.Flush()
		}
	}
}

// runInteractive runs c on a pseudo-terminal in the node whose input comes
// from n.Terminal.In and whose output goes to n.Terminal.Out, as an
// operator's terminal would. Like runner.Local, it keeps no copy of the
// output in the Result.
func (n *Node) runInteractive(ctx context.Context, c runner.Command) (runner.Result, error) {
	if n.Terminal == nil {
		return runner.Result{}, runner.ErrInteractiveUnavailable
	}
	env := c.Env
	if c.User != "" {
		env = runner.MergeEnv(loginEnv(c.User), c.Env)
	}
	env = runner.MergeEnv([]string{"TERM=xterm"}, env)
	created, err := n.cli.ContainerExecCreate(ctx, n.ID, container.ExecOptions{
		User: c.User, Env: env, WorkingDir: c.Dir, Cmd: c.Argv,
		Tty: true, AttachStdin: true, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return runner.Result{}, fmt.Errorf("starting %s in node %s: %w", c.String(), n.Name, err)
	}
	resp, err := n.cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{Tty: true})
	if err != nil {
		return runner.Result{}, fmt.Errorf("attaching to %s in node %s: %w", c.String(), n.Name, err)
	}
	defer resp.Close()

	start := time.Now()
	stopInput := make(chan struct{})
	inputDone := make(chan struct{})
	if input := n.terminalInput(); input != nil {
		go func() {
			defer close(inputDone)
			input.forward(resp.Conn, stopInput)
		}()
	} else {
		close(inputDone)
	}
	// Stopping the forwarder as soon as the output ends, before the
	// connection closes, keeps the input this command did not take for
	// the next one.
	stopForwarding := sync.OnceFunc(func() {
		close(stopInput)
		resp.Close()
		<-inputDone
	})
	defer stopForwarding()
	out := n.Terminal.Out
	if out == nil {
		out = io.Discard
	}
	done := make(chan error, 1)
	// A terminal merges the two streams, so the output is not multiplexed.
	go func() {
		_, err := io.Copy(out, resp.Reader)
		done <- err
	}()
	select {
	case <-done:
		stopForwarding()
	case <-ctx.Done():
		n.kill(created.ID)
		return runner.Result{ExitCode: -1, Duration: time.Since(start)},
			fmt.Errorf("running %s in node %s: %w", c.String(), n.Name, ctx.Err())
	}

	code, err := n.exitCode(ctx, created.ID)
	res := runner.Result{ExitCode: code, Duration: time.Since(start)}
	if err != nil {
		return res, fmt.Errorf("reading the exit code of %s in node %s: %w", c.String(), n.Name, err)
	}
	if code != 0 {
		return res, runner.NewExitError(c, res)
	}
	return res, nil
}
