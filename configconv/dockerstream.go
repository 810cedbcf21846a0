package configconv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/pkg/stdcopy"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/pasops/pasupgrade/runner"
)

// startSession starts copying the run's streams over the attach
// connection. Without a terminal, the engine multiplexes stdout and stderr
// into one stream, which stdcopy splits again. With a terminal, the
// terminal is put in raw mode and its input is forwarded until the session
// stops.
func startSession(attached types.HijackedResponse, inv Invocation, transcript *runTranscript) (*session, error) {
	s := &session{
		attached:   attached,
		outputDone: make(chan struct{}),
		stopped:    make(chan struct{}),
	}

	if inv.Terminal == nil {
		// Output is redacted as runner.Local redacts it. A terminal's
		// output cannot be, because holding back partial lines would hide
		// the tool's prompts.
		liveOut := runner.NewRedactingWriter(orDiscard(inv.Stdout), inv.Secrets)
		liveErr := runner.NewRedactingWriter(orDiscard(inv.Stderr), inv.Secrets)
		stdout := withTranscript(liveOut, transcript)
		stderr := withTranscript(liveErr, transcript)
		go func() {
			defer close(s.outputDone)
			_, _ = stdcopy.StdCopy(stdout, stderr, attached.Reader)
			_ = liveOut.Flush()
			_ = liveErr.Flush()
		}()
		go func() {
			if inv.Stdin != nil {
				_, _ = io.Copy(attached.Conn, inv.Stdin)
			}
			_ = attached.CloseWrite()
		}()
		return s, nil
	}

	fd, err := terminalFD(inv.Terminal.In)
	if err != nil {
		return nil, err
	}
	state, err := term.MakeRaw(fd)
	if err != nil {
		return nil, fmt.Errorf("putting the terminal in raw mode: %w", err)
	}
	s.restore = func() { _ = term.Restore(fd, state) }

	input, err := newInterruptibleInput(inv.Terminal.In)
	if err != nil {
		s.restore()
		return nil, err
	}
	s.input = input
	s.terminal = inv.Terminal
	s.inputDone = make(chan struct{})
	go func() {
		defer close(s.inputDone)
		_, _ = io.Copy(attached.Conn, input)
	}()

	out := withTranscript(inv.Terminal.Out, transcript)
	go func() {
		defer close(s.outputDone)
		_, _ = io.Copy(out, attached.Reader)
	}()
	return s, nil
}

// session copies a run's streams between the caller and the container.
type session struct {
	attached   types.HijackedResponse
	outputDone chan struct{}
	stopped    chan struct{}
	stopOnce   sync.Once

	terminal  *Terminal
	input     *interruptibleInput
	inputDone chan struct{}
	restore   func()
}

// waitOutput returns when the container's output has been copied to the
// end, which the engine marks by closing the stream when the container
// exits, or when ctx ends.
func (s *session) waitOutput(ctx context.Context) {
	select {
	case <-s.outputDone:
	case <-ctx.Done():
	}
}

// stop ends input forwarding and resize forwarding and restores the
// terminal. It is safe to call more than once.
func (s *session) stop() {
	s.stopOnce.Do(func() {
		close(s.stopped)
		if s.input != nil {
			if s.input.interrupt() {
				<-s.inputDone
			}
			s.input.close()
		}
		if s.restore != nil {
			s.restore()
		}
	})
}

// forwardResize sends the terminal's size to the container now and after
// every change, until the session stops.
func (s *session) forwardResize(ctx context.Context, resize func(height, width uint) error, log *slog.Logger) {
	fd, err := terminalFD(s.terminal.In)
	if err != nil {
		return
	}
	send := func() {
		width, height, err := term.GetSize(fd)
		if err != nil || width <= 0 || height <= 0 {
			return
		}
		if err := resize(uint(height), uint(width)); err != nil && ctx.Err() == nil {
			log.Debug("forwarding the terminal size failed", "error", err)
		}
	}
	send()

	changes := s.resizeEvents()
	go func() {
		for {
			select {
			case <-s.stopped:
				return
			case _, ok := <-changes:
				if !ok {
					return
				}
				send()
			}
		}
	}()
}

// resizeEvents returns the terminal's resize channel, or one fed by
// SIGWINCH until the session stops.
func (s *session) resizeEvents() <-chan struct{} {
	if s.terminal.Resize != nil {
		return s.terminal.Resize
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGWINCH)
	events := make(chan struct{}, 1)
	go func() {
		defer signal.Stop(signals)
		for {
			select {
			case <-s.stopped:
				return
			case <-signals:
				select {
				case events <- struct{}{}:
				default:
				}
			}
		}
	}()
	return events
}

// terminalFD returns the descriptor of f without switching it to blocking
// mode, which File.Fd would do.
func terminalFD(f *os.File) (int, error) {
	if f == nil {
		return -1, fmt.Errorf("the terminal has no input file")
	}
	raw, err := f.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("using terminal %s: %w", f.Name(), err)
	}
	fd := -1
	if err := raw.Control(func(d uintptr) { fd = int(d) }); err != nil {
		return -1, fmt.Errorf("using terminal %s: %w", f.Name(), err)
	}
	if !term.IsTerminal(fd) {
		return -1, fmt.Errorf("%s is not a terminal", f.Name())
	}
	return fd, nil
}

// interruptibleInput reads a terminal with poll(2) on its descriptor and
// on a wake-up pipe, so that a pending read can be interrupted when the run
// ends. A plain blocking read would stay blocked and swallow the
// operator's next key press after the tool exited. Polling works whether or
// not the descriptor is in non-blocking mode, which File.Fd changes behind
// the runner's back.
type interruptibleInput struct {
	fd           int
	wakeR, wakeW int
}

func newInterruptibleInput(f *os.File) (*interruptibleInput, error) {
	fd, err := terminalFD(f)
	if err != nil {
		return nil, err
	}
	var pipe [2]int
	if err := unix.Pipe2(pipe[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, fmt.Errorf("creating a pipe for the terminal input: %w", err)
	}
	return &interruptibleInput{fd: fd, wakeR: pipe[0], wakeW: pipe[1]}, nil
}

// Read implements io.Reader. It returns io.EOF once interrupt was called.
func (in *interruptibleInput) Read(p []byte) (int, error) {
	for {
		fds := []unix.PollFd{
			{Fd: int32(in.fd), Events: unix.POLLIN},
			{Fd: int32(in.wakeR), Events: unix.POLLIN},
		}
		_, err := unix.Poll(fds, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("waiting for terminal input: %w", err)
		}
		if fds[1].Revents != 0 {
			return 0, io.EOF
		}
		if fds[0].Revents == 0 {
			continue
		}
		n, err := unix.Read(in.fd, p)
		switch {
		case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return 0, fmt.Errorf("reading the terminal: %w", err)
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// interrupt makes a pending and every later Read return io.EOF.
func (in *interruptibleInput) interrupt() bool {
	_, err := unix.Write(in.wakeW, []byte{0})
	return err == nil || errors.Is(err, unix.EAGAIN)
}

func (in *interruptibleInput) close() {
	_ = unix.Close(in.wakeR)
	_ = unix.Close(in.wakeW)
}

// runTranscript writes one run to the DockerRunner's transcript. A nil
// *runTranscript writes nothing.
type runTranscript struct {
	w      io.Writer
	output *runner.RedactingWriter
	start  time.Time
}

func (d *DockerRunner) startTranscript(inv Invocation) *runTranscript {
	if d.Transcript == nil {
		return nil
	}
	line := fmt.Sprintf("docker run --user %s --rm --network=host --volume %s:%s %s %s",
		orDefault(d.User, CurrentUserID()), inv.WorkDir, ContainerWorkDir, d.image(),
		strings.Join(inv.Args, " "))
	start := time.Now()
	fmt.Fprintf(d.Transcript, "[%s] $ %s\n", start.UTC().Format(time.RFC3339),
		runner.Redact(line, inv.Secrets))
	return &runTranscript{
		w:      d.Transcript,
		output: runner.NewRedactingWriter(d.Transcript, inv.Secrets),
		start:  start,
	}
}

func (t *runTranscript) finish(code int) {
	if t == nil {
		return
	}
	_ = t.output.Flush()
	elapsed := time.Since(t.start).Round(time.Millisecond)
	if code < 0 {
		fmt.Fprintf(t.w, "\n  interrupted after %s\n", elapsed)
		return
	}
	fmt.Fprintf(t.w, "\n  exit %d after %s\n", code, elapsed)
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// withTranscript adds the transcript to w; nil w discards the live copy.
func withTranscript(w io.Writer, t *runTranscript) io.Writer {
	w = orDiscard(w)
	if t == nil {
		return w
	}
	return io.MultiWriter(w, t.output)
}
