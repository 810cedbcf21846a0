// Package runnertest provides a scripted fake of runner.Runner for unit
// tests. The fake fails the test on any command it does not expect,
// and, when the test ends, on any expected command that never ran.
package runnertest

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/pasops/pasupgrade/runner"
)

// TB is the part of testing.TB the fake uses.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
	Cleanup(func())
}

// Fake is a runner.Runner that replies to expected commands in order.
// It is safe for concurrent use.
type Fake struct {
	t        TB
	mu       sync.Mutex
	expected []*Call
	calls    []runner.Command
	stdins   []string
	anyOrder bool
}

// New returns a Fake bound to t. Expectations are matched in the order they
// were added unless AnyOrder is called.
func New(t TB) *Fake {
	f := &Fake{t: t}
	t.Cleanup(f.verify)
	return f
}

// AnyOrder lets expected commands run in any order. Each still runs once
// unless Times sets another count.
func (f *Fake) AnyOrder() *Fake {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.anyOrder = true
	return f
}

// Call is one expected command and the reply the fake gives it.
type Call struct {
	argv   []string
	prefix bool
	user   *string
	times  int
	used   int
	reply  runner.Result
	err    error
	do     func(runner.Command) (runner.Result, error)
}

// Expect adds a command that must run with exactly this argv.
func (f *Fake) Expect(argv ...string) *Call {
	return f.add(&Call{argv: argv, times: 1})
}

// ExpectPrefix adds a command whose argv starts with these elements.
func (f *Fake) ExpectPrefix(argv ...string) *Call {
	return f.add(&Call{argv: argv, prefix: true, times: 1})
}

func (f *Fake) add(c *Call) *Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expected = append(f.expected, c)
	return c
}

// AsUser requires the command to run as user ("" for the runner's own).
func (c *Call) AsUser(user string) *Call { c.user = &user; return c }

// Times lets the command run n times.
func (c *Call) Times(n int) *Call { c.times = n; return c }

// Stdout sets the command's standard output.
func (c *Call) Stdout(s string) *Call { c.reply.Stdout = []byte(s); return c }

// Stderr sets the command's standard error.
func (c *Call) Stderr(s string) *Call { c.reply.Stderr = []byte(s); return c }

// Exit makes the command exit with code. A non-zero code returns an
// *runner.ExitError as the real runners do.
func (c *Call) Exit(code int) *Call { c.reply.ExitCode = code; return c }

// Fail makes the command fail to start with err.
func (c *Call) Fail(err error) *Call { c.err = err; return c }

// Do replaces the scripted reply with fn, which sees the full command.
func (c *Call) Do(fn func(runner.Command) (runner.Result, error)) *Call { c.do = fn; return c }

func (c *Call) matches(cmd runner.Command) bool {
	if c.user != nil && *c.user != cmd.User {
		return false
	}
	if c.prefix {
		return len(cmd.Argv) >= len(c.argv) && slices.Equal(cmd.Argv[:len(c.argv)], c.argv)
	}
	return slices.Equal(cmd.Argv, c.argv)
}

// Run implements runner.Runner.
func (f *Fake) Run(ctx context.Context, cmd runner.Command) (runner.Result, error) {
	var stdin string
	if cmd.Stdin != nil {
		b, _ := io.ReadAll(cmd.Stdin)
		stdin = string(b)
	}

	f.mu.Lock()
	f.calls = append(f.calls, cmd)
	f.stdins = append(f.stdins, stdin)
	call := f.next(cmd)
	f.mu.Unlock()

	if call == nil {
		f.t.Helper()
		f.t.Errorf("runnertest: unexpected command %s\n%s", cmd.String(), f.pendingList())
		return runner.Result{ExitCode: -1}, fmt.Errorf("runnertest: unexpected command %s", cmd.String())
	}
	if err := ctx.Err(); err != nil {
		return runner.Result{ExitCode: -1}, err
	}
	if call.do != nil {
		return call.do(cmd)
	}
	if call.err != nil {
		return runner.Result{ExitCode: -1}, call.err
	}

	res := call.reply
	if cmd.Stdout != nil {
		_, _ = cmd.Stdout.Write(res.Stdout)
	}
	if cmd.Stderr != nil {
		_, _ = cmd.Stderr.Write(res.Stderr)
	}
	if res.ExitCode != 0 {
		return res, runner.NewExitError(cmd, res)
	}
	return res, nil
}

// next returns the expectation cmd satisfies and marks it used. f.mu is held.
func (f *Fake) next(cmd runner.Command) *Call {
	for _, c := range f.expected {
		if c.used >= c.times {
			continue
		}
		if c.matches(cmd) {
			c.used++
			return c
		}
		if !f.anyOrder {
			return nil
		}
	}
	return nil
}

func (f *Fake) pendingList() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, c := range f.expected {
		if c.used < c.times {
			fmt.Fprintf(&b, "  still expected: %s\n", strings.Join(c.argv, " "))
		}
	}
	if b.Len() == 0 {
		return "  no more commands were expected"
	}
	return strings.TrimRight(b.String(), "\n")
}

// Calls returns every command the fake received, in order.
func (f *Fake) Calls() []runner.Command {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Stdin returns what the i-th command received on stdin.
func (f *Fake) Stdin(i int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stdins[i]
}

func (f *Fake) verify() {
	f.mu.Lock()
	var missing []string
	for _, c := range f.expected {
		if c.used < c.times {
			missing = append(missing, strings.Join(c.argv, " "))
		}
	}
	f.mu.Unlock()
	if len(missing) > 0 {
		f.t.Helper()
		f.t.Errorf("runnertest: expected commands never ran:\n  %s", strings.Join(missing, "\n  "))
	}
}
