package pasupgrade

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"sync"
	"time"

	"github.com/pasops/pasupgrade/runner"
)

// State is the data a run records in the journal for a resumed run: the
// backup set, the downtime so far and the final checks' results.
type State struct {
	// BackupSet is the directory of the backup set the run made (upgrade)
	// or uses (restore: the copy set aside).
	BackupSet string `json:"backup_set,omitempty"`
	// HashScheme is the admin password's hash scheme after an upgrade:
	// "bcrypt" or "sha1".
	HashScheme string `json:"hash_scheme,omitempty"`
	// Reapplied lists the nodes whose failed reload was fixed by a config
	// apply.
	Reapplied []string `json:"reapplied,omitempty"`
	// CoreDownSince is when core stopped, while it is down.
	CoreDownSince *time.Time `json:"core_down_since,omitempty"`
	// CoreHeldDown is set between the end of the step that stops core and
	// the end of the step that starts it.
	CoreHeldDown bool `json:"core_held_down,omitempty"`
	// Downtime is the time core was down so far.
	Downtime time.Duration `json:"downtime_ns,omitempty"`
}

// Env is the environment of a step's functions: the dependencies, the
// options, the upgrade path, the run's state, and helpers that run commands
// with the step's output captured.
type Env struct {
	Deps    Deps
	Options Options
	Path    UpgradePath
	State   *State

	// Started is when the run started.
	Started time.Time

	// DryRun is set when Deps are the recording wrappers of DryRunDeps.
	DryRun bool

	emit   EventSink
	output *stepOutput

	// access and hosts reach remote nodes during a restore; a step that
	// every run repeats loads them from the backup set.
	access *RemoteAccess
	hosts  []string
}

// Run runs cmd with the admin password registered as a secret and its
// output kept for the step's digest and failure message.
func (e *Env) Run(ctx context.Context, cmd runner.Command) (runner.Result, error) {
	if e.Options.AdminPassword != "" {
		cmd.Secrets = append(cmd.Secrets, e.Options.AdminPassword)
	}
	if e.output != nil {
		cmd.Stdout = teeOrSelf(cmd.Stdout, e.output)
		cmd.Stderr = teeOrSelf(cmd.Stderr, e.output)
	}
	return e.Deps.Runner.Run(ctx, cmd)
}

// RunAs runs argv as user in the working directory and returns its error.
func (e *Env) RunAs(ctx context.Context, user string, argv ...string) error {
	if user == UserRoot {
		user = ""
	}
	_, err := e.Run(ctx, runner.Command{Argv: argv, User: user, Dir: e.Options.WorkDir})
	return err
}

// Infof reports a note from the step.
func (e *Env) Infof(format string, args ...any) {
	e.send(Event{Kind: EventInfo, Message: fmt.Sprintf(format, args...)})
}

// Warnf reports something the operator should look at.
func (e *Env) Warnf(format string, args ...any) {
	e.send(Event{Kind: EventWarning, Message: fmt.Sprintf(format, args...)})
}

func (e *Env) send(ev Event) {
	if e.emit != nil {
		e.emit(ev)
	}
}

func (e *Env) password() string { return e.Options.AdminPassword }

func (e *Env) toolRequest() ToolRequest {
	return ToolRequest{
		WorkDir:     e.Options.WorkDir,
		User:        UserPAS,
		BaseURL:     e.Options.BaseURL,
		CACert:      e.Options.caCertArg(),
		AdminUser:   e.Options.AdminUser,
		Password:    e.Options.AdminPassword,
		Interactive: e.Options.Interactive,
	}
}

func teeOrSelf(w io.Writer, out *stepOutput) io.Writer {
	if w == nil {
		return out
	}
	return io.MultiWriter(w, out)
}

// stepOutput keeps a step's command output: its SHA-256 for the journal
// and the last part for a failure message.
type stepOutput struct {
	mu   sync.Mutex
	sum  hash.Hash
	tail []byte
	n    int64
}

const outputTailBytes = 4096

func newStepOutput() *stepOutput { return &stepOutput{sum: sha256.New()} }

func (o *stepOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sum.Write(p)
	o.n += int64(len(p))
	o.tail = append(o.tail, p...)
	if len(o.tail) > 2*outputTailBytes {
		o.tail = append(o.tail[:0], o.tail[len(o.tail)-outputTailBytes:]...)
	}
	return len(p), nil
}

// digest returns "sha256:HEX" of the output, or "" when there was none.
func (o *stepOutput) digest() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == 0 {
		return ""
	}
	return "sha256:" + hex.EncodeToString(o.sum.Sum(nil))
}

func (o *stepOutput) tailText(secrets []string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return runner.Tail(runner.Redact(string(o.tail), secrets), outputTailBytes)
}
