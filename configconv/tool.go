package configconv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/pasops/pasupgrade/runner"
)

// File names the upgrade tool reads and writes in its working directory.
// The vendor's guide leaves them blank; these are the names the lab's tool
// uses.
const (
	// DefaultExportFile is the running configuration pre-upgrade exports.
	DefaultExportFile = "pas-config-4.8.0.yaml"
	// DefaultConvertedFile is the configuration convert-config writes and
	// post-upgrade uploads.
	DefaultConvertedFile = "pas-config-4.9.0.yaml"
)

// Defaults of the upgrade tool's global options, which Tool leaves out of
// the arguments when its fields are empty.
const (
	// DefaultToolBaseURL is the tool's default --frontend-baseurl.
	DefaultToolBaseURL = "http://localhost"
	// DefaultToolUser is the tool's default --user.
	DefaultToolUser = "admin"
)

// Exit codes of the upgrade tool.
const (
	toolExitUsage       = 2
	toolExitNeedsAnswer = 3
	toolExitApplyFailed = 4
)

// Errors callers branch on. A failed run returns a *ToolError that wraps one
// of them.
var (
	// ErrToolFailed is a run that exited with a code the other errors do
	// not cover.
	ErrToolFailed = errors.New("configconv: the upgrade tool failed")
	// ErrNeedsAnswer is a convert-config run that stopped at an item it
	// cannot convert by itself, because no answer was given or the answer
	// was no.
	ErrNeedsAnswer = errors.New("configconv: the conversion needs an answer")
	// ErrApplyFailed is a post-upgrade run whose config apply failed or
	// timed out.
	ErrApplyFailed = errors.New("configconv: the config apply failed")
	// ErrNoOutputFile is a run that exited 0 without writing its file.
	ErrNoOutputFile = errors.New("configconv: the upgrade tool wrote no file")
)

// ToolError reports a run of the upgrade tool that exited non-zero.
type ToolError struct {
	// Subcommand is the tool's subcommand, such as "convert-config".
	Subcommand string
	// ExitCode is the tool's exit status.
	ExitCode int
	// Tail is the end of the tool's output, with secrets redacted.
	Tail string

	kind error
}

func (e *ToolError) Error() string {
	msg := fmt.Sprintf("upgrade tool %s exited with code %d", e.Subcommand, e.ExitCode)
	switch e.kind {
	case ErrNeedsAnswer:
		msg += ": the conversion needs the answer y for an item it cannot convert by itself; " +
			"answer y on a terminal or in an answers file, or change the item in the exported file"
	case ErrApplyFailed:
		msg += ": the config apply failed or timed out; check the nodes named below, then run post-upgrade again"
	}
	if e.Tail != "" {
		msg += "\n" + e.Tail
	}
	return msg
}

// Unwrap returns the sentinel error for the exit code.
func (e *ToolError) Unwrap() error { return e.kind }

// Invocation is one run of the upgrade tool.
type Invocation struct {
	// Args are the tool's arguments: global options, the subcommand and
	// its options.
	Args []string
	// WorkDir is the host directory the tool works in. The Docker runner
	// mounts it at /upgrade.
	WorkDir string
	// Stdin feeds the tool when Terminal is nil. Nil means empty input.
	Stdin io.Reader
	// Stdout and Stderr receive the tool's output when Terminal is nil.
	// Nil discards it.
	Stdout, Stderr io.Writer
	// Terminal, when set, connects the tool to an operator's terminal in
	// place of Stdin, Stdout and Stderr.
	Terminal *Terminal
	// Secrets are redacted from transcripts and errors.
	Secrets []string
}

// Terminal is an operator's terminal that a tool run is connected to.
type Terminal struct {
	// In is the terminal device the operator types on. A run puts it in
	// raw mode and restores its state when it returns.
	In *os.File
	// Out receives the tool's output.
	Out io.Writer
	// Resize receives a value whenever the window size of In changes. Nil
	// means the process's SIGWINCH signals.
	Resize <-chan struct{}
}

// ToolRunner runs the upgrade tool. DockerRunner and HostRunner implement
// it; tests may use their own.
type ToolRunner interface {
	// Prepare does the slow work a run needs, such as pulling the tool's
	// image, so that it can happen before the services stop. It is safe
	// to call more than once.
	Prepare(ctx context.Context) error
	// Run runs the tool once and returns its exit code. The error is nil
	// whenever the tool ran to its exit, whatever the code. It is non-nil
	// when the tool could not start or ctx ended the run.
	Run(ctx context.Context, inv Invocation) (exitCode int, err error)
}

// Tool runs the vendor's upgrade tool's three subcommands. Set Runner and
// WorkDir; the other fields are optional.
type Tool struct {
	// Runner runs the tool.
	Runner ToolRunner
	// WorkDir is the directory of the exported and converted files.
	WorkDir string

	// BaseURL is the management component's address (--frontend-baseurl).
	// Empty leaves the tool's default, DefaultToolBaseURL.
	BaseURL string
	// CACert is a PEM bundle with the full chain of the management
	// component's certificate (--cacert). Empty trusts the system's CAs.
	CACert string
	// AdminUser is the management user (--user). Empty leaves the tool's
	// default, DefaultToolUser.
	AdminUser string
	// Password is the admin password. It reaches the tool on its standard
	// input only.
	Password string

	// Answers holds one answer line per prompt of convert-config. Nil means
	// that Terminal answers, or, without a terminal, that a prompt fails
	// the run with ErrNeedsAnswer.
	Answers io.Reader
	// Terminal is the operator's terminal for convert-config's prompts.
	// The other subcommands never use it, because they read the password
	// from standard input.
	Terminal *Terminal

	// ExportFile and ConvertedFile are the file names in WorkDir. Empty
	// means DefaultExportFile and DefaultConvertedFile.
	ExportFile, ConvertedFile string

	// Stdout and Stderr receive the tool's output. Nil discards it.
	Stdout, Stderr io.Writer
	// Logger receives debug and warning logs. Nil discards them.
	Logger *slog.Logger
}

// PostUpgradeOutcome is the result of a post-upgrade run.
type PostUpgradeOutcome struct {
	// Applied reports that the tool uploaded and applied the converted
	// configuration within the timeout.
	Applied bool
	// ExitCode is the tool's exit status.
	ExitCode int
	// Output is the end of the tool's output, with the password redacted.
	Output string
}

// PreUpgrade exports the running configuration and returns the path of the
// exported file. It fails with ErrNoOutputFile when the tool exited 0 but
// did not write the file.
func (t *Tool) PreUpgrade(ctx context.Context) (string, error) {
	path := filepath.Join(t.WorkDir, orDefault(t.ExportFile, DefaultExportFile))
	err := t.runWritingFile(ctx, path, invocationPlan{
		subcommand: "pre-upgrade",
		stdin:      bytes.NewReader(t.passwordLine()),
	})
	if err != nil {
		return "", err
	}
	return path, nil
}

// ConvertConfig converts the exported configuration and returns the path
// of the converted file. Prompts are answered from Answers, else from
// Terminal; with neither, a prompt fails with ErrNeedsAnswer. It fails with
// ErrNoOutputFile when the tool exited 0 but did not write the file, as the
// guide's check after the conversion would find.
func (t *Tool) ConvertConfig(ctx context.Context) (string, error) {
	export := filepath.Join(t.WorkDir, orDefault(t.ExportFile, DefaultExportFile))
	if _, err := os.Stat(export); err != nil {
		return "", fmt.Errorf("convert-config needs the exported configuration: %w; run pre-upgrade first", err)
	}

	plan := invocationPlan{subcommand: "convert-config", stdin: t.Answers}
	if t.Answers == nil && t.Terminal != nil {
		plan.terminal = t.Terminal
	}
	path := filepath.Join(t.WorkDir, orDefault(t.ConvertedFile, DefaultConvertedFile))
	if err := t.runWritingFile(ctx, path, plan); err != nil {
		return "", err
	}
	return path, nil
}

// PostUpgrade uploads and applies the converted configuration, waiting at
// most timeout for the apply, which the tool takes in whole seconds
// (rounded up). An apply that fails or times out returns the outcome and a
// *ToolError wrapping ErrApplyFailed.
func (t *Tool) PostUpgrade(ctx context.Context, timeout time.Duration) (PostUpgradeOutcome, error) {
	if timeout <= 0 {
		return PostUpgradeOutcome{}, fmt.Errorf("invalid config apply timeout %s: it must be positive, such as 20s", timeout)
	}
	converted := filepath.Join(t.WorkDir, orDefault(t.ConvertedFile, DefaultConvertedFile))
	if _, err := os.Stat(converted); err != nil {
		return PostUpgradeOutcome{}, fmt.Errorf("post-upgrade needs the converted configuration: %w; run convert-config first", err)
	}

	seconds := strconv.Itoa(int(math.Ceil(timeout.Seconds())))
	res, err := t.run(ctx, invocationPlan{
		subcommand: "post-upgrade",
		options:    []string{"--config-apply-timeout", seconds},
		stdin:      bytes.NewReader(t.passwordLine()),
	})
	outcome := PostUpgradeOutcome{Applied: err == nil, ExitCode: res.exitCode, Output: res.tail}
	return outcome, err
}

// invocationPlan is the subcommand, options and input of one run.
type invocationPlan struct {
	subcommand string
	options    []string
	stdin      io.Reader
	terminal   *Terminal
}

// runResult is a finished run's exit code and the end of its output.
type runResult struct {
	exitCode int
	tail     string
}

// runWritingFile runs plan and checks that the run wrote path: a file that
// is missing afterwards, or unchanged since before the run, fails with
// ErrNoOutputFile.
func (t *Tool) runWritingFile(ctx context.Context, path string, plan invocationPlan) error {
	before, _ := os.Stat(path)
	if _, err := t.run(ctx, plan); err != nil {
		return err
	}
	after, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("upgrade tool %s exited 0 but %s is missing: %w; check its output above",
			plan.subcommand, path, ErrNoOutputFile)
	}
	if before != nil && os.SameFile(before, after) && before.ModTime().Equal(after.ModTime()) &&
		before.Size() == after.Size() {
		return fmt.Errorf("upgrade tool %s exited 0 but left %s as it was: %w; check its output above",
			plan.subcommand, path, ErrNoOutputFile)
	}
	return nil
}

// run prepares the runner, places the CA bundle and runs one subcommand.
func (t *Tool) run(ctx context.Context, plan invocationPlan) (runResult, error) {
	if t.Runner == nil || t.WorkDir == "" {
		return runResult{}, errors.New("configconv: Tool needs a Runner and a WorkDir")
	}
	if err := t.Runner.Prepare(ctx); err != nil {
		return runResult{}, err
	}
	args, err := t.globalArgs()
	if err != nil {
		return runResult{}, err
	}
	args = append(append(args, plan.subcommand), plan.options...)

	secrets := []string{t.Password}
	tail := newTailBuffer(secrets)
	inv := Invocation{
		Args:    args,
		WorkDir: t.WorkDir,
		Stdin:   plan.stdin,
		Stdout:  teeOrTail(t.Stdout, tail),
		Stderr:  teeOrTail(t.Stderr, tail),
		Secrets: secrets,
	}
	if plan.terminal != nil {
		term := *plan.terminal
		term.Out = teeOrTail(term.Out, tail)
		inv.Terminal = &term
	}

	t.logger().Debug("running the upgrade tool", "subcommand", plan.subcommand, "workdir", t.WorkDir)
	code, err := t.Runner.Run(ctx, inv)
	res := runResult{exitCode: code, tail: tail.String()}
	if err != nil {
		return res, fmt.Errorf("running upgrade tool %s: %w", plan.subcommand, err)
	}
	if code == 0 {
		return res, nil
	}

	toolErr := &ToolError{Subcommand: plan.subcommand, ExitCode: code, Tail: res.tail, kind: ErrToolFailed}
	switch {
	case code == toolExitNeedsAnswer && plan.subcommand == "convert-config":
		toolErr.kind = ErrNeedsAnswer
	case code == toolExitApplyFailed && plan.subcommand == "post-upgrade":
		toolErr.kind = ErrApplyFailed
	}
	t.logger().Warn("the upgrade tool failed", "subcommand", plan.subcommand, "exit_code", code)
	return res, toolErr
}

// globalArgs returns the options that come before the subcommand, copying
// the CA bundle into the working directory when needed.
func (t *Tool) globalArgs() ([]string, error) {
	var args []string
	if t.BaseURL != "" {
		args = append(args, "--frontend-baseurl", t.BaseURL)
	}
	if t.CACert != "" {
		name, err := PlaceCACert(t.CACert, t.WorkDir)
		if err != nil {
			return nil, err
		}
		args = append(args, "--cacert", name)
	}
	if t.AdminUser != "" {
		args = append(args, "--user", t.AdminUser)
	}
	return args, nil
}

func (t *Tool) passwordLine() []byte {
	return []byte(t.Password + "\n")
}

func (t *Tool) logger() *slog.Logger {
	if t.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return t.Logger
}

func orDefault(value, fallback string) string {
	if value == "" {
		return fallback
	}
	return value
}

func teeOrTail(w io.Writer, tail *tailBuffer) io.Writer {
	if w == nil {
		return tail
	}
	return io.MultiWriter(w, tail)
}

// tailBytes is how much of the tool's output a ToolError quotes.
const tailBytes = 4096

// tailBuffer keeps the end of what is written to it. It is safe for
// concurrent use, because a runner may copy stdout and stderr at once.
type tailBuffer struct {
	mu      sync.Mutex
	buf     []byte
	secrets []string
}

func newTailBuffer(secrets []string) *tailBuffer { return &tailBuffer{secrets: secrets} }

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > 4*tailBytes {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-2*tailBytes:]...)
	}
	return len(p), nil
}

// String returns the redacted tail, starting at a line boundary.
func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return runner.Tail(runner.Redact(string(b.buf), b.secrets), tailBytes)
}
